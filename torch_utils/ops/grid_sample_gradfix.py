"""Bilinear grid_sample (zeros padding, align_corners=False) with second-order gradients.

Used by the ADA augmentation pipe, whose output feeds D inside the R1 penalty, so gradients must
flow twice through it. torch 2.14's native op has that double backward; torch 2.11's does not
(`derivative for aten::grid_sampler_2d_backward is not implemented`). So when only the input needs
a gradient (the grid comes from the augmentation matrices), the op runs as a pair of autograd
Functions: sampling is linear in the input, y = A(grid) x, its backward is the adjoint A^T, and the
adjoint's own backward is sampling again. A grid that requires grad takes the native op (first
order everywhere; second order where torch has it).
The module keeps the StyleGAN2-ADA call signature and the `enabled` flag that its code sets.
"""

import torch
import torch.nn.functional as F

enabled = False  # Kept for StyleGAN2-ADA code that sets it; the results are exact either way.


def grid_sample(input, grid):
    """input [N, C, H, W], grid [N, H_out, W_out, 2] in [-1, 1] (x, y) -> [N, C, H_out, W_out]."""
    if not (isinstance(input, torch.Tensor) and input.ndim == 4):
        raise ValueError(f'input must be a 4D [N, C, H, W] tensor, got shape {tuple(getattr(input, "shape", ()))}')
    if not (isinstance(grid, torch.Tensor) and grid.ndim == 4 and grid.shape[-1] == 2):
        raise ValueError(f'grid must be a [N, H_out, W_out, 2] tensor, got shape {tuple(getattr(grid, "shape", ()))}')
    if grid.requires_grad:
        return _sample(input, grid)
    return _GridSample.apply(input, grid)


def _sample(input, grid):
    return F.grid_sample(input=input, grid=grid, mode='bilinear', padding_mode='zeros', align_corners=False)


class _GridSample(torch.autograd.Function):
    """y = A(grid) x; the gradient w.r.t. x is the adjoint applied to dy."""

    @staticmethod
    def forward(ctx, input, grid):
        ctx.save_for_backward(input, grid)
        return _sample(input, grid)

    @staticmethod
    def backward(ctx, grad_output):
        input, grid = ctx.saved_tensors
        grad_input = _GridSampleAdjoint.apply(grad_output, input, grid) if ctx.needs_input_grad[0] else None
        return grad_input, None


class _GridSampleAdjoint(torch.autograd.Function):
    """dx = A(grid)^T dy, through aten's backward kernel; its own gradient w.r.t. dy is A(grid)."""

    @staticmethod
    def forward(ctx, grad_output, input, grid):
        ctx.save_for_backward(grid)
        # interpolation 0 = bilinear, padding 0 = zeros; output_mask: the input's gradient only.
        grad_input, _ = torch.ops.aten.grid_sampler_2d_backward(grad_output, input, grid, 0, 0, False, [True, False])
        return grad_input

    @staticmethod
    def backward(ctx, grad2):
        grid, = ctx.saved_tensors
        return (_GridSample.apply(grad2, grid) if ctx.needs_input_grad[0] else None), None, None
