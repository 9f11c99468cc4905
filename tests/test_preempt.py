"""Preemption: a stop signal makes every process finish its step, agree on it, write a snapshot with the
training state and exit with preempt.EXIT_PREEMPTED; the same command with --resume=auto then
continues exactly: the result equals an uninterrupted run to the last bit, on one and two processes."""

import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from test_resume import _assert_same
from test_train_e2e import TINY_ARGS, make_dataset_zip, only_run_dir
from training import preempt
from training.run_dir import latest_snapshot, list_snapshots, run_dirs
from training.snapshot import load_network_pkl

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#----------------------------------------------------------------------------
# The signal handler, on a fake clock.

class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

def test_first_signal_asks_to_stop_repeats_count_once_a_second_signal_exits(monkeypatch):
    killed, exits, clock = [], [], _Clock()
    monkeypatch.setattr(os, 'kill', lambda pid, sig: killed.append((pid, sig)))
    stop = preempt.StopRequest(forward_to=[11, 12], exit_fn=exits.append, clock=clock)
    assert not stop.requested and stop.signal_name is None
    stop.handle(signal.SIGUSR1)
    assert stop.requested and stop.signal_name == 'SIGUSR1'
    assert killed == [(11, signal.SIGUSR1), (12, signal.SIGUSR1)] and exits == []  # Forwarded once to the children.
    clock.now += preempt.REPEAT_WINDOW * 0.9
    stop.handle(signal.SIGTERM)  # The same stop arriving by another route: nothing more.
    assert killed == [(11, signal.SIGUSR1), (12, signal.SIGUSR1)] and exits == [] and stop.signal_name == 'SIGUSR1'
    clock.now += preempt.REPEAT_WINDOW * 0.2
    stop.handle(signal.SIGINT)  # 1.1 windows after the first: a second signal, exit at once.
    assert killed[2:] == [(11, signal.SIGKILL), (12, signal.SIGKILL)] and exits == [128 + signal.SIGINT]

def test_handlers_install_and_uninstall_for_real():
    before = {sig: signal.getsignal(sig) for sig in preempt.STOP_SIGNALS}
    stop = preempt.StopRequest(exit_fn=lambda code: pytest.fail('exited'), name='test').install()
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        for _ in range(100):
            if stop.requested:
                break
            time.sleep(0.01)
        assert stop.signal_name == 'SIGUSR1'
    finally:
        stop.uninstall()
    assert {sig: signal.getsignal(sig) for sig in preempt.STOP_SIGNALS} == before

def _worker_body(ready):
    preempt.ignore_in_worker(0)
    ready.set()
    time.sleep(60)

def test_data_loader_workers_ignore_stop_signals_but_obey_their_trainer():
    ctx = multiprocessing.get_context('fork')  # As DataLoader starts its workers on Linux.
    ready = ctx.Event()
    worker = ctx.Process(target=_worker_body, args=(ready,), daemon=True)
    worker.start()
    assert ready.wait(30)
    for sig in preempt.STOP_SIGNALS:  # Sent by another process, as a scheduler or a terminal would.
        subprocess.run(['kill', f'-{sig.name[3:]}', str(worker.pid)], check=True)
    time.sleep(0.5)
    assert worker.is_alive()
    worker.terminate()  # SIGTERM from the training process itself (multiprocessing at exit): the worker ends.
    worker.join(10)
    assert worker.exitcode == 128 + signal.SIGTERM

def _agree_worker(rank, init_file, flags, out):
    torch.distributed.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=2)
    out[rank] = [preempt.agree(flag[rank], num_gpus=2, device=torch.device('cpu')) for flag in flags]
    torch.distributed.destroy_process_group()

def test_processes_agree_when_any_one_is_asked(tmp_path):
    flags = [(False, False), (False, True), (True, False), (True, True)]
    out = torch.multiprocessing.Manager().dict()
    torch.multiprocessing.spawn(_agree_worker, args=(str(tmp_path / 'init'), flags, out), nprocs=2)
    assert out[0] == out[1] == [False, True, True, True]
    assert preempt.agree(True, num_gpus=1, device='cpu') and not preempt.agree(False, num_gpus=1, device='cpu')

#----------------------------------------------------------------------------
# Real runs in their own process groups, signalled mid-tick.

# Batches of 2; one tick after tick 0 holds the rest of the run, so the signal lands mid-tick.
ARGS = [a for a in TINY_ARGS if not a.startswith(('--tick', '--snap', '--batch'))] + ['--batch=2', '--tick=1', '--snap=1',
    '--kimg=0.16', '--resume=auto', '--target=0', '--dlr=0.02', '--gamma=1']

def _train(outdir, data, extra=(), signal_to=None):
    """Run train.py; with signal_to ('group' or 'parent') send SIGINT/SIGTERM once tick 0 is in the log.
    Returns the exit status and the output."""
    log = os.path.join(os.path.dirname(outdir), os.path.basename(outdir) + '.out')
    env = dict(os.environ, OMP_NUM_THREADS='1')
    with open(log, 'w') as out:
        proc = subprocess.Popen([sys.executable, 'train.py', f'--outdir={outdir}', f'--data={data}'] + ARGS + list(extra),
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        if signal_to is not None:
            deadline = time.time() + 120
            while 'tick 0 ' not in open(log).read() and proc.poll() is None and time.time() < deadline:
                time.sleep(0.02)
            if signal_to == 'group':
                os.killpg(proc.pid, signal.SIGINT)  # As Ctrl-C does: every process, DataLoader workers included.
            else:
                os.kill(proc.pid, signal.SIGTERM)  # The launcher's parent only: it forwards to its children.
        proc.wait(timeout=600)
    return proc.returncode, open(log).read()

def _check_preempted_then_resumed(tmp_path, extra, signal_to):
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=6)
    runs, straight = str(tmp_path / 'runs'), str(tmp_path / 'straight')
    code, output = _train(runs, data, extra, signal_to=signal_to)
    assert code == preempt.EXIT_PREEMPTED, output
    assert 'stopping after the current step' in output and 'Stopped by SIG' in output
    stopped = load_network_pkl(latest_snapshot(only_run_dir(runs)))['resume_state']
    # Mid-tick: tick 1 began after tick 0's single step (2 images) and had not ended.
    assert stopped['cur_tick'] == 1 and stopped['tick_start_nimg'] == 2 < stopped['cur_nimg'] < 160, stopped['cur_nimg']
    code, output = _train(runs, data, extra)  # The requeue: the same command.
    assert code == 0, output
    assert 'Resume (--resume=auto): continuing' in output and f'Continuing at {stopped["cur_nimg"] / 1000:g} kimg, tick 1' in output
    code, output = _train(straight, data, extra)
    assert code == 0, output
    resumed, uninterrupted = load_network_pkl(latest_snapshot(only_run_dir(runs))), load_network_pkl(latest_snapshot(only_run_dir(straight)))
    assert resumed['resume_state']['cur_nimg'] == uninterrupted['resume_state']['cur_nimg'] == 160
    _assert_same(resumed, uninterrupted)
    assert float(resumed['augment_pipe'].p) == float(uninterrupted['augment_pipe'].p) > 0
    # Tick boundaries are those of the uninterrupted run: the final snapshots carry the same tick.
    assert resumed['resume_state']['cur_tick'] == uninterrupted['resume_state']['cur_tick'] == 2
    return [os.path.basename(p) for p in list_snapshots(os.path.join(runs, run_dirs(runs)[0]))]

def test_signal_one_process_mid_tick_then_resume_exactly(tmp_path):
    names = _check_preempted_then_resumed(tmp_path, extra=['--workers=1'], signal_to='group')
    # The preempted run: tick 0's snapshot, then the one written on the signal (another in the same kimg).
    assert names[0] == 'network-snapshot-000000.pkl' and len(names) == 2 and names[1].startswith('network-snapshot-000000.')

@pytest.mark.slow
def test_signal_two_processes_mid_tick_then_resume_exactly(tmp_path):
    _check_preempted_then_resumed(tmp_path, extra=['--gpus=2', '--workers=0', '--mbstd-group=1'], signal_to='parent')

#----------------------------------------------------------------------------
