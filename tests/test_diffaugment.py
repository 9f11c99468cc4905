"""DiffAugment: shapes, policies, and each transform against a hand-written reference."""

import numpy as np
import pytest
import torch

from training.diffaugment import DiffAugment, parse_policy, rand_brightness, rand_cutout, rand_translation, translate


def _images(n=6, c=3, h=16, w=16):
    return torch.randn([n, c, h, w], generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize('policy', ['', 'color', 'translation', 'cutout', 'color,translation', 'translation,cutout', 'color,translation,cutout'])
def test_every_policy_keeps_shape_and_dtype(policy):
    x = _images(h=16, w=12)
    y = DiffAugment(x, policy=policy)
    assert y.shape == x.shape and y.dtype == x.dtype


def test_channels_last_input_matches_channels_first():
    x = _images()
    a = DiffAugment(x, policy='color,translation,cutout', generator=torch.Generator().manual_seed(3))
    b = DiffAugment(x.permute(0, 2, 3, 1), policy='color,translation,cutout', channels_first=False, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b.permute(0, 3, 1, 2))


def test_unknown_policy_raises():
    with pytest.raises(ValueError, match='flip'):
        DiffAugment(_images(), policy='color,flip')
    assert parse_policy(' color , cutout ') == ['color', 'cutout']


def test_seeded_generator_is_reproducible():
    x = _images()
    a = DiffAugment(x, generator=torch.Generator().manual_seed(7))
    b = DiffAugment(x, generator=torch.Generator().manual_seed(7))
    c = DiffAugment(x, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def _roll_and_mask(x, dy, dx):
    """Naive reference: numpy roll, then zero the wrapped-around rows/columns."""
    out = np.roll(x, shift=(-dy, -dx), axis=(-2, -1)).copy()
    h, w = x.shape[-2:]
    if dy > 0: out[..., h - dy:, :] = 0
    if dy < 0: out[..., :-dy, :] = 0
    if dx > 0: out[..., :, w - dx:] = 0
    if dx < 0: out[..., :, :-dx] = 0
    return out


def test_translate_matches_roll_and_mask():
    x = _images(n=4, h=8, w=10)
    shifts = [(0, 0), (2, -1), (-3, 4), (1, 1)]
    y = translate(x, [s[0] for s in shifts], [s[1] for s in shifts])
    for i, (dy, dx) in enumerate(shifts):
        np.testing.assert_array_equal(y[i].numpy(), _roll_and_mask(x[i].numpy(), dy, dx))


def test_rand_translation_is_a_roll_within_range():
    x = _images(n=32, h=16, w=16) + 5  # offset so zero filling is distinguishable from content
    y = rand_translation(x, ratio=0.125, generator=torch.Generator().manual_seed(0))
    seen = set()
    for i in range(x.shape[0]):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.array_equal(y[i].numpy(), _roll_and_mask(x[i].numpy(), dy, dx))]
        assert len(matches) == 1, f'sample {i} is not a shift by at most 2 pixels'
        seen.add(matches[0])
    assert len(seen) > 5  # per-sample randomness


def test_cutout_zeroes_expected_area_fraction():
    h = w = 10
    x = torch.ones([4000, 1, h, w])
    y = rand_cutout(x, ratio=0.5, generator=torch.Generator().manual_seed(0))
    # Exact expectation by enumerating every centre the box can take (size 5, centres 0..9, clipped).
    size = 5
    covered = [min(c - size // 2 + size, h) - max(c - size // 2, 0) for c in range(h)]
    expected = (np.mean(covered) / h) ** 2
    measured = (y == 0).float().mean().item()
    assert abs(measured - expected) < 0.01
    # Each zeroed region is one axis-aligned rectangle of at most 5x5 pixels.
    zeros = (y[:, 0] == 0)
    assert zeros.any(dim=2).sum(dim=1).max() <= size and zeros.any(dim=1).sum(dim=1).max() <= size


def test_brightness_matches_hand_computation():
    x = _images()
    y = rand_brightness(x, generator=torch.Generator().manual_seed(5))
    shift = torch.rand([x.shape[0], 1, 1, 1], generator=torch.Generator().manual_seed(5)) - 0.5
    torch.testing.assert_close(y, x + shift)


def test_color_preserves_gradient_and_translation_cutout_backprop():
    x = _images().requires_grad_(True)
    DiffAugment(x, policy='color,translation,cutout').square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
