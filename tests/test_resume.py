"A training run killed mid-way (SIGKILL) and started again writes the same metrics.jsonl as an uninterrupted run."
import json, os, signal, subprocess, sys, tempfile, time
from pathlib import Path

HIERLM = str(Path(sys.executable).parent/'hierlm')
ARGS = ['tiny', 'train.max_steps=300', 'train.ckpt_every=50', 'train.log_every=1', 'eval.eval_every=50', 'model.dropout=0.1',
        'train.wandb=disabled']

def metrics(run):
    return [{k: v for k, v in json.loads(l).items() if k != 'tokens_per_s'}       # wall-clock differs between runs
            for l in (run/'metrics.jsonl').read_text().splitlines()]

def test_killed_run_resumes_exactly():
    with tempfile.TemporaryDirectory() as t:
        full, cut = Path(t)/'full', Path(t)/'cut'
        subprocess.run([HIERLM, 'train', *ARGS, '--out', str(full)], check=True, capture_output=True)
        p = subprocess.Popen([HIERLM, 'train', *ARGS, '--out', str(cut)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline and p.poll() is None:
            f = cut/'metrics.jsonl'
            if f.exists() and len(f.read_text().splitlines()) >= 120: break
            time.sleep(0.01)
        assert p.poll() is None, 'the run finished before it could be killed'
        os.kill(p.pid, signal.SIGKILL); p.wait()
        at_kill = len((cut/'metrics.jsonl').read_text().splitlines())
        assert 100 <= at_kill < 300 and (cut/'checkpoints').exists()
        assert not (cut/'final').exists()
        subprocess.run([HIERLM, 'train', *ARGS, '--out', str(cut)], check=True, capture_output=True)
        assert metrics(cut) == metrics(full)
