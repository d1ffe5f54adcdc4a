"""Training on 2 processes with torchrun (gloo on CPU): DDP and FSDP2 take the steps one process takes, a run whose
rank is killed resumes from its sharded checkpoint with the same metrics, and a 2-process checkpoint resumes in one."""
import json, os, signal, subprocess, sys, tempfile, time
from pathlib import Path

BIN = Path(sys.executable).parent
HIERLM, TORCHRUN = str(BIN/'hierlm'), str(BIN/'torchrun')
# grad_accum=2: the micro-step that does not step skips the gradient reduction (no_sync)
ARGS = ['tiny', 'train.max_steps=40', 'train.ckpt_every=10', 'train.log_every=1', 'eval.eval_every=20',
        'train.grad_accum=2', 'train.wandb=disabled']

def train(out, parallel='none'):
    "`hierlm train` on one process, or on two under torchrun."
    cmd = [HIERLM, 'train'] if parallel == 'none' else [TORCHRUN, '--standalone', '--nproc_per_node=2', '-m', 'hierlm',
                                                        'train']
    r = subprocess.run([*cmd, *ARGS, f'train.parallel={parallel}', '--out', str(out)], capture_output=True, text=True)
    assert r.returncode == 0, f'{parallel} run failed:\n{r.stderr[-4000:]}'
    return r

def metrics(run):
    return [{k: v for k, v in json.loads(l).items() if k != 'tokens_per_s'}       # wall-clock differs between runs
            for l in (run/'metrics.jsonl').read_text().splitlines()]

def assert_close(a, b, tol=1e-5):
    assert [r['step'] for r in a] == [r['step'] for r in b]
    for ra, rb in zip(a, b):
        for k in ('loss', 'val_loss', 'grad_norm'):
            if k in ra: assert abs(ra[k] - rb[k]) <= tol * max(1, abs(rb[k])), (ra['step'], k, ra[k], rb[k])

def kill_a_rank(out, parallel, at_step=15):
    "Start a 2-process run, SIGKILL its rank 1 once step `at_step` is logged; torchrun then stops the other rank."
    cmd = [TORCHRUN, '--standalone', '--nproc_per_node=2', '-m', 'hierlm', 'train', *ARGS, f'train.parallel={parallel}',
           '--out', str(out)]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    f, deadline = out/'metrics.jsonl', time.time() + 180
    while time.time() < deadline and p.poll() is None:
        if f.exists() and len(f.read_text().splitlines()) >= at_step: break
        time.sleep(0.005)
    assert p.poll() is None, 'the run finished before a rank could be killed'
    workers = [int(c) for c in Path(f'/proc/{p.pid}/task/{p.pid}/children').read_text().split()]
    env = lambda pid: dict(kv.split('=', 1) for kv in Path(f'/proc/{pid}/environ').read_text().split('\0') if '=' in kv)
    rank1 = [w for w in workers if env(w).get('RANK') == '1']
    assert len(rank1) == 1, workers
    os.kill(rank1[0], signal.SIGKILL)
    assert p.wait(timeout=120) != 0                                     # the run failed, as a lost machine would
    done = len(f.read_text().splitlines())
    assert at_step <= done < 40 and not (out/'final').exists(), done
    return done

def test_ddp_and_fsdp_take_the_steps_of_one_process():
    with tempfile.TemporaryDirectory() as t:
        one = Path(t)/'one'; train(one)
        for mode in ('ddp', 'fsdp'):
            train(Path(t)/mode, mode)
            assert_close(metrics(Path(t)/mode), metrics(one))
            assert (Path(t)/mode/'final'/'model.safetensors').exists()         # a normal HF folder, written once

def test_killed_rank_resumes_from_the_sharded_checkpoint():
    with tempfile.TemporaryDirectory() as t:
        full, cut = Path(t)/'full', Path(t)/'cut'
        train(full, 'fsdp')
        kill_a_rank(cut, 'fsdp')
        assert (cut/'checkpoints'/'step-0000010'/'sharded'/'.metadata').exists()
        r = train(cut, 'fsdp')
        assert 'resumed from step' in r.stdout
        assert_close(metrics(cut), metrics(full), tol=1e-6)

def test_two_process_checkpoint_resumes_in_one_process():
    with tempfile.TemporaryDirectory() as t:
        one, cut = Path(t)/'one', Path(t)/'cut'
        train(one)
        kill_a_rank(cut, 'ddp')
        r = train(cut)                                                    # one process, no torchrun
        assert 'written by 2 process(es), this run has 1' in r.stderr + r.stdout and 'resumed from step' in r.stdout
        assert_close(metrics(cut), metrics(one))

def test_multinode_launch_script_on_one_machine():
    "tools/launch_multinode.sh with one 'machine' of 2 processes: the c10d rendezvous of a multi-machine run."
    import socket
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as t:
        env = {**os.environ, 'NNODES': '1', 'NPROC': '2', 'MASTER': f'127.0.0.1:{port}',
               'PATH': f"{BIN}:{os.environ['PATH']}"}
        r = subprocess.run(['bash', str(root/'tools'/'launch_multinode.sh'), 'tiny', 'train.max_steps=4',
                            'train.parallel=ddp', '--out', f'{t}/run'], capture_output=True, text=True, env=env,
                           timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        assert (Path(t)/'run'/'final'/'model.safetensors').exists()
