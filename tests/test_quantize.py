"""`hierlm quantize` as a user runs it: quantized folders of every generating family served by `hierlm serve`, and the
torchao method round-tripped with torchao installed into a temporary folder (hierlm does not install it: see
nbs/16_quantize.ipynb)."""
import os, subprocess, sys, tempfile
from pathlib import Path
import openai
from test_serve import save_models, Server, KEY

HIERLM = str(Path(sys.executable).parent/'hierlm')

def quantize(src, method, out, **kw):
    r = subprocess.run([HIERLM, 'quantize', str(src), '--method', method, '--out', str(out)], capture_output=True,
                       text=True, **kw)
    assert r.returncode == 0, r.stderr
    return out

def test_quantized_folders_are_served():
    with tempfile.TemporaryDirectory() as t:
        src = save_models(Path(t))
        q = {f'{name}-{m}': quantize(src[name], m, Path(t)/f'{name}-{m}')
             for name, methods in (('dec', ['int8', 'int4', 'nf4']), ('bdh', ['int8']), ('bd3', ['int4']))
             for m in methods}
        s = Server(q, '--api-key', KEY)
        try:
            client = openai.OpenAI(base_url=s.url + '/v1', api_key=KEY)
            for name in q:
                r = client.completions.create(model=name, prompt='the cat', max_tokens=8, temperature=0)
                assert r.usage.completion_tokens > 0, name
        finally: s.stop()

def test_torchao_round_trip():
    with tempfile.TemporaryDirectory() as t:
        site = Path(t)/'site'
        subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--target', str(site),
                        'torchao==0.18.0'], check=True)
        env = {**os.environ, 'PYTHONPATH': str(site)}
        src = save_models(Path(t))['dec']
        out = quantize(src, 'torchao-int8', Path(t)/'ao', env=env)
        check = ("import sys; from hierlm.finetune import load_pretrained; from hierlm.generate import SamplingConfig; "
                 "m, tok = load_pretrained(sys.argv[1]); w = m.model.blocks[0].attn.q_proj.weight; "
                 "print(type(w).__module__.split('.')[0]); "
                 "print(len(''.join(m.complete(tok, 'the cat', SamplingConfig(max_new_tokens=6, temperature=0)))))")
        r = subprocess.run([sys.executable, '-c', check, str(out)], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr[-2000:]
        kind, n = r.stdout.split()[-2:]
        assert kind == 'torchao' and int(n) > 0, r.stdout
