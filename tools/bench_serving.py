#!/usr/bin/env python
"""Serving on this machine -> benchmarks/serving_<device>.md (issue 20's table)

Trains a small decoder and a small BDH on tiny Shakespeare characters (`--steps` steps each; they are reused from
`--models` when already there), then, for each model, starts `hierlm serve` in its own process three ways: with
continuous batching (`--max-batch 16`), one request at a time (`--max-batch 1`: what a loop per request gives), and
batched with `--quantize int8`. Against each, 1, 4, 8 and 16 concurrent clients (threads of this process) each send
`--requests` streaming completions one after another (different prompts and seeds, temperature 0.8, `--max-tokens`
new tokens, no stop string). Each row: aggregate completion tokens per second over the wall time, and the p50 / p95
over requests of the time to the first token and of the mean time per token after it.

int8 quality: greedy continuations of 16 validation prompts (`--max-tokens` tokens) with and without int8, the share
of tokens that are the same at the same position, and the validation loss of each (nats per character).

    HIERLM_DATA=../shared/data python tools/bench_serving.py [--steps 400] [--requests 3] [--max-tokens 64]
    python tools/bench_serving.py --smoke          # random tiny models, 1-2 clients: checks the script only
"""
import argparse, json, os, socket, subprocess, sys, tempfile, threading, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import numpy as np, torch, httpx

ROOT = Path(__file__).resolve().parents[1]
HIERLM = str(Path(sys.executable).parent/'hierlm')
MODELS = {'decoder': ('shakespeare-char-cpu', ['model.d_model=256', 'model.n_layers=6', 'model.n_heads=8',
                                               'model.block_size=512', 'data.block_size=128']),
          'bdh': ('bdh-shakespeare', ['model.block_size=512', 'data.block_size=128', 'model.dropout=0']),
          'diffusion': ('bd3lm-shakespeare', ['model.d_model=256', 'model.n_layers=6', 'model.n_heads=8',
                                              'model.block_size=128', 'data.block_size=128', 'data.batch_size=16',
                                              'model.diffusion_block=8', 'model.dropout=0', 'model.clip_search=false'])}
SERVE_FLAGS = {'diffusion': ['--diffusion-steps', '8']}         # 8 denoising passes per block of 8 tokens
MODES = {'continuous batching': ['--max-batch', '16'], 'one at a time': ['--max-batch', '1'],
         'continuous batching, int8': ['--max-batch', '16', '--quantize', 'int8']}

def train(name:str, folder:Path, steps:int, smoke:bool):
    "Train (or reuse) the benchmark's `name` model in `folder`."
    if (folder/'final'/'config.json').exists(): return
    from hierlm.core import load_config
    from hierlm.train import Trainer
    preset, ov = MODELS[name]
    ov = ov + [f'train.max_steps={steps}', f'eval.eval_every={steps}', 'eval.eval_batches=20', f'train.ckpt_every={steps}']
    if smoke: ov += ['data.corpus=synthetic', 'data.synthetic_docs=64', 'model.d_model=32', 'model.n_layers=1',
                     'model.n_heads=2']
    Trainer(load_config(preset, ov), folder).fit(progress='none')

def free_port() -> int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

class Server:
    "`hierlm serve` in its own process on a free loopback port."
    def __init__(self, name:str, folder:Path, flags:list):
        self.url = f'http://127.0.0.1:{(port := free_port())}'
        self.proc = subprocess.Popen([HIERLM, 'serve', f'{name}={folder}', '--port', str(port), *flags],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(600):
            if self.proc.poll() is not None: raise RuntimeError(self.proc.stderr.read())
            try:
                if httpx.get(self.url + '/health', timeout=1).status_code == 200: return
            except httpx.HTTPError: time.sleep(0.2)
        raise RuntimeError('the server did not start')
    def stop(self): self.proc.terminate(); self.proc.wait(30)

def one_request(url:str, model:str, prompt:str, seed:int, max_tokens:int) -> dict:
    "A streaming completion: time to first token, mean time per later token, and its token count."
    body = {'model': model, 'prompt': prompt, 'max_tokens': max_tokens, 'temperature': 0.8, 'seed': seed,
            'stream': True, 'stream_options': {'include_usage': True}}
    t0, first, last, n = time.perf_counter(), None, None, 0
    with httpx.stream('POST', url + '/v1/completions', json=body, timeout=600) as r:
        for line in r.iter_lines():
            if not line.startswith('data: {'): continue
            chunk = json.loads(line[6:])
            if chunk.get('usage'): n = chunk['usage']['completion_tokens']
            elif chunk['choices'] and chunk['choices'][0]['text']:
                last = time.perf_counter(); first = first or last
    return {'ttft': first - t0, 'tpot': (last - first) / max(n - 1, 1), 'tokens': n}

def load_clients(url:str, model:str, prompts:list, clients:int, requests:int, max_tokens:int) -> dict:
    "`clients` threads, each sending `requests` streaming completions in turn: the aggregate and latency numbers."
    def client(c):
        return [one_request(url, model, prompts[(c * requests + k) % len(prompts)], c * 1000 + k, max_tokens)
                for k in range(requests)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as ex: rows = [r for rs in ex.map(client, range(clients)) for r in rs]
    wall = time.perf_counter() - t0
    q = lambda k, p: float(np.percentile([r[k] for r in rows], p)) * 1000
    return {'tokens/s': sum(r['tokens'] for r in rows) / wall, 'ttft50': q('ttft', 50), 'ttft95': q('ttft', 95),
            'tpot50': q('tpot', 50), 'tpot95': q('tpot', 95), 'tokens': sum(r['tokens'] for r in rows), 'wall': wall}

def int8_quality(folder:Path, prompts:list, max_tokens:int, source:str) -> dict:
    "Greedy tokens kept and validation loss (diffusion: its NELBO bound), fp32 against int8."
    from hierlm.finetune import load_pretrained
    from hierlm.generate import SamplingConfig
    from hierlm.serve import quantize_int8
    model, tok = load_pretrained(folder/'final')
    q8 = quantize_int8(load_pretrained(folder/'final')[0].eval())
    sc = SamplingConfig(max_new_tokens=max_tokens, temperature=0.0, seed=0)     # diffusion: the same unmasking order
    a, b = ([''.join(m.eval().complete(tok, p, sc, steps=8)) for p in prompts] for m in (model, q8))
    ta, tb = ([tok.encode(x) for x in outs] for outs in (a, b))
    same = sum(x == y for u, v in zip(ta, tb) for x, y in zip(u, v)) / max(sum(map(len, ta)), 1)
    ids = torch.tensor([tok.encode(source[:4096])[:model.config.block_size]])       # validation text, one window
    with torch.no_grad(): losses = [float(m(ids, labels=ids).loss) for m in (model, q8)]
    return {'same': same, 'loss': losses[0], 'loss8': losses[1]}

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--steps', type=int, default=400, help='training steps of each benchmark model')
    ap.add_argument('--models', default=str(ROOT/'runs'/'bench-serving'), help='where the models are trained')
    ap.add_argument('--clients', default='1,4,8,16', help='concurrent client counts')
    ap.add_argument('--requests', type=int, default=3, help='requests per client, one after another')
    ap.add_argument('--max-tokens', type=int, default=64, help='completion tokens per request')
    ap.add_argument('--out', default=None, help='markdown file (default: benchmarks/serving_cpu.md)')
    ap.add_argument('--only', default=','.join(MODELS), help='the models to measure (comma-separated; a check of '
                    'some rows: with it, write to --out, not over the whole table)')
    ap.add_argument('--smoke', action='store_true', help='tiny random models, few clients: checks the script only')
    args = ap.parse_args()
    clients = [1, 2] if args.smoke else [int(c) for c in args.clients.split(',')]
    root = Path(tempfile.mkdtemp()) if args.smoke else Path(args.models)
    steps = 2 if args.smoke else args.steps
    from hierlm.core import load_config
    from hierlm.corpora import load_corpus
    cfg = load_config(MODELS['decoder'][0], ['data.corpus=synthetic', 'data.synthetic_docs=64'] if args.smoke else [])
    docs = next(iter(load_corpus(cfg.data, 0).values()))
    text = ''.join(d if isinstance(d, str) else getattr(d, 'text', str(d)) for d in docs)
    source = text[int(len(text) * 0.9):]                                   # the validation tenth
    rows, quality = [], {}
    names = [n for n in MODELS if n in args.only.split(',')]
    for name in names:
        folder = root/name
        t0 = time.time(); train(name, folder, steps, args.smoke)
        print(f'{name}: trained or found in {time.time() - t0:.0f} s', flush=True)
        from hierlm.finetune import load_pretrained
        _, tok = load_pretrained(folder/'final')
        step = max((len(source) - 32) // 32, 1)
        prompts = [source[i * step:i * step + 32] for i in range(32)]
        prompts = [p if all(c in tok.get_vocab() for c in p) else 'the ' for p in prompts]
        quality[name] = int8_quality(folder, prompts[:16], args.max_tokens, source)
        for mode, flags in MODES.items():
            srv = Server(name, folder, flags + SERVE_FLAGS.get(name, []))
            try:
                one_request(srv.url, name, prompts[0], 0, 8)                          # warm-up
                for c in clients:
                    r = load_clients(srv.url, name, prompts, c, args.requests, args.max_tokens)
                    rows.append({'model': name, 'mode': mode, 'clients': c, **r})
                    print(rows[-1], flush=True)
            finally: srv.stop()
    base = {(r['model'], r['clients']): r['tokens/s'] for r in rows if r['mode'] == 'one at a time'}
    lines = ['| model | server | clients | tokens/s (all clients) | vs one at a time | time to first token p50 / p95 '
             '| per token p50 / p95 |', '|---|---|---:|---:|---:|---:|---:|']
    lines += [f"| {r['model']} | {r['mode']} | {r['clients']} | {r['tokens/s']:.0f} | "
              f"{r['tokens/s'] / base[(r['model'], r['clients'])]:.2f}x | {r['ttft50']:.0f} / {r['ttft95']:.0f} ms | "
              f"{r['tpot50']:.1f} / {r['tpot95']:.1f} ms |" for r in rows]
    qual = ['| model | greedy tokens unchanged by int8 | validation loss fp32 | int8 |', '|---|---:|---:|---:|']
    qual += [f"| {n} | {q['same']:.1%} | {q['loss']:.3f} | {q['loss8']:.3f} |" for n, q in quality.items()]
    params = {n: sum(p.numel() for p in load_pretrained(root/n/'final')[0].parameters()) for n in names}
    head = (f"**Serving on this machine** (`tools/bench_serving.py`{' --smoke' if args.smoke else ''}; "
            f"{os.cpu_count()} CPU cores, torch {torch.__version__}; server and clients on the same machine). "
            f"Models trained {steps} steps on tiny Shakespeare characters: "
            + ', '.join(f'{n} {params[n] / 1e6:.2f}M parameters' for n in names)
            + f". Each client sends {args.requests} streaming completions in turn, {args.max_tokens} new tokens each "
              f"at temperature 0.8, prompts of 32 characters.")
    text = '\n\n'.join([head, '\n'.join(lines), '**int8 quality** (16 validation prompts, greedy):', '\n'.join(qual)])
    print(text)
    partial = len(names) < len(MODELS)
    out = Path(args.out) if args.out else (None if args.smoke or partial else ROOT/'benchmarks'/'serving_cpu.md')
    if out:
        notes = ''
        if out.exists() and '**What the numbers say**' in out.read_text():
            notes = '\n\n**What the numbers say**' + out.read_text().split('**What the numbers say**', 1)[1]
        out.write_text(text + notes.rstrip() + '\n')

if __name__ == '__main__':
    main()
