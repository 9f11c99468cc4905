"""Network snapshots of a run: the pickles (and optional weights files) with the training state, which of them
are kept (training/retention.py), and the metrics evaluated on each."""

import copy
import os

from torch_utils import misc
from training import run_dir as run_names
from training.retention import SnapshotKeeper
from training.snapshot import save_snapshot
from training.weights import save_weights, weights_path

#----------------------------------------------------------------------------

def snapshot_data(modules, num_gpus, training_set_kwargs, resume_state):
    """The pickle's contents: CPU copies of the networks (checked equal across processes) and the state."""
    data = dict(training_set_kwargs=dict(training_set_kwargs))
    for name, module in modules.items():
        if module is not None:
            if num_gpus > 1:
                misc.check_ddp_consistency(module, ignore_regex=r'.*\.[^.]+_(avg|ema)')
            module = copy.deepcopy(module).eval().requires_grad_(False).cpu()
        data[name] = module
    data['resume_state'] = resume_state
    return data

def evaluate_metrics(metrics, G_ema, snapshot_pkl, cur_nimg, keeper, dataset_kwargs, num_gpus, rank, device, detector_dir,
        run_dir, log):
    """Every metric of a snapshot (every rank computes its share, rank 0 writes); the first one picks the best."""
    from metrics import metric_main  # Imported only when used: it pulls in the detectors' stack.
    log('Evaluating metrics...')
    results = dict()
    for idx, metric in enumerate(metrics):
        result_dict = metric_main.calc_metric(metric=metric, G=G_ema, dataset_kwargs=dataset_kwargs, num_gpus=num_gpus,
            rank=rank, device=device, detector_dir=detector_dir)
        if rank == 0:
            metric_main.report_metric(result_dict, run_dir=run_dir, snapshot_pkl=snapshot_pkl)
            if idx == 0:
                keeper.scored(snapshot_pkl, metric, result_dict['results'], cur_nimg)
        results.update(result_dict['results'])
    return results

#----------------------------------------------------------------------------

class SnapshotWriter:
    """Writes network-snapshot-NNNNNN.pkl (rank 0; every rank takes part in the checks and the metrics),
    keeps the newest `snapshot_keep` and the best, and holds the newest value of every metric."""

    def __init__(self, run_dir, modules, training_set_kwargs, metrics, metric_data, detector_dir, snapshot_keep, write_weights,
            rank, num_gpus, device, log):
        self.run_dir = run_dir
        self.modules = modules  # {'G': ..., 'D': ..., 'G_ema': ..., 'augment_pipe': ...}, pickled in this order.
        self.training_set_kwargs = training_set_kwargs
        self.metrics = metrics
        self.metric_data = metric_data  # The metrics' reference dataset (a path); None = the training set.
        self.detector_dir = detector_dir
        self.write_weights = write_weights
        self.rank = rank
        self.num_gpus = num_gpus
        self.device = device
        self.log = log
        self.keeper = SnapshotKeeper(run_dir, keep=snapshot_keep, log=log)
        self.names = set()  # File names taken in this run (a progress written twice gets a suffix).
        self.last_snapshot = None
        self.metric_results = dict()  # The newest value of every metric, for TensorBoard.

    def write(self, cur_nimg, resume_state, stopping):
        """One snapshot with `resume_state`, then its metrics; skipped when stopping on a signal, as time may
        be short (calc_metrics.py can evaluate the snapshot later). Returns the snapshot's path."""
        data = snapshot_data(self.modules, self.num_gpus, self.training_set_kwargs, resume_state=resume_state)
        snapshot_pkl = os.path.join(self.run_dir, run_names.snapshot_name(cur_nimg, taken=self.names))
        self.names.add(os.path.basename(snapshot_pkl))
        if self.rank == 0:
            save_snapshot(snapshot_pkl, data)
            if self.write_weights:
                save_weights(weights_path(snapshot_pkl), data)  # Beside it: a file that runs no code.
            self.keeper.written(snapshot_pkl)
        self.last_snapshot = snapshot_pkl
        if len(self.metrics) > 0 and stopping:
            self.log('Metrics skipped: stopping on a signal (calc_metrics.py can evaluate the snapshot later).')
        elif len(self.metrics) > 0:
            dataset_kwargs = dict(self.training_set_kwargs) if self.metric_data is None else dict(self.training_set_kwargs,
                path=self.metric_data)
            self.metric_results.update(evaluate_metrics(self.metrics, data['G_ema'], snapshot_pkl, cur_nimg, self.keeper,
                dataset_kwargs, num_gpus=self.num_gpus, rank=self.rank, device=self.device, detector_dir=self.detector_dir,
                run_dir=self.run_dir, log=self.log))
        return snapshot_pkl

#----------------------------------------------------------------------------
