__version__ = "0.1.0"

def _registers_on_import() -> bool:
    "Whether `import hierlm` registers every family; the `hierlm` command imports only the family it runs (faster)."
    import os, sys
    return os.path.basename(sys.argv[0] if sys.argv else '') != 'hierlm'

if _registers_on_import():                  # then transformers' Auto classes load any saved hierlm folder
    from .modeling import register_families as _register_families
    _register_families()
