#!/usr/bin/env python
"""Block diffusion benchmarks on this machine -> benchmarks/diffusion_<device>.md and figures/diffusion_*.png

1. Likelihood (`--shakespeare`): the AR decoder, MDLM and BD3-LM with L' = 4, 8, 16 at the same size and steps on tiny
   Shakespeare characters: AR perplexity vs the diffusion models' NELBO perplexity bounds, on the same validation blocks.
2. Sampling speed (with 1.): tokens/s of the trained models with and without the KV cache, and of the AR decoder.
3. GSM8K (`--gsm8k`): plan-then-execute vs flat BD3-LM vs the AR decoder, trained on the same records for the same
   steps; exact match of the final answer on the first `--problems` test problems (greedy).

    HIERLM_DATA=../shared/data python tools/bench_diffusion.py [--shakespeare] [--gsm8k] [--steps 500] [--gsm8k-steps 800]
        [--rows AR]   # rerun only the rows whose model starts with AR; the table's other rows are kept
"""
import argparse, json, math, os, shutil, time
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parents[1]
SIZE = ['model.d_model=128', 'model.n_layers=4', 'model.n_heads=4', 'model.dropout=0.0']   # every Shakespeare model
SHAKESPEARE = {'AR decoder': ('shakespeare-char', []), 'MDLM (one block of 256)': ('mdlm-shakespeare', []),
               "BD3-LM L'=16": ('bd3lm-shakespeare', ['model.diffusion_block=16']), "BD3-LM L'=8": ('bd3lm-shakespeare', ['model.diffusion_block=8']),
               "BD3-LM L'=4": ('bd3lm-shakespeare', ['model.diffusion_block=4'])}
GSM_SIZE = ['model.d_model=192', 'model.n_layers=4', 'model.n_heads=4', 'model.dropout=0.0']
GSM8K = {'plan-then-execute BD3-LM': ('hier-bd3lm-gsm8k', []),
         'flat BD3-LM (question, answer)': ('hier-bd3lm-gsm8k', ['data.layout=flat', 'model.segments=[128,176]']),
         'AR decoder (same records, flat)': ('ar', ['data.layout=flat'])}

def ar_config(preset:str) -> Path:
    "A record preset's data (same tokenizer, same records) with a decoder for a model."
    import yaml
    from hierlm.core import resolve_config_path
    d = yaml.safe_load(resolve_config_path(preset).read_text())
    d['name'], d['model'] = f'ar-{preset}', {'arch': 'decoder', 'block_size': d['data']['block_size']}
    p = ROOT/'runs'/f'ar-{preset}.yaml'; p.parent.mkdir(exist_ok=True); p.write_text(yaml.safe_dump(d))
    return p

ARITH = {'plan-then-execute BD3-LM': ('hier-bd3lm-tiny', []),
         'flat BD3-LM (question, answer)': ('hier-bd3lm-tiny', ['data.layout=flat', 'model.segments=[24,48]']),
         'AR decoder (same records, flat)': ('ar', ['data.layout=flat', 'model.d_model=64', 'model.n_layers=3', 'model.n_heads=4'])}   # the preset's size

def train(preset, extra, steps, label, batch):
    from hierlm.core import load_config
    from hierlm.train import Trainer
    cfg = load_config(preset, ['train.wandb=disabled', 'device=cpu', f'train.max_steps={steps}', f'eval.eval_every={steps}', 'train.ckpt_every=1000000',
                               f'data.batch_size={batch}', f'train.warmup_steps={min(100, steps // 10)}', 'eval.eval_batches=16', *extra])
    out = ROOT/'runs'/f'bench-diffusion-{label}'
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.time(); tr = Trainer(cfg, out).fit(); wall = time.time() - t0
    return tr, wall

def sampling_speed(tr, n_tokens=256, batch=8):
    "tokens/s with and without the cache (diffusion: block by block; AR: the shared generate loop)."
    from hierlm.diffusion import diffusion_generate, DiffusionSampling
    from hierlm.generate import SamplingConfig, stream
    m = tr.model.eval(); out = {}
    for use_cache in (True, False):
        sc = SamplingConfig(top_p=0.9, seed=0, use_cache=use_cache, max_new_tokens=n_tokens)
        t0 = time.perf_counter()
        if m.kind == 'diffusion':
            steps = min(m.config.block, 64)                                  # MDLM: 64 steps for 256 tokens; BD3-LM: L' steps per block
            ds = DiffusionSampling(steps=steps, tokens=sc, stop_on_end=False)
            n = diffusion_generate(m, n_tokens=n_tokens, ds=ds, n_samples=batch).shape[1]
        else:
            n = len(list(stream(m, tr.tok, ['\n'] * batch, sc)))
        out[use_cache] = n * batch / (time.perf_counter() - t0)
    return out

def shakespeare(steps, batch):
    from hierlm.diffusion import nelbo, loss_by_t, diffusion_generate, DiffusionSampling, plot_trajectory
    from hierlm.generate import SamplingConfig
    from hierlm.core import save_figure
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    rows = [f'**Tiny Shakespeare, characters** (d=128, 4 layers, 4 heads, blocks of 256, batch {batch}, {steps} steps each, AdamW, '
            'same seed; validation: the same 16 blocks for every model (tiny Shakespeare has no test split: nanoGPT\'s 90/10 split); AR: exact perplexity; diffusion: exp(NELBO), an upper bound, '
            't ∈ [1e-3, 1], 4 noise draws per block; sampling: 8 × 256 tokens, nucleus 0.9, diffusion with L\' steps per block '
            '(MDLM: 64 steps), AR with the shared `generate` loop):', '',
            '| model | val loss (nats/char) | perplexity (bound) | train time | tokens/s cached | tokens/s uncached | final training interval |',
            '|---|---:|---:|---:|---:|---:|---|']
    curves, res = {}, {}
    for label, (preset, extra) in SHAKESPEARE.items():
        tr, wall = train(preset, SIZE + extra, steps, label.split(' (')[0].replace(' ', '-').replace("'", ''), batch)
        val = [tr.val_stream.batch_at(i) for i in range(min(16, tr.val_stream.per_epoch))]
        if tr.cfg.model.arch == 'diffusion':
            loss = nelbo(tr.model, val, n_draws=4)
            curves[label] = loss_by_t(tr.model, torch.cat([b['input_ids'] for b in val[:4]]))
            interval = ', '.join(f'{x:.3g}' for x in tr.model.noise_interval.tolist())
        else:
            loss, interval = tr.evaluate()['val_loss'], '-'
        sp = sampling_speed(tr)
        res[label] = (tr, loss)
        rows.append(f'| {label} | {loss:.3f} | {math.exp(loss):.2f} | {wall:.0f} s | {sp[True]:.0f} | {sp[False]:.0f} | {interval} |')
        print(rows[-1], flush=True)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, c in curves.items(): ax.plot(list(c), list(c.values()), 'o-', ms=3, label=label)
    ax.set_xlabel('t (fraction of the block masked)'); ax.set_ylabel('nats per masked character'); ax.grid(alpha=0.3); ax.legend(fontsize=7)
    ax.set_title(f'loss against t after {steps} steps (tiny Shakespeare)', fontsize=9)
    save_figure(fig, 'diffusion_loss_by_t.png')
    tr = res["BD3-LM L'=16"][0]
    ds = DiffusionSampling(steps=16, tokens=SamplingConfig(top_p=0.9, seed=0))
    ids, when = diffusion_generate(tr.model.eval(), n_tokens=256, ds=ds, return_trajectory=True)
    save_figure(plot_trajectory(tr.tok, ids[0], when[0], width=64, title="BD3-LM L'=16 on tiny Shakespeare: the step at which each character was unmasked"),
                'diffusion_trajectory.png')
    plt.close('all')
    return '\n'.join(rows)

def records(variants, base, size, steps, batch, problems, title, only=None, old=None):
    from hierlm.corpora import load_corpus
    from hierlm.diffusion import nelbo
    from hierlm.tasks import record_accuracy
    from hierlm.evaluate import evaluate_task                                # what `hierlm eval --split test` runs
    rows = [title, '', '| model | val loss (nats/token) | test loss (`hierlm eval`) | exact match | train time | an answer |',
            '|---|---:|---:|---:|---:|---|']
    kept = {r.split(' | ')[0][2:]: r for r in (old or '').split('\n') if r.startswith('| ')}
    if only and old and old.split('\n')[2] != rows[2]:
        raise SystemExit('the existing table has other columns than this script writes: rerun all its rows (no --rows)')
    for label, (preset, extra) in variants.items():
        if only and not label.startswith(only):
            if label in kept: rows.append(kept[label])
            continue
        tr, wall = train(str(ar_config(base)) if preset == 'ar' else preset, size + extra, steps, f'{base}-' + label.split(' ')[0], batch)
        recs = load_corpus(tr.cfg.data, tr.cfg.seed)['test'][:problems]
        acc = record_accuracy(tr.model.eval(), tr.tok, recs, tr.cfg.data.segments, tr.cfg.data.layout)
        val = [tr.val_stream.batch_at(i) for i in range(min(16, tr.val_stream.per_epoch))]
        loss = nelbo(tr.model, val, 2) if tr.cfg.model.arch == 'diffusion' else tr.evaluate()['val_loss']
        test = evaluate_task(tr.model, tr.tok, 'perplexity', tr.cfg.data, 'test', limit=sum(len(b['input_ids']) for b in val))
        ex = acc['rows'][0]['generated'].replace('\n', ' ⏎ ').replace('|', '/')[:160]
        bound = ' (bound)' if tr.cfg.model.arch == 'diffusion' else ''
        rows.append(f"| {label} | {loss:.3f}{bound} | {test['loss'].value:.3f}{bound} | {acc['exact_match']:.3f} "
                    f"({acc['correct']}/{acc['n']}) | {wall:.0f} s | `{ex}` |")
        print(rows[-1], flush=True)
    return '\n'.join(rows)

def gsm8k(steps, batch, problems, only=None, old=None):
    return records(GSM8K, 'hier-bd3lm-gsm8k', GSM_SIZE, steps, batch, problems, only=only, old=old, title=
        f'**GSM8K** (question 128 / plan 128 / execution 48 BPE tokens, 4k vocabulary trained on the training problems; d=192, '
        f'4 layers; batch {batch}, {steps} steps each; exact match of the final `#### answer`, greedy, on the **first {problems} '
        'problems of the test split**; the AR decoder is trained on the same records laid out as question, answer):')

def arith(steps, batch, problems, only=None, old=None):
    return records(ARITH, 'hier-bd3lm-tiny', [], steps, batch, problems, only=only, old=old, title=
        f'**Arithmetic word problems** (`hier-bd3lm-tiny`: the embedded two-step problems, question 24 / plan 32 / execution 16 '
        f'BPE tokens; d=64, 3 layers; batch {batch}, {steps} steps each; exact match, greedy, on the first {problems} test problems; '
        'the AR decoder has the same size and records, laid out as question, answer):')

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--shakespeare', action='store_true'); ap.add_argument('--gsm8k', action='store_true'); ap.add_argument('--arith', action='store_true')
    ap.add_argument('--arith-steps', type=int, default=600)
    ap.add_argument('--steps', type=int, default=500); ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--gsm8k-steps', type=int, default=800); ap.add_argument('--gsm8k-batch', type=int, default=16)
    ap.add_argument('--problems', type=int, default=200)
    ap.add_argument('--rows', help='rerun only the rows whose model starts with this (e.g. AR); the others are kept')
    a = ap.parse_args()
    torch.set_num_threads(2); os.environ.setdefault('HF_HUB_OFFLINE', '1')
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    out = ROOT/'benchmarks'/f'diffusion_{dev}.md'
    sections = {}
    if out.exists():
        for part in out.read_text().split('\n\n**')[1:]: sections[part.split('**')[0]] = '**' + part.rstrip('\n')
    if a.shakespeare: sections['Tiny Shakespeare, characters'] = shakespeare(a.steps, a.batch)
    if a.gsm8k: sections['GSM8K'] = gsm8k(a.gsm8k_steps, a.gsm8k_batch, a.problems, a.rows, sections.get('GSM8K'))
    if a.arith: sections['Arithmetic word problems'] = arith(a.arith_steps, 16, a.problems, a.rows,
                                                             sections.get('Arithmetic word problems'))
    order = ['Tiny Shakespeare, characters', 'GSM8K', 'Arithmetic word problems']
    lines = [f'Block diffusion benchmarks on {dev} (torch {torch.__version__}, 2 threads).']
    lines += [sections[k] for k in order if k in sections] + [v for k, v in sections.items() if k not in order]   # hand-written notes stay
    out.write_text('\n\n'.join(lines) + '\n'); print('\n\n'.join(lines)); print(f'wrote {out}')

if __name__ == '__main__': main()
