"""Kernel Inception Distance (Binkowski et al. 2018): unbiased MMD^2 with a cubic polynomial kernel."""

import numpy as np

from . import metric_utils

#----------------------------------------------------------------------------


def kid_from_features(real_features, gen_features, num_subsets=100, max_subset_size=1000, seed=0):
    """Mean over random subsets of the unbiased MMD^2 with kernel k(x, y) = (x.y / d + 1)^3.

    Each subset draws m = min(n_real, n_gen, max_subset_size) generated rows, then m real rows, without
    replacement, from np.random.RandomState(seed).
    """
    real = np.asarray(real_features, np.float64)
    gen = np.asarray(gen_features, np.float64)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise ValueError(f'features must be [N, d] of one width, got {list(real.shape)} and {list(gen.shape)}')
    d = real.shape[1]
    m = min(real.shape[0], gen.shape[0], max_subset_size)
    if m < 2:
        raise ValueError(f'KID needs at least 2 samples per set, got {real.shape[0]} real and {gen.shape[0]} generated')
    rng = np.random.RandomState(seed)
    total = 0.0
    for _subset in range(num_subsets):
        x = gen[rng.choice(gen.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        k_xx = (x @ x.T / d + 1) ** 3
        k_yy = (y @ y.T / d + 1) ** 3
        k_xy = (x @ y.T / d + 1) ** 3
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        total += within - 2 * k_xy.sum() / (m * m)
    return float(total / num_subsets)


def compute_kid(opts, max_real, num_gen, num_subsets, max_subset_size):
    detector_kwargs = dict(return_features=True)  # pool3 features, 2048-d.
    real_features = metric_utils.compute_feature_stats_for_dataset(opts=opts, detector_url=metric_utils.INCEPTION_URL,
        detector_kwargs=detector_kwargs, capture_all=True, max_items=max_real).get_all()
    gen_features = metric_utils.compute_feature_stats_for_generator(opts=opts, detector_url=metric_utils.INCEPTION_URL,
        detector_kwargs=detector_kwargs, capture_all=True, max_items=num_gen).get_all()
    if opts.rank != 0:
        return float('nan')
    return kid_from_features(real_features, gen_features, num_subsets=num_subsets, max_subset_size=max_subset_size)

#----------------------------------------------------------------------------
