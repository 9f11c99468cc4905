"""Inception Score (Salimans et al. 2016): exp E_x KL(p(y|x) || p(y)), mean and std over splits."""

import numpy as np
import scipy.special

from . import metric_utils

#----------------------------------------------------------------------------


def is_from_probs(probs, num_splits=10):
    """Class probabilities [N, K] -> (mean, std) of the score over num_splits consecutive splits."""
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2 or probs.shape[0] < num_splits:
        raise ValueError(f'need [N, K] probabilities with N >= num_splits={num_splits}, got shape {list(probs.shape)}')
    scores = []
    for i in range(num_splits):
        part = probs[i * len(probs) // num_splits : (i + 1) * len(probs) // num_splits]
        marginal = part.mean(axis=0, keepdims=True)
        kl = scipy.special.xlogy(part, part) - scipy.special.xlogy(part, marginal)  # 0 log 0 = 0.
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def compute_is(opts, num_gen, num_splits):
    # Softmax without the output bias, as the original TensorFlow implementation computes it.
    detector_kwargs = dict(no_output_bias=True)
    probs = metric_utils.compute_feature_stats_for_generator(opts=opts, detector_url=metric_utils.INCEPTION_URL,
        detector_kwargs=detector_kwargs, capture_all=True, max_items=num_gen).get_all()
    if opts.rank != 0:
        return float('nan'), float('nan')
    return is_from_probs(probs, num_splits=num_splits)

#----------------------------------------------------------------------------
