"""Frechet Inception Distance (Heusel et al. 2017) on Inception pool3 features."""

import numpy as np
import scipy.linalg

from . import metric_utils

#----------------------------------------------------------------------------


def fid_from_mean_cov(mu1, sigma1, mu2, sigma2):
    """||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)), in float64."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f'mismatched statistics: mu {mu1.shape} / {mu2.shape}, sigma {sigma1.shape} / {sigma2.shape}')
    # Numerical noise gives the square root a tiny imaginary part; the real part is the answer.
    root = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    return float(np.square(mu1 - mu2).sum() + np.trace(sigma1 + sigma2 - 2 * root))


def compute_fid(opts, max_real, num_gen):
    detector_kwargs = dict(return_features=True)  # pool3 features, 2048-d.
    mu_real, sigma_real = _reference_mean_cov(opts, max_real=max_real, detector_kwargs=detector_kwargs)
    mu_gen, sigma_gen = metric_utils.compute_feature_stats_for_generator(opts=opts, detector_url=metric_utils.INCEPTION_URL,
        detector_kwargs=detector_kwargs, capture_mean_cov=True, max_items=num_gen).get_mean_cov()
    if opts.rank != 0:
        return float('nan')  # The leader reports; the others skip the costly square root.
    if opts.ref_stats is not None and mu_real.shape != mu_gen.shape:
        raise ValueError(f'the reference statistics {opts.ref_stats} have {mu_real.shape[0]} features, the detector gives '
            f'{mu_gen.shape[0]}: they come from another detector')
    return fid_from_mean_cov(mu_real, sigma_real, mu_gen, sigma_gen)


def _reference_mean_cov(opts, max_real, detector_kwargs):
    """Mean and covariance of the reference features: precomputed (opts.ref_stats) or from the dataset."""
    if opts.ref_stats is None:
        return metric_utils.compute_feature_stats_for_dataset(opts=opts, detector_url=metric_utils.INCEPTION_URL,
            detector_kwargs=detector_kwargs, capture_mean_cov=True, max_items=max_real).get_mean_cov()
    if max_real is not None:
        raise ValueError(f'precomputed reference statistics cover every reference image; this FID uses {max_real}')
    return metric_utils.load_ref_stats(opts.ref_stats)


def compute_ref_stats(opts):
    """Mean and covariance (float64, 1/N) of every reference image's pool3 features, x-flips only with opts.mirror:
    the reference side of the '_full' FIDs, shared with them through the cache. Returns (mu, sigma, number of images)."""
    opts.use_full_dataset()
    stats = metric_utils.compute_feature_stats_for_dataset(opts=opts, detector_url=metric_utils.INCEPTION_URL,
        detector_kwargs=dict(return_features=True), capture_mean_cov=True, max_items=None)
    if stats.num_items < 2:
        raise ValueError(f'reference statistics need at least 2 images, {opts.dataset_kwargs.path} has {stats.num_items}')
    mu, sigma = stats.get_mean_cov()
    return mu, sigma, stats.num_items

#----------------------------------------------------------------------------
