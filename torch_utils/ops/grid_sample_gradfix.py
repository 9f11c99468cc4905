"""Bilinear grid_sample (zeros padding, align_corners=False) with second-order gradients.

Used by the ADA augmentation pipe, whose output feeds D inside the R1 penalty, so gradients must
flow twice through it. The native op supports that w.r.t. input and grid (tests/test_gradfix.py checks it);
this module keeps the StyleGAN2-ADA call signature and the `enabled` flag that its code sets.
"""

import torch
import torch.nn.functional as F

enabled = False  # Kept for StyleGAN2-ADA code that sets it; the native op is exact either way.


def grid_sample(input, grid):
    """input [N, C, H, W], grid [N, H_out, W_out, 2] in [-1, 1] (x, y) -> [N, C, H_out, W_out]."""
    if not (isinstance(input, torch.Tensor) and input.ndim == 4):
        raise ValueError(f'input must be a 4D [N, C, H, W] tensor, got shape {tuple(getattr(input, "shape", ()))}')
    if not (isinstance(grid, torch.Tensor) and grid.ndim == 4 and grid.shape[-1] == 2):
        raise ValueError(f'grid must be a [N, H_out, W_out, 2] tensor, got shape {tuple(getattr(grid, "shape", ()))}')
    return F.grid_sample(input=input, grid=grid, mode='bilinear', padding_mode='zeros', align_corners=False)
