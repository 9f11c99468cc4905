"""Improved precision and recall (Kynkaanniemi et al. 2019): k-NN manifolds of VGG16 features."""

import math

import torch

from . import metric_utils

#----------------------------------------------------------------------------


def pairwise_distances(rows, cols, col_batch_size, num_gpus=1, rank=0):
    """Euclidean distances [R, C]; column batches are shared out over the ranks and gathered back."""
    col_batches = list(cols.split(col_batch_size))
    num_rounds = math.ceil(len(col_batches) / num_gpus)
    parts = []
    for r in range(num_rounds):
        j = r * num_gpus + rank
        batch = col_batches[j] if j < len(col_batches) else cols[:0]
        dist = torch.zeros([rows.shape[0], col_batch_size], dtype=rows.dtype, device=rows.device)
        dist[:, :batch.shape[0]] = torch.cdist(rows[None], batch[None])[0] if batch.shape[0] else 0
        gathered = [dist]
        if num_gpus > 1:
            gathered = [torch.empty_like(dist) for _ in range(num_gpus)]
            torch.distributed.all_gather(gathered, dist)
        for k, part in enumerate(gathered):
            if r * num_gpus + k < len(col_batches):
                parts.append(part[:, :col_batches[r * num_gpus + k].shape[0]])
    return torch.cat(parts, dim=1)


def precision_recall_from_features(real_features, gen_features, nhood_size=3, row_batch_size=10000,
    col_batch_size=10000, num_gpus=1, rank=0):
    """Precision: share of generated points inside the real manifold; recall: real points inside the generated one.

    A manifold is the union of balls around its points, each with the radius of the point's
    nhood_size-th nearest neighbour in the same set (the point itself not counted).
    """
    if real_features.ndim != 2 or gen_features.ndim != 2 or real_features.shape[1] != gen_features.shape[1]:
        raise ValueError(f'features must be [N, d] of one width, got {list(real_features.shape)} and {list(gen_features.shape)}')
    results = dict()
    for name, manifold, probes in [('precision', real_features, gen_features), ('recall', gen_features, real_features)]:
        if manifold.shape[0] <= nhood_size:
            raise ValueError(f'{name}: the manifold needs more than nhood_size={nhood_size} points, got {manifold.shape[0]}')
        radii = torch.cat([pairwise_distances(batch, manifold, col_batch_size, num_gpus, rank).kthvalue(nhood_size + 1, dim=1).values
            for batch in manifold.split(row_batch_size)])
        inside = torch.cat([(pairwise_distances(batch, manifold, col_batch_size, num_gpus, rank) <= radii[None]).any(dim=1)
            for batch in probes.split(row_batch_size)])
        results[name] = float(inside.to(torch.float64).mean())
    return results['precision'], results['recall']


def compute_pr(opts, max_real, num_gen, nhood_size, row_batch_size, col_batch_size):
    detector_kwargs = dict(return_features=True)  # VGG16 fc2 features, as in the paper and StyleGAN2-ADA.
    real_features = metric_utils.compute_feature_stats_for_dataset(opts=opts, detector_url=metric_utils.VGG16_URL,
        detector_kwargs=detector_kwargs, capture_all=True, max_items=max_real).get_all_torch().to(opts.device)
    gen_features = metric_utils.compute_feature_stats_for_generator(opts=opts, detector_url=metric_utils.VGG16_URL,
        detector_kwargs=detector_kwargs, capture_all=True, max_items=num_gen).get_all_torch().to(opts.device)
    return precision_recall_from_features(real_features, gen_features, nhood_size=nhood_size, row_batch_size=row_batch_size,
        col_batch_size=col_batch_size, num_gpus=opts.num_gpus, rank=opts.rank)

#----------------------------------------------------------------------------
