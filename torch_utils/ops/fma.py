"""Fused multiply-add a * b + c, with a backward that reduces broadcast gradients correctly."""

import torch

#----------------------------------------------------------------------------

def fma(a, b, c):
    """a * b + c with torch broadcasting; addcmul does it in one pass over memory."""
    return _FusedMultiplyAdd.apply(a, b, c)

#----------------------------------------------------------------------------

class _FusedMultiplyAdd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, c): # pylint: disable=arguments-differ
        out = torch.addcmul(c, a, b)
        ctx.save_for_backward(a, b)
        ctx.c_shape = c.shape
        return out

    @staticmethod
    def backward(ctx, dout): # pylint: disable=arguments-differ
        a, b = ctx.saved_tensors
        da = db = dc = None
        # Written with differentiable torch ops, so higher-order gradients work too.
        if ctx.needs_input_grad[0]:
            da = _unbroadcast(dout * b, a.shape)
        if ctx.needs_input_grad[1]:
            db = _unbroadcast(dout * a, b.shape)
        if ctx.needs_input_grad[2]:
            dc = _unbroadcast(dout, ctx.c_shape)
        return da, db, dc

#----------------------------------------------------------------------------

def _unbroadcast(x, shape):
    """Sum x over the dimensions that broadcasting expanded, so it gets the given shape."""
    extra = x.ndim - len(shape)
    if extra < 0:
        raise ValueError(f'cannot reduce a gradient of shape {tuple(x.shape)} to shape {tuple(shape)}')
    dims = list(range(extra)) + [extra + i for i, size in enumerate(shape) if size == 1 and x.shape[extra + i] != 1]
    if dims:
        x = x.sum(dim=dims, keepdim=True)
    return x.reshape(shape)

#----------------------------------------------------------------------------
