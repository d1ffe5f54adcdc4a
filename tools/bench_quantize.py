#!/usr/bin/env python
"""Quantization on this machine -> benchmarks/quantize_<device>.md (issue 21's table)

Trains (or reuses from `--models`) one model of each family that generates, on tiny Shakespeare: a 25M-parameter
decoder (d=512, 8 layers; `--steps` steps of 8 x 128 characters), BDH and a BD3-LM block diffusion model (the
serving benchmark's configurations, `runs/bench-serving` when there). Each is quantized by `hierlm quantize` with
every method that applies to it, and every folder is measured in its own process (2 threads):

The decoder twice: d=512 x 8 layers (25M) and d=768 x 4 layers (28M, `decoder-wide`, int8 only): per generated token
the int8 matmuls save time in proportion to the weights, while the rest of a decoding step (norms, rotary positions,
the cache, sampling) costs per layer.

- size: the bytes of its weight files on disk;
- generate: greedy `complete()` of 4 prompts x `--tokens` new characters, tokens per second (median of 3 passes
  after a warm-up pass; block diffusion: 8 denoising passes per block of 8);
- perplexity: `corpus_perplexity` on the first `--blocks` blocks of 128 characters of the validation split (tiny
  Shakespeare has no test split: nanoGPT's 90/10; the diffusion model: its NELBO bound), and its change from fp32;
- greedy agreement: the share of generated characters equal to fp32's at the same position (over the 4 prompts).

QAT vs PTQ (decoder): the trained decoder is finetuned `--qat-steps` more steps three ways from the same weights -
plainly, with `train.qat=int8` and with `train.qat=int4` - and each is then quantized (PTQ of the plain finetune,
conversion of the QAT ones) and scored.

    HIERLM_DATA=../shared/data python tools/bench_quantize.py [--steps 120] [--qat-steps 40]
    python tools/bench_quantize.py --smoke        # random tiny models, few blocks: checks the script only
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HIERLM = str(Path(sys.executable).parent/'hierlm')
MODELS = {'decoder': ('shakespeare-char-cpu', ['model.d_model=512', 'model.n_layers=8', 'model.n_heads=8',
                                               'model.block_size=256', 'data.block_size=128', 'data.batch_size=8']),
          'decoder-wide': ('shakespeare-char-cpu', ['model.d_model=768', 'model.n_layers=4', 'model.n_heads=12',
                                                    'model.block_size=256', 'data.block_size=128',
                                                    'data.batch_size=8']),
          'bdh': ('bdh-shakespeare', ['model.block_size=512', 'data.block_size=128', 'model.dropout=0']),
          'diffusion': ('bd3lm-shakespeare', ['model.d_model=256', 'model.n_layers=6', 'model.n_heads=8',
                                              'model.block_size=128', 'data.block_size=128', 'data.batch_size=16',
                                              'model.diffusion_block=8', 'model.dropout=0', 'model.clip_search=false'])}
METHODS = {'decoder': ['int8', 'int4', 'torchao-int8', 'nf4', 'bnb-int8'], 'decoder-wide': ['int8'],
           'bdh': ['int8', 'int4'],
           'diffusion': ['int8', 'int4', 'nf4', 'bnb-int8']}
PROMPTS = ['ROMEO:\n', 'First Citizen:\nWe are', 'KING HENRY', 'O, that']
SMOKE_PROMPTS = ['Ka', 'Bo', 'Ha', 'Ze']                      # the synthetic corpus's characters

def train(name, folder, steps, smoke, extra=()):
    "Train (or reuse) the benchmark's `name` model in `folder`."
    if (folder/'final'/'config.json').exists(): return folder
    from hierlm.core import load_config
    from hierlm.train import Trainer
    preset, ov = MODELS[name]
    ov = ov + [f'train.max_steps={steps}', f'eval.eval_every={steps}', 'eval.eval_batches=20',
               f'train.ckpt_every={steps}', *extra]
    if smoke: ov += ['data.corpus=synthetic', 'data.synthetic_docs=64', 'model.d_model=64', 'model.n_layers=1',
                     'model.n_heads=2'] + (['model.mlp_multiplier=2'] if name == 'bdh' else [])
    Trainer(load_config(preset, ov), folder).fit(progress='none')
    return folder

def measure(folder, blocks, tokens, ref, prompts):
    "One folder's numbers (run in its own process)."
    import warnings
    warnings.filterwarnings('ignore')
    import torch
    torch.set_num_threads(2)
    from hierlm.core import load_config
    from hierlm.finetune import load_pretrained, model_folder
    from hierlm.evaluate import corpus_perplexity
    from hierlm.generate import SamplingConfig
    p = model_folder(folder)
    cfg = next(f for f in (p/'config.yaml', p.parent/'config.yaml') if f.exists())
    model, tok = load_pretrained(p)
    sc = SamplingConfig(max_new_tokens=tokens, temperature=0)
    opts = {'steps': 8} if getattr(model, 'kind', '') == 'diffusion' else {}
    write = lambda: [''.join(model.complete(tok, pr, sc, **opts)) for pr in prompts]
    with torch.no_grad():
        texts = write()                                                           # warm-up, and the texts
        times = []
        for _ in range(3):
            t0 = time.perf_counter(); n = sum(len(tok.encode(t)) for t in write())
            times.append(time.perf_counter() - t0)
        ppl = corpus_perplexity(model, tok, load_config(str(cfg)).data, 'valid', max_blocks=blocks)   # no test split
    size = sum(f.stat().st_size for f in p.glob('model*.safetensors'))
    out = {'size': size, 'tokens_per_s': n / sorted(times)[1], 'ppl': ppl['perplexity'].value,
           'loss': ppl['loss'].value, 'texts': texts, 'measure': ppl['measure']}
    if ref:
        want = json.loads(Path(ref).read_text())['texts']
        same = sum(a == b for x, y in zip(texts, want) for a, b in zip(x, y))
        out['agreement'] = same / max(1, sum(max(len(x), len(y)) for x, y in zip(texts, want)))
    return out

def run_measure(folder, args, ref=None, env=None):
    "`measure` in a fresh process; its JSON."
    res = Path(tempfile.mkdtemp())/'m.json'
    cmd = [sys.executable, __file__, '--measure', str(folder), '--out-json', str(res), '--blocks', str(args.blocks),
           '--tokens', str(args.tokens)] + (['--ref', str(ref)] if ref else []) + (['--smoke'] if args.smoke else [])
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode: raise RuntimeError(f'measuring {folder} failed:\n{r.stderr[-3000:]}')
    return json.loads(res.read_text()), res

def quantized(src, method, dest, env=None):
    if not dest.exists():
        r = subprocess.run([HIERLM, 'quantize', str(src), '--method', method, '--out', str(dest)], capture_output=True,
                           text=True, env=env)
        if r.returncode: raise RuntimeError(f'hierlm quantize {method} failed: {r.stderr[-2000:]}')
    return dest

def torchao_env(args):
    "An environment whose Python also sees torchao (installed into a folder of its own, not into .venv)."
    target = Path(args.models)/'torchao-site'
    if not (target/'torchao').exists():
        subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--target', str(target),
                        'torchao==0.18.0'], check=True)
    return {**os.environ, 'PYTHONPATH': str(target)}

def fmt_size(b): return f'{b / 1e6:.2f} MB'

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--models', default=str(ROOT/'runs'/'bench-quantize'))
    ap.add_argument('--reuse', default=str(ROOT/'runs'/'bench-serving'), help='take bdh / diffusion from here if there')
    ap.add_argument('--steps', type=int, default=120, help="the decoder's training steps")
    ap.add_argument('--other-steps', type=int, default=400, help='BDH and diffusion training steps (if not reused)')
    ap.add_argument('--qat-steps', type=int, default=40)
    ap.add_argument('--blocks', type=int, default=200)
    ap.add_argument('--tokens', type=int, default=64)
    ap.add_argument('--only', default=','.join(MODELS))
    ap.add_argument('--out', default=str(ROOT/'benchmarks'/'quantize_cpu.md'))
    ap.add_argument('--smoke', action='store_true')
    ap.add_argument('--measure'); ap.add_argument('--out-json'); ap.add_argument('--ref')
    args = ap.parse_args()
    if args.measure:
        Path(args.out_json).write_text(json.dumps(measure(args.measure, args.blocks, args.tokens, args.ref,
                                                            SMOKE_PROMPTS if args.smoke else PROMPTS)))
        return
    if args.smoke: args.blocks, args.tokens, args.steps, args.other_steps, args.qat_steps = 4, 8, 3, 3, 2
    import torch
    models = Path(args.models); models.mkdir(parents=True, exist_ok=True)
    rows, qat_rows, t_start = [], [], time.time()
    for name in args.only.split(','):
        reused = Path(args.reuse)/name
        src = reused if name != 'decoder' and (reused/'final'/'config.json').exists() and not args.smoke else \
              train(name, models/name, args.steps if name.startswith('decoder') else args.other_steps, args.smoke)
        base, ref = run_measure(src, args)
        rows.append((name, 'fp32', base, src))
        print(name, 'fp32', {k: v for k, v in base.items() if k != 'texts'}, flush=True)
        for method in METHODS[name]:
            env = torchao_env(args) if method == 'torchao-int8' else None
            q = quantized(src, method, models/f'{name}-{method}', env)
            m, _ = run_measure(q, args, ref, env)
            rows.append((name, method, m, q))
            print(name, method, {k: v for k, v in m.items() if k != 'texts'}, flush=True)
    if 'decoder' in args.only.split(','):
        src = models/'decoder'
        init = [f'train.init_from={src}', 'train.lr=1e-4', 'train.warmup_steps=0']
        for qat in ('none', 'int8', 'int4'):
            ft = train('decoder', models/f'decoder-ft-{qat}', args.qat_steps, args.smoke, init + [f'train.qat={qat}'])
            for method in (['int8', 'int4'] if qat == 'none' else [qat]):
                m, _ = run_measure(quantized(ft, method, models/f'decoder-ft-{qat}-{method}'), args)
                qat_rows.append((qat, method, m))
                print('qat', qat, method, m['ppl'], flush=True)
            if qat == 'none': qat_rows.append(('none', 'fp32', run_measure(ft, args)[0]))
    rows, qat_rows = merged(models, rows, qat_rows)
    write_table(args, rows, qat_rows, time.time() - t_start)

def merged(models, rows, qat_rows):
    "This run's rows over those of earlier runs in `models` (results.json): `--only` remeasures some, keeps the rest."
    f = models/'results.json'
    old = json.loads(f.read_text()) if f.exists() else {'rows': [], 'qat_rows': []}
    new = {(r[0], r[1]): list(r) for r in old['rows']}
    new.update({(r[0], r[1]): [r[0], r[1], r[2], str(r[3])] for r in rows})
    order = list(MODELS)
    rows = sorted(new.values(), key=lambda r: (order.index(r[0]), r[1] != 'fp32'))
    qat_rows = [list(r) for r in qat_rows] or old['qat_rows']
    f.write_text(json.dumps({'rows': rows, 'qat_rows': qat_rows}))
    return rows, qat_rows

def write_table(args, rows, qat_rows, wall):
    import torch
    base = {n: m for n, meth, m, _ in rows if meth == 'fp32'}
    lines = ['Quantization on this machine (`tools/bench_quantize.py`).', '',
             f'**Size, speed and quality per family and method** (tiny Shakespeare characters; greedy generation of '
             f'4 prompts x {args.tokens} characters, tokens/s the median of 3 passes in a process of its own with 2 '
             f'threads; perplexity on the first {args.blocks} blocks of 128 characters of the validation split (tiny '
             f'Shakespeare has no test split; block diffusion: the NELBO bound); agreement: share of generated '
             f'characters equal to fp32\'s at the same position; torch '
             f'{torch.__version__}, {os.cpu_count()} cores):', '',
             '| family | method | size on disk | generate tokens/s | speed vs fp32 | perplexity | change vs fp32 '
             '| greedy agreement |', '|---|---|---:|---:|---:|---:|---:|---:|']
    for name, meth, m, _ in rows:
        b = base[name]
        lines.append(f"| {name} | {meth} | {fmt_size(m['size'])} ({m['size'] / b['size']:.2f}x) | "
                     f"{m['tokens_per_s']:.0f} | {m['tokens_per_s'] / b['tokens_per_s']:.2f}x | {m['ppl']:.3f} | "
                     f"{(m['ppl'] / b['ppl'] - 1) * 100:+.2f}% | {m.get('agreement', 1.0):.3f} |")
    if qat_rows:
        fp = next(m for q, meth, m in qat_rows if meth == 'fp32')
        lines += ['', f'**QAT vs PTQ on the decoder** (the trained decoder finetuned {args.qat_steps} more steps at lr '
                      f'1e-4 from the same weights: plainly then quantized (PTQ), or with `train.qat` then converted; '
                      f'perplexity as above):', '',
                  '| finetuning | then | perplexity | change vs the plain finetune in fp32 |', '|---|---|---:|---:|',
                  f"| plain | fp32 | {fp['ppl']:.3f} | - |"]
        for qat, meth, m in qat_rows:
            if meth == 'fp32': continue
            how = 'plain' if qat == 'none' else f'QAT ({qat})'
            then = f'PTQ {meth}' if qat == 'none' else f'convert to {meth}'
            lines.append(f"| {how} | {then} | {m['ppl']:.3f} | {(m['ppl'] / fp['ppl'] - 1) * 100:+.2f}% |")
    lines += ['', f'Whole benchmark: {wall / 60:.1f} min.', '']
    out = Path(args.out)
    old = out.read_text() if out.exists() else ''
    keep = old[old.index('**What the numbers say**'):] if '**What the numbers say**' in old else ''
    if not args.smoke or args.out != str(ROOT/'benchmarks'/'quantize_cpu.md'):     # a smoke run never overwrites it
        out.write_text('\n'.join(lines) + '\n' + keep)
    print('\n'.join(lines))

if __name__ == '__main__': main()
