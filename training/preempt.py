"""Stopping a run on a signal without losing work: SIGTERM, SIGINT and SIGUSR1 ask every process to
finish its current step; the processes agree on the step (an all-reduce of the flag after each
step), rank 0 writes a snapshot with the training state, and every process exits with EXIT_PREEMPTED
so a scheduler can requeue the same command (--resume=auto continues it). A second signal ends the
process at once with status 128 + signal number.

One signal often arrives by several routes at nearly the same moment: a terminal's Ctrl-C reaches
the whole process group, a launcher (the --gpus=N parent, torchrun) forwards what it gets, and a
scheduler may signal every process of the job. Repeats within REPEAT_WINDOW seconds of the first
therefore count as the same signal.
"""

import multiprocessing
import os
import signal
import threading
import time

import torch

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
EXIT_PREEMPTED = 75  # EX_TEMPFAIL in sysexits.h: a temporary failure, try again.
REPEAT_WINDOW = 1.0  # Seconds.

class Preempted(Exception):
    """The run stopped on a signal after writing a snapshot; the message says where and how to continue."""

def _say(text):
    os.write(2, (text + '\n').encode())  # Not print(): a handler may interrupt a print in progress.

class StopRequest:
    """Installed in the main thread of every training process (and of the --gpus=N parent, which forwards
    the signal to its children). `requested` turns True at the first signal."""

    def __init__(self, forward_to=(), exit_fn=os._exit, clock=time.monotonic, name='train.py'):
        self.forward_to = list(forward_to)  # Process ids that get every signal this process gets.
        self.exit_fn = exit_fn
        self.clock = clock
        self.name = name
        self.signum = None
        self._first = None
        self._previous = {}

    @property
    def requested(self):
        return self.signum is not None

    @property
    def signal_name(self):
        return None if self.signum is None else signal.Signals(self.signum).name

    def install(self):
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self.handle)
        return self

    def uninstall(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def handle(self, signum, _frame=None):
        now = self.clock()
        if self.signum is None:
            self.signum, self._first = signum, now
            _say(f'{self.name}: {signal.Signals(signum).name}: stopping after the current step to write a snapshot '
                f'(signal again to exit at once).')
            self._forward(signum)
        elif now - self._first > REPEAT_WINDOW:
            _say(f'{self.name}: second signal ({signal.Signals(signum).name}): exiting at once, without a snapshot.')
            self._forward(signal.SIGKILL)
            self.exit_fn(128 + signum)

    def _forward(self, signum):
        for pid in self.forward_to:
            try:
                os.kill(pid, signum)
            except OSError:
                pass  # Already gone.

def ignore_in_worker(_worker_id):
    """DataLoader worker_init_fn: the stop signals are for the training process, which ends its workers
    itself; a worker killed by one (a scheduler signals every process of a job) would break the step
    being finished. SIGTERM from the training process itself (multiprocessing's terminate() of a stuck
    worker at exit) still ends the worker: a thread reads each SIGTERM's sender with sigwaitinfo."""
    for sig in STOP_SIGNALS:
        if sig != signal.SIGTERM:
            signal.signal(sig, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    trainer = parent.pid if parent is not None else os.getppid()
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])  # Threads started from here on inherit the mask.
    threading.Thread(target=_obey_sigterm_from, args=(trainer,), name='kd-sigterm', daemon=True).start()

def _obey_sigterm_from(pid):
    while True:
        if signal.sigwaitinfo([signal.SIGTERM]).si_pid == pid:
            os._exit(128 + signal.SIGTERM)

def agree(requested, num_gpus, device):
    """True on every rank when any rank was asked to stop (call at the same step on every rank)."""
    if num_gpus == 1:
        return bool(requested)
    flag = torch.tensor([1 if requested else 0], dtype=torch.int32, device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return bool(flag.item())

#----------------------------------------------------------------------------
