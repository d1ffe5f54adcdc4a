#!/usr/bin/env python
"""BDH benchmarks on this machine -> benchmarks/bdh_<device>.md and figures/bdh_*.png

1. Speed: training tokens/s (forward + backward) and peak memory of the fast vs the faithful BDH, at the reference config
   (D=256, 4 heads, N=8192, 6 shared layers, T=512), at the CPU-sized `bdh-shakespeare` config and at a long context.
   Each measurement runs in its own process, so its peak resident memory is its own.
2. Quality: BDH (`bdh-shakespeare`) vs our decoder at an equal parameter count and equal wall time on tiny Shakespeare
   bytes (nanoGPT's 90/10 split): validation loss against training tokens.
3. Sparsity of the trained BDH on validation text, and the pictures (sparsity, raster, sparsity during training).

    HIERLM_DATA=../shared/data python tools/bench_bdh.py [--minutes 6] [--skip-quality] [--skip-speed]

--skip-speed / --skip-quality keep the section they skip from the last benchmarks/bdh_<device>.md.
"""
import argparse, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parents[1]
SPEED = [  # name, model overrides, batch, seq len, steps
    ('reference (D=256, nh=4, N=8192, 6 layers)', dict(d_model=256, n_heads=4, mlp_multiplier=128), 1, 512, 2),
    ('bdh-shakespeare (D=128, nh=4, N=512, 6 layers)', dict(d_model=128, n_heads=4, mlp_multiplier=16), 16, 256, 3),
    ('bdh-shakespeare, long context', dict(d_model=128, n_heads=4, mlp_multiplier=16), 2, 2048, 3),
]

def speed_child(impl, kw, B, T, steps, compile):
    "Run in a subprocess: median step time and peak RSS of one (impl, config)."
    from hierlm.bdh import build_bdh, BDHConfig
    torch.set_num_threads(2); torch.manual_seed(0)
    m = build_bdh(BDHConfig(**kw, impl=impl, vocab_size=256)).train()
    f = torch.compile(m) if compile else m
    x = torch.randint(0, 256, (B, T))
    ts = []
    for i in range(steps + 1):
        t0 = time.perf_counter(); f(input_ids=x, labels=x).loss.backward(); m.zero_grad(set_to_none=True)
        if i: ts.append(time.perf_counter() - t0)
    ts.sort()
    print(json.dumps({'tok_s': B * T / ts[len(ts) // 2], 'rss_gb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                      'params': sum(p.numel() for p in m.parameters())}))

def speed():
    rows = []
    for name, kw, B, T, steps in SPEED:
        res = {}
        for impl, compile in (('faithful', False), ('fast', False)):
            cmd = [sys.executable, __file__, '--child', json.dumps([impl, kw, B, T, steps, compile])]
            out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': '2'})
            if out.returncode: print(out.stderr[-3000:]); raise SystemExit(f'{name} {impl} failed')
            res[(impl, compile)] = json.loads(out.stdout.strip().splitlines()[-1]); print(name, impl, compile, res[(impl, compile)], flush=True)
        base = res[('faithful', False)]['tok_s']
        for (impl, compile), r in res.items():
            rows.append(f"| {name} | B={B}, T={T} | {impl}{' + torch.compile' if compile else ''} | {r['params']/1e6:.2f}M | "
                        f"{r['tok_s']:.0f} | {r['tok_s']/base:.2f}× | {r['rss_gb']:.2f} GB |")
    return rows

def run(cfg, minutes, label):
    "Calibrate a few steps, then train for about `minutes`; return the run's metrics."
    from hierlm.train import Trainer
    with tempfile.TemporaryDirectory() as t:
        probe = Trainer(cfg, Path(t)/'probe'); probe.model.train()
        t0 = time.time()
        for i in range(4):
            b = probe.train_stream.batch_at(i); probe._loss(b).loss.backward(); probe.opt.step(); probe.opt.zero_grad()
        per_step = (time.time() - t0) / 4
    steps = max(20, int(minutes * 60 / (per_step * 1.15)))                  # room for 6 small evaluations
    cfg.train.max_steps = steps; cfg.eval.eval_every = max(10, steps // 6); cfg.eval.eval_batches = 8; cfg.train.ckpt_every = 10**9
    out = ROOT/'runs'/f'bench-{label}'
    import shutil; shutil.rmtree(out, ignore_errors=True)
    t0 = time.time(); tr = Trainer(cfg, out).fit(); wall = time.time() - t0
    ms = [json.loads(l) for l in (out/'metrics.jsonl').read_text().splitlines()]
    tokens_per_step = cfg.data.batch_size * cfg.data.block_size
    tr.cfg.eval.eval_batches = 64; final = tr.evaluate()                        # the final number on 64 validation blocks
    return {'metrics': ms, 'wall': wall, 'steps': steps, 'tokens_per_step': tokens_per_step, 'trainer': tr, 'final': final,
            'params': sum(p.numel() for p in tr.model.parameters())}

def quality(minutes):
    from hierlm.core import load_config
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    from hierlm.core import save_figure
    common = ['train.wandb=disabled', 'device=cpu', 'train.log_every=10']
    bdh = run(load_config('bdh-shakespeare', common), minutes, 'bdh')
    dec_cfg = load_config('shakespeare-char', common + ['data.tokenizer=bytes', 'model.d_model=128', 'model.n_layers=4',
        'model.n_heads=4', 'model.block_size=256', 'data.block_size=256', 'data.batch_size=16', 'model.dropout=0.1',
        'train.lr=1e-3', 'train.warmup_steps=50', 'eval.eval_batches=50'])
    dec = run(dec_cfg, minutes, 'decoder')
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for name, r in (('BDH (bdh-shakespeare)', bdh), ('decoder', dec)):
        ev = [m for m in r['metrics'] if 'val_loss' in m]
        ax.plot([m['step'] * r['tokens_per_step'] / 1e6 for m in ev], [m['val_loss'] for m in ev], 'o-', label=f"{name}, {r['params']/1e6:.2f}M")
    ax.set_xlabel('training tokens (millions)'); ax.set_ylabel('validation loss (nats/byte)'); ax.legend()
    ax.set_title(f'tiny Shakespeare bytes, {minutes:g} minutes each on this CPU'); fig.tight_layout()
    save_figure(fig, 'bdh_vs_decoder.png'); plt.close(fig)
    return bdh, dec

def sparsity(bdh):
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    from hierlm.core import save_figure
    from hierlm.bdh_analysis import (neuron_activity, sparsity_table, plot_sparsity, plot_raster, plot_sparsity_curve,
                                     selective_neurons)
    tr = bdh['trainer']; m, tok = tr.model.eval(), tr.tok
    val = tr.val_stream.batch_at(0)['input_ids'][:8]                         # 8 validation blocks
    acts = neuron_activity(m, val)
    st = sparsity_table(acts)
    save_figure(plot_sparsity(acts, 'BDH (bdh-shakespeare), 8 validation blocks'), 'bdh_sparsity.png')
    text = 'ROMEO:\nBut soft, what light through yonder window breaks?'
    ids = torch.tensor([tok.encode(text)])
    a1 = neuron_activity(m, ids)
    save_figure(plot_raster(a1, [tok.decode([i]) for i in ids[0]], layer=m.config.n_layers - 1, head=0), 'bdh_raster.png')
    save_figure(plot_sparsity_curve(bdh['metrics'], 'BDH (bdh-shakespeare): active neurons while training'), 'bdh_sparsity_training.png')
    chars = {repr(c)[1:-1]: tok.encode(c)[0] for c in (' ', 'e', '\n', ':', 'A')}
    sel = selective_neurons(acts, val, chars, layer=m.config.n_layers - 1, k=2)
    plt.close('all')
    return st, sel

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('--child'); ap.add_argument('--minutes', type=float, default=6)
    ap.add_argument('--skip-quality', action='store_true'); ap.add_argument('--skip-speed', action='store_true')
    a = ap.parse_args()
    if a.child: return speed_child(*json.loads(a.child))
    torch.set_num_threads(2)
    out = ROOT/'benchmarks'/f'bdh_{"cuda" if torch.cuda.is_available() else "cpu"}.md'
    old = out.read_text() if out.exists() else ''
    lines = [f'BDH benchmarks on {"cuda" if torch.cuda.is_available() else "cpu"} (torch {torch.__version__}, 2 threads).', '']
    if not a.skip_speed:
        lines += ['**Training speed** (forward + backward, fp32, bytes; median step; each row its own process, peak resident memory of that process):', '',
                  '| config | batch | implementation | parameters | tokens/s | vs faithful | peak memory |', '|---|---|---|---:|---:|---:|---:|']
        lines += speed()
    elif '**Training speed**' in old:
        lines += ['**Training speed**' + old.split('**Training speed**', 1)[1].split('\n\n**', 1)[0]]
    print('\n'.join(lines), flush=True)
    if not a.skip_quality:
        bdh, dec = quality(a.minutes)
        st, sel = sparsity(bdh)
        fmt = lambda r: ', '.join(f"{m['step'] * r['tokens_per_step'] / 1e6:.2f}M: {m['val_loss']:.3f}" for m in r['metrics'] if 'val_loss' in m)
        lines += ['', f'**Validation loss at equal wall time** (tiny Shakespeare as bytes, vocab 256, nanoGPT\'s 90/10 split, which has no test split; about {a.minutes:g} minutes '
                  'each on this machine, the step count calibrated to the time; BDH: the `bdh-shakespeare` preset, the reference recipe '
                  '(AdamW 1e-3, weight decay 0.1, constant lr, dropout 0.1); decoder: d=128, 4 layers, 4 heads, block 256, batch 16, cosine lr 1e-3):', '',
                  '| model | parameters | steps | training tokens | wall time (with evaluations) | final val loss (nats/byte, 64 blocks) |', '|---|---:|---:|---:|---:|---:|']
        for name, r in (('BDH', bdh), ('decoder', dec)):
            ev = [m for m in r['metrics'] if 'val_loss' in m]
            lines.append(f"| {name} | {r['params']/1e6:.2f}M | {r['steps']} | {r['steps'] * r['tokens_per_step']/1e6:.2f}M | {r['wall']:.0f} s | {r['final']['val_loss']:.3f} |")
        lines += ['', f'Validation loss (8 blocks) against training tokens - BDH: {fmt(bdh)}; decoder: {fmt(dec)}.', '',
                  'The curves are in `figures/bdh_vs_decoder.png`.', '',
                  f"**Sparsity** of the trained BDH on 8 validation blocks of 256 bytes: **{st['x_mean']:.1%}** of the `x_sparse` neurons and "
                  f"**{st['y_mean']:.1%}** of the `y_sparse` neurons are active (> 0) on average; **{st['xy_mean']:.1%}** pass the Hebbian gate "
                  "(both active). Per layer (rows) and head (columns), `x`: " +
                  '; '.join('[' + ', '.join(f'{v:.1%}' for v in row) + ']' for row in st['x'].tolist()) + '.', '',
                  'Neurons most selective for a byte in the last layer (head, neuron: firing rate when the current byte is it / otherwise): ' +
                  '; '.join(f"`{c}`: " + ', '.join(f'{h}:{n} {p:.0%}/{q:.0%}' for h, n, p, q in v) for c, v in sel.items()) + '.']
    elif '**Validation loss' in old:                                        # --skip-quality keeps the last quality run
        lines += ['', '', '**Validation loss' + old.split('**Validation loss', 1)[1].rstrip('\n')]
    out.write_text('\n'.join(lines) + '\n'); print('\n'.join(lines)); print(f'wrote {out}')

if __name__ == '__main__': main()
