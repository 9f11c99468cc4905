"""LeCam regulariser against hand-computed values."""

import pytest
import torch

from training.lecam import LeCamAnchors, lecam_penalty


def test_penalty_hand_computed():
    real = torch.tensor([1.0, -0.5, 2.0])
    fake = torch.tensor([-1.0, 0.5])
    # relu(real - a_F) with a_F = 0.25: [0.75, 0, 1.75] -> squares mean (0.5625 + 0 + 3.0625) / 3
    # relu(a_R - fake) with a_R = 0.0: [1.0, 0] -> squares mean 0.5
    expected = (0.5625 + 3.0625) / 3 + 0.5
    assert lecam_penalty(real, fake, anchor_real=0.0, anchor_fake=0.25).item() == pytest.approx(expected)


def test_anchor_ema_hand_computed_and_state_roundtrip():
    a = LeCamAnchors(decay=0.9)
    a.update(1.0, -1.0)              # first update initialises
    a.update(2.0, 0.5)               # Non-zero means on both sides: a dropped or negated term shows.
    assert a.real == pytest.approx(0.9 * 1.0 + 0.1 * 2.0)
    assert a.fake == pytest.approx(0.9 * -1.0 + 0.1 * 0.5)
    b = LeCamAnchors()
    b.load_state_dict(a.state_dict())
    assert (b.decay, b.real, b.fake) == (a.decay, a.real, a.fake)


def test_decay_argument_overrides_for_one_step():
    # The training loop passes decay=0 until lecam_start_kimg (BigGAN): the anchors follow the batch means.
    a = LeCamAnchors(decay=0.9)
    a.update(1.0, -1.0)
    a.update(3.0, -2.0, decay=0.0)
    assert (a.real, a.fake) == (3.0, -2.0)
    a.update(1.0, 0.0)  # decay=None: the anchors' own 0.9 again.
    assert a.real == pytest.approx(0.9 * 3.0 + 0.1 * 1.0) and a.fake == pytest.approx(0.9 * -2.0)
    assert LeCamAnchors(decay=0.0).decay == 0.0  # 0 is a valid decay (follow the means), 1 is not.


def test_bad_decay_rejected():
    with pytest.raises(ValueError, match='decay'):
        LeCamAnchors(decay=1.0)


def test_penalty_gradient_reaches_logits():
    real = torch.tensor([1.0, 3.0], requires_grad=True)
    fake = torch.tensor([-2.0], requires_grad=True)
    lecam_penalty(real, fake, anchor_real=0.0, anchor_fake=0.0).backward()
    # d/dreal mean(relu(real)^2) = 2*real/2 ; d/dfake relu(-fake)^2 = -2*(-fake) = -4
    assert torch.allclose(real.grad, torch.tensor([1.0, 3.0]))
    assert torch.allclose(fake.grad, torch.tensor([-4.0]))
