#!/usr/bin/env python
"""Finetuning on this machine -> benchmarks/finetune_<device>.md (issue 18's table)

For each task (`--tasks`: sst2, sst2-head, arith, gsm8k, dialogsum, dialogsum-t5) over one base model folder
(`--base`, e.g. a `hierlm train base-gpt2` run): prompting (zero-shot and `--shots`-shot; DialogSum one shot, since
a dialogue fills most of the context; the record tasks have no room for examples in their fixed slots), a full
finetune, LoRA and QLoRA, each trained by `hierlm`'s trainer in its own process from the task's preset (`<task>-lora`;
`sst2-head`: a classification head, `dialogsum-t5`: the encoder-decoder recipe) for `--steps` steps (`--methods`
picks among them). Each row: the task metric on the test split (`hierlm eval`'s `evaluate_task`, with its 95%
bootstrap interval), trainable parameters, the training process's peak resident memory (VmHWM: weights, optimizer,
activations, and torch itself, counted from after the base is loaded) and its wall time. Each base and task list
gets its own section.

`--memory` measures what the adapters cost on a model of GPT-2 small's shape (124M parameters, random weights: the
memory a run takes does not depend on the weights' values): a full finetune, LoRA and QLoRA, each `--memory-steps`
steps of `sst2-lora` (batch 8) in its own process, with its peak resident memory and wall time.

    HIERLM_DATA=../shared/data python tools/bench_finetune.py --base runs/base-gpt2 [--steps 300] [--limit 200]
    HIERLM_DATA=../shared/data python tools/bench_finetune.py --base runs/base-t5 --tasks dialogsum-t5
    HIERLM_DATA=../shared/data python tools/bench_finetune.py --memory [--memory-steps 10]
    python tools/bench_finetune.py --smoke      # random tiny GPT-2 and T5 bases, 4 steps: checks the script only
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path
import torch
from hierlm.evaluate import HEADLINE_METRIC

ROOT = Path(__file__).resolve().parents[1]
LR = {'none': 3e-4, 'lora': 5e-3, 'qlora': 5e-3}               # a full finetune moves every weight: a smaller step
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
PRESET = {'sst2': 'sst2-lora', 'sst2-head': 'sst2-head', 'arith': 'arith-lora', 'gsm8k': 'gsm8k-lora',
          'dialogsum': 'dialogsum-lora', 'dialogsum-t5': 'dialogsum-t5'}         # a table's task -> its preset

def train(task, base, adapter, steps, out, extra):
    "Train `task`'s preset over `base` with `adapter` in a child process: its wall time, trainable count and peak RSS."
    args = [f'train.init_from={base}', f'train.adapter={adapter}', f'train.max_steps={steps}',
            f'train.lr={LR[adapter]}', f'eval.eval_every={steps}', *extra]
    r = subprocess.run([sys.executable, '-c', CHILD, PRESET[task], str(out), *args],
                       capture_output=True, text=True)
    if r.returncode: sys.exit(f'{task} {adapter} failed:\n{r.stderr[-3000:]}')
    return json.loads(next(l for l in r.stdout.splitlines() if l.startswith('RESULT'))[7:])

def score(task, folder, dcfg, limit, shots=0):
    "The task metric of a model folder on the test split, as a `Score` (`sst2-head` scores as sst2, and so on)."
    from hierlm.finetune import load_pretrained
    from hierlm.evaluate import evaluate_task
    model, tok = load_pretrained(folder)
    task = task.split('-')[0]
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
    ap.add_argument('--base')
    ap.add_argument('--tasks', nargs='+', default=['sst2', 'sst2-head', 'arith', 'gsm8k', 'dialogsum'],
                    choices=sorted(PRESET))
    ap.add_argument('--steps', type=int, default=300); ap.add_argument('--limit', type=int, default=200)
    ap.add_argument('--shots', type=int, default=4); ap.add_argument('--smoke', action='store_true')
    ap.add_argument('--methods', nargs='+', default=list(NAMES), choices=list(NAMES), help='train.adapter values')
    ap.add_argument('--memory', action='store_true'); ap.add_argument('--memory-steps', type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(2); os.environ.setdefault('HF_HUB_OFFLINE', '1')
    work = Path(tempfile.mkdtemp())
    extra = [f'data.cache_dir={work}/cache'] + (['eval.eval_batches=1'] if a.smoke else [])
    if a.smoke:
        from hierlm.finetune import save_random_transformers_model
        save_random_transformers_model(work/'gpt2', 'gpt2', n_layer=1, n_positions=512)
        save_random_transformers_model(work/'t5', 't5')
        a.steps, a.limit = 4, 8
        for base, tasks in ((work/'gpt2', ['sst2', 'sst2-head', 'arith', 'gsm8k', 'dialogsum']),
                            (work/'t5', ['dialogsum-t5'])):
            print(task_table(str(base), tasks, a, work, extra))
        return
    out = ROOT/'benchmarks'/f'finetune_{"cuda" if torch.cuda.is_available() else "cpu"}.md'
    if a.memory: return write_section(out, memory(work, a.memory_steps, extra))
    if not a.base: ap.error('--base: a model folder to start from (e.g. runs/base-gpt2), or --smoke')
    write_section(out, task_table(a.base, a.tasks, a, work, extra))

def task_table(base:str, tasks:list, a, work:Path, extra:list) -> str:
    "Prompting, full finetune, LoRA and QLoRA for each task over `base`: the table, printed row by row."
    from hierlm.core import load_config
    rows = []
    for task in tasks:
        dcfg = load_config(PRESET[task], [f'data.cache_dir={work}/cache']).data
        shots = {'sst2': a.shots, 'dialogsum': 1, 'dialogsum-t5': 1}.get(task, 0)   # a dialogue fills the context
        for k in ([] if task == 'sst2-head' else [0] + ([shots] if shots else [])):
            t0 = time.time(); s = score(task, base, dcfg, a.limit, k)
            rows.append((task, f'prompting, {k}-shot', s, 0, None, None, time.time() - t0))
            print(rows[-1], flush=True)
        for adapter in a.methods:
            r = train(task, base, adapter, a.steps, work/f'{task}-{adapter}', extra)
            t0 = time.time(); s = score(task, work/f'{task}-{adapter}', dcfg, a.limit)
            name = NAMES[adapter] + (', classification head' if task == 'sst2-head' else '')
            rows.append((task, name, s, r['trainable'][0], r['train_peak_rss'], r['wall'], time.time() - t0))
            print(rows[-1], flush=True)
    lines = [f"**Finetuning over `{base}`: {', '.join(tasks)}** ({a.steps} steps each, the task's preset "
             f"(`<task>-lora`; `sst2-head`, `dialogsum-t5`) with `train.adapter` set per row; test split (SST-2: "
             f"its validation split), first {a.limit} examples; prompting: {a.shots}-shot (DialogSum: 1-shot) "
             f"examples drawn with a fixed seed from the training pairs; memory: the resident peak while training, "
             f"after the base is loaded; train time: loading and training; eval time: scoring the test examples; "
             f"torch {torch.__version__}, 2 threads):", '',
             '| task | method | metric [95% interval] | trainable parameters | peak memory while training '
             '| train time | eval time |',
             '|---|---|---|---:|---:|---:|---:|']
    for task, name, s, n, rss, wall, ev in rows:
        metric = HEADLINE_METRIC[task.split('-')[0]]
        lines.append(f"| {task} | {name} | {metric} {s.value:.3f} [{s.lo:.3f}, {s.hi:.3f}] | {n:,} | "
                     f"{f'{rss / 2**30:.2f} GiB' if rss else '-'} | {f'{wall:.0f} s' if wall else '-'} | {ev:.0f} s |")
    return '\n'.join(lines)

if __name__ == '__main__': main()
