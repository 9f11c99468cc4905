"""Which network snapshots a run keeps: the N newest (--keep), and the best one by the run's first
metric as network-snapshot-best.pkl with best.json (kimg, value, source file), which --keep never
deletes. Only rank 0 calls this."""

import json
import math
import os
import shutil

import dnnlib
from training import run_dir as run_names
from training.weights import weights_path

BEST_JSON = 'best.json'

# Better is lower for distances and path lengths, higher for the Inception score and precision/recall.
_LOWER_IS_BETTER = ('fid', 'kid', 'ppl')
_HIGHER_IS_BETTER = ('is', 'pr')

def metric_direction(metric):
    """'min' or 'max': which way the metric named `metric` (metrics.metric_main's name) improves."""
    if metric.startswith(_LOWER_IS_BETTER):
        return 'min'
    if metric.startswith(_HIGHER_IS_BETTER):
        return 'max'
    raise ValueError(f'no direction known for metric {metric!r}: add its prefix to training/retention.py')

def _link_or_copy(src, dst):
    """dst becomes the same file as src, atomically: a hard link where the file system has them, else a copy."""
    tmp = os.path.join(os.path.dirname(dst), f'.{os.path.basename(dst)}.link')
    if os.path.lexists(tmp):
        os.remove(tmp)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)

class SnapshotKeeper:
    def __init__(self, run_dir, keep=None, log=print):
        if keep is not None and keep < 1:
            raise ValueError(f'keep must be at least 1 (or None for all), got {keep}')
        self.run_dir = run_dir
        self.keep = keep
        self.log = log
        self.best = None  # The best.json record of this run so far.

    def written(self, snapshot_pkl):
        """After each snapshot: delete the oldest beyond the newest `keep` (their weights files too)."""
        if self.keep is None:
            return
        for old in run_names.list_snapshots(self.run_dir)[:-self.keep]:
            for path in (old, weights_path(old)):
                if os.path.exists(path):
                    os.remove(path)
            self.log(f'Removed {os.path.basename(old)} (--keep={self.keep})')

    def scored(self, snapshot_pkl, metric, results, cur_nimg):
        """After the run's first metric at a snapshot: make it the best when its first result is better."""
        key, value = next(iter(results.items()))
        direction = metric_direction(metric)
        if not math.isfinite(value):
            return False  # A failed evaluation is never the best.
        if self.best is not None:
            better = value < self.best['value'] if direction == 'min' else value > self.best['value']
            if not better:
                return False
        best_pkl = os.path.join(self.run_dir, run_names.BEST_SNAPSHOT)
        _link_or_copy(snapshot_pkl, best_pkl)
        if os.path.exists(weights_path(snapshot_pkl)):
            _link_or_copy(weights_path(snapshot_pkl), weights_path(best_pkl))
        self.best = dict(metric=metric, result=key, value=float(value), direction=direction, kimg=cur_nimg / 1000,
            snapshot=os.path.basename(snapshot_pkl))
        with dnnlib.util.atomic_write(os.path.join(self.run_dir, BEST_JSON), 'w') as f:
            json.dump(self.best, f, indent=2)
        self.log(f'Best so far: {key} {value:g} at {cur_nimg / 1000:g} kimg -> {run_names.BEST_SNAPSHOT}')
        return True

#----------------------------------------------------------------------------
