#!/usr/bin/env python
"""The CUDA paths, checked on a GPU -> benchmarks/cuda_check.md (no GPU: `--dry` runs the same code small on the CPU).

1. Attention parity: every backend (FlexAttention compiled, SDPA, block-sparse, xformers if installed) against the eager
   fp32 reference, forward and gradients, fp32 and bf16, on each mask family (hierarchical, block diffusion,
   plan/execute, causal sliding window, causal + sinks, hierarchical + distance bias).
2. Every model's preset trained end to end by the shared Trainer on the GPU in bf16 (steps/s, validation loss).
3. LHT training step vs sequence length (bf16, batch 1) against the dense encoder, 1k..32k tokens.
4. Hierarchical-mask attention, forward + backward: FlexAttention vs SDPA with a dense mask.
5. torchrun with nccl: the `tiny` run on one process and under DDP and FSDP2 (bf16, one process per GPU), the loss
   curves compared, a sharded checkpoint resumed in one process.

    python tools/check_cuda.py [--budget 360] [--dry] [--sections parity,train,lht,attn,dist]
"""
import argparse, json, os, shutil, sys, time, traceback
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench_attention import hierarchical_layout                            # the HDT layout the CPU attention benchmark uses
from bench_lht import lht_step                                             # the LHT training step the CPU LHT benchmark times
T0 = time.time()

def masks(T, dev):
    "Each mask family at length T, with the extra arguments it needs: (name, mask, sink?, coords?)."
    from hierlm.masks import hierarchical_mask, block_diffusion_mask, plan_execute_mask, sliding_window_mask, causal_mask
    lev, al = (t.to(dev) for t in hierarchical_layout(T))              # a mask's tensors live where the attention runs
    hm = hierarchical_mask(lev, al, neighbours=1)
    q = T // 8; p = (T - q) // 4 // 32 * 32; e = (T - q - 2 * p) // 2 // 32 * 32
    coords = torch.cumsum(torch.rand(1, T) < 0.1, 1).float()             # non-decreasing unit coordinates
    return [('hierarchical', hm, False, None),
            ('block diffusion', block_diffusion_mask(T // 2, 64), False, None),
            ('plan / execute', plan_execute_mask(T - 2 * p - 2 * e, p, e, 32), False, None),
            ('sliding window (causal, 128)', sliding_window_mask(128, causal=True), False, None),
            ('causal + sinks', causal_mask(), True, None),
            ('hierarchical + distance bias', hm, False, coords)]

def parity(dev, T, backends):
    from hierlm.attention import attention
    rows = ['**Attention parity** (B=2, H=4, T=%d, d=64; max |error| / max |reference| against the eager fp32 backend, '
            'output and the gradients of q, k, v; `auto` is what the models use):' % T, '',
            '| mask | backend | fp32 out | fp32 grads | bf16 out | bf16 grads | ok |', '|---|---|---:|---:|---:|---:|---|']
    for name, m, sinked, coords in masks(T, dev):
        torch.manual_seed(0)
        qkv = [torch.randn(2, 4, T, 64, device=dev) for _ in range(3)]
        sink = torch.randn(4, device=dev) if sinked else None
        c = coords.to(dev).expand(2, T) if coords is not None else None
        def run(backend, dtype):
            x = [t.detach().to(dtype).requires_grad_() for t in qkv]
            with torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32):
                out = attention(*x, m, backend=backend, sink=sink, coords=c)
            out.float().pow(2).sum().backward()
            return out.float().detach(), [t.grad.float() for t in x]
        ref, rg = run('eager', torch.float32)
        rel = lambda a, b: ((a - b).abs().max() / b.abs().max()).item()
        for be in backends:
            cells, ok = [], True
            for dt, tol in ((torch.float32, 2e-3), (torch.bfloat16, 5e-2)):
                try:
                    o, g = run(be, dt)
                    eo, eg = rel(o, ref), max(rel(a, b) for a, b in zip(g, rg))
                    ok &= eo < tol and eg < tol; cells += [f'{eo:.1e}', f'{eg:.1e}']
                except Exception as ex:                                   # a documented refusal is fine, anything else is not
                    msg = str(ex).splitlines()[0].replace('|', '/'); cells += [f'refuses: {msg[:40]}…', '']
                    ok &= 'does not support' in msg or 'cannot' in msg
            rows.append(f'| {name} | {be} | ' + ' | '.join(cells) + f" | {'yes' if ok else '**NO**'} |"); print(rows[-1], flush=True)
    return rows

def train_presets(dev, dry, budget):
    from hierlm.core import load_config
    from hierlm.train import Trainer
    from hierlm.lht import level_boundaries, score_boundaries
    runs = [('tiny', 200), ('bdh-tiny', 200), ('diffusion-tiny', 200), ('hier-bd3lm-tiny', 200), ('lht-synthetic', 300)]
    from torch._dynamo.utils import counters
    rows = ['**Every model trained by the shared Trainer** (preset as shipped, `device=%s dtype=bf16`; wall time includes data preparation and compilation):' % dev.type, '',
            '| preset | steps | wall | steps/s (median, second half) | final val loss | note |', '|---|---:|---:|---:|---:|---|']
    for preset, steps in runs:
        steps = 20 if dry else steps
        out = ROOT/'runs'/f'cuda-check-{preset}'; shutil.rmtree(out, ignore_errors=True)
        try:
            cfg = load_config(preset, [f'device={dev.type}', 'dtype=' + ('fp32' if dry else 'bf16'), 'train.wandb=disabled',
                                       f'train.max_steps={steps}', f'eval.eval_every={steps}', 'train.ckpt_every=1000000'])
            graphs = counters['stats']['unique_graphs']
            t0 = time.time(); tr = Trainer(cfg, out).fit(); wall = time.time() - t0
            graphs = counters['stats']['unique_graphs'] - graphs
            log = [json.loads(l) for l in (out/'metrics.jsonl').read_text().splitlines() if l.strip()]
            tps = sorted(r['tokens_per_s'] for r in log if 'tokens_per_s' in r and r['step'] > steps // 2)
            sps = tps[len(tps) // 2] / (cfg.data.batch_size * cfg.data.block_size) if tps else float('nan')
            note = f'{graphs} graphs compiled' if graphs else ''
            if cfg.model.arch == 'lht':
                pairs = level_boundaries(tr.model, [tr.val_stream.batch_at(i) for i in range(8)])
                r1 = score_boundaries(pairs, tolerance=1)
                note += f"; level-1 F1 within ±1 {r1['level1']['f1']:.2f}, level 2 {r1['level2']['f1']:.2f}"
            rows.append(f"| {preset} | {steps} | {wall:.0f} s | {sps:.1f} | {tr.last_eval.get('val_loss', float('nan')):.3f} | {note} |")
        except Exception as ex:
            traceback.print_exc(); rows.append(f'| {preset} | {steps} | – | – | – | fails: {str(ex).splitlines()[0][:100]} |')
        print(rows[-1], flush=True)
        if time.time() - T0 > budget: rows.append('(time budget spent: later presets skipped)'); break
    return rows

def timed(fn, reps, dev):
    fn()                                                                       # warm-up (compiles)
    ts = []
    for _ in range(reps):
        if dev.type == 'cuda': torch.cuda.synchronize()
        t0 = time.perf_counter(); fn()
        if dev.type == 'cuda': torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts) // 2]

def peak_reset(dev):
    if dev.type == 'cuda': torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
def peak_gb(dev): return torch.cuda.max_memory_allocated() / 2**30 if dev.type == 'cuda' else float('nan')

def lht_speed(dev, sizes, budget):
    rows = ['**LHT training step vs sequence length** (batch 1, forward + backward, bf16 autocast; `lht-synthetic` dimensions, '
            'learned structure at initialisation; median of 3 after a compiling warm-up; peak = max allocated GPU memory):', '',
            '| tokens | LHT step | LHT peak | dense step | dense peak | LHT vs dense |', '|---:|---:|---:|---:|---:|---:|']
    for T in sizes:
        if time.time() - T0 > budget: rows.append(f'| {T} | skipped: time budget | | | | |'); break
        r = {}
        for st in ('learned', 'dense'):
            try:
                peak_reset(dev)
                step = lht_step(st, T, dev, torch.bfloat16 if dev.type == 'cuda' else torch.float32)
                r[st] = (timed(step, 3, dev), peak_gb(dev)); del step
            except Exception as ex: r[st] = str(ex).splitlines()[0][:60]
        f = lambda v: f'{v[0] * 1e3:.1f} ms | {v[1]:.2f} GB' if isinstance(v, tuple) else f'fails: {v} |'
        ratio = f"{r['dense'][0] / r['learned'][0]:.2f}×" if all(isinstance(v, tuple) for v in r.values()) else '-'
        rows.append(f"| {T} | {f(r['learned'])} | {f(r['dense'])} | {ratio} |"); print(rows[-1], flush=True)
    return rows

def attention_speed(dev, sizes, budget):
    from hierlm.attention import attention
    from hierlm.masks import hierarchical_mask
    rows = ['**Hierarchical mask, attention forward + backward** (B=1, H=8, d=64, bf16; median of 5; SDPA gets the dense boolean mask; '
            'peak = max allocated GPU memory):', '', '| T | flex | flex peak | sdpa (dense mask) | sdpa peak | flex vs sdpa |', '|---:|---:|---:|---:|---:|---:|']
    for T in sizes:
        if time.time() - T0 > budget: rows.append(f'| {T} | skipped: time budget | | | | |'); break
        lev, al = (t.to(dev) for t in hierarchical_layout(T))
        bound = hierarchical_mask(lev, al, neighbours=1).bind(T, T, 1, 8, dev)
        x = [torch.randn(1, 8, T, 64, device=dev, dtype=torch.bfloat16, requires_grad=True) for _ in range(3)]
        r = {}
        for be in ('flex', 'sdpa'):
            if be == 'sdpa' and T > 32768: r[be] = 'skipped (dense mask)'; continue
            try:
                peak_reset(dev)
                def step(): attention(*x, bound, backend=be).sum().backward()
                r[be] = (timed(step, 5, dev), peak_gb(dev))
            except Exception as ex: r[be] = str(ex).splitlines()[0][:60]
        f = lambda v: f'{v[0] * 1e3:.2f} ms | {v[1]:.2f} GB' if isinstance(v, tuple) else f'{v} |'
        ratio = f"{r['sdpa'][0] / r['flex'][0]:.1f}×" if all(isinstance(v, tuple) for v in r.values()) else '-'
        rows.append(f"| {T} | {f(r['flex'])} | {f(r['sdpa'])} | {ratio} |"); print(rows[-1], flush=True)
    return rows

def distributed(dev, dry):
    "The tiny run under torchrun (nccl on GPUs, gloo for --dry): one process vs DDP vs FSDP2, and a resume in one."
    import subprocess, tempfile
    n = max(1, torch.cuda.device_count()) if dev.type == 'cuda' else 2
    common = ['tiny', 'train.max_steps=20', 'train.log_every=5', 'train.ckpt_every=10', 'eval.eval_every=20',
              f'device={dev.type}'] + (['dtype=bf16'] if dev.type == 'cuda' else [])
    rows, t = [], tempfile.mkdtemp()
    def run(out, mode, procs):
        launch = [sys.executable, '-m', 'hierlm'] if mode == 'none' else \
                 [str(Path(sys.executable).parent/'torchrun'), '--standalone', f'--nproc_per_node={procs}', '-m', 'hierlm']
        t0 = time.time()
        r = subprocess.run([*launch, 'train', *common, f'train.parallel={mode}', '--out', f'{t}/{out}'],
                           capture_output=True, text=True)
        if r.returncode: raise RuntimeError(r.stderr[-1500:])
        losses = [json.loads(l)['loss'] for l in Path(f'{t}/{out}/metrics.jsonl').read_text().splitlines()]
        return losses, time.time() - t0
    one, s1 = run('one', 'none', 1)
    rows.append(f'| one process | - | {one[-1]:.4f} | - | {s1:.0f} s |')
    for mode in ('ddp', 'fsdp'):
        l, s = run(mode, mode, n)
        rows.append(f'| {mode} | {n} | {l[-1]:.4f} | {max(abs(a - b) for a, b in zip(l, one)):.2e} | {s:.0f} s |')
    import shutil as sh
    sh.rmtree(f'{t}/fsdp/final'); sh.rmtree(f'{t}/fsdp/checkpoints/step-0000020')
    l, s = run('fsdp', 'none', 1)                                          # the 10-step sharded checkpoint, one process
    rows.append(f'| fsdp checkpoint at step 10, resumed in one process | 1 | {l[-1]:.4f} | '
                f'{max(abs(a - b) for a, b in zip(l, one)):.2e} | {s:.0f} s |')
    backend = 'nccl' if dev.type == 'cuda' else 'gloo'
    return [f'**torchrun ({backend})**: `tiny`, 20 steps{", bf16" if dev.type == "cuda" else ""}; largest difference of '
            f'the logged training loss from one process:', '',
            '| run | processes | final loss | largest loss difference | wall time |', '|---|---:|---:|---:|---:|', *rows]

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('--budget', type=float, default=360); ap.add_argument('--dry', action='store_true')
    ap.add_argument('--out', default=None); ap.add_argument('--sections', default='parity,train,lht,attn,dist', help='comma-separated subset')
    a = ap.parse_args()
    os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('WANDB_MODE', 'disabled')
    dev = torch.device('cuda' if torch.cuda.is_available() and not a.dry else 'cpu')
    torch._dynamo.config.recompile_limit = 64                               # one process compiles flex for many sizes here (training compiles one)
    try: import xformers; xf = f'xformers {xformers.__version__}'
    except ImportError: xf = 'xformers not installed'
    name = torch.cuda.get_device_name() if dev.type == 'cuda' else 'CPU (dry run)'
    head = [f'CUDA check on {name} (torch {torch.__version__}, {xf}), {time.strftime("%Y-%m-%d")}; written by `tools/check_cuda.py`.']
    sections = []
    backends = ['auto', 'sdpa', 'blocksparse'] + (['flex'] if dev.type == 'cuda' else []) + (['xformers'] if 'not' not in xf else [])
    for title, fn in (('parity', lambda: parity(dev, 256 if a.dry else 1024, backends)),
                      ('train', lambda: train_presets(dev, a.dry, 0.55 * a.budget)),
                      ('lht', lambda: lht_speed(dev, [512, 1024] if a.dry else [1024, 2048, 4096, 8192, 16384, 32768], 0.8 * a.budget)),
                      ('attn', lambda: attention_speed(dev, [1024] if a.dry else [4096, 16384, 65536], a.budget)),
                      ('dist', lambda: distributed(dev, a.dry))):
        if title not in a.sections.split(','): continue
        t = time.time()
        try: sections.append('\n'.join(fn()))
        except Exception as ex: traceback.print_exc(); sections.append(f'{title}: fails: {ex}')
        print(f'[{title}] {time.time() - t:.0f} s (total {time.time() - T0:.0f} s)', flush=True)
        out = Path(a.out or ROOT/'benchmarks'/('cuda_check.md' if dev.type == 'cuda' else 'cuda_check_dry.md'))
        out.write_text('\n\n'.join(head + sections) + '\n')                    # after every section: a timeout keeps what ran
    print('\n\n'.join(head + sections))

if __name__ == '__main__': main()
