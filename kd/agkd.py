"""Aggregated generative knowledge distillation (AGKD) of KD-DLGAN.

D's student features of real and generated images regress the frozen teacher's features of the
same images (paired terms) and, gated by g, of the images of the other domain (cross terms).
"""

import math
import random

import torch

DISTANCES = ('l2', 'l1')

#----------------------------------------------------------------------------

def per_sample_distance(a, b, dist='l2'):
    """[N, d] x [N, d] -> [N]: the L2 norm (authors' code) or L1 norm (paper) of a - b per row."""
    if dist not in DISTANCES:
        raise ValueError(f'dist must be one of {DISTANCES}, got {dist!r}')
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f'expected two [N, d] tensors of equal shape, got {tuple(a.shape)} and {tuple(b.shape)}')
    diff = a - b
    # vector_norm has a zero subgradient at a == b, where sqrt(sum(diff^2)) would give NaN.
    return torch.linalg.vector_norm(diff, ord=(2 if dist == 'l2' else 1), dim=1)

def agkd_loss(teacher_real, teacher_fake, student_real, student_fake, dist='l2', cross_gate=1.0):
    """Batch mean of dist(I(x), D^f(x)) + dist(I(G(z)), D^f(G(z)))
    + g * [dist(I(x), D^f(G(z))) + dist(I(G(z)), D^f(x))], with g = cross_gate."""
    cross_gate = float(cross_gate)
    if not (math.isfinite(cross_gate) and cross_gate >= 0):
        raise ValueError(f'cross_gate must be a finite number >= 0, got {cross_gate}')
    loss = per_sample_distance(teacher_real, student_real, dist).mean()
    loss = loss + per_sample_distance(teacher_fake, student_fake, dist).mean()
    if cross_gate != 0:  # Skipped, not multiplied by zero: g = 0 steps cost nothing extra.
        cross = per_sample_distance(teacher_real, student_fake, dist).mean()
        cross = cross + per_sample_distance(teacher_fake, student_real, dist).mean()
        loss = loss + cross_gate * cross
    return loss

def sample_cross_gate(p, generator=None):
    """g for one training step: 1.0 with probability p, else 0.0 (the paper's gating; p = 1 is the
    authors' code). `generator` is a torch.Generator or a random.Random; None uses torch's global RNG."""
    p = float(p)
    if not 0 <= p <= 1:
        raise ValueError(f'p must lie in [0, 1], got {p}')
    if p == 1:
        return 1.0
    if p == 0:
        return 0.0
    if isinstance(generator, random.Random):
        u = generator.random()
    else:
        u = float(torch.rand([], generator=generator))
    return 1.0 if u < p else 0.0

#----------------------------------------------------------------------------
