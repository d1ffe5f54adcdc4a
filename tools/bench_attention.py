#!/usr/bin/env python
"""Attention benchmark: ms forward / forward+backward and peak memory per backend, for the hierarchical and the
block-diffusion masks at T = 1k..16k. Each measurement runs in its own process (peak RSS is per process).

    python tools/bench_attention.py                       # full table -> benchmarks/attention_<device>.md
    python tools/bench_attention.py --sizes 1024 4096     # fewer sizes
"""
import argparse, json, os, resource, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
B, H, D = 1, 4, 64

def hierarchical_layout(T):
    "An HDT layout of length T: docs of ~2048 tokens, sections of 8 sentences, sentences of 32 tokens, anchors at every level."
    import torch
    from hierlm.masks import insert_anchors
    t = torch.arange(T)
    sent = t // 32
    lev, al, _ = insert_anchors(torch.stack([t // 2048, sent // 8, sent]))
    return lev[:, :T], al[:T]

def build(mask_name, T):
    from hierlm.masks import hierarchical_mask, block_diffusion_mask
    if mask_name == 'hierarchical':
        lev, al = hierarchical_layout(T)
        return hierarchical_mask(lev, al, neighbours=1)
    return block_diffusion_mask(T // 2, 64)

def one(mask_name, T, backend, mode, reps):
    import torch
    from hierlm.attention import attention, block_mask, block_sparse_plan
    torch.set_num_threads(2)
    torch.manual_seed(0)
    m = build(mask_name, T)
    q, k, v = (torch.randn(B, H, T, D, requires_grad=(mode == 'fwd+bwd')) for _ in range(3))
    t0 = time.perf_counter()
    bound = m.bind(T, T, B, H)                              # as a model binds it: once per forward, for all layers
    extra = {}
    if backend in ('sdpa', 'eager'): extra['density'] = bound.dense().float().mean().item()
    if backend == 'blocksparse': extra['gathered'] = max(p.gathered for p in block_sparse_plan(bound, 64))
    if backend == 'flex': block_mask(bound, 128)
    extra['mask_ms'] = (time.perf_counter() - t0) * 1e3
    def step():
        with torch.set_grad_enabled(mode == 'fwd+bwd'):
            out = attention(q, k, v, bound, backend=backend)
            if mode == 'fwd+bwd': out.sum().backward()
    t0 = time.perf_counter(); step(); extra['first_ms'] = (time.perf_counter() - t0) * 1e3   # flex: includes compile
    times = []
    for _ in range(reps):
        t0 = time.perf_counter(); step(); times.append((time.perf_counter() - t0) * 1e3)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({'ms': statistics.median(times), 'peak_mb': peak, **extra}))

def measure(mask_name, T, backend, mode, reps, timeout=900):
    r = subprocess.run([sys.executable, __file__, '--one', mask_name, str(T), backend, mode, '--reps', str(reps)],
                       capture_output=True, text=True, timeout=timeout, env={**os.environ, 'OMP_NUM_THREADS': '2'})
    if r.returncode: return {'error': (r.stderr.strip().splitlines() or ['?'])[-1][:80]}
    return json.loads(r.stdout.strip().splitlines()[-1])

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--one', nargs=4); p.add_argument('--reps', type=int, default=3)
    p.add_argument('--sizes', type=int, nargs='*', default=[1024, 4096, 8192, 16384])
    p.add_argument('--out', default=None)
    a = p.parse_args()
    if a.one: return one(a.one[0], int(a.one[1]), a.one[2], a.one[3], a.reps)
    import torch
    baseline = measure_baseline()
    rows = []
    for mask_name in ('hierarchical', 'block_diffusion'):
        for T in a.sizes:
            for backend, mode in (('sdpa', 'fwd'), ('sdpa', 'fwd+bwd'), ('flex', 'fwd'), ('blocksparse', 'fwd'),
                                  ('blocksparse', 'fwd+bwd'), ('eager', 'fwd'), ('eager', 'fwd+bwd')):
                dense_gb = B * H * T * T * 4 / 2**30 * (3 if mode == 'fwd+bwd' else 1) * (3 if backend == 'eager' else 1)
                if backend in ('eager', 'sdpa') and dense_gb > 8:
                    rows.append((mask_name, T, backend, mode, {'error': f'skipped: ~{dense_gb:.0f} GB of dense scores'})); continue
                r = measure(mask_name, T, backend, mode, a.reps)
                if 'peak_mb' in r: r['peak_mb'] -= baseline
                rows.append((mask_name, T, backend, mode, r)); print(mask_name, T, backend, mode, r, flush=True)
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    lines = [f'Attention benchmark on {dev} (torch {torch.__version__}, 2 threads, B={B}, H={H}, d={D}, fp32; median of {a.reps}). '
             f'Peak memory = peak RSS of the measuring process above an idle one. `mask ms` = building the dense mask / '
             f'block mask / block-sparse plan (once per forward, shared by all layers).', '',
             '| mask | T | backend | pass | ms | peak MB | mask ms | note |', '|---|---:|---|---|---:|---:|---:|---|']
    for mask_name, T, backend, mode, r in rows:
        if 'error' in r: lines.append(f'| {mask_name} | {T} | {backend} | {mode} | – | – | – | {r["error"]} |'); continue
        note = []
        if 'density' in r: note.append(f'density {r["density"]:.3f}')
        if 'gathered' in r: note.append(f'{r["gathered"]} keys gathered per query block')
        if backend == 'flex': note.append(f'first call {r["first_ms"]/1e3:.1f} s (compile)')
        lines.append(f'| {mask_name} | {T} | {backend} | {mode} | {r["ms"]:.1f} | {r["peak_mb"]:.0f} | {r["mask_ms"]:.0f} | {"; ".join(note)} |')
    out = Path(a.out or ROOT/'benchmarks'/f'attention_{dev}.md')
    out.write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines)); print(f'wrote {out}')

def measure_baseline():
    r = subprocess.run([sys.executable, '-c', 'import resource, torch, hierlm.attention; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)'],
                       capture_output=True, text=True)
    return float(r.stdout.strip().splitlines()[-1])

if __name__ == '__main__': main()
