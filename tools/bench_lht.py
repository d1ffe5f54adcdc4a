#!/usr/bin/env python
"""LHT benchmarks on this machine -> benchmarks/lht_<device>.md and figures/lht_*.png

1. Quality: `lht-synthetic` with learned structure and the baselines (dense, gold, fixed chunks) at equal steps:
   MLM validation loss / perplexity, boundary precision/recall/F1 per level against the gold sentences and sections.
2. Ablations (`--ablations`): levels, router placement, window, neighbours, [DOC] token; one table.
3. Speed and memory: one training step (forward + backward, batch 1) at 1k, 2k, 4k and 8k tokens, LHT vs the dense
   encoder; each in its own process (peak resident memory is that process's).

    python tools/bench_lht.py [--steps 300] [--seeds 3] [--ablations] [--wikitext] [--skip-speed] [--skip-quality] [--lengths 1024,…] [--dtypes float32,bfloat16]
"""
import argparse, json, math, os, resource, subprocess, sys, time
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from hierlm.core import load_config
def ablations():
    "Variants of `lht-synthetic` (config overrides); the level-count rows keep the preset's ratio-loss weight."
    from hierlm.core import load_config
    w = load_config('lht-synthetic').model.ratio_weights[0]
    return {'1 level': ['model.n_levels=1', 'model.target_ratios=[36.0]', f'model.ratio_weights=[{w}]'],
             '3 levels': ['model.n_levels=3', 'model.target_ratios=[36.0,5.0,3.0]', f'model.ratio_weights=[{w},{w},{w}]'],
             'routers after layer 2': ['model.router_layer=2'], 'window 4': ['model.window=4'], 'window 64': ['model.window=64'],
             'neighbours 0': ['model.neighbours=0'], 'neighbours 2': ['model.neighbours=2'], 'no [DOC] token': ['model.doc_token=false'],
             'no soft-segmentation gradient': ['model.segment_grad=0'], 'routers from the ratio loss only': ['model.router_grad=ratio'],
             'control: corpus without registers': ['data.synthetic_registers=false']}

def speed_input(T:int, tok):
    "T tokens of synthetic documents (registers, as `lht-synthetic` trains on) and their level ids `(1, 3, T)`."
    from hierlm.corpora import synthetic_documents, encode_documents
    ids, lev, n = [], [], 40
    while sum(len(i) for i in ids) < T:
        i, l = encode_documents(synthetic_documents(n, seed=len(ids) + 7, split='test'), tok)
        ids.append(torch.as_tensor(i)); lev.append(torch.as_tensor(l) + (lev[-1][:, -1:] + 1 if lev else 0))
    return torch.cat(ids)[None, :T], torch.cat(lev, 1)[None, :, :T]

SPEED_ROWS = {'dense': 'dense encoder (SDPA, no mask)', 'gold': 'LHT, gold tree',
              'fixed': 'LHT, fixed chunks at the target ratios', 'init': 'LHT, learned, at initialisation',
              'trained': 'LHT, learned, trained routers',
              'trained-ckpt': 'LHT, learned, trained routers, activation checkpointing'}

def lht_step(row, T, run, dtype=torch.float32):
    "One training step (forward + backward, batch 1) of `row` (`SPEED_ROWS`) on T tokens of synthetic text."
    from hierlm.lht import build_lht
    from hierlm.finetune import load_pretrained
    trained, tok = load_pretrained(run)
    torch.manual_seed(0)
    if row.startswith('trained'): m = trained
    else:
        c = trained.config
        mc = load_config('lht-synthetic', [f"model.structure={'learned' if row == 'init' else row}"]).model
        m = build_lht(mc, c.vocab_size); m.config.mlm_mask_id = c.mlm_mask_id
    if row.endswith('-ckpt'): getattr(m, 'activation_checkpointing_enable', m.gradient_checkpointing_enable)()
    m.train()
    x, lev = speed_input(T, tok)
    lht_step.last = m, (x, lev)
    def step():
        with torch.autocast('cpu', dtype=dtype, enabled=dtype != torch.float32):
            loss = m.training_loss({'input_ids': x, 'level_ids': lev}).loss
        loss.backward(); m.zero_grad(set_to_none=True)
        return m
    return step

def speed_child(row, T, run, dtype='float32'):
    torch.set_num_threads(2)
    step, ts = lht_step(row, T, run, getattr(torch, dtype)), []
    for i in range(4):
        t0 = time.perf_counter(); m = step()
        if i: ts.append(time.perf_counter() - t0)
    bd = m.last_boundaries
    units = [T / float(b.b.float().sum()) for b in bd] if bd else []
    print(json.dumps({'s': sorted(ts)[len(ts) // 2], 'rss_gb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                      'units': units, 'anchored': m.last_length if bd else T}))

PHASES = ('lht.lower_layers', 'lht.routers', 'lht.anchors', 'block_sparse_plan', 'lht.upper_layers', 'lht.head')

def profile_child(row, T, run):
    "Forward and backward times of one step, the forward split by phase, and the top operators (torch.profiler)."
    from torch.profiler import profile, ProfilerActivity
    torch.set_num_threads(2)
    step = lht_step(row, T, run)
    step()
    fw, bw = [], []
    model, (x, lev) = lht_step.last
    for _ in range(3):
        t0 = time.perf_counter(); loss = model.training_loss({'input_ids': x, 'level_ids': lev}).loss
        t1 = time.perf_counter(); loss.backward(); t2 = time.perf_counter(); model.zero_grad(set_to_none=True)
        fw.append(t1 - t0); bw.append(t2 - t1)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model.training_loss({'input_ids': x, 'level_ids': lev}).loss.backward()
    ev = {e.key: e for e in prof.key_averages()}
    phases = {k: ev[k].cpu_time_total / 1e3 for k in PHASES if k in ev}
    top = sorted((e for e in prof.key_averages() if e.key.startswith('aten::')), key=lambda e: -e.self_cpu_time_total)[:6]
    total = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1e3
    print(json.dumps({'forward_ms': sorted(fw)[1] * 1e3, 'backward_ms': sorted(bw)[1] * 1e3, 'phases_ms': phases,
                      'top': [(e.key, e.self_cpu_time_total / 1e3 / total) for e in top]}))

def profile_table(lengths=(2048, 8192, 16384), rows=('dense', 'gold', 'trained'), fresh=False):
    run = speed_run()
    out = ['**Where a training step goes** (`torch.profiler` on one step, after a warm-up, each cell its own process; '
           'forward and backward: medians of 3 unprofiled steps; phases: CPU time inside each named span of the forward, '
           'the plan: its build, counted inside the upper layers\' time (the first upper layer builds it); top operators: share of all '
           'self CPU time in the profiled step, forward and backward):', '',
           '| tokens | model | forward | backward | lower layers | routers | anchors + mask | plan | upper layers | head | '
           'top operators |', '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|']
    cache = run.parent/'cells.json'
    cells = json.loads(cache.read_text()) if cache.exists() and not fresh else {}
    for T in lengths:
        for row in rows:
            key = f'profile|{row}|{T}'
            if key not in cells:                                      # measured cells are kept (runs/.../cells.json)
                r = subprocess.run([sys.executable, __file__, '--child', json.dumps(['profile', row, T, str(run)])],
                                   capture_output=True, text=True)
                if r.returncode: print(r.stderr[-3000:]); continue
                cells[key] = json.loads(r.stdout.strip().splitlines()[-1])
                cache.write_text(json.dumps(cells, indent=1))
            d = cells[key]; print(T, row, d, flush=True)
            ph = lambda k: f"{d['phases_ms'][k]:.0f} ms" if k in d['phases_ms'] else '-'
            top = ', '.join(f"{k.replace('aten::', '')} {v:.0%}" for k, v in d['top'])
            out.append(f"| {T} | {SPEED_ROWS[row]} | {d['forward_ms']:.0f} ms | {d['backward_ms']:.0f} ms | "
                       + ' | '.join(ph(k) for k in PHASES) + f' | {top} |')
    return out

def speed_run(steps=300):
    "A `lht-synthetic` model trained for `steps` (kept in runs/bench-lht-speed): the trained-routers row."
    out = ROOT/'runs'/'bench-lht-speed'
    if not (out/'final').exists():
        from hierlm.train import Trainer
        cfg = load_config('lht-synthetic', ['train.wandb=disabled', 'device=cpu', f'train.max_steps={steps}',
                                             'train.ckpt_every=1000000', f'eval.eval_every={steps}'])
        Trainer(cfg, out).fit()
    return out/'final'

def speed(lengths=(1024, 2048, 4096, 8192, 16384), rows=tuple(SPEED_ROWS), dtypes=('float32', 'bfloat16'),
          low_precision_at=(8192,), init_up_to=4096, dense_low_precision_up_to=8192, fresh=False):
    run = speed_run()
    cache = run.parent/'cells.json'
    cells = json.loads(cache.read_text()) if cache.exists() and not fresh else {}
    table = ['**Training step vs sequence length** (batch 1, forward + backward, `lht-synthetic` dimensions: d=128, 4 layers, '
             '4 heads, 2 levels, target ratios 36 and 5; input: T tokens of synthetic test documents; the trained row is '
             '`lht-synthetic` after 300 steps; bf16: CPU autocast, at 8k tokens; the routers at initialisation up to '
             '4k tokens; median of 3 steps after a warm-up; each cell its own process; memory: that '
             "process's peak resident set; units: tokens per level-1 / level-2 unit; anchored: tokens + anchors):", '',
             '| tokens | model | dtype | step | peak memory | fp32 dense step / this step | units | anchored |',
             '|---:|---|---|---:|---:|---:|---|---:|']
    for T in lengths:
        for dt in dtypes:
            if dt != 'float32' and T not in low_precision_at: continue
            res = {}
            for row in rows:
                if row == 'init' and T > init_up_to: continue
                if row == 'dense' and dt != 'float32' and T > dense_low_precision_up_to: continue   # minutes a step
                key = f'{row}|{T}|{dt}'
                if key not in cells:                                  # measured cells are kept (runs/.../cells.json)
                    out = subprocess.run([sys.executable, __file__, '--child', json.dumps([row, T, str(run), dt])],
                                         capture_output=True, text=True)
                    if out.returncode: print(out.stderr[-3000:]); res[row] = None; continue
                    cells[key] = json.loads(out.stdout.strip().splitlines()[-1])
                    cache.write_text(json.dumps(cells, indent=1))
                res[row] = cells[key]
                print(T, dt, row, res[row], flush=True)
            for row, r in res.items():
                if r is None: table.append(f'| {T} | {SPEED_ROWS[row]} | {dt} | failed | | | | |'); continue
                base = cells.get(f'dense|{T}|float32')                 # against the faster dense: fp32 on this CPU
                vs = f"{base['s'] / r['s']:.2f}×" if base else '-'
                u = ' / '.join(f'{x:.1f}' for x in r['units']) or '-'
                table.append(f"| {T} | {SPEED_ROWS[row]} | {dt} | {r['s']:.2f} s | {r['rss_gb']:.2f} GB | {vs} | {u} | {r['anchored']} |")
    return table

def train(extra, steps, label, preset='lht-synthetic'):
    from hierlm.core import load_config
    from hierlm.train import Trainer
    from hierlm.lht import level_boundaries, score_boundaries, cut_gradient, cut_profile
    from hierlm.evaluate import evaluate_task                                # what `hierlm eval --split test` runs
    cfg = load_config(preset, ['train.wandb=disabled', 'device=cpu', f'train.max_steps={steps}', f'eval.eval_every={steps}',
                                        'train.ckpt_every=1000000', *extra])
    out = ROOT/'runs'/f'bench-lht-{label}'
    import shutil; shutil.rmtree(out, ignore_errors=True)
    t0 = time.time(); tr = Trainer(cfg, out).fit(); wall = time.time() - t0
    val = [tr.val_stream.batch_at(i) for i in range(min(16, tr.val_stream.per_epoch))]
    tr.cfg.eval.eval_batches = 16; ev = tr.evaluate()
    test = evaluate_task(tr.model, tr.tok, 'perplexity', cfg.data, 'test', limit=sum(len(b['input_ids']) for b in val))
    pairs = level_boundaries(tr.model, val)                                  # empty for the dense encoder
    rep, rep1 = score_boundaries(pairs), score_boundaries(pairs, tolerance=1)
    cut = {}
    if cfg.model.structure != 'dense' and cfg.data.tokenizer == 'char':      # where the trained model's loss wants unit starts (word kinds: characters)
        ids, lev = torch.cat([b['input_ids'] for b in val[:2]]), torch.cat([b['level_ids'] for b in val[:2]])
        cut = cut_profile(cut_gradient(tr.model, ids, lev), ids, lev, tr.tok)
    print(label, ev['val_loss'], rep, cut, flush=True)
    return {'trainer': tr, 'val_loss': ev['val_loss'], 'test_loss': test['loss'].value, 'report': rep, 'report1': rep1, 'cut': cut, 'wall': wall, 'val': val}

def fmt_rep(res, l):
    r, r1 = res['report'].get(f'level{l}'), res['report1'].get(f'level{l}')
    return f"{r['precision']:.2f} / {r['recall']:.2f} / **{r['f1']:.2f}** / {r1['f1']:.2f} ({r['compression']:.1f})" if r else '-'

def quality_table(res, title):
    "One markdown table: each structure's validation loss, boundary scores per level and training time, and the gold unit sizes."
    q = [title, '', '| structure | val MLM loss | val perplexity | test MLM loss | test perplexity | level 1 vs sentences | level 2 vs sections | train time |',
         '|---|---:|---:|---:|---:|---|---|---:|']
    for st, r in res.items():
        q.append(f"| {st} | {r['val_loss']:.3f} | {math.exp(r['val_loss']):.2f} | {r['test_loss']:.3f} | {math.exp(r['test_loss']):.2f} "
                 f"| {fmt_rep(r, 1)} | {fmt_rep(r, 2)} | {r['wall']:.0f} s |")
    g = res['gold']['report']
    q += ['', f"Gold units: {g['level1']['gold_compression']:.1f} tokens per sentence, {g['level2']['gold_compression']:.1f} tokens per section in these blocks."]
    return '\n'.join(q)

def pictures(res):
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    from hierlm.core import save_figure
    from hierlm.lht import plot_boundaries, gold_boundaries
    from hierlm.masks import plot_mask
    tr, val = res['trainer'], res['val']
    m, tok = tr.model.eval(), tr.tok
    ids, lev = val[0]['input_ids'][:1], val[0]['level_ids'][:1]
    with torch.no_grad():
        m(input_ids=ids, level_ids=lev)
        pred = m.last_boundaries[0].b[0]
        gold = gold_boundaries(lev, m.config.n_levels)[0].b[0]
        save_figure(plot_boundaries(tok, ids[0, :384], pred[:384], gold[:384], 'LHT (lht-synthetic), learned level-1 units vs gold sentences'), 'lht_boundaries.png')
        m(input_ids=ids[:, :256], level_ids=lev[:, :256])
        ax = plot_mask(m.last_mask, m.last_length, title=f'learned tree over 256 tokens (+{m.last_length - 256} anchors)')
        fig = ax.figure if hasattr(ax, 'figure') else ax
        save_figure(fig, 'lht_mask.png')
    plt.close('all')

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('--child'); ap.add_argument('--steps', type=int, default=300)
    ap.add_argument('--wikitext', action='store_true', help='also the quality table on lht-wikitext (needs $HIERLM_DATA)')
    ap.add_argument('--seeds', type=int, default=0, help='also train the learned structure at seeds 1..N-1 (seed 0 is the quality row)')
    ap.add_argument('--ablations', action='store_true'); ap.add_argument('--skip-speed', action='store_true'); ap.add_argument('--skip-quality', action='store_true')
    ap.add_argument('--lengths', default='1024,2048,4096,8192,16384', help='speed table: sequence lengths')
    ap.add_argument('--profile', action='store_true', help='also the profile table')
    ap.add_argument('--fresh', action='store_true',
                    help='speed and profile tables: measure every cell again (else kept ones are reused)')
    ap.add_argument('--dtypes', default='float32,bfloat16', help='speed table: dtypes (bf16 is CPU autocast)')
    a = ap.parse_args()
    if a.child:
        args = json.loads(a.child)
        return profile_child(*args[1:]) if args[0] == 'profile' else speed_child(*args)
    torch.set_num_threads(2)
    out = ROOT/'benchmarks'/f'lht_{"cuda" if torch.cuda.is_available() else "cpu"}.md'
    old = out.read_text() if out.exists() else ''
    sections = {}
    for part in old.split('\n\n**')[1:]: sections[part.split('**')[0]] = '**' + part
    lines = [f'LHT benchmarks on {"cuda" if torch.cuda.is_available() else "cpu"} (torch {torch.__version__}, 2 threads).']
    if not a.skip_quality:
        res = {st: train([f'model.structure={st}'], a.steps, st) for st in ('learned', 'gold', 'fixed', 'dense')}
        pictures(res['learned'])
        sections['Learned structure vs baselines'] = quality_table(res,
            f'**Learned structure vs baselines** (`lht-synthetic`: synthetic corpus with sentences in registers, characters, blocks of 512, batch 8, {a.steps} steps each; '
            'MLM loss with fixed masks on 16 validation batches and on as many test blocks (`hierlm eval --split test`); boundaries scored on the same blocks against gold sentences (level 1) '
            'and sections (level 2); cells: precision / recall / **F1** exact / F1 within ±1 position (tokens per unit)):')
        cats = list(res['gold']['cut'])
        c = ['**Where the MLM loss wants unit starts** (`cut_gradient` of each trained model on 16 validation blocks: minus the gradient '
             'of the MLM loss w.r.t. a cost on attending across each position, averaged over 4 maskings; cells: mean percentile rank of '
             'that gradient at these positions, 0.50 = no preference, higher = a cut there lowers the loss more):', '',
             '| trained with | ' + ' | '.join(f'{k} (n={res["gold"]["cut"][k][1]})' for k in cats) + ' |', '|---|' + '---:|' * len(cats)]
        for st in ('learned', 'gold', 'fixed'):
            c.append(f'| {st} | ' + ' | '.join(f"{res[st]['cut'][k][0]:.2f}" if k in res[st]['cut'] else '-' for k in cats) + ' |')
        sections['Where the MLM loss wants unit starts'] = '\n'.join(c)
    if a.seeds > 1:
        runs = {0: res['learned']} if not a.skip_quality else {}
        runs.update({s: train([f'seed={s}'], a.steps, f'seed{s}') for s in range(a.seeds) if s not in runs})
        rows = [f'**Seeds** (learned structure, `lht-synthetic` as above with `seed=` each value, {a.steps} steps; the seed sets the initialisation, '
                'the masking, the batch order and the synthetic documents (same generator)):', '',
                '| seed | val MLM loss | test MLM loss | level 1 P / R / F1 / F1 ±1 (tokens per unit) | level 2 P / R / F1 / F1 ±1 (tokens per unit) |',
                '|---:|---:|---:|---|---|']
        rows += [f"| {s} | {r['val_loss']:.3f} | {r['test_loss']:.3f} | {fmt_rep(r, 1)} | {fmt_rep(r, 2)} |" for s, r in sorted(runs.items())]
        f1 = [r['report1']['level1']['f1'] for r in runs.values()]
        rows += ['', f'Level-1 F1 within ±1 over {len(f1)} seeds: mean {sum(f1) / len(f1):.2f}, lowest {min(f1):.2f}.']
        sections['Seeds'] = '\n'.join(rows)
    if a.wikitext:
        wres = {st: train([f'model.structure={st}'], a.steps, 'wikitext-' + st, 'lht-wikitext') for st in ('learned', 'gold', 'fixed', 'dense')}
        cfg = wres['gold']['trainer'].cfg
        sections['Learned structure vs baselines on WikiText-2'] = quality_table(wres,
            f'**Learned structure vs baselines on WikiText-2** (`lht-wikitext`: articles as documents, sections and sentences, '
            f'{cfg.data.vocab_size // 1024}k BPE trained locally, blocks of {cfg.data.block_size}, batch {cfg.data.batch_size}, d={cfg.model.d_model}, '
            f'{a.steps} steps each; validation on 16 blocks; cells as above):')
    if a.ablations:
        rows = ['**Ablations** (learned structure, `lht-synthetic`, each for the same steps; level-1 F1 against gold sentences):', '',
                '| variant | val MLM loss | test MLM loss | level 1 P / R / F1 / F1 ±1 (tokens per unit) |', '|---|---:|---:|---|']
        for name, extra in {'baseline (2 levels, routers after layer 1, window 16, ±1, [DOC], soft-segmentation gradient)': [], **ablations()}.items():
            if not extra and not a.skip_quality: r = res['learned']            # the baseline is the learned row above: same config, same seed
            else: r = train(extra, a.steps, 'abl-' + name.split(' (')[0].replace(' ', '-'))
            rows.append(f"| {name} | {r['val_loss']:.3f} | {r['test_loss']:.3f} | {fmt_rep(r, 1)} |")
        sections['Ablations'] = '\n'.join(rows)
    if a.profile: sections['Where a training step goes'] = '\n'.join(profile_table(fresh=a.fresh))
    if not a.skip_speed:
        sections['Training step vs sequence length'] = '\n'.join(speed(tuple(int(x) for x in a.lengths.split(',')),
                                                                   dtypes=tuple(a.dtypes.split(',')), fresh=a.fresh))
    order = ['Learned structure vs baselines', 'Seeds', 'Where the MLM loss wants unit starts', 'Learned structure vs baselines on WikiText-2',
             'Ablations', 'Where a training step goes', 'Training step vs sequence length',
             'Speed and memory: what the tables say (issue 22).']
    lines += [sections[k] for k in order if k in sections] + [v for k, v in sections.items() if k not in order]   # hand-written notes stay
    out.write_text('\n\n'.join(lines) + '\n'); print('\n\n'.join(lines)); print(f'wrote {out}')

if __name__ == '__main__': main()
