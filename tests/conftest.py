import atexit, os, shutil, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUARDED = ('runs', 'figures')          # the user's run directories and the committed figures: tests must not touch them

def pytest_addoption(parser):
    parser.addoption('--skip-slow', action='store_true', help="skip notebook cells flagged `#| slow` (run by default)")

# Tests never reach a model or data hub: a missing hub object must fail at once, not retry for a minute.
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
os.environ.setdefault('WANDB_MODE', 'offline')
os.environ.setdefault('NO_MKDOCS_2_WARNING', '1')

# Tests write only to temporary folders: run directories (jobs run with their default out_dir), figures the notebooks
# save, and the token cache go to one folder per test process, removed at exit. Every subprocess inherits this.
_TMP = Path(tempfile.mkdtemp(prefix='hierlm-tests-'))
atexit.register(shutil.rmtree, _TMP, True)
os.environ['HIERLM_RUNS'] = str(_TMP)
os.environ['HIERLM_FIGURES'] = str(_TMP/'figures')
os.environ['HIERLM_CACHE'] = str(_TMP/'cache')

def _snapshot() -> dict:
    "Every file under the guarded folders with its size and modification time."
    return {str(p.relative_to(ROOT)): (p.stat().st_size, p.stat().st_mtime_ns)
            for d in GUARDED if (ROOT/d).exists() for p in (ROOT/d).rglob('*') if p.is_file()}

def pytest_sessionstart(session):
    session.config._hierlm_before = _snapshot()

def pytest_sessionfinish(session, exitstatus):
    "Fail the run if any test wrote into runs/ or figures/ of the checkout (xdist: checked once, by the controller)."
    if hasattr(session.config, 'workerinput'): return
    before, after = session.config._hierlm_before, _snapshot()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if changed:
        tr = session.config.pluginmanager.get_plugin('terminalreporter')
        msg = f"tests wrote into the checkout's {' / '.join(GUARDED)}: {', '.join(changed[:10])}" + \
              (f' and {len(changed) - 10} more' if len(changed) > 10 else '')
        (tr.write_line(msg, red=True) if tr else print(msg))
        session.exitstatus = 1
