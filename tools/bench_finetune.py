#!/usr/bin/env python
"""Finetuning on this machine -> benchmarks/finetune_<device>.md (issue 18's table)

For each task (`--tasks`: sst2, arith, dialogsum) over one base model folder (`--base`, e.g. a `hierlm train base-gpt2`
run): prompting (zero-shot and `--shots`-shot; the record task arith has no room for examples in its fixed slots),
a full finetune, LoRA and QLoRA, each trained by `hierlm`'s trainer in its own process from the task's preset
(`<task>-lora`) for `--steps` steps. Each row: the task metric on the test split (`hierlm eval`'s `evaluate_task`,
with its 95% bootstrap interval), trainable parameters, the training process's peak resident memory (VmHWM:
weights, optimizer, activations, and torch itself, counted from after the base is loaded) and its wall time.

`--memory` measures what the adapters cost on a model of GPT-2 small's shape (124M parameters, random weights: the
memory a run takes does not depend on the weights' values): a full finetune, LoRA and QLoRA, each `--memory-steps`
steps of `sst2-lora` (batch 8) in its own process, with its peak resident memory and wall time.

    HIERLM_DATA=../shared/data python tools/bench_finetune.py --base runs/base-gpt2 [--steps 300] [--limit 200]
    HIERLM_DATA=../shared/data python tools/bench_finetune.py --memory [--memory-steps 10]
    python tools/bench_finetune.py --smoke      # a random tiny GPT-2 as the base, 4 steps: checks the script, prints only
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path
import torch
from hierlm.evaluate import HEADLINE_METRIC

ROOT = Path(__file__).resolve().parents[1]
LR = {'none': 3e-4, 'lora': 1e-3, 'qlora': 1e-3}               # a full finetune moves every weight: a smaller step
CHILD = """
import ctypes, json, resource, sys, time
from hierlm.core import load_config
from hierlm.train import Trainer
from hierlm.finetune import trainable_parameters
def rss(field):
    return next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith(field))
cfg = load_config(sys.argv[1], sys.argv[3:])
t0 = time.time(); tr = Trainer(cfg, sys.argv[2])                     # the base loaded (quantized for QLoRA)
ctypes.CDLL('libc.so.6').malloc_trim(0)                            # hand freed heap (e.g. quantizing's) back
loaded = rss('VmRSS:')
open('/proc/self/clear_refs', 'w').write('5')                       # Linux: the peak (VmHWM) counts from here
tr.fit(progress='none')
print('RESULT', json.dumps({'wall': time.time() - t0, 'trainable': trainable_parameters(tr.model),
                            'peak_rss': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                            'loaded_rss': loaded, 'train_peak_rss': rss('VmHWM:')}))
"""
NAMES = {'none': 'full finetune', 'lora': 'LoRA (r=8)', 'qlora': 'QLoRA (r=8, NF4 base)'}

def train(task, base, adapter, steps, out, extra):
    "Train `<task>-lora` over `base` with `adapter` in a child process: its wall time, trainable count and peak RSS."
    args = [f'train.init_from={base}', f'train.adapter={adapter}', f'train.max_steps={steps}',
            f'train.lr={LR[adapter]}',
            f'eval.eval_every={steps}', *extra]
    r = subprocess.run([sys.executable, '-c', CHILD, f'{task}-lora', str(out), *args], capture_output=True, text=True)
    if r.returncode: sys.exit(f'{task} {adapter} failed:\n{r.stderr[-3000:]}')
    return json.loads(next(l for l in r.stdout.splitlines() if l.startswith('RESULT'))[7:])

def score(task, folder, dcfg, limit, shots=0):
    "The task metric of a model folder on the test split, as a `Score`."
    from hierlm.finetune import load_pretrained
    from hierlm.evaluate import evaluate_task
    model, tok = load_pretrained(folder)
    return evaluate_task(model, tok, task, dcfg, 'test', limit, shots=shots)[HEADLINE_METRIC[task]]

def memory(work, steps, extra) -> str:
    "Full finetune, LoRA and QLoRA over a random GPT-2-small-shaped model: the table of their peak memory."
    from hierlm.finetune import save_random_transformers_model
    save_random_transformers_model(work/'gpt2-small', 'gpt2', n_embd=768, n_layer=12, n_head=12, n_positions=1024)
    lines = [f"**Adapter memory on GPT-2 small's shape** (transformers' `GPT2LMHeadModel` with GPT-2's default config: "
             f"124M parameters, 85M of them in the attention and MLP layers that NF4 quantizes, random weights; "
             f"{steps} steps of `sst2-lora`, batch 8 × 64 tokens, each run in its own process; resident memory "
             f"(RSS, which includes torch itself, about 0.4 GiB) after loading the base (freed heap returned with "
             f"malloc_trim; weights read through a memory map count once touched), its peak while training "
             f"(Linux's VmHWM, reset after loading: weights, gradients, optimizer state, activations), and the "
             f"peak of the whole run, loading included (ru_maxrss); torch {torch.__version__}, 2 threads):", '',
             '| method | trainable parameters | after loading | peak while training | peak of the run | train time |',
             '|---|---:|---:|---:|---:|---:|']
    for adapter in ('none', 'lora', 'qlora'):
        r = train('sst2', f'{work}/gpt2-small', adapter, steps, work/f'mem-{adapter}', [*extra, 'data.batch_size=8'])
        gib = lambda k: f"{r[k] / 2**30:.2f} GiB"
        lines.append(f"| {NAMES[adapter]} | {r['trainable'][0]:,} | {gib('loaded_rss')} | {gib('train_peak_rss')} | "
                     f"{gib('peak_rss')} | {r['wall']:.0f} s |")
        print(lines[-1], flush=True)
    return '\n'.join(lines)

def write_section(out:Path, text:str):
    "Put `text` (a `**Title** ...` table) into `out`, replacing the section with that title and keeping the others."
    old = out.read_text() if out.exists() else 'Finetuning benchmarks on this machine.\n'
    parts = old.rstrip('\n').split('\n\n**')
    key = lambda part: part.lstrip('*').split('**')[0].split(' (')[0]
    sections = {key(p): '**' + p.lstrip('*') for p in parts[1:]}
    sections[key(text)] = text
    out.write_text('\n\n'.join([parts[0], *sections.values()]) + '\n'); print(f'wrote {out}')

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--base'); ap.add_argument('--tasks', nargs='+', default=['sst2', 'arith'])
    ap.add_argument('--steps', type=int, default=300); ap.add_argument('--limit', type=int, default=200)
    ap.add_argument('--shots', type=int, default=4); ap.add_argument('--smoke', action='store_true')
    ap.add_argument('--memory', action='store_true'); ap.add_argument('--memory-steps', type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(2); os.environ.setdefault('HF_HUB_OFFLINE', '1')
    from hierlm.core import load_config
    work = Path(tempfile.mkdtemp())
    extra = [f'data.cache_dir={work}/cache'] + (['eval.eval_batches=1'] if a.smoke else [])
    if a.smoke:
        from hierlm.finetune import save_random_transformers_model
        save_random_transformers_model(work/'base', 'gpt2', n_layer=1, n_positions=256)
        a.base, a.steps, a.limit = f'{work}/base', 4, 16
    out = ROOT/'benchmarks'/f'finetune_{"cuda" if torch.cuda.is_available() else "cpu"}.md'
    if a.memory: return write_section(out, memory(work, a.memory_steps, extra))
    if not a.base: ap.error('--base: a model folder to start from (e.g. runs/base-gpt2), or --smoke')
    rows = []
    for task in a.tasks:
        dcfg = load_config(f'{task}-lora', [f'data.cache_dir={work}/cache']).data
        prompts = [0] + ([a.shots] if task != 'arith' else [])
        for k in prompts:
            s = score(task, a.base, dcfg, a.limit, k)
            rows.append((task, f'prompting, {k}-shot', s, 0, None, None))
            print(rows[-1], flush=True)
        for adapter in ('none', 'lora', 'qlora'):
            r = train(task, a.base, adapter, a.steps, work/f'{task}-{adapter}', extra)
            s = score(task, work/f'{task}-{adapter}', dcfg, a.limit)
            rows.append((task, NAMES[adapter], s, r['trainable'][0], r['train_peak_rss'], r['wall']))
            print(rows[-1], flush=True)
    lines = [f"**Finetuning** over `{a.base}` ({a.steps} steps each, the `<task>-lora` presets; test split, first "
             f"{a.limit} "
             f"examples; prompting: {a.shots}-shot examples drawn with a fixed seed from the training pairs; "
             f"memory: the resident peak while training, after the base is loaded; torch {torch.__version__}, "
             f"2 threads):", '',
             '| task | method | metric [95% interval] | trainable parameters | peak memory while training '
             '| train time |',
             '|---|---|---|---:|---:|---:|']
    for task, name, s, n, rss, wall in rows:
        lines.append(f"| {task} | {name} | {HEADLINE_METRIC[task]} {s.value:.3f} [{s.lo:.3f}, {s.hi:.3f}] | "
                     f"{n:,} | {f'{rss / 2**30:.2f} GiB' if rss else '-'} | {f'{wall:.0f} s' if wall else '-'} |")
    text = '\n'.join(lines)
    print(text)
    if not a.smoke: write_section(out, text)

if __name__ == '__main__': main()
