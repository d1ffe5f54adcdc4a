"`hierlm train` from a trained model with LoRA and QLoRA, then `generate`, `eval` and `merge` on the adapter (issue 18)."
import json, subprocess, sys, tempfile
import pytest
from hierlm.corpora import have_data
from hierlm.finetune import save_random_transformers_model
from pathlib import Path

HIERLM = str(Path(sys.executable).parent/'hierlm')

def hierlm(*args, ok=True):
    r = subprocess.run([HIERLM, *map(str, args)], capture_output=True, text=True)
    assert (r.returncode == 0) == ok, f'hierlm {" ".join(map(str, args))}: rc {r.returncode}\n{r.stdout[-2000:]}{r.stderr[-3000:]}'
    return r

def test_lora_and_qlora_from_the_command_line():
    with tempfile.TemporaryDirectory() as t:
        short = ['train.max_steps=8', 'eval.eval_every=8', 'train.warmup_steps=1', f'data.cache_dir={t}/cache']
        hierlm('train', 'synthetic-tiny', '--out', f'{t}/base', *short)
        for adapter in ('lora', 'qlora'):
            run = f'{t}/{adapter}'
            out = hierlm('train', 'synthetic-tiny', '--out', run, f'train.init_from={t}/base', f'train.adapter={adapter}',
                         'train.lr=1e-2', *short).stdout
            assert 'final validation' in out, out
            final = Path(run)/'final'
            assert (final/'adapter_config.json').exists() and not (final/'model.safetensors').exists()
            assert f'{adapter.upper()} adapter' in (final/'README.md').read_text()
            g = hierlm('generate', run, '--prompt', 'Ka', '--max-tokens', '12', '--temperature', '0').stdout
            assert g.startswith('Ka'), g
            if adapter == 'lora':                             # the same loading path for both: score one of them
                e = hierlm('eval', run, '--limit', '2').stdout
                assert 'perplexity' in e and (final/'eval'/'perplexity-test.json').exists(), e
            hierlm('merge', run, '--out', f'{t}/{adapter}-merged')
            merged = hierlm('generate', f'{t}/{adapter}-merged', '--prompt', 'Ka', '--max-tokens', '12',
                            '--temperature', '0').stdout
            assert merged == g, (merged, g)                   # base + adapter and the merged model write the same text
            assert json.loads((Path(f'{t}/{adapter}-merged')/'config.json').read_text())['arch'] == 'decoder'
        assert 'nothing to merge' in hierlm('merge', f'{t}/base', '--out', f'{t}/x', ok=False).stderr
        err = hierlm('train', 'synthetic-tiny', '--out', f'{t}/hub', 'train.init_from=gpt2', ok=False).stderr
        assert 'hierlm never downloads' in err and err.count('\n') == 1, err


@pytest.mark.skipif(not have_data('sst2'), reason='needs $HIERLM_DATA (sst2)')
def test_task_presets_over_a_transformers_gpt2():
    "sst2-lora and arith-lora over a locally saved GPT-2 (GPT-2's BPE), then 0-shot and 2-shot SST-2 scoring."
    with tempfile.TemporaryDirectory() as t:
        save_random_transformers_model(f'{t}/gpt2', 'gpt2', n_layer=1, n_positions=256)
        short = [f'train.init_from={t}/gpt2', 'train.max_steps=4', 'eval.eval_every=4', 'eval.eval_batches=1',
                 'train.warmup_steps=1', f'data.cache_dir={t}/cache']
        hierlm('train', 'sst2-lora', '--out', f'{t}/sst2', *short)
        zero = hierlm('eval', f'{t}/sst2', '--task', 'sst2', '--limit', '16').stdout
        two = hierlm('eval', f'{t}/sst2', '--task', 'sst2', '--limit', '16', '--shots', '2').stdout
        assert 'accuracy' in zero and 'accuracy' in two, zero + two
        res = json.loads((Path(t)/'sst2'/'final'/'eval'/'sst2-test-2shot.json').read_text())
        assert res['shots'] == 2 and len(res['rows']) == 16
        assert (Path(t)/'sst2'/'final'/'eval'/'sst2-test.json').exists()
        hierlm('train', 'sst2-head', '--out', f'{t}/head', *short)         # LoRA + a classification head
        head = hierlm('eval', f'{t}/head', '--task', 'sst2', '--limit', '16').stdout
        assert 'accuracy' in head, head
        assert json.loads((Path(t)/'head'/'final'/'classifier.json').read_text())['classes'] == [' negative', ' positive']
        assert 'classification head' in hierlm('eval', f'{t}/head', ok=False).stderr   # no perplexity of a classifier
        out = hierlm('train', 'arith-lora', '--out', f'{t}/arith', '--eval-records', '8', *short).stdout
        assert 'exact match:' in out and '/8 arith test problems, greedy' in out, out


@pytest.mark.skipif(not have_data('dialogsum'), reason='needs $HIERLM_DATA (dialogsum)')
def test_t5_on_dialogsum_pairs():
    "dialogsum-t5 over a locally saved T5 (the encoder reads the dialogue, the decoder writes the summary), then eval."
    with tempfile.TemporaryDirectory() as t:
        save_random_transformers_model(f'{t}/t5', 't5', num_layers=1)
        hierlm('train', 'dialogsum-t5', '--out', f'{t}/ft', f'train.init_from={t}/t5', 'train.max_steps=3',
               'eval.eval_every=3', 'eval.eval_batches=1', 'train.warmup_steps=1', f'data.cache_dir={t}/cache')
        out = hierlm('eval', f'{t}/ft', '--task', 'dialogsum', '--limit', '3').stdout
        assert 'rougeL' in out, out
        ev = Path(t)/'ft'/'final'/'eval'
        rows = json.loads((ev/'dialogsum-test.json').read_text())['rows']
        assert len(rows) == 3 and all(isinstance(r['summary'], str) for r in rows)
        hierlm('eval', f'{t}/ft', '--limit', '2')                       # perplexity on the summaries
        ppl = json.loads((ev/'perplexity-test.json').read_text())['metrics']
        assert 'completion' in ppl['measure'] and 0 < ppl['tokens'] < 2 * 8 * 320, ppl
