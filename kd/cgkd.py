"""Correlated generative knowledge distillation (CGKD) of KD-DLGAN, and the pairwise diversity term.

Images are described by their correlation with K text embeddings (B x K matrices); D's student
features must reproduce the teacher's correlation matrix.
"""

import torch

from kd.agkd import DISTANCES  # One --kd-dist for both terms.

NORMS = ('row', 'matrix')

#----------------------------------------------------------------------------

def correlation(features, text, norm='row', eps=1e-8):
    """[B, d] features x [K, d] text -> [B, K] = features @ text^T, each row divided by its L2 norm
    ('row', authors' code) or the whole matrix by its Frobenius norm ('matrix', paper)."""
    if norm not in NORMS:
        raise ValueError(f'norm must be one of {NORMS}, got {norm!r}')
    if features.ndim != 2 or text.ndim != 2 or features.shape[1] != text.shape[1]:
        raise ValueError(f'expected features [B, d] and text [K, d], got {tuple(features.shape)} and {tuple(text.shape)}')
    corr = features @ text.t()
    if norm == 'row':
        return corr / corr.norm(dim=1, keepdim=True).clamp(min=eps)
    return corr / corr.norm().clamp(min=eps)

def cgkd_loss(teacher_feat, student_feat, text, norm='row', dist='l2'):
    """Sum over entries of (C_T - C_S)^2 ('l2') or |C_T - C_S| ('l1')."""
    if dist not in DISTANCES:
        raise ValueError(f'dist must be one of {DISTANCES}, got {dist!r}')
    diff = correlation(teacher_feat, text, norm) - correlation(student_feat, text, norm)
    return diff.square().sum() if dist == 'l2' else diff.abs().sum()

def diversity_loss(corr, eps=1e-8):
    """Mean cosine similarity over ordered pairs of DIFFERENT rows of corr [B, K] (to be minimised).
    Fewer than two rows have no pairs: returns a zero that stays in the graph."""
    if corr.ndim != 2:
        raise ValueError(f'expected a [B, K] matrix, got shape {tuple(corr.shape)}')
    num = corr.shape[0]
    if num < 2:
        return corr.sum() * 0
    rows = corr / corr.norm(dim=1, keepdim=True).clamp(min=eps)
    sim = rows @ rows.t()
    return (sim.sum() - sim.diagonal().sum()) / (num * (num - 1))

#----------------------------------------------------------------------------
