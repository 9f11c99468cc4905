"""StyleGAN2Loss and the training-loop arithmetic against hand computations on tiny models."""

import numpy as np
import pytest
import torch

from torch_utils import training_stats
from training.loss import StyleGAN2Loss
from training.ada import ada_adjust
from training.ema import ema_beta, update_ema

#----------------------------------------------------------------------------
# Tiny stand-ins with the interfaces the loss uses.

class QuadraticD(torch.nn.Module):
    """D(x) = sum_i a_i x_i^2 (+ features = x flattened): R1 has a closed form."""
    def __init__(self, numel):
        super().__init__()
        self.a = torch.nn.Parameter(torch.linspace(-1, 1, numel))

    def forward(self, img, c, return_features=False, update_emas=False):
        flat = img.flatten(1)
        logits = (flat.square() * self.a).sum(1, keepdim=True)
        return (logits, flat) if return_features else logits

class ConstantD(torch.nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = value
        self.dummy = torch.nn.Parameter(torch.zeros([]))

    def forward(self, img, c, return_features=False, update_emas=False):
        logits = torch.full([img.shape[0], 1], self.value) + self.dummy
        return (logits, img.flatten(1)) if return_features else logits

class LinearG(torch.nn.Module):
    z_dim = 4
    c_dim = 0
    def __init__(self, shape):
        super().__init__()
        self.shape = shape
        self.w = torch.nn.Parameter(torch.randn([self.z_dim, int(np.prod(shape))]) * 0.1)
        self.mapping = lambda z, c, update_emas=False: z[:, None, :].repeat(1, 2, 1)
        self.synthesis = lambda ws, update_emas=False: (ws.mean(1) @ self.w).reshape([-1] + list(shape))

SHAPE = [1, 2, 2]

def _batch(n=3):
    rnd = np.random.RandomState(1)
    real = torch.from_numpy(rnd.randn(n, *SHAPE).astype(np.float32))
    z = torch.from_numpy(rnd.randn(n, LinearG.z_dim).astype(np.float32))
    c = torch.zeros([n, 0])
    return real, z, c

#----------------------------------------------------------------------------

def test_r1_penalty_matches_closed_form():
    # d/dx sum a x^2 = 2 a x, so r1 = 4 sum a^2 x^2 and d(gamma/2 * mean r1)/da = 4 gamma a mean(x^2).
    gamma = 3.0
    G, D = LinearG(SHAPE), QuadraticD(int(np.prod(SHAPE)))
    loss = StyleGAN2Loss(device='cpu', G=G, D=D, r1_gamma=gamma)
    real, z, c = _batch()
    collector = training_stats.Collector(regex='Loss/r1_penalty')
    D.requires_grad_(True)
    loss.accumulate_gradients(phase='Dreg', real_img=real, real_c=c, gen_z=z, gen_c=c, gain=1, cur_nimg=0)
    a = D.a.detach().numpy().astype(np.float64)
    x2 = real.flatten(1).numpy().astype(np.float64) ** 2
    np.testing.assert_allclose(D.a.grad.numpy(), 4 * gamma * a * x2.mean(0), rtol=1e-5, atol=1e-7)
    collector.update()
    assert collector['Loss/r1_penalty'] == pytest.approx((4 * a**2 * x2).sum(1).mean(), rel=1e-5)

def test_dmain_gradient_is_logistic_loss():
    # Dmain: softplus(D(fake)) + softplus(-D(real)); d/da = mean[sig(D(f)) f^2 - sig(-D(r)) r^2].
    G, D = LinearG(SHAPE), QuadraticD(int(np.prod(SHAPE)))
    loss = StyleGAN2Loss(device='cpu', G=G, D=D, r1_gamma=0)
    real, z, c = _batch()
    D.requires_grad_(True)
    loss.accumulate_gradients(phase='Dmain', real_img=real, real_c=c, gen_z=z, gen_c=c, gain=2, cur_nimg=0)
    a = D.a.detach().numpy().astype(np.float64)
    f2 = (G.synthesis(G.mapping(z, c)).detach().flatten(1).numpy().astype(np.float64)) ** 2
    r2 = real.flatten(1).numpy().astype(np.float64) ** 2
    sig = lambda v: 1 / (1 + np.exp(-v))
    expected = (sig(f2 @ a)[:, None] * f2 - sig(-(r2 @ a))[:, None] * r2).mean(0) * 2
    np.testing.assert_allclose(D.a.grad.numpy(), expected, rtol=1e-5, atol=1e-7)
    assert G.w.grad is None  # G is frozen in D's phase.

class FakeKD:
    """Records what the loss hands over and returns one term: k * mean(real_feat * gen_feat)."""
    def __init__(self, k):
        self.k = k
        self.seen = None

    def d_terms(self, real_img, real_feat, gen_img, gen_feat):
        self.seen = (real_img.detach().clone(), gen_img.detach().clone())
        return dict(cross=self.k * (real_feat * gen_feat).mean())

    def g_terms(self, gen_img):
        return dict()

class AddOne(torch.nn.Module):
    """Deterministic 'augmentation', to check the KD hook sees the augmented batches."""
    def forward(self, img):
        return img + 1

def test_kd_terms_are_added_to_d_loss():
    G = LinearG(SHAPE)
    real, z, c = _batch()
    grads = []
    for kd in [None, FakeKD(k=5.0)]:
        D = QuadraticD(int(np.prod(SHAPE)))
        loss = StyleGAN2Loss(device='cpu', G=G, D=D, augment_pipe=AddOne(), r1_gamma=0, kd=kd)
        collector = training_stats.Collector(regex='Loss/kd/.*')
        D.requires_grad_(True)
        loss.accumulate_gradients(phase='Dmain', real_img=real, real_c=c, gen_z=z, gen_c=c, gain=1, cur_nimg=0)
        grads.append(D.a.grad.clone())
    # The features are the augmented inputs (x + 1) and do not depend on a: the term adds no D gradient
    # through the features, so compare the reported value and the inputs instead, then a gradient case.
    fake = G.synthesis(G.mapping(z, c)).detach()
    torch.testing.assert_close(kd.seen[0], real + 1)
    torch.testing.assert_close(kd.seen[1], fake + 1)
    collector.update()
    expected = 5.0 * ((real.flatten(1) + 1) * (fake.flatten(1) + 1)).mean()
    assert collector['Loss/kd/cross'] == pytest.approx(float(expected), rel=1e-5)
    torch.testing.assert_close(grads[0], grads[1])

class HeadD(QuadraticD):
    """Adds a trainable KD head parameter so the KD term has a gradient of its own."""
    def __init__(self, numel):
        super().__init__(numel)
        self.h = torch.nn.Parameter(torch.tensor(0.5))

    def forward(self, img, c, return_features=False, update_emas=False):
        logits = super().forward(img, c)
        return (logits, img.flatten(1) * self.h) if return_features else logits

def test_kd_gradient_reaches_d_in_the_same_backward():
    G = LinearG(SHAPE)
    real, z, c = _batch()
    D = HeadD(int(np.prod(SHAPE)))
    loss = StyleGAN2Loss(device='cpu', G=G, D=D, r1_gamma=0, kd=FakeKD(k=2.0))
    D.requires_grad_(True)
    loss.accumulate_gradients(phase='Dmain', real_img=real, real_c=c, gen_z=z, gen_c=c, gain=1, cur_nimg=0)
    # term = 2 mean(h r * h f) = 2 h^2 mean(r f) -> d/dh = 4 h mean(r f).
    fake = G.synthesis(G.mapping(z, c)).detach()
    expected = 4 * 0.5 * (real.flatten(1) * fake.flatten(1)).mean()
    assert float(D.h.grad) == pytest.approx(float(expected), rel=1e-5)

#----------------------------------------------------------------------------

def test_ema_matches_hand_computation():
    # Ramp-up: 1000 images * 0.05 = 50 images half-life, so beta = 0.5 ** (32 / 50).
    assert ema_beta(cur_nimg=1000, batch_size=32, ema_kimg=10, ema_rampup=0.05) == pytest.approx(0.5 ** (32 / 50))
    assert ema_beta(cur_nimg=10**6, batch_size=32, ema_kimg=10, ema_rampup=0.05) == pytest.approx(0.5 ** (32 / 10000))
    assert ema_beta(cur_nimg=0, batch_size=32, ema_kimg=10, ema_rampup=None) == pytest.approx(0.5 ** (32 / 10000))
    G = torch.nn.BatchNorm1d(3)
    G_ema = torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        G.weight.copy_(torch.tensor([1.0, 2.0, 3.0]))
        G_ema.weight.copy_(torch.tensor([0.0, 0.0, 6.0]))
        G.running_mean.copy_(torch.tensor([7.0, 8.0, 9.0]))
    update_ema(G, G_ema, beta=0.75)
    np.testing.assert_allclose(G_ema.weight.detach().numpy(), [0.25, 0.5, 0.75 * 6 + 0.25 * 3])
    np.testing.assert_allclose(G_ema.running_mean.numpy(), [7, 8, 9])  # Buffers are copied.

@pytest.mark.parametrize('logit, direction', [(5.0, +1), (-5.0, -1)])
def test_ada_p_follows_d_on_reals(logit, direction):
    # A D that is always right on reals (sign +1 > target 0.6) raises p; always wrong lowers it.
    G = LinearG(SHAPE)
    loss = StyleGAN2Loss(device='cpu', G=G, D=ConstantD(logit), r1_gamma=0)
    real, z, c = _batch(n=4)
    ada_stats = training_stats.Collector(regex='Loss/signs/real', keep_previous=False)
    for _step in range(4):
        loss.accumulate_gradients(phase='Dmain', real_img=real, real_c=c, gen_z=z, gen_c=c, gain=1, cur_nimg=0)
    ada_stats.update()
    assert ada_stats.num('Loss/signs/real') == 16
    p = ada_adjust(0.5, ada_stats['Loss/signs/real'], ada_target=0.6, num_images=16, ada_kimg=0.1)
    assert p == pytest.approx(0.5 + direction * 16 / 100)
    assert ada_adjust(0.01, -1.0, ada_target=0.6, num_images=16, ada_kimg=0.1) == 0  # Never negative.

def test_unknown_phase_is_rejected():
    loss = StyleGAN2Loss(device='cpu', G=LinearG(SHAPE), D=ConstantD(0.0))
    real, z, c = _batch()
    with pytest.raises(ValueError, match='unknown loss phase'):
        loss.accumulate_gradients(phase='Gfoo', real_img=real, real_c=c, gen_z=z, gen_c=c, gain=1, cur_nimg=0)

#----------------------------------------------------------------------------


def test_w_avg_moves_in_every_training_mapping_call_but_style_mixing():
    """StyleGAN2-ADA updates w_avg whenever G's mapping runs in training mode (G main, G reg, D main),
    skipping only the style-mixing call; truncation of our networks then matches SG2A-trained ones."""
    from training import networks_stylegan2 as net
    torch.manual_seed(0)
    G = net.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3, mapping_kwargs=dict(num_layers=1),
        channel_base=64, channel_max=8).train()
    D = net.Discriminator(c_dim=0, img_resolution=8, img_channels=3, channel_base=64, channel_max=8,
        epilogue_kwargs=dict(mbstd_group_size=2))
    loss = StyleGAN2Loss(device='cpu', G=G, D=D, r1_gamma=1, style_mixing_prob=1.0, pl_weight=2)
    z, c, real = torch.randn(4, 8), torch.zeros(4, 0), torch.randn(4, 3, 8, 8)
    beta = G.mapping.w_avg_beta
    for phase, zs in [('Gmain', z), ('Greg', z[:2]), ('Dmain', z), ('Dreg', None)]:
        before = G.mapping.w_avg.clone()
        with torch.no_grad():
            expect = None if zs is None else G.mapping(zs, c[:len(zs)])[:, 0].mean(dim=0).lerp(before, beta)
        loss.accumulate_gradients(phase=phase, real_img=real, real_c=c, gen_z=z, gen_c=c, gain=1, cur_nimg=0)
        if expect is None:
            assert torch.equal(G.mapping.w_avg, before), phase
        else:
            torch.testing.assert_close(G.mapping.w_avg, expect, msg=phase)  # The main latents only, not the mixing ones.
