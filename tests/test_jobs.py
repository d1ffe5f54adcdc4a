"Job notebooks run under papermill with parameters, as a user would run them."
import json, subprocess, sys, tempfile
from pathlib import Path
import papermill

ROOT = Path(__file__).resolve().parents[1]

def test_job_notebooks_have_a_parameters_cell():
    for nb in sorted((ROOT/'nbs').glob('8?_job_*.ipynb')):
        params = papermill.inspect_notebook(str(nb))
        assert params, f'{nb.name}: no cell tagged `parameters` (did nbdev-clean strip it? see allowed_cell_metadata_keys)'

def test_papermill_parameters_take_effect():
    with tempfile.TemporaryDirectory() as t:
        out = Path(t)/'out'
        r = subprocess.run([str(Path(sys.executable).parent/'papermill'), 'nbs/80_job_data.ipynb', str(Path(t)/'run.ipynb'),
                            '--cwd', 'nbs', '-p', 'preset', 'tiny', '-p', 'overrides', f'data.synthetic_docs=12 data.cache_dir={t}',
                            '-p', 'out_dir', str(out)], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-4000:]
        report = json.loads((out/'data_report.json').read_text())
        assert report['preset'] == 'tiny' and report['corpus'] == 'synthetic'
        assert report['docs']['count'] == 12, report          # the override reached the job
