"""Fused bias + activation + gain + clamp: y = clamp(act(x + b) * gain, -clamp, clamp).

impl='ref' is plain PyTorch (any device, any derivative order). impl='cuda' uses the CUDA
plugin for CUDA tensors (first and second derivatives); CPU tensors, and any run where the
plugin cannot be built, take the reference path. alpha is the slope of lrelu; the other
activations ignore it.
"""

import os

import numpy as np
import torch
import torch.nn.functional as F

import dnnlib

#----------------------------------------------------------------------------
# Activation table. cuda_idx is the kernel's activation code (keep in sync with bias_act.h).
# ref says which tensor the CUDA backward differentiates from: 'y' (the output, so the input need
# not be kept in memory) or 'x' (the input, for activations that cannot be inverted from y).
# has_2nd_grad: whether the derivative of the activation is itself non-constant.

_SELU_SCALE = 1.0507009873554804934193349852946
_SELU_ALPHA = 1.6732632423543772848170429916717

activation_funcs = {
    'linear':   dnnlib.EasyDict(func=lambda x, **_: x,                              def_alpha=0,   def_gain=1,          cuda_idx=1, ref='y', has_2nd_grad=False),
    'relu':     dnnlib.EasyDict(func=lambda x, **_: F.relu(x),                      def_alpha=0,   def_gain=np.sqrt(2), cuda_idx=2, ref='y', has_2nd_grad=False),
    'lrelu':    dnnlib.EasyDict(func=lambda x, alpha, **_: F.leaky_relu(x, alpha), def_alpha=0.2, def_gain=np.sqrt(2), cuda_idx=3, ref='y', has_2nd_grad=False),
    'tanh':     dnnlib.EasyDict(func=lambda x, **_: torch.tanh(x),                  def_alpha=0,   def_gain=1,          cuda_idx=4, ref='y', has_2nd_grad=True),
    'sigmoid':  dnnlib.EasyDict(func=lambda x, **_: torch.sigmoid(x),               def_alpha=0,   def_gain=1,          cuda_idx=5, ref='y', has_2nd_grad=True),
    'elu':      dnnlib.EasyDict(func=lambda x, **_: F.elu(x),                       def_alpha=0,   def_gain=1,          cuda_idx=6, ref='y', has_2nd_grad=True),
    'selu':     dnnlib.EasyDict(func=lambda x, **_: F.selu(x),                      def_alpha=0,   def_gain=1,          cuda_idx=7, ref='y', has_2nd_grad=True),
    'softplus': dnnlib.EasyDict(func=lambda x, **_: F.softplus(x),                  def_alpha=0,   def_gain=1,          cuda_idx=8, ref='y', has_2nd_grad=True),
    'swish':    dnnlib.EasyDict(func=lambda x, **_: torch.sigmoid(x) * x,           def_alpha=0,   def_gain=1,          cuda_idx=9, ref='x', has_2nd_grad=True),
}

#----------------------------------------------------------------------------
# Plugin loading, once per process.

_plugin = None
_init_attempted = False

def _init():
    """Build/load the CUDA plugin on first call; True when it is usable."""
    global _plugin, _init_attempted
    if not _init_attempted:
        _init_attempted = True
        from .. import custom_ops # Imported lazily: only CUDA tensors need it.
        _plugin = custom_ops.get_plugin('bias_act_plugin', sources=['bias_act.cpp', 'bias_act.cu'],
            headers=['bias_act.h'], source_dir=os.path.dirname(__file__), extra_cuda_cflags=['--use_fast_math'])
    return _plugin is not None

#----------------------------------------------------------------------------

def bias_act(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None, impl='cuda'):
    r"""Fused bias and activation.

    Args:
        x:      Input tensor of any shape.
        b:      Bias vector or None; added along dimension `dim`, so b.shape[0] == x.shape[dim].
        dim:    The dimension of x that b runs along.
        act:    One of the keys of `activation_funcs`.
        alpha:  Slope of 'lrelu' (default 0.2); ignored by the other activations.
        gain:   Output scale; None = the activation's default (sqrt(2) for relu/lrelu, else 1).
        clamp:  Clamp the output to [-clamp, clamp]; None = no clamping.
        impl:   'cuda' (the kernel for CUDA tensors when the plugin builds) or 'ref'.

    Returns:
        Tensor of the same shape and dtype as x.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f'bias_act: x must be a torch.Tensor, got {type(x).__name__}')
    if impl not in ('ref', 'cuda'):
        raise ValueError(f"bias_act: impl must be 'ref' or 'cuda', got {impl!r}")
    if act not in activation_funcs:
        raise ValueError(f'bias_act: unknown activation {act!r}; choose from {sorted(activation_funcs)}')
    if clamp is not None and clamp < 0:
        raise ValueError(f'bias_act: clamp must be None or >= 0, got {clamp}')
    if b is not None:
        if b.ndim != 1 or not 0 <= dim < x.ndim or b.shape[0] != x.shape[dim]:
            raise ValueError(f'bias_act: bias of shape {tuple(b.shape)} does not fit dim={dim} of x with shape {tuple(x.shape)}')
    if impl == 'cuda' and x.device.type == 'cuda' and _init():
        return _bias_act_cuda(dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp).apply(x, b)
    return _bias_act_ref(x=x, b=b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)

#----------------------------------------------------------------------------

def _resolve_params(act, alpha, gain, clamp):
    spec = activation_funcs[act]
    alpha = float(alpha if alpha is not None else spec.def_alpha)
    gain = float(gain if gain is not None else spec.def_gain)
    clamp = float(clamp if clamp is not None else -1)
    return spec, alpha, gain, clamp

def _bias_act_ref(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None):
    """Plain PyTorch: differentiable to any order through autograd."""
    spec, alpha, gain, clamp = _resolve_params(act, alpha, gain, clamp)
    if b is not None:
        x = x + b.to(x.dtype).reshape([-1 if i == dim else 1 for i in range(x.ndim)]) # Output keeps x's dtype.
    x = spec.func(x, alpha=alpha)
    if gain != 1:
        x = x * gain
    if clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x

#----------------------------------------------------------------------------
# CUDA path. The kernel computes, elementwise with the bias added along `dim` for x-type refs:
#   mode 0: y = clamp(gain * f(x + b))
#   mode 1: g * m(ref), m = gain * f'(.) * [not clamped]   (the backward multiplier)
#   mode 2: g * dm/dref                                     (needed by the double backward)
# When ref is y, m is written as a function of y, so dm/dref chains through y's own backward.

_cuda_cache = dict()

def _bias_act_cuda(dim=1, act='linear', alpha=None, gain=None, clamp=None):
    """The autograd Function for one set of parameters (cached: built once, reused every call)."""
    spec, alpha, gain, clamp = _resolve_params(act, alpha, gain, clamp)
    key = (dim, act, alpha, gain, clamp)
    if key in _cuda_cache:
        return _cuda_cache[key]

    # y is invertible to f(x) only for a positive gain (and a non-negative lrelu slope).
    ref_is_y = spec.ref == 'y' and gain > 0 and alpha >= 0
    empty = lambda t: torch.empty([0], dtype=t.dtype, device=t.device)

    def kernel(mode, g, ref, b):
        mf = _memory_format(ref)
        g = empty(ref) if g is None else g.contiguous(memory_format=mf)
        b = empty(ref) if b is None else b.to(ref.dtype).contiguous()
        return _plugin.bias_act(g, ref.contiguous(memory_format=mf), b, mode, spec.cuda_idx, dim,
            ref_is_y and mode != 0, alpha, gain, clamp)

    def reduce_bias(dx, b):
        return dx.sum([i for i in range(dx.ndim) if i != dim]) if b is not None else None

    class BiasActCuda(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, b): # pylint: disable=arguments-differ
            x = x.contiguous(memory_format=_memory_format(x))
            y = kernel(0, None, x, b)
            saved_b = b if b is not None else empty(x)
            ctx.has_bias = b is not None
            ctx.save_for_backward(y if ref_is_y else x, saved_b)
            return y

        @staticmethod
        def backward(ctx, dy): # pylint: disable=arguments-differ
            ref, b = ctx.saved_tensors
            b = b if ctx.has_bias else None
            dx = BiasActCudaGrad.apply(dy, ref, b)
            return dx, reduce_bias(dx, b) if ctx.needs_input_grad[1] else None

    class BiasActCudaGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, dy, ref, b): # pylint: disable=arguments-differ
            ctx.has_bias = b is not None
            ctx.save_for_backward(dy, ref, b if b is not None else empty(ref))
            return kernel(1, dy, ref, b)

        @staticmethod
        def backward(ctx, d_dx): # pylint: disable=arguments-differ
            dy, ref, b = ctx.saved_tensors
            b = b if ctx.has_bias else None
            d_dy = d_ref = d_b = None
            if ctx.needs_input_grad[0]:
                d_dy = BiasActCudaGrad.apply(d_dx, ref, b)
            if spec.has_2nd_grad and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
                d_ref = kernel(2, d_dx * dy, ref, b)
                if not ref_is_y and ctx.needs_input_grad[2]:
                    d_b = reduce_bias(d_ref, b)
            return d_dy, d_ref, d_b

    _cuda_cache[key] = BiasActCuda
    return BiasActCuda

def _memory_format(x):
    """Keep channels-last tensors channels-last; everything else row-major."""
    if x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format

#----------------------------------------------------------------------------
