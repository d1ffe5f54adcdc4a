"What a user sees from `hierlm train` and `hierlm generate`: our own lines, not wandb's or transformers' noise."
import os, subprocess, sys, tempfile
from pathlib import Path

HIERLM = str(Path(sys.executable).parent/'hierlm')

def test_train_and_generate_print_only_their_own_lines():
    env = {k: v for k, v in os.environ.items() if k != 'WANDB_MODE'}    # as a user's shell: no wandb setting at all
    with tempfile.TemporaryDirectory() as t:
        r = subprocess.run([HIERLM, 'train', 'synthetic-tiny', '--out', f'{t}/run', 'train.max_steps=20',
                            'eval.eval_every=20', f'data.cache_dir={t}/cache'], capture_output=True, text=True, env=env)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out[-3000:]
        assert 'wandb' not in out.lower() and not (Path(t)/'run'/'wandb').exists(), out     # wandb only when asked
        assert 'final validation: val_loss' in out and len(out.splitlines()) <= 12, out
        g = subprocess.run([HIERLM, 'generate', f'{t}/run', '--prompt', 'Ka', '--max-tokens', '20'],
                           capture_output=True, text=True, env=env)
        assert g.returncode == 0 and g.stdout.startswith('Ka'), g.stdout + g.stderr
        assert g.stderr.strip() == '', g.stderr                           # no weight-loading bar, no warnings
