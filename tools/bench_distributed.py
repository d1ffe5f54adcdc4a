#!/usr/bin/env python
"""One process vs two (torchrun, gloo) on this machine -> benchmarks/distributed_cpu.md (issue 21)

The same run three ways: one process (2 threads), DDP over 2 processes and FSDP2 over 2 processes (torchrun gives
each 1 thread). The model: the decoder at d=512, 8 layers (25M parameters), AdamW, `--steps` steps of a global batch
of 8 x 128 characters of tiny Shakespeare. Per process: the peak resident memory (Linux's VmHWM, torch itself
included), and the parameter + gradient + optimizer-state bytes it holds; for the run: tokens per second (global).

    HIERLM_DATA=../shared/data python tools/bench_distributed.py [--steps 12]
"""
import argparse, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARGS = ['shakespeare-char-cpu', 'model.d_model=512', 'model.n_layers=8', 'model.n_heads=8', 'model.block_size=128',
        'data.block_size=128', 'data.batch_size=8', 'train.warmup_steps=2', 'train.log_every=1',
        'train.ckpt_every=1000',
        'eval.eval_every=1000', 'eval.eval_batches=1']

def worker(out, steps, parallel):
    "One process's part: train, then report its memory."
    import torch
    from hierlm.core import load_config
    from hierlm.train import Trainer
    tr = Trainer(load_config(ARGS[0], ARGS[1:] + [f'train.max_steps={steps}', f'train.parallel={parallel}']), Path(out))
    local = lambda t: (t.to_local() if hasattr(t, 'to_local') else t)
    t0 = time.time(); tr.fit(progress='none'); wall = time.time() - t0
    held = sum(local(p).numel() * 4 * 2 for p in tr.model.parameters())          # weights and their gradients
    held += sum(local(v).numel() * v.element_size() for s in tr.opt.state.values() for v in s.values()
                if torch.is_tensor(v) and v.dim())
    hwm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')) * 1024
    rec = {'rank': tr.world.rank, 'hwm': hwm, 'held': held, 'wall': wall, 'threads': torch.get_num_threads()}
    Path(out, f'mem-{tr.world.rank}.json').write_text(json.dumps(rec))

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--steps', type=int, default=12)
    ap.add_argument('--worker'); ap.add_argument('--parallel', default='none')
    ap.add_argument('--out', default=str(ROOT/'benchmarks'/'distributed_cpu.md'))
    a = ap.parse_args()
    if a.worker: return worker(a.worker, a.steps, a.parallel)
    rows = []
    for mode in ('none', 'ddp', 'fsdp'):
        d = tempfile.mkdtemp()
        launch = [sys.executable] if mode == 'none' else \
                 [str(Path(sys.executable).parent/'torchrun'), '--standalone', '--nproc_per_node=2']
        r = subprocess.run([*launch, __file__, '--worker', d, '--steps', str(a.steps), '--parallel', mode],
                           capture_output=True, text=True)
        if r.returncode: raise SystemExit(r.stderr[-3000:])
        recs = [json.loads(f.read_text()) for f in sorted(Path(d).glob('mem-*.json'))]
        m = [json.loads(l) for l in Path(d, 'metrics.jsonl').read_text().splitlines()]
        tps = sum(x['tokens_per_s'] for x in m[len(m) // 2:]) / (len(m) - len(m) // 2)     # the second half's mean
        rows.append((mode, len(recs), max(x['hwm'] for x in recs), max(x['held'] for x in recs), tps,
                     recs[0]['threads'], m[-1]['loss']))
        print(rows[-1], flush=True)
    import torch
    lines = ['One process vs two on this machine (`tools/bench_distributed.py`).', '',
             f'**Memory and speed per mode** (the decoder at d=512, 8 layers, 25.3M parameters, AdamW; {a.steps} steps '
             f'of a global batch of 8 x 128 characters of tiny Shakespeare; torch {torch.__version__}, gloo, '
             f'{os.cpu_count()} cores; tokens/s: the mean over the second half of the steps, all processes together; '
             f'peak memory: the largest process\'s resident peak, torch itself included):', '',
             '| mode | processes x threads | weights + gradients + AdamW moments held per process | peak memory per '
             'process | tokens/s | loss at the last step |', '|---|---|---:|---:|---:|---:|']
    for mode, n, hwm, held, tps, th, loss in rows:
        lines.append(f'| {mode if mode != "none" else "one process"} | {n} x {th} | {held / 2**20:.0f} MiB | '
                     f'{hwm / 2**30:.2f} GiB | {tps:.0f} | {loss:.4f} |')
    old = Path(a.out).read_text() if Path(a.out).exists() else ''
    keep = old[old.index('**What the numbers say**'):] if '**What the numbers say**' in old else ''
    Path(a.out).write_text('\n'.join(lines) + '\n\n' + keep)
    print('\n'.join(lines))

if __name__ == '__main__': main()
