"""Memorisation check: the nearest training images of generated images in LPIPS space, and a score.

LPIPS comes from NVIDIA's VGG16 TorchScript (vgg16.pt, the detector of precision/recall and PPL): with
return_lpips=True it returns one embedding per image whose squared Euclidean distance to another
image's embedding is the LPIPS distance of the two images (StyleGAN2-ADA's PPL uses it that way).

The score: r_i is the distance from training image i to its nearest OTHER training image (its own
mirror, with mirror=True, does not count); tau is the ceil(q * M)-th smallest of r_1..r_M; the score
is the share of generated images whose nearest training image lies at distance <= tau. Copies of
training images score 1, noise 0, and new samples of the training distribution about q (a held-out
real image is to the training set what a training image is to the others).
"""

import math

import numpy as np
import torch

import dnnlib

#----------------------------------------------------------------------------

MAX_LPIPS_RES = 256     # Larger images are average-pooled by an integer factor, as StyleGAN2-ADA's PPL does.
DEFAULT_QUANTILE = 0.1  # q of the score: the 10% closest training pairs set the threshold.


def lpips_input(images):
    """uint8 NCHW images (1 or 3 channels) -> float32 in [0, 255], 3 channels, at most ~256 px high."""
    if images.ndim != 4 or images.shape[1] not in (1, 3) or images.dtype != torch.uint8:
        raise ValueError(f'images must be uint8 [N, 1 or 3, H, W], got {images.dtype} {list(images.shape)}')
    x = images.to(torch.float32)
    factor = x.shape[2] // MAX_LPIPS_RES
    if factor > 1:
        x = torch.nn.functional.avg_pool2d(x, kernel_size=factor)
    return x.repeat([1, 3, 1, 1]) if x.shape[1] == 1 else x


@torch.no_grad()
def lpips_embeddings(vgg16, images, device='cpu', batch_size=16):
    """[N, D] float32 embeddings (on device) of uint8 NCHW images; squared distance between rows = LPIPS."""
    out = None  # Filled in place: at 256 px one row is ~8M floats, and a concatenation would double the peak.
    for start in range(0, images.shape[0], batch_size):
        batch = lpips_input(images[start : start + batch_size].to(device))
        emb = vgg16(batch, resize_images=False, return_lpips=True).flatten(1).to(torch.float32)
        if out is None:
            out = torch.empty([images.shape[0], emb.shape[1]], dtype=torch.float32, device=emb.device)
        out[start : start + emb.shape[0]] = emb
    return out

#----------------------------------------------------------------------------


def squared_distances(query, reference):
    """[Q, R] float64 (CPU) squared Euclidean distances between the rows of query [Q, D] and reference [R, D].

    |a|^2 + |b|^2 - 2ab in the inputs' dtype: centre features that lie far from the origin first."""
    if query.ndim != 2 or reference.ndim != 2 or query.shape[1] != reference.shape[1]:
        raise ValueError(f'features must be [N, D] of one width, got {list(query.shape)} and {list(reference.shape)}')
    dist = query.square().sum(dim=1, keepdim=True) + reference.square().sum(dim=1)[None] - 2 * (query @ reference.T)
    return dist.clamp(min=0).to(device='cpu', dtype=torch.float64)


def nearest_neighbours(distances, k):
    """The k smallest distances of each row [Q, R], ascending, and their column indices, both [Q, k]."""
    if not 1 <= k <= distances.shape[1]:
        raise ValueError(f'k={k} nearest neighbours asked for, but there are {distances.shape[1]} reference images')
    values, indices = distances.topk(k, dim=1, largest=False, sorted=True)
    return values, indices


def nearest_other_distances(distances, groups):
    """Distance from each row item to the nearest column item of another group; distances is [R, R] within
    one set, groups [R] says which items are copies of one image (an image and its mirror)."""
    groups = torch.as_tensor(groups)
    same = groups[:, None] == groups[None, :]
    if bool(same.all(dim=1).any()):
        raise ValueError('need at least two different training images')
    return distances.masked_fill(same, math.inf).min(dim=1).values

#----------------------------------------------------------------------------


def score_threshold(train_nearest_other, quantile=DEFAULT_QUANTILE):
    """tau: the ceil(quantile * M)-th smallest of the M nearest-other-training-image distances."""
    _check_quantile(quantile)
    values = np.sort(np.asarray(train_nearest_other, dtype=np.float64))
    return float(values[max(math.ceil(quantile * len(values)), 1) - 1])


def memorisation_score(gen_nearest, train_nearest_other, quantile=DEFAULT_QUANTILE):
    """Score (share of generated images with nearest training distance <= tau) and the numbers behind it."""
    gen_nearest = np.asarray(gen_nearest, dtype=np.float64)
    if gen_nearest.size == 0:
        raise ValueError('no generated images to score')
    threshold = score_threshold(train_nearest_other, quantile=quantile)
    return dnnlib.EasyDict(score=float((gen_nearest <= threshold).mean()), threshold=threshold, quantile=float(quantile),
        median_nearest=float(np.median(gen_nearest)), median_train_nearest_other=float(np.median(train_nearest_other)),
        num_generated=int(gen_nearest.size), num_train=len(train_nearest_other))


def score_definition(result):
    """One line: the score, what it counts, and how to read it."""
    rank = max(math.ceil(result.quantile * result.num_train), 1)
    return (f'memorisation score {result.score:.3f} = share of the {result.num_generated} generated images whose '
        f'nearest training image lies at LPIPS <= {result.threshold:.4f}, the {_ordinal(rank)} smallest of the {result.num_train} '
        f'training images\' distances to their nearest other training image (quantile {result.quantile:g}); '
        f'copies score ~1, new samples of the data ~{result.quantile:g}, noise 0')

#----------------------------------------------------------------------------


def reference_images(training, mirror=False):
    """The images to search: the training images, then (mirror=True) their x-flips; and each one's source index."""
    groups = torch.arange(training.shape[0])
    if not mirror:
        return training, groups
    return torch.cat([training, training.flip(3)]), torch.cat([groups, groups])


def check_memorisation(vgg16, generated, training, k=3, quantile=DEFAULT_QUANTILE, mirror=False, device='cpu', batch_size=16):
    """Nearest training images of each generated image in LPIPS space, and the score.

    generated [N, C, H, W] and training [M, C, H, W] are uint8 images of one size. Reference index j < M is
    training image j, j >= M (mirror=True) the x-flip of training image j - M. Returns an EasyDict with the
    score's fields and distances / indices [N, k], train_nearest_other [M].
    """
    if generated.ndim != 4 or training.ndim != 4 or generated.shape[2:] != training.shape[2:]:
        raise ValueError(f'generated images are {_size(generated)} but the training images are {_size(training)}; '
            'both must have the same width and height')
    if generated.shape[0] == 0 or training.shape[0] < 2:
        raise ValueError(f'need generated images and at least two training images, got {generated.shape[0]} and {training.shape[0]}')
    _check_quantile(quantile)  # Before the expensive part.
    reference, groups = reference_images(training, mirror=mirror)
    if not 1 <= k <= reference.shape[0]:
        raise ValueError(f'k={k}: there are only {reference.shape[0]} reference images')
    ref_features = lpips_embeddings(vgg16, reference, device=device, batch_size=batch_size)
    center = ref_features.mean(dim=0, keepdim=True)
    ref_features -= center  # In place: distances do not change, and float32 cancels less near the origin.
    train_nearest_other = nearest_other_distances(squared_distances(ref_features, ref_features), groups)[:training.shape[0]]
    gen_dist = torch.cat([squared_distances(lpips_embeddings(vgg16, batch, device=device, batch_size=batch_size) - center,
        ref_features) for batch in generated.split(batch_size)])  # Batch by batch: a row is ~8M floats at 256 px.
    distances, indices = nearest_neighbours(gen_dist, k)
    result = memorisation_score(distances[:, 0].numpy(), train_nearest_other.numpy(), quantile=quantile)
    result.update(distances=distances, indices=indices, train_nearest_other=train_nearest_other, mirror=bool(mirror), k=k,
        num_near_duplicates=near_duplicates(train_nearest_other.numpy()))
    return result


def near_duplicates(train_nearest_other, rel_tol=1e-3):
    """How many training images have another one (not their own mirror) at almost no distance."""
    values = np.asarray(train_nearest_other, dtype=np.float64)
    return int((values <= rel_tol * np.median(values)).sum())


def _check_quantile(quantile):
    if not 0 < quantile <= 1:
        raise ValueError(f'quantile must lie in (0, 1], got {quantile}')


def _ordinal(n):
    return f'{n}{"th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")}'


def _size(images):
    return f'{images.shape[-1]}x{images.shape[-2]}' if images.ndim == 4 else f'of shape {list(images.shape)}'

#----------------------------------------------------------------------------
