"Job notebooks run under papermill with parameters, as a user would run them."
import json, subprocess, sys, tempfile
from pathlib import Path
import papermill

ROOT = Path(__file__).resolve().parents[1]

def test_job_notebooks_have_a_parameters_cell():
    for nb in sorted((ROOT/'nbs').glob('8?_job_*.ipynb')):
        params = papermill.inspect_notebook(str(nb))
        assert params, f'{nb.name}: no cell tagged `parameters` (did nbdev-clean strip it? see allowed_cell_metadata_keys)'

def test_every_job_parameter_is_visible_to_papermill():
    "papermill drops a line with two `=` (e.g. in its comment): `-p` would then not show it in --help-notebook."
    for nb in sorted((ROOT/'nbs').glob('8?_job_*.ipynb')):
        cell = next(c for c in json.loads(nb.read_text())['cells'] if 'parameters' in c['metadata'].get('tags', []))
        assigned = [l.split('=')[0].strip() for l in ''.join(cell['source']).splitlines() if '=' in l.split('#')[0]]
        assert set(assigned) == set(papermill.inspect_notebook(str(nb))), f'{nb.name}: papermill does not see all of {assigned}'

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

import os, pytest
from hierlm.corpora import have_data

TINY = 'model.d_model=32 model.n_layers=1 model.n_heads=2 data.batch_size=2 eval.eval_batches=1 train.warmup_steps=0'

@pytest.mark.parametrize('preset,corpus,extra', [('hier-bd3lm-tiny', None, ''), ('mdlm-shakespeare', 'tiny_shakespeare', ''),
                                                 ('bd3lm-shakespeare', 'tiny_shakespeare', 'model.diffusion_block=4'),
                                                 ('hier-bd3lm-gsm8k', 'gsm8k', '')])
def test_diffusion_jobs_train_evaluate_reload_and_sample(preset, corpus, extra):
    "The three diffusion presets (at a tiny size) and the tiny plan-then-execute one go through the whole job."
    if corpus and not have_data(corpus): pytest.skip(f'{corpus} is not in $HIERLM_DATA')
    with tempfile.TemporaryDirectory() as t:
        r = subprocess.run([str(Path(sys.executable).parent/'papermill'), 'nbs/84_job_diffusion.ipynb', str(Path(t)/'run.ipynb'), '--cwd', 'nbs',
                            '-p', 'preset', preset, '-p', 'max_steps', '3', '-p', 'out_dir', str(Path(t)/'run'), '-p', 'eval_records', '4',
                            '-p', 'overrides', f'{TINY if corpus else ""} {extra} data.cache_dir={t}/cache'.strip()],
                           cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-4000:]
        out = json.loads((Path(t)/'run.ipynb').read_text())
        text = ''.join(''.join(o.get('text', '')) for c in out['cells'] for o in c.get('outputs', []))
        assert 'perplexity <=' in text and 'with the cache' in text
        assert 'step 3/3' in text and 'tokens/s' in text                  # the job shows its training progress
        assert ('exact match' in text) == (preset.startswith('hier'))
        assert (Path(t)/'run'/'final'/'model.safetensors').exists()

def test_finetune_job_scores_prompting_and_the_finetuned_model():
    "The finetuning job at its defaults (a random tiny GPT-2 base, arith-lora, 4 steps) writes the comparison table."
    with tempfile.TemporaryDirectory() as t:
        r = subprocess.run([str(Path(sys.executable).parent/'papermill'), 'nbs/85_job_finetune.ipynb', str(Path(t)/'run.ipynb'),
                            '--cwd', 'nbs', '-p', 'out_dir', str(Path(t)/'run'), '-p', 'overrides', f'data.cache_dir={t}/cache'],
                           cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-4000:]
        out = json.loads((Path(t)/'run.ipynb').read_text())
        text = ''.join(''.join(o.get('data', {}).get('text/markdown', '')) for c in out['cells'] for o in c.get('outputs', []))
        assert 'prompted 0-shot' in text and 'LoRA (r=8)' in text and 'exact_match' in text, text
        assert (Path(t)/'run'/'final'/'adapter_config.json').exists()
        assert (Path(t)/'arith-lora-random-tiny-base'/'config.json').exists()     # beside the run, not in the repo

def test_align_job_runs_every_stage_and_writes_the_tables():
    "The alignment job at its defaults (tiny: base, SFT, DPO, verifier, test-time methods) writes its tables and curve."
    with tempfile.TemporaryDirectory() as t:
        table = Path(t)/'align.md'
        r = subprocess.run([str(Path(sys.executable).parent/'papermill'), 'nbs/86_job_align.ipynb', str(Path(t)/'run.ipynb'),
                            '--cwd', 'nbs', '-p', 'out_dir', str(Path(t)/'run'), '-p', 'table_out', str(table),
                            '-p', 'figure_out', str(Path(t)/'curve.png')], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-4000:]
        text = table.read_text()
        for row in ('| SFT |', '| DPO |', '+ verifier reranking', '+ self-consistency', '+ calculator', 'pass@N', 'AUROC'):
            assert row in text, (row, text)
        assert (Path(t)/'curve.png').stat().st_size > 0 and (Path(t)/'run'/'seed0'/'results.json').exists()
        table.write_text(text + '\n**What the numbers say**\n\nkept\n')               # hand notes survive a rerun
        r = subprocess.run([str(Path(sys.executable).parent/'papermill'), 'nbs/86_job_align.ipynb', str(Path(t)/'run2.ipynb'),
                            '--cwd', 'nbs', '-p', 'out_dir', str(Path(t)/'run'), '-p', 'table_out', str(table)],
                           cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-4000:]
        out = json.loads((Path(t)/'run2.ipynb').read_text())
        assert 'read back' in ''.join(''.join(o.get('text', '')) for c in out['cells'] for o in c.get('outputs', []))
        assert table.read_text().rstrip().endswith('kept')
