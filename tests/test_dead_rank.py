"""A lost process ends a multi-process run quickly, with one line that names it (gloo on the CPU).

Two ranks are started the way torchrun starts them (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT),
one is killed mid-run, and the survivor must exit non-zero within 60 s with the watchdog's message
and no traceback. SIGSTOP stands in for NCCL, where a dead peer leaves the others waiting in a
collective instead of closing a socket: there only the heartbeat can tell.
"""

import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from test_train_e2e import make_dataset_zip

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ['--cbase=256', '--cmax=32', '--map-depth=2', '--mbstd-group=2', '--batch=4', '--tick=0.004', '--metrics=none',
    '--workers=0', '--snap=1000', '--device=cpu', '--kimg=1000', '--cfg=cifar', '--aug=noaug']

pytestmark = pytest.mark.slow

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

def _env(**extra):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1', **extra)
    env.pop('PYTEST_CURRENT_TEST', None)
    return env

def _start_ranks(tmp_path, extra_args=()):
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=8)
    outdir = str(tmp_path / 'runs')
    port = str(_free_port())
    procs = []
    for rank in range(2):
        env = _env(RANK=str(rank), WORLD_SIZE='2', LOCAL_RANK=str(rank), MASTER_ADDR='127.0.0.1', MASTER_PORT=port)
        procs.append(subprocess.Popen([sys.executable, os.path.join(REPO, 'train.py'), f'--outdir={outdir}', f'--data={data}']
            + ARGS + list(extra_args), env=env, cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs, outdir

def _wait_for_training(outdir, procs, timeout=120):
    """Until rank 0 has logged two ticks (both ranks are inside the training loop)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for p in procs:
            if p.poll() is not None:
                out, err = p.communicate()
                pytest.fail(f'a rank ended before training started (status {p.returncode}):\n{out}\n{err}')
        runs = os.listdir(outdir) if os.path.isdir(outdir) else []
        log = os.path.join(outdir, runs[0], 'log.txt') if runs else None
        if log and os.path.isfile(log) and 'tick 2 ' in open(log).read():
            return
        time.sleep(0.5)
    pytest.fail('training did not reach tick 2 in time')

def _wait_exit(proc, limit):
    start = time.time()
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f'the surviving rank did not exit within {limit} s:\n{err[-3000:]}')
    return time.time() - start, out, err

def _cleanup(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.communicate()

#----------------------------------------------------------------------------

@pytest.mark.parametrize('victim', [1, 0], ids=['kill-rank1', 'kill-rank0-store-host'])
def test_killed_rank_ends_the_run_with_one_line(tmp_path, victim):
    procs, outdir = _start_ranks(tmp_path)
    try:
        _wait_for_training(outdir, procs)
        procs[victim].send_signal(signal.SIGKILL)
        survivor = procs[1 - victim]
        elapsed, _out, err = _wait_exit(survivor, limit=60)
    finally:
        _cleanup(procs)
    assert survivor.returncode == 1
    assert 'Traceback' not in err and 'pair.cc' not in err, err[-3000:]
    lines = [line for line in err.splitlines() if f'rank {victim} of 2 is gone' in line]
    assert len(lines) == 1, err[-3000:]
    assert lines[0].startswith(f'train.py (rank {1 - victim}): ') and '--resume=' in lines[0]
    assert elapsed < 60

def test_hung_rank_is_found_by_the_heartbeat(tmp_path):
    # A stopped process keeps its sockets open, like a dead NCCL peer: the collective just waits.
    procs, outdir = _start_ranks(tmp_path, extra_args=['--peer-timeout=6'])
    try:
        _wait_for_training(outdir, procs)
        procs[1].send_signal(signal.SIGSTOP)
        elapsed, _out, err = _wait_exit(procs[0], limit=60)
    finally:
        _cleanup(procs)
    assert procs[0].returncode == 1 and 'Traceback' not in err, err[-3000:]
    assert 'rank 1 of 2 is gone (no heartbeat for' in err
    assert elapsed < 6 + 15

def test_spawned_process_killed(tmp_path):
    """--gpus=2: the parent sees the lost child, stops the other one and says so in one line."""
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=8)
    outdir = str(tmp_path / 'runs')
    parent = subprocess.Popen([sys.executable, os.path.join(REPO, 'train.py'), f'--outdir={outdir}', f'--data={data}',
        '--gpus=2'] + ARGS, env=_env(), cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_training(outdir, [parent])
        workers = [c for c in psutil.Process(parent.pid).children() if 'spawn' in ' '.join(c.cmdline())]
        assert len(workers) == 2, [c.cmdline() for c in psutil.Process(parent.pid).children()]
        workers[-1].kill()
        _elapsed, _out, err = _wait_exit(parent, limit=60)
    finally:
        _cleanup([parent])
    assert parent.returncode != 0
    assert 'was killed by SIGKILL; the others were stopped' in err and '--resume=' in err, err[-3000:]
    assert 'Traceback' not in err, err[-3000:]

def test_torchrun_style_run_ends_cleanly(tmp_path):
    # The watchdog must not take a rank that finished first for a lost one.
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=8)
    port = str(_free_port())
    procs = [subprocess.Popen([sys.executable, os.path.join(REPO, 'train.py'), f'--outdir={tmp_path / "runs"}', f'--data={data}']
        + ARGS[:-3] + ['--kimg=0.012', '--cfg=cifar', '--aug=noaug'], cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=_env(RANK=str(rank), WORLD_SIZE='2', LOCAL_RANK=str(rank), MASTER_ADDR='127.0.0.1', MASTER_PORT=port))
        for rank in range(2)]
    try:
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        _cleanup(procs)
    for p, (_out, err) in zip(procs, results):
        assert p.returncode == 0 and 'is gone' not in err, err[-3000:]
