"""The few places where a CUDA run and a CPU run differ, each taking the device (and, for tests, the
module that owns the accelerator) as an argument, so the CUDA branch also runs on the CPU in tests.
docs/gpu.md lists every such branch and the test that covers it."""

import time

import torch

#----------------------------------------------------------------------------

class WallClockEvent:
    """The part of torch.cuda.Event's interface the training loop uses, timed by the host clock;
    on the CPU every operation has finished when record() returns."""

    def __init__(self):
        self.t = None

    def record(self, stream=None):
        del stream
        self.t = time.perf_counter()

    def query(self):
        return self.t is not None

    def elapsed_time(self, end_event):
        """Milliseconds from this event to end_event, as torch.cuda.Event.elapsed_time."""
        return (end_event.t - self.t) * 1000

def timing_event(device, cuda=torch.cuda):
    """An event for timing training phases: a CUDA event on CUDA (asynchronous, no sync needed)."""
    if torch.device(device).type == 'cuda':
        return cuda.Event(enable_timing=True)
    return WallClockEvent()

def peak_memory_gb(device, cuda=torch.cuda, reset=True):
    """Peak accelerator memory allocated since the last reset, in GiB; None on the CPU."""
    device = torch.device(device)
    if device.type != 'cuda':
        return None
    peak = cuda.max_memory_allocated(device) / 2**30
    if reset:
        cuda.reset_peak_memory_stats(device)
    return peak

def dist_backend(device):
    """torch.distributed backend for processes on this device type: NCCL for CUDA, gloo otherwise."""
    return 'nccl' if torch.device(device).type == 'cuda' else 'gloo'

#----------------------------------------------------------------------------
