"""Registry of the metrics by protocol name, and the entry points that compute and record them."""

import json
import os
import time

import dnnlib

from . import metric_utils
from . import frechet_inception_distance
from . import kernel_inception_distance
from . import precision_recall
from . import inception_score
from . import perceptual_path_length

#----------------------------------------------------------------------------

_metric_dict = dict()  # name => fn(opts) -> dict of results


def register_metric(fn=None, *, detectors=(metric_utils.INCEPTION_URL,), num_gen=None, needs_generator=False,
    needs_reference=True, takes_ref_stats=False):
    """Register fn(opts) under its name. What tools check up front: `detectors`, the detector URLs it loads;
    `num_gen`, how many generated images it uses (None: unknown); `needs_generator`, it needs G itself, not only
    its images (PPL walks the latent space); `needs_reference`, it compares with a reference set; `takes_ref_stats`,
    precomputed FID statistics (opts.ref_stats) can stand in for that set."""
    def decorator(fn):
        if not callable(fn):
            raise TypeError(f'register_metric expects a function, got {type(fn).__name__}')
        fn.detector_urls = tuple(detectors)
        fn.metric_info = dnnlib.EasyDict(num_gen=num_gen, needs_generator=needs_generator,
            needs_reference=needs_reference, takes_ref_stats=takes_ref_stats)
        _metric_dict[fn.__name__] = fn
        return fn
    return decorator if fn is None else decorator(fn)


def is_valid_metric(metric):
    return metric in _metric_dict


def list_valid_metrics():
    return list(_metric_dict.keys())


def detector_urls(metric):
    return _metric_dict[metric].detector_urls


def metric_info(metric):
    """num_gen, needs_generator, needs_reference, takes_ref_stats of a metric (see register_metric)."""
    return dnnlib.EasyDict(_metric_dict[metric].metric_info)


def calc_metric(metric, **kwargs):
    """Compute one metric; kwargs are MetricOptions' (G, G_kwargs, dataset_kwargs, num_gpus, rank, device, ...).

    Every rank must call it. Results whose final step runs on rank 0 only are NaN on the other ranks.
    """
    if not is_valid_metric(metric):
        raise ValueError(f'Unknown metric "{metric}"; valid metrics: {", ".join(list_valid_metrics())}')
    opts = metric_utils.MetricOptions(**kwargs)
    start_time = time.time()
    results = _metric_dict[metric](opts)
    total_time = time.time() - start_time
    return dnnlib.EasyDict(
        results         = dnnlib.EasyDict(results),
        metric          = metric,
        total_time      = total_time,
        total_time_str  = dnnlib.util.format_time(total_time),
        num_gpus        = opts.num_gpus,
    )


def calc_ref_stats(**kwargs):
    """FID reference statistics (mu, sigma, number of images) of every image of the dataset, as the '_full' FIDs
    see it; kwargs are MetricOptions'. Every rank must call it."""
    return frechet_inception_distance.compute_ref_stats(metric_utils.MetricOptions(**kwargs))


def report_metric(result_dict, run_dir=None, snapshot_pkl=None):
    """Print the result as one JSON line and append it to run_dir/metric-<name>.jsonl."""
    metric = result_dict['metric']
    if not is_valid_metric(metric):
        raise ValueError(f'Unknown metric "{metric}"')
    if run_dir is not None and snapshot_pkl is not None:
        snapshot_pkl = os.path.relpath(snapshot_pkl, run_dir)
    line = json.dumps(dict(result_dict, snapshot_pkl=snapshot_pkl, timestamp=time.time()))
    print(line)
    if run_dir is not None and os.path.isdir(run_dir):
        # One write of one whole line in append mode: concurrent readers never see half a record.
        with open(os.path.join(run_dir, f'metric-{metric}.jsonl'), 'at') as f:
            f.write(line + '\n')

#----------------------------------------------------------------------------
# Protocols. '_full': every image of the reference dataset (no max_size / subset); x-flips only with mirror.


@register_metric(num_gen=50000, takes_ref_stats=True)
def fid50k_full(opts):
    opts.use_full_dataset()
    fid = frechet_inception_distance.compute_fid(opts, max_real=None, num_gen=50000)
    return dict(fid50k_full=fid)


@register_metric(num_gen=10000, takes_ref_stats=True)
def fid10k_full(opts):
    opts.use_full_dataset()
    fid = frechet_inception_distance.compute_fid(opts, max_real=None, num_gen=10000)
    return dict(fid10k_full=fid)


@register_metric(num_gen=5000, takes_ref_stats=True)
def fid5k_full(opts):
    opts.use_full_dataset()
    fid = frechet_inception_distance.compute_fid(opts, max_real=None, num_gen=5000)
    return dict(fid5k_full=fid)


@register_metric(num_gen=50000)
def kid50k_full(opts):
    opts.use_full_dataset()
    kid = kernel_inception_distance.compute_kid(opts, max_real=1000000, num_gen=50000, num_subsets=100, max_subset_size=1000)
    return dict(kid50k_full=kid)


@register_metric(detectors=[metric_utils.VGG16_URL], num_gen=50000)
def pr50k3_full(opts):
    opts.use_full_dataset()
    precision, recall = precision_recall.compute_pr(opts, max_real=200000, num_gen=50000, nhood_size=3,
        row_batch_size=10000, col_batch_size=10000)
    return dict(pr50k3_full_precision=precision, pr50k3_full_recall=recall)


@register_metric(num_gen=50000, needs_reference=False)
def is50k(opts):
    opts.use_full_dataset()  # The dataset only supplies labels for a conditional G.
    mean, std = inception_score.compute_is(opts, num_gen=50000, num_splits=10)
    return dict(is50k_mean=mean, is50k_std=std)


@register_metric(num_gen=10000, needs_reference=False)
def is10k(opts):
    opts.use_full_dataset()
    mean, std = inception_score.compute_is(opts, num_gen=10000, num_splits=10)
    return dict(is10k_mean=mean, is10k_std=std)


@register_metric(detectors=[metric_utils.VGG16_URL], needs_generator=True)
def ppl2_wend(opts):
    ppl = perceptual_path_length.compute_ppl(opts, num_samples=50000, epsilon=1e-4, crop=False, batch_size=2)
    return dict(ppl2_wend=ppl)

#----------------------------------------------------------------------------
# StyleGAN2-ADA's legacy names (its metric_main.py): 50k reals of the training set as configured (subset
# dropped, x-flips kept as in training), and the PPL variants with the face crop.


@register_metric(num_gen=50000)
def fid50k(opts):
    opts.use_full_dataset(keep_xflip=True)
    return dict(fid50k=frechet_inception_distance.compute_fid(opts, max_real=50000, num_gen=50000))


@register_metric(num_gen=50000)
def kid50k(opts):
    opts.use_full_dataset(keep_xflip=True)
    return dict(kid50k=kernel_inception_distance.compute_kid(opts, max_real=50000, num_gen=50000, num_subsets=100,
        max_subset_size=1000))


@register_metric(detectors=[metric_utils.VGG16_URL], num_gen=50000)
def pr50k3(opts):
    opts.use_full_dataset(keep_xflip=True)
    precision, recall = precision_recall.compute_pr(opts, max_real=50000, num_gen=50000, nhood_size=3,
        row_batch_size=10000, col_batch_size=10000)
    return dict(pr50k3_precision=precision, pr50k3_recall=recall)


def _legacy_ppl(name, space, sampling):
    def fn(opts):
        ppl = perceptual_path_length.compute_ppl(opts, num_samples=50000, epsilon=1e-4, space=space, sampling=sampling,
            crop=True, batch_size=2)
        return {name: ppl}
    fn.__name__ = name
    register_metric(fn, detectors=[metric_utils.VGG16_URL], needs_generator=True)

for _name, _space, _sampling in [('ppl_zfull', 'z', 'full'), ('ppl_wfull', 'w', 'full'), ('ppl_zend', 'z', 'end'),
        ('ppl_wend', 'w', 'end')]:
    _legacy_ppl(_name, _space, _sampling)

#----------------------------------------------------------------------------
