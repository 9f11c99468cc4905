"""ADA AugmentPipe: identity at p=0, every pipe at p=1, and each transform family against independent references."""

import pickle

import numpy as np
import pytest
import scipy.ndimage
import torch

from training.augment import AugmentPipe, augpipe_specs, octave_filter_bank, rotate2d, scale2d, translate2d


def _images(n=4, c=3, h=16, w=16, seed=0):
    return torch.randn([n, c, h, w], generator=torch.Generator().manual_seed(seed))


def _pipe(p=1.0, **kwargs):
    pipe = AugmentPipe(**kwargs)
    pipe.p.fill_(p)
    return pipe


@pytest.mark.parametrize('spec', sorted(augpipe_specs))
def test_every_pipe_identity_at_p0_and_differentiable_change_at_p1(spec):
    x = _images()
    assert torch.equal(_pipe(p=0, **augpipe_specs[spec])(x), x)
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


def test_xflip_at_p1_is_torch_flip_or_identity():
    x = _images(n=16)
    y = _pipe(xflip=1)(x)
    flipped = [torch.equal(y[i], torch.flip(x[i], dims=[2])) for i in range(16)]
    same = [torch.equal(y[i], x[i]) for i in range(16)]
    assert all(f or s for f, s in zip(flipped, same))
    assert any(flipped) and any(same)


def test_rotate90_at_p1_is_a_quarter_turn():
    x = _images(n=16)
    y = _pipe(rotate90=1)(x)
    turns = [[k for k in range(4) if torch.equal(y[i], torch.rot90(x[i], k, dims=[1, 2]))] for i in range(16)]
    assert all(len(t) == 1 for t in turns)
    assert len({t[0] for t in turns}) >= 3


def test_integer_translation_matches_numpy_reflect_padding():
    x = _images(n=2, h=12, w=10)
    G_inv = translate2d(torch.tensor([3.0, -4.0]), torch.tensor([-2.0, 5.0]))  # out(u) = in(u + t)
    y = AugmentPipe().warp(x, G_inv).numpy()
    for n, (tx, ty) in enumerate([(3, -2), (-4, 5)]):
        padded = np.pad(x[n].numpy(), [(0, 0), (6, 6), (6, 6)], mode='reflect')
        ref = padded[:, 6 + ty:6 + ty + 12, 6 + tx:6 + tx + 10]
        np.testing.assert_array_equal(y[n], ref)


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
    assert interior.abs().max() < 0.01


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
    bank = octave_filter_bank(numtaps=31, num_bands=4).astype(np.float64)
    impulse = np.zeros(31)
    impulse[15] = 1
    np.testing.assert_allclose(bank.sum(axis=0), impulse, atol=1e-6)
    freqs = np.linspace(0, 0.5, 257)
    response = np.abs(np.exp(-2j * np.pi * np.outer(freqs, np.arange(31))) @ bank.T)  # [freq, band]
    for band, (lo, hi) in enumerate([(0, 1 / 16), (1 / 16, 1 / 8), (1 / 8, 1 / 4), (1 / 4, 0.5)]):
        centre = (lo + hi) / 2 if band else 0
        assert np.argmax(response[np.argmin(np.abs(freqs - centre))]) == band


def test_band_gains_match_scipy_separable_convolution():
    x = _images(n=2, h=20, w=20)
    gains = torch.tensor([[1.0, 0.5, 2.0, 0.0], [0.3, 1.0, 1.0, 3.0]])
    y = AugmentPipe().apply_band_gains(x, gains).numpy()
    bank = octave_filter_bank(numtaps=31, num_bands=4).astype(np.float64)
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
