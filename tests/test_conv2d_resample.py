"""conv2d_resample vs a naive composition: zero insertion, padding, FIR filter, convolution, decimation."""

import numpy as np
import pytest
import torch

from torch_utils.ops import conv2d_gradfix, conv2d_resample, upfirdn2d


def naive_resample(x, f, up, down, pad, flip_filter, gain):
    """Loop-based upfirdn2d with equal x/y factors. x: [N, C, H, W]; f: [fh, fw]; pad: (x0, x1, y0, y1)."""
    n, c, h, w = x.shape
    u = np.zeros((n, c, h * up, w * up))
    u[:, :, ::up, ::up] = x
    px0, px1, py0, py1 = pad
    hp, wp = h * up + py0 + py1, w * up + px0 + px1
    p = np.zeros((n, c, hp, wp))
    for i in range(hp):
        for j in range(wp):
            if 0 <= i - py0 < h * up and 0 <= j - px0 < w * up:
                p[:, :, i, j] = u[:, :, i - py0, j - px0]
    fh, fw = f.shape
    taps = f if flip_filter else f[::-1, ::-1]
    out = np.zeros((n, c, hp - fh + 1, wp - fw + 1))
    for a in range(fh):
        for b in range(fw):
            out += p[:, :, a : a + out.shape[2], b : b + out.shape[3]] * taps[a, b]
    return out[:, :, ::down, ::down] * gain


def naive_grouped_conv(x, w, groups, flip_weight):
    """Valid-mode grouped correlation (true convolution when not flip_weight), explicit sums over taps."""
    n, c, h, wd = x.shape
    co, ci, kh, kw = w.shape
    if not flip_weight:
        w = w[:, :, ::-1, ::-1]
    out = np.zeros((n, co, h - kh + 1, wd - kw + 1))
    per_out = co // groups
    for g in range(groups):
        xg = x[:, g * ci : (g + 1) * ci]
        wg = w[g * per_out : (g + 1) * per_out]
        for a in range(kh):
            for b in range(kw):
                patch = xg[:, :, a : a + out.shape[2], b : b + out.shape[3]]
                out[:, g * per_out : (g + 1) * per_out] += np.einsum('ncij,oc->noij', patch, wg[:, :, a, b])
    return out


def naive_conv2d_resample(x, w, f, up, down, padding, groups, flip_weight, flip_filter):
    """The documented semantics: upsample2d-style up (gain up^2), pad, conv, downsample2d-style down."""
    fh, fw = f.shape
    px0 = px1 = py0 = py1 = padding
    if up > 1:
        px0 += (fw + up - 1) // 2; px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2; py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2; px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2; py1 += (fh - down) // 2
    pad = (px0, px1, py0, py1)
    if up > 1:
        x = naive_resample(x, f, up, 1, pad, flip_filter, gain=up * up)
    else:
        x = naive_resample(x, np.ones((1, 1)), 1, 1, pad, False, gain=1)
    x = naive_grouped_conv(x, w, groups, flip_weight)
    if down > 1:
        x = naive_resample(x, f, 1, down, (0, 0, 0, 0), flip_filter, gain=1)
    return x


CASES = [
    # (kernel, up, down, padding, groups, flip_weight, flip_filter)
    (3, 1, 1, 1, 1, True, False),
    (3, 2, 1, 1, 1, True, False),
    (3, 1, 2, 1, 1, True, False),
    (1, 2, 1, 0, 1, True, False),
    (1, 1, 2, 0, 1, True, False),
    (3, 2, 1, 1, 2, False, False),
    (3, 1, 2, 1, 2, False, True),
    (1, 2, 1, 0, 2, True, True),
    (3, 2, 2, 1, 1, True, False),
    (3, 1, 1, 0, 2, True, False),
    (2, 2, 1, 0, 1, False, False),  # Even kernel: asymmetric internal padding.
]


@pytest.mark.parametrize('case', CASES)
def test_matches_naive(case, monkeypatch):
    k, up, down, padding, groups, flip_weight, flip_filter = case
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    w = torch.randn(6, 4 // groups, k, k, dtype=torch.float64)
    ref = naive_conv2d_resample(x.numpy(), w.numpy(), f.double().numpy(), up, down, padding, groups,
                                flip_weight, flip_filter)
    for custom in (False, True):  # Native convolutions and the gradfix Function give the same values.
        monkeypatch.setattr(conv2d_gradfix, 'enabled', custom)
        y = conv2d_resample.conv2d_resample(x=x, w=w, f=f, up=up, down=down, padding=padding, groups=groups,
                                            flip_weight=flip_weight, flip_filter=flip_filter)
        assert y.shape == ref.shape
        np.testing.assert_allclose(y.numpy(), ref, rtol=1e-9, atol=1e-9)


def test_output_sizes():
    x = torch.randn(1, 3, 8, 8)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    w = torch.randn(5, 3, 3, 3)
    assert conv2d_resample.conv2d_resample(x, w, f, up=2, padding=1).shape == (1, 5, 16, 16)
    assert conv2d_resample.conv2d_resample(x, w, f, down=2, padding=1).shape == (1, 5, 4, 4)
    assert conv2d_resample.conv2d_resample(x, w, padding=1).shape == (1, 5, 8, 8)


def test_gradients():
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    fn = lambda x, w: conv2d_resample.conv2d_resample(x, w, f, up=2, padding=1, groups=2)
    assert torch.autograd.gradcheck(fn, (x, w))
    assert torch.autograd.gradgradcheck(fn, (x, w), fast_mode=True)


def test_bad_arguments():
    x = torch.randn(1, 4, 8, 8)
    with pytest.raises(ValueError, match='channel'):
        conv2d_resample.conv2d_resample(x, torch.randn(2, 3, 3, 3))
    with pytest.raises(ValueError, match='up'):
        conv2d_resample.conv2d_resample(x, torch.randn(2, 4, 3, 3), up=0)
    with pytest.raises(ValueError, match='dtype'):
        conv2d_resample.conv2d_resample(x, torch.randn(2, 4, 3, 3, dtype=torch.float64))
