"""Tests for torch_utils.misc."""

import itertools
import os

import numpy as np
import pytest
import torch

from torch_utils import misc

#----------------------------------------------------------------------------


def test_constant_is_cached_and_broadcast():
    a = misc.constant([1.0, 2.0], shape=[3, 2])
    b = misc.constant([1.0, 2.0], shape=[3, 2])
    assert a is b
    np.testing.assert_array_equal(a.numpy(), np.broadcast_to(np.array([1.0, 2.0], np.float32), (3, 2)))
    assert a.dtype == torch.get_default_dtype() and a.is_contiguous()
    c = misc.constant(7, dtype=torch.int64)
    assert c.dtype == torch.int64 and c.item() == 7 and c is not misc.constant(7, dtype=torch.int32)
    assert misc.constant([1.0, 2.0]) is not misc.constant([1.0, 3.0])


def test_assert_shape():
    x = torch.zeros(2, 3, 4)
    misc.assert_shape(x, [2, None, 4])
    with pytest.raises(AssertionError, match='dimension 1'):
        misc.assert_shape(x, [2, 5, 4])
    with pytest.raises(AssertionError, match='number of dimensions'):
        misc.assert_shape(x, [2, 3])


@pytest.mark.filterwarnings('ignore::FutureWarning')
def test_assert_shape_under_jit_trace():
    def fn(x):
        misc.assert_shape(x, [None, 3])
        return x * 2
    traced = torch.jit.trace(fn, torch.zeros(2, 3), check_trace=False)
    assert torch.equal(traced(torch.ones(4, 3)), torch.full([4, 3], 2.0))


def test_profiled_function_records_and_returns():
    @misc.profiled_function
    def my_op(x, k=1):
        """doc"""
        return x + k
    assert my_op.__name__ == 'my_op' and my_op.__doc__ == 'doc'
    with torch.autograd.profiler.profile() as prof:
        out = my_op(torch.ones(2), k=3)
    assert torch.equal(out, torch.full([2], 4.0))
    assert any(evt.name == 'my_op' for evt in prof.function_events)


def test_nan_to_num():
    x = torch.tensor([float('nan'), float('inf'), -float('inf'), 1.5])
    out = misc.nan_to_num(x, nan=0.0, posinf=9.0, neginf=-9.0)
    np.testing.assert_array_equal(out.numpy(), np.array([0.0, 9.0, -9.0, 1.5], np.float32))

#----------------------------------------------------------------------------


def _take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


@pytest.mark.parametrize('shuffle', [False, True])
def test_infinite_sampler_deterministic_and_disjoint(shuffle):
    dataset = list(range(23))
    n = 3 * 23 * 2
    full = _take(misc.InfiniteSampler(dataset, shuffle=shuffle, seed=5), n)
    assert full == _take(misc.InfiniteSampler(dataset, shuffle=shuffle, seed=5), n)  # Deterministic.
    assert all(0 <= i < 23 for i in full)
    if shuffle:
        assert full != _take(misc.InfiniteSampler(dataset, shuffle=True, seed=6), n)
        assert full[:23] != list(range(23))
    else:
        assert full == list(range(23)) * 6

    # Ranks split one stream: rank r gets positions r, r + 3, r + 6, ... of the single-process stream.
    shares = [_take(misc.InfiniteSampler(dataset, rank=r, num_replicas=3, shuffle=shuffle, seed=5), n // 3)
              for r in range(3)]
    for r in range(3):
        assert shares[r] == full[r::3]


def test_infinite_sampler_first_pass_without_window_is_permutation():
    order = _take(misc.InfiniteSampler(list(range(50)), shuffle=True, seed=1, window_size=0), 100)
    assert sorted(order[:50]) == list(range(50)) and order[50:] == order[:50]


def test_infinite_sampler_bad_arguments():
    with pytest.raises(ValueError, match='empty'):
        misc.InfiniteSampler([])
    with pytest.raises(ValueError, match='rank'):
        misc.InfiniteSampler([1], rank=2, num_replicas=2)
    with pytest.raises(ValueError, match='window_size'):
        misc.InfiniteSampler([1], window_size=2)

#----------------------------------------------------------------------------


class _Net(torch.nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.fc = torch.nn.Linear(3, width)
        self.bn = torch.nn.BatchNorm1d(width)
        self.head = torch.nn.Linear(width, 2)

    def forward(self, x):
        h = self.bn(self.fc(x))
        return self.head(h), h


def test_params_and_buffers_and_copy():
    src, dst = _Net(), _Net()
    names = [name for name, _ in misc.named_params_and_buffers(src)]
    assert names == ['fc.weight', 'fc.bias', 'bn.weight', 'bn.bias', 'head.weight', 'head.bias',
                     'bn.running_mean', 'bn.running_var', 'bn.num_batches_tracked']
    assert len(misc.params_and_buffers(src)) == len(names)
    with torch.no_grad():
        src.bn.running_mean.fill_(3.0)
    misc.copy_params_and_buffers(src, dst, require_all=True)
    for (_, a), (_, b) in zip(misc.named_params_and_buffers(src), misc.named_params_and_buffers(dst)):
        assert torch.equal(a, b)
    assert dst.fc.weight.requires_grad

    wide = _Net(width=5)
    with pytest.raises(ValueError, match='fc.weight'):
        misc.copy_params_and_buffers(src, wide)
    with pytest.raises(KeyError, match='fc.weight'):
        misc.copy_params_and_buffers(torch.nn.Linear(1, 1), dst, require_all=True)


def test_ddp_sync_is_noop_for_plain_module():
    net = _Net()
    with misc.ddp_sync(net, sync=False):
        net(torch.zeros(2, 3))[0].sum().backward()
    assert net.fc.weight.grad is not None


def test_print_module_summary(capsys):
    net = _Net()
    outputs = misc.print_module_summary(net, [torch.zeros(5, 3)])
    assert outputs[0].shape == (5, 2)
    text = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in text.strip().splitlines()}
    assert rows['fc'][1:] == ['16', '-', '[5,', '4]', 'float32']  # 3*4 + 4 params.
    assert rows['bn'][1:3] == ['8', '9']  # weight + bias; running mean/var + num_batches_tracked.
    assert rows['head'][1] == '10'
    assert rows['Total'][1:3] == ['34', '9']
    assert '<top-level>:0' not in rows  # Its outputs are head's and bn's: redundant.

    misc.print_module_summary(net, [torch.zeros(5, 3)], skip_redundant=False)
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.strip().splitlines()}
    assert rows['<top-level>:0'][1:] == ['-', '-', '[5,', '2]', 'float32']
    assert rows['<top-level>:1'][1:] == ['-', '-', '[5,', '4]', 'float32']

#----------------------------------------------------------------------------


def _ddp_worker(rank, world_size, init_file):
    torch.distributed.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=world_size)
    try:
        torch.manual_seed(0)
        net = _Net()
        misc.check_ddp_consistency(net)  # Same seed on both ranks: consistent.
        if rank == 1:
            with torch.no_grad():
                net.head.bias[0] += 1
        with pytest.raises(AssertionError, match=r'head\.bias.*rank 1'):
            misc.check_ddp_consistency(net)
        misc.check_ddp_consistency(net, ignore_regex=r'.*\.head\.bias')
    finally:
        torch.distributed.destroy_process_group()


def test_check_ddp_consistency_two_processes(tmp_path):
    init_file = os.path.join(str(tmp_path), 'dist_init')
    # fork: no re-import of torch per worker.
    torch.multiprocessing.start_processes(_ddp_worker, args=(2, init_file), nprocs=2, join=True, start_method='fork')

#----------------------------------------------------------------------------


def test_cpu_threads_are_shared_between_processes():
    from torch_utils import misc
    assert misc.cpu_threads_per_process(2, cpus=2) == 1
    assert misc.cpu_threads_per_process(3, cpus=16) == 5
    assert misc.cpu_threads_per_process(8, cpus=2) == 1  # Never zero.
    assert misc.cpu_threads_per_process(1, cpus=4) == 4
