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
    mu_real, sigma_real = metric_utils.compute_feature_stats_for_dataset(opts=opts, detector_url=metric_utils.INCEPTION_URL,
        detector_kwargs=detector_kwargs, capture_mean_cov=True, max_items=max_real).get_mean_cov()
    mu_gen, sigma_gen = metric_utils.compute_feature_stats_for_generator(opts=opts, detector_url=metric_utils.INCEPTION_URL,
        detector_kwargs=detector_kwargs, capture_mean_cov=True, max_items=num_gen).get_mean_cov()
    if opts.rank != 0:
        return float('nan')  # The leader reports; the others skip the costly square root.
    return fid_from_mean_cov(mu_real, sigma_real, mu_gen, sigma_gen)

#----------------------------------------------------------------------------
