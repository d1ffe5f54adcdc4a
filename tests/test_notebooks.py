"Every notebook in nbs/ is a test: its cells run top to bottom with `nbdev-test`, one notebook per test."
import subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT/'nbs').glob('*.ipynb') if not p.name.startswith(('_', '.')))

def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 4, f'expected the notebooks in {ROOT/"nbs"}, found {NOTEBOOKS}'

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook(nb, request):
    flags = [] if request.config.getoption('--skip-slow') else ['--flags', 'slow']
    r = subprocess.run([str(Path(sys.executable).parent/'nbdev-test'), str(nb), *flags, '--cell-timing-min', '20'],
                       cwd=ROOT, capture_output=True, text=True)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and 'Success.' in r.stdout, f'{nb.name} failed:\n{out[-6000:]}'
    if out.strip() != 'Success.': print(out[-2000:])
