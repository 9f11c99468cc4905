"""upfirdn2d: reference path vs a naive numpy implementation; gradients; helper sizes; CUDA vs reference."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from torch_utils.ops import upfirdn2d


def naive_upfirdn2d(x, f, up, down, padding, flip_filter, gain):
    """Loop-based upfirdn2d on numpy arrays. f: 2D taps [fh, fw]; up/down: (x, y); padding: (x0, x1, y0, y1)."""
    upx, upy = up
    downx, downy = down
    px0, px1, py0, py1 = padding
    n, c, h, w = x.shape
    fh, fw = f.shape

    # Zero insertion: sample (i, j) goes to (i*upy, j*upx); size h*upy x w*upx.
    u = np.zeros((n, c, h * upy, w * upx))
    for i in range(h):
        for j in range(w):
            u[:, :, i * upy, j * upx] = x[:, :, i, j]

    # Padding / cropping by explicit index mapping.
    hp, wp = h * upy + py0 + py1, w * upx + px0 + px1
    p = np.zeros((n, c, hp, wp))
    for i in range(hp):
        for j in range(wp):
            si, sj = i - py0, j - px0
            if 0 <= si < u.shape[2] and 0 <= sj < u.shape[3]:
                p[:, :, i, j] = u[:, :, si, sj]

    # Valid-mode 2D convolution (correlation when flip_filter) as explicit sums.
    oh, ow = hp - fh + 1, wp - fw + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            for a in range(fh):
                for b in range(fw):
                    tap = f[a, b] if flip_filter else f[fh - 1 - a, fw - 1 - b]
                    out[:, :, i, j] += p[:, :, i + a, j + b] * tap
    return out[:, :, ::downy, ::downx] * gain


CASES = [
    # (in_hw, taps, separable, up, down, padding, flip_filter, gain)
    ((5, 6), [1, 3, 3, 1], False, 1, 1, 0, False, 1),
    ((5, 6), [1, 3, 3, 1], False, 2, 1, [2, 1], False, 4),
    ((6, 5), [1, 3, 3, 1], False, 1, 2, [1, 1, 1, 1], False, 1),
    ((5, 4), [1, 2, 5, 3, 1], True, 2, 2, [2, 1, 0, 3], True, 2.5),
    ((4, 4), [1, 2, 5, 3, 1], True, 1, 1, [1, 2], False, -3),  # Negative gain, separable.
    ((4, 5), [[1, 2], [3, 5], [-1, 4]], False, [2, 3], [1, 2], [1, 0, 2, 1], False, 1),
    ((4, 5), [[1, 2], [3, 5], [-1, 4]], False, [3, 1], [2, 1], [0, 2, 1, 0], True, 0.5),
    ((7, 7), [1, 3, 3, 1], False, 1, 1, [-1, -2, 1, -1], False, 1),  # Negative padding crops.
    ((6, 6), [1, 2, 4, 2, 3, 1, 5, 2], None, 1, 3, [3, 4], False, 1),  # 8 taps: separable by default.
    ((3, 4), None, None, 3, 1, 0, False, 9),
]


def _to_2d(f):
    f = f.double()
    return (f if f.ndim == 2 else torch.outer(f, f)).numpy()


@pytest.mark.parametrize('case', CASES)
def test_ref_matches_naive(case):
    (h, w), taps, separable, up, down, padding, flip_filter, gain = case
    f = upfirdn2d.setup_filter(taps, separable=separable)
    x = torch.randn(2, 3, h, w, dtype=torch.float64)
    y = upfirdn2d.upfirdn2d(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain, impl='ref')
    up2 = up if isinstance(up, list) else [up, up]
    down2 = down if isinstance(down, list) else [down, down]
    pad4 = padding if isinstance(padding, list) and len(padding) == 4 else (
        [padding[0]] * 2 + [padding[1]] * 2 if isinstance(padding, list) else [padding] * 4)
    ref = naive_upfirdn2d(x.numpy(), _to_2d(f), up2, down2, pad4, flip_filter, gain)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-10, atol=1e-10)


def test_setup_filter():
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and f.dtype == torch.float32
    np.testing.assert_allclose(f.numpy(), np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64, rtol=1e-6)
    assert upfirdn2d.setup_filter([1, 3, 3, 1], separable=True).shape == (4,)
    assert upfirdn2d.setup_filter(list(range(1, 9))).ndim == 1  # >= 8 taps default to separable.
    assert upfirdn2d.setup_filter(None).tolist() == [[1.0]]
    g = upfirdn2d.setup_filter([1, 2], normalize=False, flip_filter=True, gain=4)
    np.testing.assert_allclose(g.numpy(), np.array([[4, 2], [2, 1]]) * 4)  # gain**(2/2) for 2D.
    g1 = upfirdn2d.setup_filter([1, 3], separable=True, gain=4)
    np.testing.assert_allclose(g1.numpy(), np.array([1, 3]) / 4 * 2)  # gain**(1/2) for 1D.
    with pytest.raises(ValueError, match='separable'):
        upfirdn2d.setup_filter([[1, 2], [3, 4]], separable=True)
    with pytest.raises(ValueError, match='gain'):
        upfirdn2d.setup_filter([1, 2], separable=True, gain=-1)


def test_errors():
    x = torch.randn(1, 1, 4, 4)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    with pytest.raises(ValueError, match='padding'):
        upfirdn2d.upfirdn2d(x, f, padding=[1, 2, 3])
    with pytest.raises(ValueError, match='up'):
        upfirdn2d.upfirdn2d(x, f, up=0)
    with pytest.raises(ValueError, match='empty'):
        upfirdn2d.upfirdn2d(x, f, padding=-2)
    with pytest.raises(ValueError, match='4D'):
        upfirdn2d.upfirdn2d(x[0], f)
    with pytest.raises(ValueError, match='impl'):
        upfirdn2d.upfirdn2d(x, f, impl='fast')


@pytest.mark.parametrize('separable', [False, True])
def test_ref_gradients(separable):
    x = torch.randn(1, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    f = upfirdn2d.setup_filter([1, 2, 1], separable=separable).double().requires_grad_(True)
    fn = lambda x, f: upfirdn2d.upfirdn2d(x, f, up=2, down=[1, 2], padding=[1, 2, 0, 1], gain=3, impl='ref')
    assert torch.autograd.gradcheck(fn, (x, f))
    assert torch.autograd.gradgradcheck(fn, (x, f), fast_mode=True)


@pytest.mark.parametrize('taps', [[1], [1, 1], [1, 3, 3, 1], [1, 2, 3, 2, 1]])
@pytest.mark.parametrize('size', [(8, 8), (6, 10)])
def test_helper_sizes(taps, size):
    h, w = size
    x = torch.randn(1, 2, h, w)
    f = upfirdn2d.setup_filter(taps)
    assert upfirdn2d.filter2d(x, f).shape == (1, 2, h, w)
    assert upfirdn2d.filter2d(x, f, padding=1).shape == (1, 2, h + 2, w + 2)
    assert upfirdn2d.upsample2d(x, f).shape == (1, 2, 2 * h, 2 * w)
    assert upfirdn2d.upsample2d(x, f, up=[2, 4]).shape == (1, 2, 4 * h, 2 * w)
    assert upfirdn2d.downsample2d(x, f).shape == (1, 2, h // 2, w // 2)
    assert upfirdn2d.downsample2d(x, f, down=[2, 1], padding=[0, 1]).shape == (1, 2, h + 2, w // 2)


def test_helpers_box_filter_values():
    # A 2-tap box filter makes downsample2d a 2x2 average and upsample2d a nearest-neighbour repeat.
    x = torch.randn(2, 3, 6, 8)
    box = upfirdn2d.setup_filter([1, 1])
    torch.testing.assert_close(upfirdn2d.downsample2d(x, box), F.avg_pool2d(x, 2))
    nearest = x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    torch.testing.assert_close(upfirdn2d.upsample2d(x, box), nearest)
    # filter2d with the identity filter is the identity.
    torch.testing.assert_close(upfirdn2d.filter2d(x, None), x)


class _RefKernel:
    """Stands in for the compiled plugin: same call signature, computed by the reference path."""

    @staticmethod
    def upfirdn2d(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip, gain):
        assert f.ndim == 2
        return upfirdn2d._upfirdn2d_ref(x, f, up=[upx, upy], down=[downx, downy],
                                        padding=[padx0, padx1, pady0, pady1], flip_filter=flip, gain=gain)


@pytest.mark.parametrize('case', CASES[1:6])
def test_cuda_autograd_wrapper(case, monkeypatch):
    # The CUDA path's autograd logic (separable split, adjoint padding, filter flip, double backward) on CPU,
    # with the kernel replaced by the reference path.
    monkeypatch.setattr(upfirdn2d, '_plugin', _RefKernel())
    (h, w), taps, separable, up, down, padding, flip_filter, gain = case
    f = upfirdn2d.setup_filter(taps, separable=separable)
    kwargs = dict(up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)
    wrapped = lambda x: upfirdn2d._upfirdn2d_cuda(**kwargs).apply(x, f)
    x = torch.randn(1, 1, h, w, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(wrapped(x), upfirdn2d._upfirdn2d_ref(x, f, **kwargs))
    assert torch.autograd.gradcheck(wrapped, (x,))
    assert torch.autograd.gradgradcheck(wrapped, (x,), fast_mode=True)


@pytest.mark.gpu
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize('case', CASES)
def test_cuda_matches_ref(case, dtype):
    assert upfirdn2d._init(), 'the upfirdn2d CUDA plugin did not build (see the warning)'
    (h, w), taps, separable, up, down, padding, flip_filter, gain = case
    f = upfirdn2d.setup_filter(taps, separable=separable, device='cuda')
    x = torch.randn(2, 3, h, w, device='cuda', dtype=dtype)
    kwargs = dict(up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)
    tol = {torch.float64: dict(rtol=1e-10, atol=1e-10), torch.float32: dict(rtol=1e-4, atol=1e-4),
        torch.float16: dict(rtol=1e-2, atol=1e-2), torch.bfloat16: dict(rtol=5e-2, atol=5e-2)}[dtype]

    def run(impl):
        # Forward, backward, and double backward (w.r.t. the incoming gradient dy).
        xg = x.detach().requires_grad_(True)
        y = upfirdn2d.upfirdn2d(xg, f, impl=impl, **kwargs)
        dy = torch.linspace(-1, 1, y.numel(), device='cuda').reshape(y.shape).to(dtype).requires_grad_(True)
        dx, = torch.autograd.grad(y, xg, dy, create_graph=True)
        v = torch.cos(torch.arange(dx.numel(), device='cuda', dtype=torch.float32)).reshape(dx.shape).to(dtype)
        ddy, = torch.autograd.grad(dx, dy, v)
        return y, dx, ddy

    for got, want in zip(run('cuda'), run('ref')):
        assert got.dtype == dtype
        torch.testing.assert_close(got.double(), want.double(), **tol)


@pytest.mark.gpu
def test_cuda_double_backward_and_layout():
    assert upfirdn2d._init(), 'the upfirdn2d CUDA plugin did not build (see the warning)'
    f = upfirdn2d.setup_filter([1, 3, 3, 1], device='cuda')
    kwargs = dict(up=2, down=1, padding=[2, 1, 1, 2], gain=4)
    x = torch.randn(1, 2, 5, 4, device='cuda', dtype=torch.float64, requires_grad=True)
    fn = lambda x: upfirdn2d.upfirdn2d(x, f, impl='cuda', **kwargs)
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,), fast_mode=True)
    # channels_last input gives the same values.
    xc = torch.randn(2, 8, 6, 5, device='cuda').to(memory_format=torch.channels_last)
    torch.testing.assert_close(upfirdn2d.upfirdn2d(xc, f, impl='cuda', **kwargs),
                               upfirdn2d.upfirdn2d(xc, f, impl='ref', **kwargs), rtol=1e-5, atol=1e-5)
