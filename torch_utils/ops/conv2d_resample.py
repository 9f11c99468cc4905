"""2D convolution fused with FIR up/downsampling.

conv2d_resample(x, w, f, up, down, padding) computes, in effect:
    x -> upsample2d(x, f, up) (zero insertion, filter, gain up*up) -> pad -> conv2d with w
      -> downsample2d(., f, down)
with the same padding conventions as upsample2d/downsample2d. Each case picks the cheapest
equivalent order of the (linear, shift-invariant) steps: strided convolution for down,
transposed strided convolution for up, and for 1x1 kernels resampling on the smaller tensor.
"""

import torch

from . import conv2d_gradfix
from . import upfirdn2d
from .upfirdn2d import _parse_padding, _get_filter_size


def _conv2d(x, w, stride=1, padding=0, groups=1, transpose=False, flip_weight=True):
    """conv2d or conv_transpose2d; flip_weight=False turns correlation into true convolution."""
    if not flip_weight:
        w = w.flip([2, 3])
    if transpose:
        return conv2d_gradfix.conv_transpose2d(input=x, weight=w, stride=stride, padding=padding, groups=groups)
    return conv2d_gradfix.conv2d(input=x, weight=w, stride=stride, padding=padding, groups=groups)


def _check_args(x, w, f, up, down, groups):
    if not (isinstance(x, torch.Tensor) and x.ndim == 4):
        raise ValueError(f'x must be a 4D [N, C, H, W] tensor, got shape {tuple(getattr(x, "shape", ()))}')
    if not (isinstance(w, torch.Tensor) and w.ndim == 4 and w.dtype == x.dtype):
        raise ValueError(f'w must be a 4D [out, in/groups, kh, kw] tensor of dtype {x.dtype}')
    if f is not None and not (isinstance(f, torch.Tensor) and f.ndim in (1, 2) and f.dtype == torch.float32):
        raise ValueError('f must be None or a 1D/2D float32 filter from upfirdn2d.setup_filter()')
    for name, value in (('up', up), ('down', down), ('groups', groups)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f'{name} must be an int >= 1, got {value!r}')
    if x.shape[1] != w.shape[1] * groups or w.shape[0] % groups != 0:
        raise ValueError(f'channel mismatch: x has {x.shape[1]} channels, w has shape {tuple(w.shape)}, '
                         f'groups={groups}')


def conv2d_resample(x, w, f=None, up=1, down=1, padding=0, groups=1, flip_weight=True, flip_filter=False):
    """x: [N, C_in, H, W]; w: [C_out, C_in/groups, kh, kw]; f: filter from upfirdn2d.setup_filter
    (None = box of size 1); up, down: int factors; padding: int, [x, y] or [x0, x1, y0, y1].
    flip_weight=True is ordinary conv2d (correlation). Returns [N, C_out, H', W']."""
    _check_args(x, w, f, up, down, groups)
    out_channels, in_per_group, kh, kw = w.shape
    fw, fh = _get_filter_size(f)
    px0, px1, py0, py1 = _parse_padding(padding)

    # The padding upsample2d/downsample2d would add, so the resampled size is exactly in*up/down.
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2
    pad = [px0, px1, py0, py1]

    # 1x1 kernel: resample the side with fewer pixels.
    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d.upfirdn2d(x=x, f=f, down=down, padding=pad, flip_filter=flip_filter)
        return _conv2d(x=x, w=w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv2d(x=x, w=w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d.upfirdn2d(x=x, f=f, up=up, padding=pad, gain=up ** 2, flip_filter=flip_filter)

    # Downsampling only: filter, then strided convolution.
    if down > 1 and up == 1:
        x = upfirdn2d.upfirdn2d(x=x, f=f, padding=pad, flip_filter=flip_filter)
        return _conv2d(x=x, w=w, stride=down, groups=groups, flip_weight=flip_weight)

    # Upsampling: a stride-up transposed convolution is zero insertion followed by a full true
    # convolution, so it covers zero insertion + conv; the filter runs on the result.
    if up > 1:
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
            w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
        # The transposed conv output starts kw-1 samples before the "valid" correlation output and
        # ends kw-up samples after it; let the transposed conv crop what it can symmetrically.
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        cropx = max(min(-px0, -px1), 0)
        cropy = max(min(-py0, -py1), 0)
        x = _conv2d(x=x, w=w, stride=up, padding=[cropy, cropx], groups=groups, transpose=True,
                    flip_weight=(not flip_weight))
        x = upfirdn2d.upfirdn2d(x=x, f=f, padding=[px0 + cropx, px1 + cropx, py0 + cropy, py1 + cropy],
                                gain=up ** 2, flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d.upfirdn2d(x=x, f=f, down=down, flip_filter=flip_filter)
        return x

    # No resampling: plain convolution, padding it natively when the padding is symmetric.
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv2d(x=x, w=w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)
    x = upfirdn2d.upfirdn2d(x=x, f=None, padding=pad)
    return _conv2d(x=x, w=w, groups=groups, flip_weight=flip_weight)
