#!/usr/bin/env python
"""Decoder benchmarks on this machine -> benchmarks/decoder_<device>.md

1. Quality at nanoGPT's CPU recipe (tiny Shakespeare, characters, nanoGPT split): 4 layers, 4 heads, d=128, block 64,
   batch 12, 2000 iterations, no dropout, lr 1e-3 -> 1e-4 cosine, warmup 100, beta2 0.99. nanoGPT reports val 1.88.
2. Training throughput (forward + backward + AdamW step, tokens/s) of our decoder vs transformers' LlamaForCausalLM with
   the same config, same run.

    HIERLM_DATA=../shared/data python tools/bench_decoder.py [--skip-quality]
"""
import argparse, json, math, os, statistics, sys, tempfile, time
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parents[1]

RECIPE = ['model.d_model=128', 'model.n_layers=4', 'model.n_heads=4', 'model.block_size=64', 'model.dropout=0.0',
          'data.block_size=64', 'data.batch_size=12', 'train.max_steps=2000', 'train.lr=1e-3', 'train.min_lr_ratio=0.1',
          'train.warmup_steps=100', 'train.betas=[0.9, 0.99]', 'train.log_every=100', 'train.ckpt_every=100000',
          'eval.eval_every=500', 'eval.eval_batches=200', 'train.wandb=disabled', 'device=cpu']

ABLATIONS = {'baseline (RoPE, MHA, SwiGLU)': [], 'no RoPE (learned positions)': ['model.rope=false'],
             'sink logits': ['model.sink_logits=true'], 'GQA (2 kv heads)': ['model.n_kv_heads=2'], 'MQA (1 kv head)': ['model.n_kv_heads=1'],
             'MoE (4 experts, top-2)': ['model.mlp=moe', 'model.n_experts=4'], 'differential attention': ['model.differential=true']}

BEST = ['model.d_model=256', 'model.n_layers=4', 'model.n_heads=4', 'model.block_size=128', 'data.block_size=128',
        'data.batch_size=16', 'train.max_steps=1000', 'train.lr=2e-3', 'eval.eval_every=250', 'eval.eval_batches=100']

def ablations(steps=500):
    from hierlm.core import load_config
    from hierlm.train import Trainer
    rows = []
    for name, extra in ABLATIONS.items():
        cfg = load_config('shakespeare-char', RECIPE + [f'train.max_steps={steps}', f'eval.eval_every={steps}', *extra])
        with tempfile.TemporaryDirectory() as t:
            t0 = time.time(); tr = Trainer(cfg, Path(t)/'run'); tr.fit(); wall = time.time() - t0
            ev = [json.loads(l) for l in (Path(t)/'run'/'metrics.jsonl').read_text().splitlines() if 'val_loss' in l]
        rows.append((name, sum(p.numel() for p in tr.model.parameters()), ev[-1]['val_loss'], wall)); print(rows[-1], flush=True)
    return rows

def quality(extra=()):
    from hierlm.core import load_config
    from hierlm.train import Trainer
    cfg = load_config('shakespeare-char', RECIPE + list(extra))
    with tempfile.TemporaryDirectory() as t:
        t0 = time.time(); tr = Trainer(cfg, Path(t)/'run'); tr.fit(); wall = time.time() - t0
        ms = [json.loads(l) for l in (Path(t)/'run'/'metrics.jsonl').read_text().splitlines()]
    ev = [m for m in ms if 'val_loss' in m]
    return {'val_loss': ev[-1]['val_loss'], 'train_loss': ms[-1]['loss'], 'wall_s': wall,
            'curve': [(m['step'], round(m['val_loss'], 3)) for m in ev], 'params': sum(p.numel() for p in tr.model.parameters())}

def throughput(d=384, L=6, H=6, T=256, B=16, V=65, steps=16, compile=False):
    "Interleaved timing: each step times one training step of each model in turn, so machine noise hits both alike."
    from transformers import LlamaConfig, LlamaForCausalLM
    from hierlm.decoder import build_decoder, DecoderConfig
    torch.manual_seed(0)
    ours = build_decoder(DecoderConfig(d_model=d, n_layers=L, n_heads=H, block_size=T, attn_backend='sdpa'), V)
    ff = ours.model.blocks[0].mlp.w1.out_features
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=V, hidden_size=d, intermediate_size=ff, num_hidden_layers=L,
        num_attention_heads=H, num_key_value_heads=H, max_position_embeddings=T, rms_norm_eps=1e-5, tie_word_embeddings=True,
        attn_implementation='sdpa'))
    models = {'hierlm decoder': ours, 'transformers LlamaForCausalLM': llama}
    opts = {k: torch.optim.AdamW(m.train().parameters(), lr=1e-4) for k, m in models.items()}
    fwd = {k: torch.compile(m) if compile else m for k, m in models.items()}
    x = torch.randint(0, V, (B, T))
    times = {k: [] for k in models}
    for i in range(steps + 2):                                                   # 2 warm-up steps (compilation happens there)
        for k, m in fwd.items():
            t0 = time.perf_counter()
            m(input_ids=x, labels=x).loss.backward(); opts[k].step(); opts[k].zero_grad()
            if i >= 2: times[k].append(time.perf_counter() - t0)
    ref = times['transformers LlamaForCausalLM']
    out = {k: {'tok_s': B * T / statistics.median(t), 'params': sum(p.numel() for p in models[k].parameters()),
               'q': [B * T / q for q in reversed(statistics.quantiles(t, n=4))],
               'pair': statistics.median(r / o for r, o in zip(ref, t))} for k, t in times.items()}
    return out, dict(d=d, L=L, H=H, T=T, B=B, V=V, steps=steps)

def throughput_lines():
    lines = []
    for compile in (False, True):
        tp, shape = throughput(compile=compile)
        if not lines:
            lines = [f"**Training throughput** (forward + backward + AdamW step, fp32, B={shape['B']}, T={shape['T']}, d={shape['d']}, "
                     f"{shape['L']} layers, {shape['H']} heads, vocab {shape['V']}; {shape['steps']} steps of each model after 2 warm-up "
                     "steps, interleaved step by step so that machine noise falls on both; tokens/s is the median, with the "
                     "interquartile range; the last column is the median over steps of (Llama step time / our step time)):", '',
                     '| model | mode | parameters | tokens/s (median) | IQR | vs Llama (ratio of medians) | vs Llama (per-step ratio) |',
                     '|---|---|---:|---:|---:|---:|---:|']
        ref = tp['transformers LlamaForCausalLM']['tok_s']
        for k, v in tp.items():
            lines.append(f"| {k} | {'torch.compile' if compile else 'eager'} | {v['params']/1e6:.2f}M | {v['tok_s']:.0f} | "
                         f"{v['q'][0]:.0f}–{v['q'][2]:.0f} | {v['tok_s']/ref:.2f}× | {v['pair']:.2f}× |")
        print(lines[-2:], flush=True)
    lines += ['', 'The training option `train.compile=true` is the compiled row of our decoder.']
    return lines

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('--skip-quality', action='store_true')
    ap.add_argument('--ablations', action='store_true', help='only the ablation table, appended to the existing file')
    ap.add_argument('--best', action='store_true', help='only the 10-minute run, appended to the existing file')
    ap.add_argument('--throughput', action='store_true', help='only the throughput table, replaced in the existing file')
    a = ap.parse_args()
    out = ROOT/'benchmarks'/f'decoder_{"cuda" if torch.cuda.is_available() else "cpu"}.md'
    if a.best:
        torch.set_num_threads(2)
        q = quality(BEST)
        text = out.read_text().split('\n**Within 10 minutes**')[0].rstrip('\n')
        text += ('\n\n**Within 10 minutes** on this machine (a larger model, same data and split; config: `' + ' '.join(BEST) + '`):\n\n'
                 '| model | parameters | val loss | wall time |\n|---|---:|---:|---:|\n'
                 f"| hierlm decoder | {q['params']/1e6:.2f}M | {q['val_loss']:.3f} | {q['wall_s']:.0f} s |\n\n"
                 'Validation loss during the run: ' + ', '.join(f'step {s}: {v}' for s, v in q['curve']) + '\n')
        out.write_text(text); print(text); return
    if a.throughput:
        torch.set_num_threads(2)
        text = out.read_text()
        head, rest = text.split('**Training throughput**', 1)
        text = head + '\n'.join(throughput_lines()) + '\n\n**Quality' + rest.split('**Quality', 1)[1]
        out.write_text(text); print(text); return
    if a.ablations:
        torch.set_num_threads(2)
        rows = ablations()
        text = out.read_text().split('\n**Ablations**')[0].rstrip('\n')
        text += ('\n\n**Ablations** at the nanoGPT recipe, 500 steps each (validation loss on the whole validation split):\n\n'
                 '| variant | parameters | val loss @500 | wall time |\n|---|---:|---:|---:|\n' +
                 ''.join(f'| {n} | {p/1e6:.2f}M | {v:.3f} | {w:.0f} s |\n' for n, p, v, w in rows))
        out.write_text(text); print(text); return
    torch.set_num_threads(2)
    lines = [f'Decoder benchmarks on {"cuda" if torch.cuda.is_available() else "cpu"} (torch {torch.__version__}, 2 threads).', '']
    lines += throughput_lines()
    print('\n'.join(lines), flush=True)
    if not a.skip_quality:
        q = quality()
        lines += ['', "**Quality at nanoGPT's CPU recipe** (tiny Shakespeare, characters; 4 layers, 4 heads, d=128, block 64, "
                  "batch 12, 2000 iterations, no dropout). nanoGPT reports val loss 1.88 in about 3 minutes on its authors' CPU.", '',
                  '| model | parameters | val loss | train loss | wall time |', '|---|---:|---:|---:|---:|',
                  f"| hierlm decoder | {q['params']/1e6:.2f}M | {q['val_loss']:.3f} | {q['train_loss']:.3f} | {q['wall_s']:.0f} s |",
                  '', 'Validation loss during the run: ' + ', '.join(f'step {s}: {v}' for s, v in q['curve'])]
    out.write_text('\n'.join(lines) + '\n'); print('\n'.join(lines)); print(f'wrote {out}')

if __name__ == '__main__': main()
