"""ADA AugmentPipe: identity at p=0, every pipe at p=1, and each transform family against independent references."""

import pickle

import numpy as np
import pytest
import scipy.ndimage
import torch

from training.augment import SYM2, SYM6, AugmentPipe, augpipe_specs, octave_filter_bank, rotate2d, scale2d, translate2d


def _images(n=4, c=3, h=16, w=16, seed=0):
    return torch.randn([n, c, h, w], generator=torch.Generator().manual_seed(seed))


def _pipe(p=1.0, **kwargs):
    pipe = AugmentPipe(**kwargs)
    pipe.p.fill_(p)
    return pipe


GEOMETRIC = ('xflip', 'rotate90', 'xint', 'scale', 'rotate', 'aniso', 'xfrac')

@pytest.mark.parametrize('spec', sorted(augpipe_specs))
def test_every_pipe_identity_at_p0_and_differentiable_change_at_p1(spec):
    x = _images()
    y0 = _pipe(p=0, **augpipe_specs[spec])(x)
    if any(k in augpipe_specs[spec] for k in GEOMETRIC):
        # As in ADA, the geometric pass runs at p = 0 too; sym6 up/down is then the identity up to rounding.
        torch.testing.assert_close(y0, x, rtol=0, atol=2e-5)
    else:
        assert torch.equal(y0, x)
    x.requires_grad_(True)
    y = _pipe(p=1, **augpipe_specs[spec])(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert not torch.allclose(y, x)
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_grey_images_and_float64():
    x = _images(c=1)
    assert _pipe(**augpipe_specs['bgcfnc'])(x).shape == x.shape
    x64 = _images().double()
    assert _pipe(**augpipe_specs['bgcfnc'])(x64).dtype == torch.float64


def test_bad_input_raises():
    with pytest.raises(ValueError, match='float'):
        _pipe(xflip=1)(torch.zeros([2, 3, 8, 8], dtype=torch.uint8))
    with pytest.raises(ValueError, match='channels'):
        _pipe(brightness=1)(_images(c=4))
    with pytest.raises(ValueError, match='imgfilter_bands'):
        AugmentPipe(imgfilter=1, imgfilter_bands=[1, 1])


def _near(a, b):
    return bool((a - b).abs().max() < 2e-5)

def _dist(a, b):
    return float((a - b).abs().max())

def test_xflip_at_p1_is_a_flip_or_identity():
    # ADA resamples blits too (its half-pixel conjugation makes a flip not exact): each sample is far
    # closer to the flip or to the identity than to the other.
    x = _images(n=16)
    y = _pipe(xflip=1)(x)
    flipped = [_dist(y[i], torch.flip(x[i], dims=[2])) < 0.5 * _dist(y[i], x[i]) for i in range(16)]
    same = [_dist(y[i], x[i]) < 2e-5 for i in range(16)]
    assert all(f or s for f, s in zip(flipped, same))
    assert any(flipped) and any(same)


def _ada_warp_reference(x, G_inv, f, pad=3):
    """ADA's geometric pass in numpy/scipy, per sample: reflect padding by the batch's reach, 2x upsampling
    by zero insertion and convolution, bilinear sampling with zeros outside (grid_sample's), downsampling
    by correlation. Points are mapped as ADA's matrices map them, written out as arithmetic."""
    N, C, H, W = x.shape
    cx, cy = (W - 1) / 2, (H - 1) / 2
    corners = np.array([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]]).T
    reach = (G_inv @ corners)[:, :2].transpose(1, 0, 2).reshape(2, -1)
    m = np.concatenate([-reach, reach]).max(axis=1) + np.array([2 * pad - cx, 2 * pad - cy] * 2)
    m = np.minimum(np.maximum(m, 0), [W - 1, H - 1] * 2)
    mx0, my0, mx1, my1 = np.ceil(m).astype(int)
    Hout, Wout = (H + 2 * pad) * 2, (W + 2 * pad) * 2
    jj, ii = np.meshgrid(np.arange(Wout), np.arange(Hout))
    out = np.zeros([N, C, H, W])
    for n in range(N):
        img = np.pad(x[n], [(0, 0), (my0, my1), (mx0, mx1)], mode='reflect')
        for axis in (1, 2):  # Up: zeros between samples, pad 6 / 5, convolve with 2 f (gain 4 over both axes).
            z = np.zeros(img.shape[:axis] + (2 * img.shape[axis],) + img.shape[axis + 1:])
            z[(slice(None),) * axis + (slice(0, None, 2),)] = img
            z = np.pad(z, [(6, 5) if a == axis else (0, 0) for a in range(3)])
            img = np.apply_along_axis(lambda r: np.convolve(r, 2 * f, mode='valid'), axis, z)
        # Output 2x pixel -> 2x centred -> +0.5, /2 -> G_inv -> padded centre -> *2, -0.5 -> upsampled index.
        px, py = (jj + 0.5 - Wout / 2 + 0.5) / 2, (ii + 0.5 - Hout / 2 + 0.5) / 2
        sx = G_inv[n, 0, 0] * px + G_inv[n, 0, 1] * py + G_inv[n, 0, 2] + (mx0 - mx1) / 2
        sy = G_inv[n, 1, 0] * px + G_inv[n, 1, 1] * py + G_inv[n, 1, 2] + (my0 - my1) / 2
        col = 2 * sx - 0.5 + img.shape[2] / 2 - 0.5
        row = 2 * sy - 0.5 + img.shape[1] / 2 - 0.5
        sampled = np.stack([scipy.ndimage.map_coordinates(img[ch], [row, col], order=1, mode='grid-constant', cval=0.0)
            for ch in range(C)])
        for axis in (1, 2):  # Down: crop 1, correlate with f, keep every second sample.
            cropped = sampled[(slice(None),) * axis + (slice(1, -1),)]
            sampled = np.apply_along_axis(lambda r: np.correlate(r, f, mode='valid')[::2], axis, cropped)
        out[n] = sampled
    return out

@pytest.mark.parametrize('case', ['blit', 'geom', 'both'])
def test_geometric_pass_matches_numpy_scipy_reference(case):
    x = _images(n=3, h=16, w=12).double()
    blit = [scale2d(torch.tensor([-1.0, 1.0, -1.0]), torch.ones(3)),
            rotate2d(torch.tensor([np.pi / 2, 0.0, -np.pi / 2])),
            translate2d(torch.tensor([2.0, -3.0, 0.0]), torch.tensor([1.0, 0.0, -2.0]))]
    geom = [scale2d(torch.tensor([1.2, 0.8, 1.0]), torch.tensor([1.2, 0.8, 0.7])),
            rotate2d(torch.tensor([0.3, -1.1, 2.0])), translate2d(torch.tensor([0.4, -1.7, 0.2]), torch.tensor([0.9, 0.3, -0.6]))]
    mats = dict(blit=blit, geom=geom, both=blit + geom)[case]
    G_inv = torch.eye(3).expand(3, 3, 3).double()
    for m in mats:
        G_inv = G_inv @ m.double()
    y = AugmentPipe().double().warp(x, G_inv)
    f = np.array(SYM6) / np.sum(SYM6)
    np.testing.assert_allclose(y.numpy(), _ada_warp_reference(x.numpy(), G_inv.numpy(), f), rtol=0, atol=1e-5)


def test_filter_draws_come_in_adas_order():
    # Per band: the gain t = 2^(N(0,1) * std) first, then the gate u < imgfilter * p * band strength.
    x = _images(n=3, h=48, w=48)
    pipe = _pipe(p=0.7, imgfilter=1, imgfilter_std=1.5)
    torch.manual_seed(123)
    y = pipe(x).double().numpy()
    torch.manual_seed(123)
    gains = np.ones([3, 4])
    for band in range(4):
        t = torch.exp2(torch.randn([3]) * 1.5).double().numpy()
        t = np.where(torch.rand([3]).numpy() < 0.7, t, 1.0)
        g = np.ones([3, 4])
        g[:, band] = t
        gains *= g / np.sqrt((np.array([10, 1, 1, 1]) / 13 * g ** 2).sum(axis=1, keepdims=True))
    bank = octave_filter_bank().astype(np.float64)
    for n in range(3):
        kernel = gains[n] @ bank
        ref = scipy.ndimage.convolve1d(x[n].double().numpy(), kernel, axis=2, mode='mirror')
        ref = scipy.ndimage.convolve1d(ref, kernel, axis=1, mode='mirror')
        np.testing.assert_allclose(y[n], ref, rtol=1e-4, atol=1e-4)


def test_general_warp_matches_analytic_band_limited_image():
    H = W = 32
    def pattern(x, y):
        return torch.cos(2 * np.pi * (1.5 * x + y) / W) + torch.sin(2 * np.pi * (0.5 * x - 2 * y) / W)
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5 - H / 2, torch.arange(W) + 0.5 - W / 2, indexing='ij')
    x = pattern(xs, ys).expand(2, 3, H, W).contiguous()
    G_inv = (translate2d(torch.tensor([0.3, -2.7]), torch.tensor([1.2, 0.5]))
             @ rotate2d(torch.tensor([0.5, -1.0])) @ scale2d(torch.tensor([1.1, 0.8]), torch.tensor([0.9, 1.0])))
    y = AugmentPipe().warp(x, G_inv)
    pts = G_inv @ torch.stack([xs.flatten(), ys.flatten(), torch.ones(H * W)])
    ref = pattern(pts[:, 0], pts[:, 1]).reshape(2, 1, H, W)
    interior = (y - ref)[:, :, 8:-8, 8:-8]  # borders see reflected content, not the analytic continuation
    # ADA's sym6 wavelet is no flat low-pass: about 1.5 % of this pattern's amplitude of 2 at most.
    assert interior.abs().max() < 0.04


def test_brightness_and_contrast_are_per_sample_shift_and_scale():
    x = _images(n=8)
    y = _pipe(brightness=1, brightness_std=0.5)(x)
    shift = (y - x).flatten(1)
    torch.testing.assert_close(shift, shift[:, :1].expand_as(shift))
    assert shift[:, 0].abs().min() > 0
    y = _pipe(contrast=1)(x)
    ratio = (y / x).flatten(1)
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))


@pytest.mark.parametrize('kind', ['saturation', 'hue'])
def test_saturation_and_hue_keep_luma(kind):
    x = _images(n=8)
    y = _pipe(**{kind: 1})(x)
    torch.testing.assert_close(y.mean(dim=1), x.mean(dim=1), rtol=1e-4, atol=1e-5)
    chroma_x, chroma_y = x - x.mean(dim=1, keepdim=True), y - y.mean(dim=1, keepdim=True)
    if kind == 'hue':  # rotation about the grey axis keeps the chroma length
        torch.testing.assert_close(chroma_y.norm(dim=1), chroma_x.norm(dim=1), rtol=1e-4, atol=1e-5)
    else:  # saturation scales the chroma by one factor per sample
        ratio = (chroma_y / chroma_x).flatten(1)
        torch.testing.assert_close(ratio, ratio.median(dim=1, keepdim=True).values.expand_as(ratio), rtol=1e-3, atol=1e-3)


def test_filter_bank_splits_the_spectrum_into_octaves():
    bank = octave_filter_bank().astype(np.float64)
    taps = bank.shape[1]
    impulse = np.zeros(taps)
    impulse[taps // 2] = 1
    np.testing.assert_allclose(bank.sum(axis=0), impulse, atol=1e-6)
    freqs = np.linspace(0, 0.5, 257)
    response = np.abs(np.exp(-2j * np.pi * np.outer(freqs, np.arange(taps))) @ bank.T)  # [freq, band]
    for band, (lo, hi) in enumerate([(0, 1 / 16), (1 / 16, 1 / 8), (1 / 8, 1 / 4), (1 / 4, 0.5)]):
        centre = (lo + hi) / 2 if band else 0
        assert np.argmax(response[np.argmin(np.abs(freqs - centre))]) == band


def _dilate(f, k):
    out = np.zeros((len(f) - 1) * k + 1)
    out[::k] = f
    return out

def test_filter_bank_is_the_dyadic_sym2_bank_in_closed_form():
    # Independent construction: with l = H(z)H(1/z)/2 and h = H(-z)H(-1/z)/2 for sym2's H, band b > 0 is
    # h(z^(2^(3-b))) times l(z^(2^k)) for k < 3-b, band 0 is l(z^4) l(z^2) l(z); every row centred.
    H = np.array(SYM2)
    l = np.polymul(H, H[::-1]) / 2
    h = np.polymul(H * (-1.0) ** np.arange(4), (H * (-1.0) ** np.arange(4))[::-1]) / 2
    rows = [np.polymul(np.polymul(_dilate(l, 4), _dilate(l, 2)), l)]
    for b in range(1, 4):
        row = _dilate(h, 2 ** (3 - b))
        for k in range(3 - b):
            row = np.polymul(row, _dilate(l, 2 ** k))
        rows.append(row)
    bank = octave_filter_bank().astype(np.float64)
    for b, row in enumerate(rows):
        start = (bank.shape[1] - len(row)) // 2
        expect = np.zeros(bank.shape[1])
        expect[start:start + len(row)] = row
        np.testing.assert_allclose(bank[b], expect, atol=1e-7, err_msg=f'band {b}')


def test_sym_filters_are_orthonormal_wavelets():
    # The taps are Daubechies' symlets: unit energy, sum sqrt(2), orthogonal to their even shifts, and a
    # high-pass with N vanishing moments (N = 2, 6).
    for taps, moments in [(SYM2, 2), (SYM6, 6)]:
        h = np.array(taps)
        assert h.sum() == pytest.approx(np.sqrt(2)) and (h ** 2).sum() == pytest.approx(1)
        for m in range(1, len(h) // 2):
            assert np.dot(h[:-2 * m], h[2 * m:]) == pytest.approx(0, abs=1e-12)
        g = h[::-1] * (-1.0) ** np.arange(len(h))
        for m in range(moments):
            assert np.dot(g, np.arange(len(h)) ** m) == pytest.approx(0, abs=1e-9 * 10 ** m)


def test_band_gains_match_scipy_separable_convolution():
    x = _images(n=2, h=48, w=48)
    gains = torch.tensor([[1.0, 0.5, 2.0, 0.0], [0.3, 1.0, 1.0, 3.0]])
    y = AugmentPipe().apply_band_gains(x, gains).numpy()
    bank = octave_filter_bank().astype(np.float64)
    for n in range(2):
        kernel = gains[n].double().numpy() @ bank
        ref = scipy.ndimage.convolve1d(x[n].double().numpy(), kernel, axis=2, mode='mirror')
        ref = scipy.ndimage.convolve1d(ref, kernel, axis=1, mode='mirror')
        np.testing.assert_allclose(y[n], ref, rtol=1e-4, atol=1e-4)


def test_cutout_zeroes_expected_area_fraction():
    x = torch.ones([2000, 1, 32, 32])
    y = _pipe(cutout=1, cutout_size=0.5)(x)
    # Per axis, a box of half the side centred uniformly in [0, 1], clipped: expected coverage 0.5 - 2 * 0.25^2 / 2.
    expected = (0.5 - 0.0625) ** 2
    assert abs((y == 0).float().mean().item() - expected) < 0.01


def test_noise_strength_scales_with_noise_std():
    x = torch.zeros([256, 3, 8, 8])
    y = _pipe(noise=1, noise_std=0.1)(x)
    per_sample_std = y.flatten(1).std(dim=1)
    # |N(0, 0.1)| has mean 0.1 * sqrt(2 / pi).
    assert abs(per_sample_std.mean().item() - 0.1 * np.sqrt(2 / np.pi)) < 0.01


def test_augment_pipe_pickles_with_its_probability():
    pipe = _pipe(p=0.3, **augpipe_specs['bgc'])
    clone = pickle.loads(pickle.dumps(pipe))
    assert clone.p.item() == pytest.approx(0.3) and clone.hue == 1.0


def test_double_backward_through_full_pipe():
    # R1 on augmented reals differentiates through the pipe twice.
    x = _images(n=2).requires_grad_(True)
    weight = torch.randn([3, 1, 1]).requires_grad_(True)
    y = _pipe(**augpipe_specs['bgcfnc'])(x * weight)
    (grad,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    grad.square().sum().backward()
    assert weight.grad is not None and torch.isfinite(weight.grad).all() and weight.grad.abs().sum() > 0
