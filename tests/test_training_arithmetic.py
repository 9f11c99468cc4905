"""The training loop's and loss's arithmetic against hand computations: the path-length penalty and its
running mean, style mixing, gradient accumulation over passes, G_ema around ema_start_kimg, the draws of
a resumed step, and the reference set of the '_full' metrics. Each test fails on a realistic slip in
the code it guards (see docs/testing.md)."""

import copy
import json
import os

import numpy as np
import pytest
import torch

import train
from test_train_e2e import TINY_ARGS, make_dataset_zip, one_thread, run_train  # noqa: F401 (fixture)
from training import ema
from training.loss import StyleGAN2Loss

#----------------------------------------------------------------------------
# A linear generator: ws = z broadcast, image = ws[:, 0] @ A. Its path-length gradient is closed-form.

class _LinearMapping(torch.nn.Module):
    def __init__(self, num_ws, w_dim):
        super().__init__()
        self.num_ws = num_ws
        self.scale = torch.nn.Parameter(torch.ones([w_dim]))  # Unit scale: ws = z, but ws take part in autograd.
        self.calls = []

    def forward(self, z, c, update_emas=False, **_kwargs):
        self.calls.append(z.detach().clone())
        return (z * self.scale)[:, None, :].repeat(1, self.num_ws, 1)

class _LinearSynthesis(torch.nn.Module):
    def __init__(self, w_dim, shape, seed=0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.shape = shape
        self.A = torch.nn.Parameter(torch.randn([w_dim, int(np.prod(shape))], generator=gen) * 0.3)
        self.B = torch.nn.Parameter(torch.randn([w_dim, int(np.prod(shape))], generator=gen) * 0.3)
        self.seen = []

    def forward(self, ws, update_emas=False, **_kwargs):
        self.seen.append(ws.detach().clone())
        # Layer 0 and the last layer act, so which ws are mixed shows in the image.
        return (ws[:, 0] @ self.A + ws[:, -1] @ self.B).reshape(-1, *self.shape)

class _LinearG(torch.nn.Module):
    def __init__(self, w_dim=4, num_ws=3, shape=(3, 4, 4)):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = w_dim, 0, w_dim
        self.mapping = _LinearMapping(num_ws, w_dim)
        self.synthesis = _LinearSynthesis(w_dim, shape)

class _MeanD(torch.nn.Module):
    def forward(self, img, c, **_kwargs):
        return img.flatten(1).mean(dim=1, keepdim=True) * 3

def test_path_length_penalty_and_running_mean_by_hand():
    G, D = _LinearG(), _MeanD()
    loss = StyleGAN2Loss(device='cpu', G=G, D=D, pl_weight=2.0, pl_decay=0.01, pl_batch_shrink=1)
    z, c = torch.randn(4, 4), torch.zeros(4, 0)
    A, B = G.synthesis.A.detach().clone().requires_grad_(), G.synthesis.B.detach().clone().requires_grad_()
    pl_mean = torch.zeros([])
    for step in range(3):
        G.zero_grad()
        torch.manual_seed(step)
        loss.accumulate_gradients(phase='Greg', real_img=None, real_c=c, gen_z=z, gen_c=c, gain=1.0, cur_nimg=0)
        # By hand: img = w A + w B (all ws equal z); d<img, n>/dws = n A^T on layer 0, n B^T on the last layer.
        torch.manual_seed(step)
        noise = torch.randn(4, 3, 4, 4) / np.sqrt(16)
        n = noise.flatten(1)
        lengths = ((n @ A.t()).square().sum(1) + (n @ B.t()).square().sum(1)).div(3).sqrt()
        new_mean = pl_mean + 0.01 * (lengths.mean() - pl_mean)  # lerp(pl_mean, mean length, decay)
        expected = ((lengths - new_mean) ** 2).mean() * 2.0  # As StyleGAN2-ADA: the new mean stays in the graph.
        gA, gB = torch.autograd.grad(expected, [A, B])
        assert loss.pl_mean.item() == pytest.approx(new_mean.item(), rel=1e-6)
        torch.testing.assert_close(G.synthesis.A.grad, gA, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(G.synthesis.B.grad, gB, rtol=1e-5, atol=1e-7)
        pl_mean = new_mean.detach()
    assert 0 < pl_mean < 0.05  # Three steps of decay 0.01 from zero: a few percent of the lengths.

@pytest.mark.parametrize('prob', [1.0, 0.5, 0.2])
def test_style_mixing_cutoff_and_mixed_ws(prob):
    G, D = _LinearG(num_ws=5), _MeanD()
    loss = StyleGAN2Loss(device='cpu', G=G, D=D, style_mixing_prob=prob)
    z, c = torch.randn(3, 4), torch.zeros(3, 0)
    torch.manual_seed(7)
    loss.accumulate_gradients(phase='Gmain', real_img=None, real_c=c, gen_z=z, gen_c=c, gain=1.0, cur_nimg=0)
    # The draws, in order: the cutoff in [1, num_ws), the mixing coin, then the second latents.
    torch.manual_seed(7)
    cutoff = int(torch.empty([], dtype=torch.int64).random_(1, 5))
    mix = bool(torch.rand([]) < prob)
    z2 = torch.randn_like(z)
    ws = G.synthesis.seen[0]
    if not mix:
        cutoff = 5  # No mixing: every layer keeps the main latents.
    torch.testing.assert_close(ws[:, :cutoff], z[:, None].expand(-1, cutoff, -1))
    torch.testing.assert_close(ws[:, cutoff:], z2[:, None].expand(-1, 5 - cutoff, -1))
    assert torch.equal(G.mapping.calls[0], z) and torch.equal(G.mapping.calls[1], z2)
    # The main loss: softplus(-D(G(z))) averaged, its gradient on A by hand.
    A = G.synthesis.A.detach().clone().requires_grad_()
    img = ws[:, 0] @ A + ws[:, -1] @ G.synthesis.B.detach()
    expected = torch.nn.functional.softplus(-(img.mean(dim=1, keepdim=True) * 3)).mean()
    torch.testing.assert_close(G.synthesis.A.grad, torch.autograd.grad(expected, [A])[0])

#----------------------------------------------------------------------------

def test_G_ema_is_a_copy_before_ema_start_and_an_average_after():
    torch.manual_seed(0)
    G, G_ema = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    G_ema.register_buffer('count', torch.zeros([]))
    G.register_buffer('count', torch.full([], 5.0))
    before = copy.deepcopy(G_ema)
    ema.step_G_ema(G, G_ema, cur_nimg=1000, batch_size=50, ema_kimg=10, ema_rampup=None, ema_start_kimg=2)
    assert torch.equal(G_ema.weight, G.weight) and torch.equal(G_ema.bias, G.bias) and G_ema.count == 5
    G_ema.load_state_dict(before.state_dict())
    ema.step_G_ema(G, G_ema, cur_nimg=3000, batch_size=50, ema_kimg=10, ema_rampup=None, ema_start_kimg=2)
    beta = 0.5 ** (50 / 10000)  # Half-life of ema_kimg thousand images.
    torch.testing.assert_close(G_ema.weight, before.weight * beta + G.weight * (1 - beta))
    # With a ramp-up, the half-life is at most cur_nimg * ramp.
    G_ema.load_state_dict(before.state_dict())
    ema.step_G_ema(G, G_ema, cur_nimg=3000, batch_size=50, ema_kimg=10, ema_rampup=0.05)
    beta = 0.5 ** (50 / 150)
    torch.testing.assert_close(G_ema.weight, before.weight * beta + G.weight * (1 - beta))

#----------------------------------------------------------------------------
# Gradient accumulation through the real training loop: a loss that depends on the reals alone (the same
# images whatever the split), and an optimizer that records the gradient it is given.

class _RecordingAdam(torch.optim.Adam):
    records = []

    def step(self, closure=None):
        self.records.append([p.grad.detach().clone() for group in self.param_groups for p in group['params'] if p.grad is not None])
        return super().step(closure)

def _reals_only_loss(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg):
    if phase in ('Dmain', 'Dboth', 'Dreg'):
        self.D(real_img, real_c).square().mean().mul(gain).backward()

@pytest.mark.parametrize('batch_gpu', [2, 1])
def test_passes_accumulate_to_the_whole_batch_gradient(tmp_path, monkeypatch, batch_gpu):
    monkeypatch.setattr(StyleGAN2Loss, 'accumulate_gradients', _reals_only_loss)
    monkeypatch.setattr(torch.optim, 'Adam', _RecordingAdam)
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=8)
    grads = []
    for bg in (4, batch_gpu):
        _RecordingAdam.records = []
        # Minibatch-std groups of 1: its groups would otherwise couple the samples of a pass.
        args = [a for a in TINY_ARGS if not a.startswith('--mbstd-group')] + ['--mbstd-group=1']
        result = run_train(['--outdir', str(tmp_path / f'runs{bg}'), '--data', data, '--kimg=0.004', f'--batch-gpu={bg}',
            '--aug=noaug', '--fp32=1'] + args)
        assert result.exit_code == 0, result.output
        grads.append([g for record in _RecordingAdam.records for g in record])
    assert len(grads[0]) == len(grads[1]) > 0
    for whole, split in zip(*grads):
        torch.testing.assert_close(split, whole, rtol=1e-5, atol=1e-6)
    # The regularisation phase (interval 16) is scaled by its interval, like the main one by 1.
    assert any(g.abs().sum() > 0 for g in grads[0])

#----------------------------------------------------------------------------

_ORIGINAL_ACCUMULATE = StyleGAN2Loss.accumulate_gradients

def _recording_loss(records):
    original = _ORIGINAL_ACCUMULATE
    def record(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg):
        # The step's own draws: latents, a draw from the global RNG (as augmentation and noise take them).
        records.append((cur_nimg, phase, gen_z.clone(), torch.rand(3), torch.randn(2)))
        return original(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg)
    return record

def test_a_resumed_step_draws_what_the_straight_run_draws(tmp_path, monkeypatch):
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=8)
    args = ['--data', data, '--diffaugment=color,translation,cutout'] + TINY_ARGS
    straight, resumed = [], []
    monkeypatch.setattr(StyleGAN2Loss, 'accumulate_gradients', _recording_loss(straight))
    assert run_train(['--outdir', str(tmp_path / 'a'), '--kimg=0.008'] + args).exit_code == 0
    monkeypatch.setattr(StyleGAN2Loss, 'accumulate_gradients', _recording_loss([]))
    assert run_train(['--outdir', str(tmp_path / 'b'), '--kimg=0.004'] + args).exit_code == 0
    run_dir = os.path.join(tmp_path / 'b', sorted(os.listdir(tmp_path / 'b'))[0])
    monkeypatch.setattr(StyleGAN2Loss, 'accumulate_gradients', _recording_loss(resumed))
    result = run_train(['--outdir', str(tmp_path / 'b'), '--kimg=0.008', f'--resume={run_dir}'] + args)
    assert result.exit_code == 0, result.output
    second = [r for r in straight if r[0] == 4]
    assert len(second) == len(resumed) > 0
    for (n0, p0, z0, u0, g0), (n1, p1, z1, u1, g1) in zip(second, resumed):
        assert (n0, p0) == (n1, p1)
        assert torch.equal(z0, z1) and torch.equal(u0, u1) and torch.equal(g0, g1)

#----------------------------------------------------------------------------

def test_full_metrics_use_every_reference_image_without_flips(tmp_path, monkeypatch):
    """The '_full' protocols take the whole dataset, unflipped, even when training used a subset and x-flips."""
    import tiny_detector
    from metrics import frechet_inception_distance, metric_main, metric_utils
    data = make_dataset_zip(tmp_path / 'ref.zip', num=5, res=8)
    detectors = tiny_detector.save_tiny_detectors(str(tmp_path / 'det'))
    training_set_kwargs = dict(class_name='training.dataset.ImageFolderDataset', path=data, subset=2, subset_seed=0,
        xflip=True, use_labels=False)
    opts = metric_utils.MetricOptions(G=None, dataset_kwargs=training_set_kwargs, device='cpu', cache=False,
        detector_dir=detectors, data_workers=0)
    opts.use_full_dataset()
    stats = metric_utils.compute_feature_stats_for_dataset(opts, metric_utils.INCEPTION_URL, dict(return_features=True),
        capture_all=True)
    detector = tiny_detector.load_detector(detectors, tiny_detector.INCEPTION_FILE)
    from training.dataset import ImageFolderDataset
    full = ImageFolderDataset(path=data)
    images = torch.from_numpy(np.stack([full[i][0] for i in range(len(full))]))
    np.testing.assert_allclose(stats.get_all(), detector(images, return_features=True).numpy(), rtol=1e-5, atol=1e-6)
    # Every '_full' metric asks for it.
    called = []
    original = metric_utils.MetricOptions.use_full_dataset
    monkeypatch.setattr(metric_utils.MetricOptions, 'use_full_dataset', lambda self: called.append(True) or original(self))
    monkeypatch.setattr(frechet_inception_distance, 'compute_fid', lambda opts, **_: 0.0)
    for name in ('fid50k_full', 'fid10k_full', 'fid5k_full'):
        metric_main._metric_dict[name](metric_utils.MetricOptions(G=None, dataset_kwargs=dict(training_set_kwargs)))
    assert len(called) == 3
