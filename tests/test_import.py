"`import hierlm` alone registers every model family with transformers' Auto classes (issue 16, item 11)."
import subprocess, sys, textwrap

SAVE = textwrap.dedent("""
    import sys, torch
    from hierlm.core import ARCHITECTURES, model_config_class
    from hierlm.train import build_model
    for arch in [k for k, a in ARCHITECTURES.items() if a.native]:
        torch.manual_seed(0)
        m = build_model(model_config_class(arch)(arch=arch, d_model=32, n_layers=2, n_heads=2, block_size=32), 40)
        m.save_pretrained(f'{sys.argv[1]}/{arch}')
    print(' '.join(k for k, a in ARCHITECTURES.items() if a.native))
""")

LOAD = textwrap.dedent("""
    import sys, json, transformers
    import hierlm                                   # nothing else from hierlm: the Auto classes must know every family
    for arch in sys.argv[2:]:
        d = f'{sys.argv[1]}/{arch}'
        auto = {'decoder': 'AutoModelForCausalLM', 'bdh': 'AutoModelForCausalLM', 'bigram': 'AutoModelForCausalLM',
                'lht': 'AutoModelForMaskedLM', 'diffusion': 'AutoModelForMaskedLM'}[arch]
        m = getattr(transformers, auto).from_pretrained(d, local_files_only=True)
        print(arch, type(m).__name__, m.kind)
""")

def test_import_hierlm_registers_every_family(tmp_path):
    "A fresh process that runs only `import hierlm` loads a saved folder of each family with its Auto class."
    saved = subprocess.run([sys.executable, '-c', SAVE, str(tmp_path)], capture_output=True, text=True)
    assert saved.returncode == 0, saved.stderr[-3000:]
    archs = saved.stdout.split()
    assert {'decoder', 'bdh', 'lht', 'diffusion'} <= set(archs), archs
    loaded = subprocess.run([sys.executable, '-c', LOAD, str(tmp_path), *archs], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    rows = dict(l.split(' ', 1) for l in loaded.stdout.strip().splitlines())
    assert set(rows) == set(archs), loaded.stdout
    assert rows['lht'].endswith('masked') and rows['diffusion'].endswith('diffusion') and rows['bdh'].endswith('causal')
