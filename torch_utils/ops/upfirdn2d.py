"""Upsample, FIR-filter and downsample 2D feature maps (upfirdn2d).

upfirdn2d(x) computes, per channel:
  1. upsample by inserting up-1 zeros after every sample,
  2. pad (negative padding crops),
  3. convolve with the FIR filter f (true convolution: f is flipped unless flip_filter),
  4. keep every down-th sample,
  5. multiply by gain.
The reference path uses plain PyTorch ops and supports any order of derivatives. The CUDA path
uses a custom kernel whose backward is again upfirdn2d, so it is differentiable to any order too.
"""

import os

import numpy as np
import torch
import torch.nn.functional as F

_PLUGIN_SPEC = dict(
    module_name='upfirdn2d_plugin',
    sources=['upfirdn2d.cpp', 'upfirdn2d.cu'],
    headers=['upfirdn2d.h'],
    source_dir=os.path.dirname(__file__),
    extra_cuda_cflags=['--use_fast_math'],
)
_plugin = None
_init_attempted = False


def _init():
    """Build and load the CUDA plugin once per process. Returns True when it is usable."""
    global _plugin, _init_attempted
    if not _init_attempted:
        _init_attempted = True
        from .. import custom_ops  # Imported lazily: only CUDA tensors need it.
        _plugin = custom_ops.get_plugin(**_PLUGIN_SPEC)
    return _plugin is not None


def _parse_scaling(scaling, name):
    if isinstance(scaling, int):
        scaling = [scaling, scaling]
    if not (isinstance(scaling, (list, tuple)) and len(scaling) == 2 and all(isinstance(s, int) for s in scaling)):
        raise ValueError(f'{name} must be an int or a pair of ints [x, y], got {scaling!r}')
    if min(scaling) < 1:
        raise ValueError(f'{name} must be >= 1, got {scaling!r}')
    return list(scaling)


def _parse_padding(padding):
    if isinstance(padding, int):
        padding = [padding, padding]
    if not (isinstance(padding, (list, tuple)) and len(padding) in (2, 4) and all(isinstance(p, int) for p in padding)):
        raise ValueError(f'padding must be an int, [x, y] or [x0, x1, y0, y1] ints, got {padding!r}')
    if len(padding) == 2:
        padx, pady = padding
        padding = [padx, padx, pady, pady]
    return list(padding)


def _get_filter_size(f):
    """Return (width, height) of a 1D (separable) or 2D filter; None means the 1x1 identity."""
    if f is None:
        return 1, 1
    if not (isinstance(f, torch.Tensor) and f.ndim in (1, 2)):
        raise ValueError('filter must be None or a 1D/2D tensor (see setup_filter)')
    return f.shape[-1], f.shape[0]


def _check_inputs(x, f):
    if not (isinstance(x, torch.Tensor) and x.ndim == 4):
        raise ValueError(f'x must be a 4D [N, C, H, W] tensor, got {type(x).__name__} '
                         f'with shape {tuple(getattr(x, "shape", ()))}')
    if not x.is_floating_point():
        raise ValueError(f'x must be a floating-point tensor, got {x.dtype}')
    if f is not None:
        _get_filter_size(f)
        if not f.is_floating_point():
            raise ValueError(f'filter must be a floating-point tensor, got {f.dtype}')
        if f.numel() == 0:
            raise ValueError('filter must not be empty')


def _output_size(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1):
    fw, fh = _get_filter_size(f)
    in_h, in_w = x.shape[2], x.shape[3]
    out_w = (in_w * upx + padx0 + padx1 - fw + downx) // downx
    out_h = (in_h * upy + pady0 + pady1 - fh + downy) // downy
    if out_w < 1 or out_h < 1:
        raise ValueError(f'upfirdn2d output would be empty: input {in_h}x{in_w}, filter {fh}x{fw}, '
                         f'up {[upx, upy]}, down {[downx, downy]}, padding {[padx0, padx1, pady0, pady1]}')
    return out_w, out_h


def setup_filter(f, device=torch.device('cpu'), normalize=True, flip_filter=False, gain=1, separable=None):
    """Turn filter taps into the float32 tensor upfirdn2d expects.

    f: None (identity), a scalar, a 1D list/array/tensor of taps, or a 2D one.
    separable: keep a 1D filter 1D (applied as two passes); default: only when it has >= 8 taps.
    Returns a 1D tensor [taps] for separable filters, else a 2D tensor [height, width].
    """
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim == 0:
        f = f[np.newaxis]
    if f.ndim not in (1, 2) or f.numel() == 0:
        raise ValueError(f'filter must be a non-empty 1D or 2D array of taps, got shape {tuple(f.shape)}')
    if separable is None:
        separable = (f.ndim == 1 and f.numel() >= 8)
    if separable and f.ndim != 1:
        raise ValueError('a separable filter must be 1D')
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 1 and gain < 0:
        raise ValueError(f'a separable filter applies sqrt(gain) per pass, so gain must be >= 0, got {gain}')
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)


def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, impl='cuda'):
    """Upsample, pad, FIR-filter and downsample a batch of 2D images.

    x: [N, C, H, W] floating-point tensor. f: filter from setup_filter (1D separable or 2D), or None.
    up, down: int or [x, y]. padding: int, [x, y] or [x0, x1, y0, y1] (applied after upsampling).
    impl: 'cuda' uses the CUDA kernel for CUDA tensors when it builds; 'ref' forces PyTorch ops.
    Returns [N, C, out_H, out_W].
    """
    if impl not in ('cuda', 'ref'):
        raise ValueError(f"impl must be 'cuda' or 'ref', got {impl!r}")
    if impl == 'cuda' and x.device.type == 'cuda' and (f is None or not f.requires_grad) and _init():
        return _upfirdn2d_cuda(up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain).apply(x, f)
    return _upfirdn2d_ref(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)


def _upfirdn2d_ref(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    """Reference implementation with standard PyTorch ops."""
    _check_inputs(x, f)
    upx, upy = _parse_scaling(up, 'up')
    downx, downy = _parse_scaling(down, 'down')
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    _output_size(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1)
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    batch, channels, in_h, in_w = x.shape

    # Zero insertion: each sample becomes a up x up block with the sample at its top-left.
    x = x.reshape([batch, channels, in_h, 1, in_w, 1])
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
    x = x.reshape([batch, channels, in_h * upy, in_w * upx])

    # Pad the positive parts, then crop the negative ones.
    x = F.pad(x, [max(padx0, 0), max(padx1, 0), max(pady0, 0), max(pady1, 0)])
    x = x[:, :, max(-pady0, 0) : x.shape[2] - max(-pady1, 0), max(-padx0, 0) : x.shape[3] - max(-padx1, 0)]

    # conv2d computes correlation, so convolution needs the filter flipped.
    f = f.to(device=x.device, dtype=x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f[np.newaxis, np.newaxis].repeat([channels, 1] + [1] * f.ndim)
    if f.ndim == 4:
        x = F.conv2d(input=x, weight=f * gain, groups=channels)
    else:
        x = F.conv2d(input=x, weight=f.unsqueeze(2) * gain, groups=channels)  # Horizontal pass, with the gain.
        x = F.conv2d(input=x, weight=f.unsqueeze(3), groups=channels)  # Vertical pass.

    return x[:, :, ::downy, ::downx]


_upfirdn2d_cuda_cache = dict()


def _upfirdn2d_cuda(up=1, down=1, padding=0, flip_filter=False, gain=1):
    """Autograd Function class for the CUDA kernel, cached per parameter combination."""
    upx, upy = _parse_scaling(up, 'up')
    downx, downy = _parse_scaling(down, 'down')
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    key = (upx, upy, downx, downy, padx0, padx1, pady0, pady1, bool(flip_filter), float(gain))
    if key in _upfirdn2d_cuda_cache:
        return _upfirdn2d_cuda_cache[key]

    def run_kernel(x, f, fx, fy, px0, px1, py0, py1, g):
        return _plugin.upfirdn2d(x, f, fx[0], fy[0], fx[1], fy[1], px0, px1, py0, py1, bool(flip_filter), float(g))

    class Upfirdn2dCuda(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, f):
            _check_inputs(x, f)
            out_w, out_h = _output_size(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1)
            ctx.save_for_backward(f)
            ctx.in_shape = x.shape
            ctx.out_size = (out_w, out_h)
            if f is None:
                f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
            f = f.to(device=x.device, dtype=torch.float64 if x.dtype == torch.float64 else torch.float32)
            if f.ndim == 2:
                return run_kernel(x, f, (upx, downx), (upy, downy), padx0, padx1, pady0, pady1, gain)
            # Separable: a horizontal pass with the gain, then a vertical pass.
            y = run_kernel(x, f.unsqueeze(0), (upx, downx), (1, 1), padx0, padx1, 0, 0, gain)
            return run_kernel(y, f.unsqueeze(1), (1, 1), (upy, downy), 0, 0, pady0, pady1, 1)

        @staticmethod
        def backward(ctx, dy):
            f, = ctx.saved_tensors
            _, _, in_h, in_w = ctx.in_shape
            out_w, out_h = ctx.out_size
            fw, fh = _get_filter_size(f)
            # The adjoint of upfirdn2d: swap up/down, flip the filter, and pad so the result is the input size.
            grad_padding = [
                fw - padx0 - 1,
                in_w * upx - out_w * downx + padx0 - upx + 1,
                fh - pady0 - 1,
                in_h * upy - out_h * downy + pady0 - upy + 1,
            ]
            dx = None
            if ctx.needs_input_grad[0]:
                dx = _upfirdn2d_cuda(up=[downx, downy], down=[upx, upy], padding=grad_padding,
                                     flip_filter=(not flip_filter), gain=gain).apply(dy, f)
                assert dx.shape == ctx.in_shape
            return dx, None

    _upfirdn2d_cuda_cache[key] = Upfirdn2dCuda
    return Upfirdn2dCuda


def filter2d(x, f, padding=0, flip_filter=False, gain=1, impl='cuda'):
    """Filter with f; the default padding keeps the output the size of the input."""
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [padx0 + fw // 2, padx1 + (fw - 1) // 2, pady0 + fh // 2, pady1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1, impl='cuda'):
    """Upsample by up with filter f; output is input size * up (plus padding). gain is scaled
    by up*up so that the zero insertion keeps the mean signal level."""
    upx, upy = _parse_scaling(up, 'up')
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [
        padx0 + (fw + upx - 1) // 2,
        padx1 + (fw - upx) // 2,
        pady0 + (fh + upy - 1) // 2,
        pady1 + (fh - upy) // 2,
    ]
    return upfirdn2d(x, f, up=[upx, upy], padding=p, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1, impl='cuda'):
    """Filter with f and downsample by down; output is input size / down (plus padding)."""
    downx, downy = _parse_scaling(down, 'down')
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [
        padx0 + (fw - downx + 1) // 2,
        padx1 + (fw - downx) // 2,
        pady0 + (fh - downy + 1) // 2,
        pady1 + (fh - downy) // 2,
    ]
    return upfirdn2d(x, f, down=[downx, downy], padding=p, flip_filter=flip_filter, gain=gain, impl=impl)
