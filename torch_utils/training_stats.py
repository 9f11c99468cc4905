"""Training statistics: cheap report() calls inside the training loop, summed across devices and
processes only when a Collector asks for them.

Every statistic is kept as three moments [count, sum, sum of squares]. report() adds to
per-device accumulators without a host sync; Collector.update() gathers them, all-reduces one
stacked tensor across processes (when torch.distributed is initialised) and turns the increase
since its previous update into num / mean / std.
"""

import re

import numpy as np
import torch

import dnnlib

#----------------------------------------------------------------------------

_num_moments = 3              # [count, sum, sum_sq]
_counter_dtype = torch.float64

_rank = 0                     # Rank of this process.
_sync_device = None           # Device for the cross-process all_reduce; None = single process.
_sync_called = False          # Set once statistics have been reduced; init must come before.
_counters = dict()            # name -> {device: moments accumulated since the last _sync}
_cumulative = dict()          # name -> moments summed over all processes, all time (CPU)

#----------------------------------------------------------------------------


def init_multiprocessing(rank, sync_device):
    """Declare this process's rank and the device used to all-reduce statistics
    (torch.device('cuda') for NCCL, torch.device('cpu') for gloo, None for a single process).
    Must come before the first Collector.update() that reduces anything; calling it again
    later with the same settings is allowed (e.g. several in-process runs)."""
    global _rank, _sync_device
    if rank < 0:
        raise ValueError(f'training_stats.init_multiprocessing: rank must be >= 0, got {rank}')
    sync_device = torch.device(sync_device) if sync_device is not None else None
    if _sync_called and (rank, sync_device) != (_rank, _sync_device):
        raise RuntimeError('training_stats.init_multiprocessing() cannot change rank or sync_device after '
                           'statistics have been collected; call it before the first Collector.update()')
    _rank = rank
    _sync_device = sync_device


def report(name, value):
    """Add the elements of `value` (number, sequence or tensor of any shape) to statistic `name`.
    Returns `value` unchanged so it can be used inline."""
    if not isinstance(name, str):
        raise TypeError(f'training_stats.report: name must be a str, got {type(name).__name__}')
    elems = torch.as_tensor(value).detach().flatten().to(_counter_dtype)
    moments = torch.stack([
        torch.ones_like(elems).sum(),
        elems.sum(),
        elems.square().sum(),
    ])
    device_counters = _counters.setdefault(name, dict())
    if moments.device not in device_counters:
        device_counters[moments.device] = torch.zeros_like(moments)
    device_counters[moments.device].add_(moments)
    return value


def report0(name, value):
    """Like report(), but only rank 0's value counts (other ranks still register the name)."""
    report(name, value if _rank == 0 else [])
    return value

#----------------------------------------------------------------------------


def _all_names(names):
    """Union of `names` over all processes, in a fixed order, so every rank reduces the same list."""
    names = sorted(set(names))
    if _sync_device is None or not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return names
    gathered = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, names)
    return sorted(set().union(*gathered))


def _sync(names):
    """Move the accumulated moments of `names` into _cumulative (summed over devices and processes)."""
    global _sync_called
    names = _all_names(names)
    if len(names) == 0:
        return []
    _sync_called = True
    device = _sync_device if _sync_device is not None else torch.device('cpu')

    deltas = []
    for name in names:
        delta = torch.zeros([_num_moments], dtype=_counter_dtype, device=device)
        for counter in _counters.get(name, dict()).values():
            delta.add_(counter.to(device))
            counter.zero_()
        deltas.append(delta)
    deltas = torch.stack(deltas)

    if _sync_device is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(deltas)

    deltas = deltas.cpu()
    for idx, name in enumerate(names):
        if name not in _cumulative:
            _cumulative[name] = torch.zeros([_num_moments], dtype=_counter_dtype)
        _cumulative[name].add_(deltas[idx])
    return [(name, _cumulative[name]) for name in names]

#----------------------------------------------------------------------------


class Collector:
    """Reads the statistics reported since its previous update().

    regex:          which statistic names to collect.
    keep_previous:  when a statistic got no new values, keep the previous interval's numbers
                    (True) or report it as empty (False).
    In multi-process runs, every rank must call update() at the same point (it is collective).
    """

    def __init__(self, regex='.*', keep_previous=True):
        self._regex = re.compile(regex)
        self._keep_previous = keep_previous
        self._cumulative = dict()
        self._moments = dict()
        self.update()
        self._moments.clear()

    def names(self):
        """Names reported in this process (so far) that match the regex."""
        return [name for name in _counters if self._regex.fullmatch(name)]

    def update(self):
        """Collect the values reported since the previous update (collective across ranks)."""
        if not self._keep_previous:
            self._moments.clear()
        for name, cumulative in _sync(self.names()):
            if name not in self._cumulative:
                self._cumulative[name] = torch.zeros([_num_moments], dtype=_counter_dtype)
            delta = cumulative - self._cumulative[name]
            self._cumulative[name].copy_(cumulative)
            if float(delta[0]) != 0:
                self._moments[name] = delta

    def num(self, name):
        """Number of scalars reported for `name` in the last interval."""
        self._check_name(name)
        if name not in self._moments:
            return 0
        return int(self._moments[name][0])

    def mean(self, name):
        """Mean of the last interval's values (NaN when there were none)."""
        self._check_name(name)
        if name not in self._moments or float(self._moments[name][0]) == 0:
            return float('nan')
        return float(self._moments[name][1] / self._moments[name][0])

    def std(self, name):
        """Population standard deviation of the last interval's values (NaN when there were none)."""
        self._check_name(name)
        if name not in self._moments or float(self._moments[name][0]) == 0:
            return float('nan')
        count, total, total_sq = (float(v) for v in self._moments[name])
        mean = total / count
        var = total_sq / count - mean ** 2  # Tiny negative values come from rounding.
        return float(np.sqrt(max(var, 0.0))) if np.isfinite(var) else float('nan')

    def as_dict(self):
        """{name: EasyDict(num, mean, std)} of the last interval, e.g. for stats.jsonl."""
        stats = dnnlib.EasyDict()
        for name in self._moments:
            stats[name] = dnnlib.EasyDict(num=self.num(name), mean=self.mean(name), std=self.std(name))
        return stats

    def __getitem__(self, name):
        """Mean of statistic `name`."""
        return self.mean(name)

    def _check_name(self, name):
        if not isinstance(name, str):
            raise TypeError(f'Collector: statistic name must be a str, got {type(name).__name__}')

#----------------------------------------------------------------------------

default_collector = Collector(regex='.*', keep_previous=True)

#----------------------------------------------------------------------------
