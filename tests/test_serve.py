"`hierlm serve` as a process: the official openai client and raw HTTP against it, on 127.0.0.1 only."
import json, random, socket, subprocess, sys, tempfile, threading, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import httpx, openai, pytest, torch
from hierlm.decoder import build_decoder, DecoderConfig
from hierlm.bdh import build_bdh, BDHConfig
from hierlm.diffusion import build_diffusion, DiffusionConfig
from hierlm.tokenizers import char_tokenizer, CHAT_TEMPLATE

HIERLM = str(Path(sys.executable).parent/'hierlm')
KEY = 'sk-test-key'
TEXT = 'the cat sat on the mat. the dog sat on the log.\n:HAiu'

def free_port() -> int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def save_models(root:Path) -> dict:
    "A small random decoder and BDH with a character tokenizer that has the chat template, and a block-diffusion LM."
    tok = char_tokenizer(TEXT); tok.chat_template = CHAT_TEMPLATE
    dtok = char_tokenizer(TEXT, ['[EOS]', '[MASK]'])
    torch.manual_seed(0)
    models = {'dec': build_decoder(DecoderConfig(d_model=32, n_layers=2, n_heads=2, block_size=96), len(tok)),
              'bdh': build_bdh(BDHConfig(d_model=32, n_layers=2, n_heads=2, n_neurons=64, block_size=96), len(tok)),
              'bd3': build_diffusion(DiffusionConfig(d_model=32, n_layers=2, n_heads=2, block_size=96,
                                                     diffusion_block=4), len(dtok))}
    models['bd3'].setup_tokenizer(dtok)
    for name, m in models.items():
        m.save_pretrained(root/name); (dtok if name == 'bd3' else tok).save_pretrained(root/name)
    return {name: root/name for name in models}

class Server:
    "`hierlm serve` in a subprocess on a free loopback port, stopped on exit."
    def __init__(self, folders:dict, *flags):
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.proc = subprocess.Popen([HIERLM, 'serve', *[f'{n}={p}' for n, p in folders.items()], '--port',
                                      str(self.port), *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        t0 = time.time()
        while time.time() - t0 < 120:
            if self.proc.poll() is not None: raise RuntimeError(self.proc.stderr.read())
            try:
                if httpx.get(self.url + '/health', timeout=1).status_code == 200: return
            except httpx.HTTPError: time.sleep(0.2)
        raise RuntimeError('the server did not come up in 120 s')
    def stop(self):
        self.proc.terminate()
        try: self.proc.wait(10)
        except subprocess.TimeoutExpired: self.proc.kill()

@pytest.fixture(scope='module')
def folders():
    with tempfile.TemporaryDirectory() as t: yield save_models(Path(t))

@pytest.fixture(scope='module')
def server(folders):
    s = Server(folders, '--api-key', KEY, '--max-batch', '8')
    yield s
    s.stop()

def client(server): return openai.OpenAI(base_url=server.url + '/v1', api_key=KEY, max_retries=0, timeout=60)
H = {'Authorization': f'Bearer {KEY}'}

def test_openai_client_completions_and_chat(server):
    c = client(server)
    assert sorted(m.id for m in c.models.list().data) == ['bd3', 'bdh', 'dec']
    for model in ('dec', 'bdh'):
        r = c.completions.create(model=model, prompt='the cat', max_tokens=12, temperature=0)
        assert r.choices[0].finish_reason in ('stop', 'length') and r.usage.prompt_tokens == 7
        streamed = ''.join(ch.choices[0].text for ch in c.completions.create(
            model=model, prompt='the cat', max_tokens=12, temperature=0, stream=True) if ch.choices)
        assert streamed == r.choices[0].text
        msgs = [{'role': 'user', 'content': 'the dog'}]
        chat = c.chat.completions.create(model=model, messages=msgs, max_completion_tokens=10, seed=3, logprobs=True,
                                         top_logprobs=2)
        assert chat.choices[0].message.role == 'assistant' and chat.usage.completion_tokens <= 10
        assert len(chat.choices[0].logprobs.content[0].top_logprobs) == 2
        chunks = list(c.chat.completions.create(model=model, messages=msgs, max_completion_tokens=10, seed=3,
                                                stream=True, stream_options={'include_usage': True}))
        assert chunks[0].choices[0].delta.role == 'assistant'
        content = ''.join(ch.choices[0].delta.content or '' for ch in chunks if ch.choices)
        assert content == chat.choices[0].message.content
        assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == chat.usage.total_tokens

def test_raw_http_every_route_and_every_error_status(server, folders):
    u = server.url
    assert httpx.get(u + '/health').json()['status'] == 'ok'                     # no key needed
    for method, path in (('GET', '/v1/models'), ('GET', '/v1/models/dec'), ('POST', '/v1/completions'),
                         ('POST', '/v1/chat/completions')):
        for headers in ({}, {'Authorization': 'Bearer wrong'}, {'Authorization': KEY}):
            r = httpx.request(method, u + path, headers=headers, json={'model': 'dec', 'prompt': 'a'})
            assert r.status_code == 401 and r.json()['error']['type'] == 'authentication_error', (path, r.text)
    assert httpx.get(u + '/v1/models/dec', headers=H).json()['id'] == 'dec'
    def err(path, body, status, param=None, code=None):
        r = httpx.post(u + path, headers=H, json=body)
        assert r.status_code == status, (body, r.text)
        e = r.json()['error']
        assert set(e) == {'message', 'type', 'param', 'code'} and e['message'], e
        if param: assert e['param'] == param, e
        if code: assert e['code'] == code, e
    err('/v1/completions', {'model': 'nope', 'prompt': 'a'}, 404, 'model', 'model_not_found')
    err('/v1/completions', {'model': 'dec', 'prompt': 'a', 'top_p': 0}, 400, 'top_p')
    err('/v1/completions', {'model': 'dec', 'prompt': 'a', 'max_tokens': 10 ** 9}, 400, 'prompt',
        'context_length_exceeded')
    err('/v1/chat/completions', {'model': 'dec', 'messages': [{'role': 'user', 'content': 'a' * 200}]}, 400, 'messages',
        'context_length_exceeded')
    err('/v1/chat/completions', {'model': 'dec', 'messages': []}, 400, 'messages')
    err('/v1/completions', {'model': 'dec', 'prompt': 'a', 'stream_options': {'include_usage': True}}, 400,
        'stream_options')
    assert 'hierlm_requests_total' in httpx.get(u + '/metrics').text
    limited = Server(folders, '--requests-per-minute', '2')                    # an open server with a rate limit
    try:
        codes = [httpx.post(limited.url + '/v1/completions', json={'model': 'dec', 'prompt': 'a', 'max_tokens': 2})
                 for _ in range(3)]
        assert [r.status_code for r in codes] == [200, 200, 429], [r.text for r in codes]
        assert int(codes[2].headers['retry-after']) >= 1 and codes[2].json()['error']['code'] == 'rate_limit_exceeded'
    finally: limited.stop()
    busy = Server(folders, '--max-batch', '1', '--max-queue', '1')
    try:
        body = {'model': 'dec', 'prompt': 'the', 'max_tokens': 90, 'temperature': 0}
        with ThreadPoolExecutor(6) as ex:
            rs = list(ex.map(lambda _: httpx.post(busy.url + '/v1/completions', json=body, timeout=120), range(6)))
        codes = sorted(r.status_code for r in rs)
        assert 503 in codes and 200 in codes and set(codes) <= {200, 503}, codes
        assert all(r.json()['error']['code'] == 'queue_full' for r in rs if r.status_code == 503)
    finally: busy.stop()

def stream_text(server, body) -> str:
    with httpx.stream('POST', server.url + '/v1/completions', headers=H, json={**body, 'stream': True},
                      timeout=120) as r:
        lines = [l for l in r.iter_lines() if l]
    assert lines[-1] == 'data: [DONE]'
    return ''.join(c['choices'][0]['text'] for c in (json.loads(l[6:]) for l in lines[:-1]) if c['choices'])

@pytest.mark.parametrize('model', ['dec', 'bdh', 'bd3'])
def test_concurrent_streams_equal_the_same_requests_alone(server, model):
    bodies = [{'model': model, 'prompt': p, 'max_tokens': n, 'temperature': t, 'seed': s, 'top_k': k}
              for p, n, t, s, k in [('the cat', 30, 0.9, 1, 0), ('a', 20, 0.0, 2, 0), ('the dog sat on', 40, 1.0, 3, 5),
                                    ('log', 25, 0.7, 4, 0), ('the mat. the', 35, 1.2, 5, 3), ('t', 15, 0.5, 6, 0),
                                    ('on the', 30, 0.8, 7, 0), ('sat', 45, 1.0, 8, 10)]]
    alone = [stream_text(server, b) for b in bodies]
    with ThreadPoolExecutor(len(bodies)) as ex: together = list(ex.map(lambda b: stream_text(server, b), bodies))
    assert together == alone

def test_block_diffusion_writes_blocks_and_refuses_log_probabilities(server):
    c = client(server)
    r = c.completions.create(model='bd3', prompt='the cat sat', max_tokens=10, temperature=0, seed=1)
    assert r.choices[0].finish_reason in ('stop', 'length') and r.usage.prompt_tokens == 11
    assert len(r.choices[0].text) <= 10 and r.usage.completion_tokens <= 10
    body = {'model': 'bd3', 'prompt': 'the cat sat', 'max_tokens': 10, 'temperature': 0, 'seed': 1}
    assert stream_text(server, body) == r.choices[0].text
    for extra, param in (({'logprobs': 2}, 'logprobs'), ({'repetition_penalty': 1.3}, 'repetition_penalty')):
        e = httpx.post(server.url + '/v1/completions', headers=H, json={**body, **extra})
        assert e.status_code == 400 and e.json()['error']['param'] == param, e.text
        assert e.json()['error']['code'] == 'unsupported_parameter'
    e = httpx.post(server.url + '/v1/completions', headers=H, json={**body, 'max_tokens': 90})
    assert e.json()['error']['code'] == 'context_length_exceeded', e.text    # 8 prompt + 92 written > 96

def running(server) -> float:
    text = httpx.get(server.url + '/metrics').text
    return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith('hierlm_running{'))

def test_a_client_that_disconnects_frees_its_row(server):
    body = {'model': 'dec', 'prompt': 'the', 'max_tokens': 90, 'temperature': 1.0, 'stream': True}
    with httpx.stream('POST', server.url + '/v1/completions', headers=H, json=body, timeout=60) as r:
        next(r.iter_lines())                                                     # it has started
    t0 = time.time()
    while running(server) and time.time() - t0 < 10: time.sleep(0.05)
    assert running(server) == 0

NUM = ['x', [], {}, True]                                               # not numbers
BAD = {'model': [1, '', [], {}, 'gpt-4', 'DEC', 'dec ', '../dec', 'x' * 1000],
       'temperature': NUM + [-0.1, 2.1, 1e300], 'top_p': NUM + [0, -1, 1.5], 'n': NUM + [0, 17, 1.5, -1],
       'stop': [5, '', [''], ['a'] * 5, [1], {}, True], 'seed': ['x', 1.5, True, [], {}],
       'stream': ['x', 1, 0, [], {}], 'stream_options': ['x', 1, [], {'include_usage': 'yes'}, {'other': True},
                                                         {'include_usage': True}],       # the last: without stream
       'top_k': NUM + [-2, 1.5], 'repetition_penalty': NUM + [0, -1, 11], 'user': [1, True, [], {}],
       'presence_penalty': [0.5, -1, 'x'], 'frequency_penalty': [0.5, -1, 'x'], 'logit_bias': [{'1': 5}, 'x', 1]}
COMPLETION_BAD = {'prompt': [1, True, {}, [], [[]], [1.5], ['a', 1], 'the c\u00e4t', [10 ** 6], [-1], ['a'] * 17,
                             '\ud800', 'the cat ' * 20, 'the cat ' * 1000],
                  'max_tokens': NUM + [-1, 1.5, 97, 10 ** 6, 2 ** 31, 10 ** 18], 'logprobs': NUM + [-1, 6, 1.5],
                  'echo': ['x', 1, []], 'best_of': [2, 'x'], 'suffix': ['x', 1]}
CHAT_BAD = {'messages': ['x', [], [{}], [{'role': 'user'}], [1], {}, [{'role': 'user', 'content': 5}],
                         [{'role': 'user', 'content': 'c\u00e4t'}], [{'role': 'user', 'content': [{'type': 'image'}]}],
                         [{'role': 'user', 'content': 'the cat ' * 20}]]
                        + [[{'role': r, 'content': 'hi'}] for r in ('tool', 'function', None, 1, 'USER')],
            'max_tokens': NUM + [0, -1, 1.5, 10 ** 6], 'max_completion_tokens': NUM + [0, -1, 1.5, 10 ** 6],
            'logprobs': ['x', 1, [], {}], 'top_logprobs': NUM + [-1, 21, 2],             # 2: without logprobs
            'tools': [[{'type': 'function'}], 'x'], 'response_format': [{'type': 'json_object'}, 'x']}

def bad_requests(rng:random.Random) -> list:
    "`(path, body bytes)` of at least 1,000 malformed requests: syntax, types, ranges, fields, models, sizes, bytes."
    ok = {'model': 'dec', 'prompt': 'the cat', 'max_tokens': 4}
    chat = {'model': 'dec', 'messages': [{'role': 'user', 'content': 'hi'}], 'max_tokens': 4}
    out = []
    for base, path, extra in ((ok, '/v1/completions', COMPLETION_BAD), (chat, '/v1/chat/completions', CHAT_BAD)):
        for f, vals in {**BAD, **extra}.items(): out += [(path, {**base, f: v}) for v in vals]
        names = ['max_token', 'prompts', 'tempature', 'x' * 50, 'model ', '', '\ud800', 'messages' if base is ok
                 else 'prompt', 'suffix' if base is chat else 'tools']
        out += [(path, {**base, rng.choice(names): rng.random()}) for _ in range(150)]
        out += [(path, {k: v for k, v in base.items() if k != drop}) for drop in ('model', 'prompt', 'messages')
                if drop in base]
    raw = [b'', b'{', b'[]', b'"x"', b'1', b'null', b'{"model": NaN}', b'{"model": "dec", "prompt": Infinity}',
           b'\xff\xfe\xfd', b'{"model": "dec", "prompt": "\xc3\x28"}', b'{"a":' * 5000, b'[' * 100000,
           b'{"model": "dec",, }', b'x' * (2 << 20)]
    out = [(p, json.dumps(b).encode()) for p, b in out]
    out += [(p, r) for p in ('/v1/completions', '/v1/chat/completions') for r in raw]
    while len(out) < 1000:                                                    # random bytes
        out.append(('/v1/completions', bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))))
    return out

def raw_socket(port:int, data:bytes, pause:float=0.0, close_early:bool=False) -> bytes:
    "Send `data` in three pieces `pause` apart (or stop after the first); what came back."
    with socket.create_connection(('127.0.0.1', port), timeout=15) as s:
        n = len(data) // 3
        for i, part in enumerate((data[:n], data[n:2 * n], data[2 * n:])):
            s.sendall(part); time.sleep(pause)
            if close_early: return b''
        s.shutdown(socket.SHUT_WR)
        got = b''
        while chunk := s.recv(65536): got += chunk
        return got

def test_a_thousand_malformed_requests_get_4xx_and_the_server_lives(server):
    reqs = bad_requests(random.Random(0))
    assert len(reqs) >= 1000
    statuses, ok_but_served = [], []
    with httpx.Client(base_url=server.url, headers={**H, 'Content-Type': 'application/json'}, timeout=30) as c:
        for path, body in reqs:
            r = c.post(path, content=body)
            statuses.append(r.status_code)
            if r.status_code < 400: ok_but_served.append((path, body[:120], r.status_code))
            else: assert 400 <= r.status_code < 500 and r.json()['error']['message'], (path, body[:200], r.text[:300])
    assert not ok_but_served, ok_but_served[:5]
    good = json.dumps({'model': 'dec', 'prompt': 'the', 'max_tokens': 3}).encode()
    head = (f'POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: '
            f'application/json\r\nContent-Length: {len(good)}\r\nConnection: close\r\n\r\n').encode()
    assert b' 200 ' in raw_socket(server.port, head + good, pause=0.3).split(b'\r\n')[0]     # slow but whole: served
    for _ in range(5): raw_socket(server.port, head + good, pause=0.05, close_early=True)   # gone mid-body
    short = head.replace(f'Content-Length: {len(good)}'.encode(), b'Content-Length: 5000')
    with socket.create_connection(('127.0.0.1', server.port), timeout=5) as s: s.sendall(short + good)  # then gone
    assert httpx.get(server.url + '/health').status_code == 200
    r = client(server).completions.create(model='dec', prompt='the cat', max_tokens=5)
    assert r.usage.completion_tokens >= 1
    print(f'{len(reqs)} malformed requests: statuses {sorted(set(statuses))}')

def test_serve_command_errors_are_one_line():
    r = subprocess.run([HIERLM, 'serve', '/no/such/folder'], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith('hierlm: error:') and len(r.stderr.splitlines()) == 1, r.stderr
    from hierlm.lht import build_lht, LHTConfig
    from hierlm.tokenizers import byte_tokenizer
    tok = byte_tokenizer(['[MASK]', '[PAD]', '[CLS]', '[SEP]'])
    with tempfile.TemporaryDirectory() as d:                                  # an encoder writes nothing: refused
        build_lht(LHTConfig(d_model=32, n_layers=2, n_heads=2, block_size=64), len(tok)).save_pretrained(d)
        tok.save_pretrained(d)
        r = subprocess.run([HIERLM, 'serve', d], capture_output=True, text=True)
    assert r.returncode == 2 and 'masked-LM encoder' in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
