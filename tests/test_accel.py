"""CUDA-vs-CPU choices of torch_utils.accel and the training loop, with the CUDA branch run on the
CPU through a stand-in for torch.cuda."""

import time

import numpy as np
import torch

from torch_utils import accel
from training import image_grid

CUDA0 = torch.device('cuda', 0)  # Only its type and index are read.

class _FakeCuda:
    """The torch.cuda calls accel makes, recorded."""
    def __init__(self):
        self.calls = []

    class Event:
        def __init__(self, enable_timing=False):
            self.enable_timing = enable_timing

    def max_memory_allocated(self, device):
        self.calls.append(('max_memory_allocated', device))
        return 3 * 2**30

    def reset_peak_memory_stats(self, device):
        self.calls.append(('reset_peak_memory_stats', device))


def test_timing_events():
    fake = _FakeCuda()
    event = accel.timing_event(CUDA0, cuda=fake)
    assert isinstance(event, _FakeCuda.Event) and event.enable_timing
    start, end = accel.timing_event('cpu', cuda=fake), accel.timing_event('cpu', cuda=fake)
    assert isinstance(start, accel.WallClockEvent) and not start.query()
    start.record()
    time.sleep(0.02)
    end.record(stream=None)
    assert end.query() and 15 <= start.elapsed_time(end) < 1000  # Milliseconds, like CUDA events.


def test_peak_memory_reads_and_resets_on_cuda_only():
    fake = _FakeCuda()
    assert accel.peak_memory_gb('cpu', cuda=fake) is None and fake.calls == []
    assert accel.peak_memory_gb(CUDA0, cuda=fake) == 3.0
    assert fake.calls == [('max_memory_allocated', CUDA0), ('reset_peak_memory_stats', CUDA0)]


def test_backend_and_grid_size_choices():
    assert accel.dist_backend(CUDA0) == 'nccl' and accel.dist_backend('cpu') == 'gloo'
    assert image_grid.grid_max_size(CUDA0) == 32 and image_grid.grid_max_size('cpu') == 8


class _Dataset:
    image_shape = [3, 16, 16]
    has_labels = True
    def __len__(self):
        return 5
    def __getitem__(self, idx):
        return np.full([3, 16, 16], idx, dtype=np.uint8), self.get_label(idx)
    def get_label(self, idx):
        return np.eye(2, dtype=np.float32)[idx % 2]


def test_cuda_sized_image_grid_on_cpu():
    # The grid CUDA runs export (up to 32x32 images), one class per row.
    (gw, gh), images, labels = image_grid.setup_snapshot_image_grid(_Dataset(), 0, max_size=image_grid.grid_max_size(CUDA0))
    assert (gw, gh) == (32, 32) and images.shape == (32 * 32, 3, 16, 16)
    rows = labels.reshape(gh, gw, 2).argmax(-1)
    assert (rows == (np.arange(gh) % 2)[:, None]).all()
