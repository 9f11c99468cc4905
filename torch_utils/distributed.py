"""Joining the process group, and ending a multi-process run quickly and clearly when a process is lost.

A rank that dies leaves the others waiting in a collective: with NCCL until the process-group
timeout, with gloo until the peer's socket closes (then a bare "Connection closed by peer").
PeerWatchdog turns both into one line that names the lost rank: every rank bumps a heartbeat
counter in the process group's store once a second; rank 0 watches everyone and the others watch
rank 0 (and the store it hosts). A rank whose counter stops for `timeout` seconds is lost; the
watcher posts an abort message in the store, every rank reads it within a second, prints it and
exits with status 1. Busy ranks keep beating (the heartbeat is a thread), so slow work is not loss.
"""

import datetime
import os
import sys
import threading
import time

import torch

from torch_utils import accel

ABORT_KEY = 'kd_watchdog/abort'

class PeerLost(RuntimeError):
    """Another process of the run is gone; the message is the one line to show."""

def report(rank, message):
    """The one line, on the real stderr and in log.txt when dnnlib.util.Logger tees the output (rank 0)."""
    line = f'train.py (rank {rank}): {message}'
    print(line, file=sys.__stderr__, flush=True)
    log_file = getattr(sys.stdout, 'file', None)
    if log_file is not None and not log_file.closed:
        log_file.write(line + '\n')
        log_file.flush()

def _heartbeat_key(rank):
    return f'kd_watchdog/heartbeat/{rank}'

#----------------------------------------------------------------------------

def init_process_group(rank, world_size, device, init_method, timeout=600):
    """NCCL for CUDA, gloo otherwise. With NCCL, asynchronous error handling makes a failed or timed-out
    collective end the process instead of hanging (the watchdog usually acts long before the timeout)."""
    backend = accel.dist_backend(device)
    if backend == 'nccl':
        os.environ.setdefault('TORCH_NCCL_ASYNC_ERROR_HANDLING', '1')
    torch.distributed.init_process_group(backend=backend, init_method=init_method, rank=rank, world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout))

def default_store():
    """The store of the default process group (a FileStore or the TCPStore that rank 0 hosts)."""
    return torch.distributed.distributed_c10d._get_default_store()

#----------------------------------------------------------------------------

class PeerWatchdog:
    def __init__(self, store, rank, world_size, timeout=30.0, interval=1.0, advice='', exit_fn=None):
        if timeout <= 2 * interval:
            raise ValueError(f'peer timeout must exceed twice the heartbeat interval ({2 * interval:g} s), got {timeout:g}')
        self.store = store
        self.rank = rank
        self.world_size = world_size
        self.timeout = float(timeout)
        self.interval = float(interval)
        self.advice = advice
        self.exit_fn = exit_fn if exit_fn is not None else os._exit  # Ends the process even while the main thread waits in C++.
        self._beat = 0
        self._stopping = threading.Event()
        self._reported = threading.Lock()
        self._thread = None

    # Lifecycle.

    def start(self):
        self._send_beat()
        self._thread = threading.Thread(target=self._run, name='kd-peer-watchdog', daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Call on every rank after a final barrier, so a rank that ends first is not taken for lost."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5 * self.interval)

    # Messages.

    def _lost_message(self, peer, why):
        text = f'rank {peer} of {self.world_size} is gone ({why}); it was killed, crashed or hung (its own output says which). Every rank stops now.'
        return text + (f' {self.advice}' if self.advice else '')

    def _die(self, message):
        if not self._reported.acquire(blocking=False):
            return
        report(self.rank, message)
        self.exit_fn(1)

    def _post_abort(self, message):
        try:
            if not self.store.check([ABORT_KEY]):
                self.store.set(ABORT_KEY, message)
        except Exception:  # The store is gone too; each rank finds out by itself.
            pass

    # The heartbeat thread.

    def _send_beat(self):
        self._beat += 1
        self.store.set(_heartbeat_key(self.rank), str(self._beat))

    def _read_beat(self, peer):
        key = _heartbeat_key(peer)
        return self.store.get(key).decode() if self.store.check([key]) else None

    def _run(self):
        watched = [p for p in (range(self.world_size) if self.rank == 0 else [0]) if p != self.rank]
        seen = {peer: (None, time.monotonic()) for peer in watched}
        store_down_since = None
        while not self._stopping.wait(self.interval):
            try:
                self._send_beat()
                if self.store.check([ABORT_KEY]):
                    self._die(self.store.get(ABORT_KEY).decode())
                    return
                now = time.monotonic()
                for peer in watched:
                    value = self._read_beat(peer)
                    if value != seen[peer][0]:
                        seen[peer] = (value, now)
                    elif now - seen[peer][1] > self.timeout:
                        message = self._lost_message(peer, f'no heartbeat for {now - seen[peer][1]:.0f} s')
                        self._post_abort(message)
                        self._die(message)
                        return
                store_down_since = None
            except Exception:
                if self._stopping.is_set():
                    return
                # Rank 0 hosts the TCP store: when it stays unreachable, rank 0 is gone.
                store_down_since = store_down_since or time.monotonic()
                if time.monotonic() - store_down_since >= 2 * self.interval:
                    self._die(self._lost_message(0, 'the store it hosts stopped answering'))
                    return

    # For the main thread, when a collective has raised.

    def explain(self, wait=None):
        """After an exception in the main thread: the one-line message when a peer is gone, else None
        (a genuine error of this rank). Watches every peer for a few heartbeats."""
        wait = 3 * self.interval if wait is None else wait
        def posted():  # The message another rank already posted, if any.
            if not self.store.check([ABORT_KEY]):
                return None
            self._stopping.set()
            return self.store.get(ABORT_KEY).decode()
        try:
            message = posted()
            if message is not None:
                return message
            peers = [p for p in range(self.world_size) if p != self.rank]
            before = {p: self._read_beat(p) for p in peers}
            time.sleep(wait)
            message = posted()
            if message is not None:
                return message
            lost = [p for p in peers if self._read_beat(p) == before[p]]
        except Exception:
            self._stopping.set()
            return self._lost_message(0, 'the store it hosts stopped answering')
        if not lost:
            return None
        self._stopping.set()  # The main thread reports it; the heartbeat thread need not.
        message = self._lost_message(lost[0], f'no heartbeat for {wait:.0f} s after a failed collective')
        self._post_abort(message)
        return message

    def announce_failure(self, error):
        """This rank failed by itself: tell the others at once, so they stop instead of waiting."""
        self._stopping.set()  # Else this rank's own thread would read the abort and exit before the traceback.
        first = (str(error).strip().splitlines() or [''])[0][:300]
        self._post_abort(f'rank {self.rank} of {self.world_size} failed with {type(error).__name__}: {first} '
            f'(its traceback is in its output). Every rank stops now.')

#----------------------------------------------------------------------------
