"""PeerWatchdog on an in-memory store: loss detection, abort propagation, and no false alarms."""

import threading
import time

import pytest
import torch

from torch_utils import distributed

class _Exit(Exception):
    pass

def _watchdog(store, rank, exits, **kwargs):
    return distributed.PeerWatchdog(store, rank=rank, world_size=2, timeout=kwargs.pop('timeout', 1.0),
        interval=0.1, advice='Resume with --resume=RUN.', exit_fn=exits.append, **kwargs)

def _wait_until(cond, limit=5.0):
    deadline = time.time() + limit
    while time.time() < deadline and not cond():
        time.sleep(0.02)
    return cond()

def test_silent_peer_is_reported_and_abort_posted(capfd):
    store = torch.distributed.HashStore()
    exits = []
    w = _watchdog(store, 0, exits).start()
    try:
        assert _wait_until(lambda: exits == [1])
    finally:
        w.stop()
    message = store.get(distributed.ABORT_KEY).decode()
    assert message.startswith('rank 1 of 2 is gone (no heartbeat for') and message.endswith('Resume with --resume=RUN.')
    assert capfd.readouterr().err.strip() == f'train.py (rank 0): {message}'

def test_beating_peers_raise_no_alarm_and_read_an_abort():
    store = torch.distributed.HashStore()
    exits0, exits1 = [], []
    w0, w1 = _watchdog(store, 0, exits0).start(), _watchdog(store, 1, exits1).start()
    try:
        time.sleep(1.5)  # Longer than the timeout: beats keep both alive.
        assert exits0 == exits1 == []
        assert w1.explain(wait=0.3) is None  # An error of this rank alone is not a lost peer.
        w1.announce_failure(ValueError('bad shape\nsecond line'))
        assert _wait_until(lambda: exits0 == [1])
        assert exits1 == []  # The failing rank's own thread stands down, so its traceback gets printed.
    finally:
        w0.stop()
        w1.stop()
    assert store.get(distributed.ABORT_KEY).decode().startswith('rank 1 of 2 failed with ValueError: bad shape (its traceback')

def test_explain_names_the_silent_peer():
    store = torch.distributed.HashStore()
    w = _watchdog(store, 1, [], timeout=30)
    store.set('kd_watchdog/heartbeat/0', '7')  # Rank 0 beat once, then went silent.
    message = w.explain(wait=0.3)
    assert message.startswith('rank 0 of 2 is gone (no heartbeat for 0 s after a failed collective)')
    assert store.get(distributed.ABORT_KEY).decode() == message

def test_stop_silences_the_thread_and_timeout_is_checked():
    store = torch.distributed.HashStore()
    exits = []
    w = _watchdog(store, 0, exits).start()
    w.stop()
    time.sleep(1.3)
    assert exits == [] and not w._thread.is_alive()
    with pytest.raises(ValueError, match='peer timeout'):
        distributed.PeerWatchdog(store, rank=0, world_size=2, timeout=1.5, interval=1.0)
