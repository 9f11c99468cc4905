"""Tests for torch_utils.training_stats: moments against numpy, collector semantics, and the
cross-process reduction with gloo."""

import importlib
import os

import numpy as np
import pytest
import torch

from torch_utils import training_stats

#----------------------------------------------------------------------------


def test_collector_mean_std_against_numpy():
    rnd = np.random.RandomState(0)
    a = rnd.randn(7).astype(np.float32)
    b = rnd.randn(2, 3).astype(np.float32)
    c = training_stats.Collector(regex=r'ts_numpy/.*')
    training_stats.report('ts_numpy/x', torch.from_numpy(a))
    assert training_stats.report('ts_numpy/x', torch.from_numpy(b)) is not None
    training_stats.report('ts_numpy/y', 2.5)
    training_stats.report('other/z', 1.0)
    c.update()
    values = np.concatenate([a, b.ravel()]).astype(np.float64)
    assert sorted(c.names()) == ['ts_numpy/x', 'ts_numpy/y']
    assert c.num('ts_numpy/x') == 13
    assert c.mean('ts_numpy/x') == pytest.approx(values.mean(), rel=1e-6)
    assert c.std('ts_numpy/x') == pytest.approx(values.std(), rel=1e-5)
    assert c['ts_numpy/x'] == c.mean('ts_numpy/x')
    assert c.as_dict() == {'ts_numpy/x': dict(num=13, mean=c.mean('ts_numpy/x'), std=c.std('ts_numpy/x')),
                           'ts_numpy/y': dict(num=1, mean=2.5, std=0.0)}
    assert np.isnan(c.mean('other/z')) and c.num('other/z') == 0


def test_collector_intervals_and_keep_previous():
    keep = training_stats.Collector(regex=r'ts_interval/.*', keep_previous=True)
    drop = training_stats.Collector(regex=r'ts_interval/.*', keep_previous=False)
    training_stats.report('ts_interval/a', [1.0, 3.0])
    keep.update()
    drop.update()
    assert keep.mean('ts_interval/a') == 2.0 and drop.mean('ts_interval/a') == 2.0

    # Nothing new: keep_previous keeps the last interval, the other forgets it.
    keep.update()
    drop.update()
    assert keep.mean('ts_interval/a') == 2.0 and keep.num('ts_interval/a') == 2
    assert np.isnan(drop.mean('ts_interval/a')) and drop.num('ts_interval/a') == 0

    # Only the new values count in the next interval, for each collector independently.
    training_stats.report('ts_interval/a', [10.0])
    keep.update()
    assert keep.mean('ts_interval/a') == 10.0 and keep.num('ts_interval/a') == 1
    late = training_stats.Collector(regex=r'ts_interval/.*')  # Starts after everything so far.
    training_stats.report('ts_interval/a', [4.0, 6.0])
    late.update()
    drop.update()
    assert late.mean('ts_interval/a') == 5.0
    assert drop.mean('ts_interval/a') == pytest.approx(np.mean([10.0, 4.0, 6.0]))


def test_report0_and_empty_values():
    c = training_stats.Collector(regex=r'ts_r0/.*')
    training_stats.report0('ts_r0/a', torch.tensor([2.0, 4.0]))
    training_stats.report('ts_r0/empty', [])
    c.update()
    assert c.mean('ts_r0/a') == 3.0
    assert c.num('ts_r0/empty') == 0 and np.isnan(c.std('ts_r0/empty'))
    with pytest.raises(TypeError, match='name'):
        training_stats.report(3, 1.0)


def test_init_multiprocessing_after_collection():
    c = training_stats.Collector(regex=r'ts_init/.*')
    training_stats.report('ts_init/a', 1.0)
    c.update()
    training_stats.init_multiprocessing(rank=0, sync_device=None)  # Unchanged settings: allowed.
    with pytest.raises(RuntimeError, match='before the first'):
        training_stats.init_multiprocessing(rank=1, sync_device=None)
    with pytest.raises(ValueError, match='rank'):
        training_stats.init_multiprocessing(rank=-1, sync_device=None)

#----------------------------------------------------------------------------


def _rank_values(rank):
    return np.random.RandomState(100 + rank).randn(5 + 3 * rank)


def _stats_worker(rank, world_size, init_file, result_dir):
    importlib.reload(training_stats)  # Forked: drop the statistics this process inherited.
    torch.distributed.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=world_size)
    try:
        training_stats.init_multiprocessing(rank=rank, sync_device=torch.device('cpu'))
        c = training_stats.Collector(regex=r'mp/.*')
        training_stats.report('mp/loss', torch.from_numpy(_rank_values(rank)))
        training_stats.report0('mp/only0', float(rank + 7))
        if rank == 1:
            training_stats.report('mp/only_rank1', [1.0, 2.0])  # A name the other rank never reported.
        c.update()
        stats = c.as_dict()
        np.save(os.path.join(result_dir, f'rank{rank}.npy'), np.array([
            stats['mp/loss'].num, stats['mp/loss'].mean, stats['mp/loss'].std,
            stats['mp/only0'].num, stats['mp/only0'].mean,
            stats['mp/only_rank1'].num, stats['mp/only_rank1'].mean,
        ], dtype=np.float64))
    finally:
        torch.distributed.destroy_process_group()


def test_two_process_reduction_matches_numpy(tmp_path):
    world_size = 2
    init_file = os.path.join(str(tmp_path), 'dist_init')
    # fork: no re-import of torch per worker (seconds each); the workers reload training_stats to start fresh.
    torch.multiprocessing.start_processes(_stats_worker, args=(world_size, init_file, str(tmp_path)),
                                          nprocs=world_size, join=True, start_method='fork')
    values = np.concatenate([_rank_values(r) for r in range(world_size)])
    expected = [values.size, values.mean(), values.std(), 1, 7.0, 2, 1.5]
    for rank in range(world_size):
        got = np.load(os.path.join(str(tmp_path), f'rank{rank}.npy'))
        np.testing.assert_allclose(got, expected, rtol=1e-9)

#----------------------------------------------------------------------------
