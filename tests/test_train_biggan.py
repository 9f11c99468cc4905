"""--cfg=biggan-cifar end to end on CPU: training with KD (tiny teacher), snapshot -> generate.py ->
calc_metrics.py (tiny detector), and the BigGAN loss against hand-computed hinge values."""

import json
import os

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import calc_metrics
import generate
import train
from metrics import metric_main
from test_train_e2e import make_dataset_zip, one_thread, only_run_dir, run_train  # noqa: F401 (fixture)
from tiny_detector import save_tiny_detectors
from training.loss import BigGANLoss
from training.snapshot import load_network_pkl

BIGGAN_TINY = ['--cfg=biggan-cifar', '--cbase=2', '--batch=4', '--tick=0.016', '--metrics=none', '--workers=0',
    '--snap=1', '--device=cpu']

#----------------------------------------------------------------------------

class _ScaledPixelD(torch.nn.Module):
    """D(img) = 2 * s * img[:, 0, 0, 0] with one parameter s, so the hinge loss can be checked by hand."""
    def __init__(self):
        super().__init__()
        self.s = torch.nn.Parameter(torch.ones([]))

    def forward(self, img, c, return_features=False, **_kwargs):
        logits = img[:, :1, 0, 0] * 2 * self.s
        return (logits, img.flatten(1)[:, :3]) if return_features else logits

class _IdentityG(torch.nn.Module):
    def forward(self, z, c, **_kwargs):
        return z[:, :, None, None].expand(-1, -1, 2, 2)

def test_hinge_loss_and_lecam_hand_computed():
    D = _ScaledPixelD()
    real = torch.tensor([0.25, -1.0])[:, None, None, None].expand(-1, 3, 2, 2)
    z = torch.tensor([[0.5, 0, 0], [-0.75, 0, 0]])
    loss = BigGANLoss(device='cpu', G=_IdentityG(), D=D, lecam=0.5, lecam_decay=0.0)
    # A first phase sets the anchors (no penalty yet: none exist); the second uses them.
    loss.begin_phase('a')
    loss.accumulate_gradients(phase='Dboth', real_img=real, real_c=None, gen_z=z, gen_c=None, gain=1, cur_nimg=0)
    loss.end_phase(cur_nimg=0)
    assert D.s.grad.item() == pytest.approx(0.75 + 0.5)
    D.s.grad = None
    loss.begin_phase('b')
    loss.accumulate_gradients(phase='Dboth', real_img=real, real_c=None, gen_z=z, gen_c=None, gain=1, cur_nimg=0)
    loss.end_phase(cur_nimg=0)
    # D(real) = [0.5, -2], D(fake) = [1, -1.5], dD/ds = [0.5, -2] and [1, -1.5].
    # Hinge reals: mean(relu(1 - D)), both active: d/ds = -(0.5 - 2) / 2 = 0.75.
    # Hinge fakes: mean(relu(1 + D)) = mean([2, 0]): d/ds = 1 / 2 = 0.5.
    # LeCam, anchors a_R = -0.75, a_F = -0.25 (decay 0: the batch means; constants for autograd):
    #   mean(relu(D(real) + 0.25)^2): only [0.75, 0] active: d/ds = 2 * 0.75 * 0.5 / 2 = 0.375;
    #   mean(relu(-0.75 - D(fake))^2): only [0, 0.75] active: d/ds = 2 * 0.75 * 1.5 / 2 = 1.125; weight 0.5.
    assert D.s.grad.item() == pytest.approx(0.75 + 0.5 + 0.5 * (0.375 + 1.125))
    assert (loss.lecam_anchors.real, loss.lecam_anchors.fake) == (pytest.approx(-0.75), pytest.approx(-0.25))
    # BigGAN form: before lecam_start_kimg the penalty is off and the anchors follow the latest means.
    late = BigGANLoss(device='cpu', G=_IdentityG(), D=D, lecam=0.5, lecam_decay=0.9, lecam_start_kimg=1)
    plain = BigGANLoss(device='cpu', G=_IdentityG(), D=D)
    for shift, nimg in [(0.0, 0), (1.0, 500), (2.0, 1000)]:
        grads = []
        for loss_fn in (late, plain):
            D.s.grad = None
            loss_fn.begin_phase(nimg)
            loss_fn.accumulate_gradients(phase='Dmain', real_img=real + shift, real_c=None, gen_z=z, gen_c=None, gain=1, cur_nimg=nimg)
            loss_fn.end_phase(cur_nimg=nimg)
            grads.append(D.s.grad.item())
        if nimg < 1000:
            assert grads[0] == pytest.approx(grads[1])  # No penalty yet.
            assert late.lecam_anchors.real == pytest.approx(-0.75 + 2 * shift)  # Decay 0: the latest mean.
        else:
            assert grads[0] != pytest.approx(grads[1])  # The penalty acts from the start on.
    assert late.lecam_anchors.real == pytest.approx(0.9 * (-0.75 + 2) + 0.1 * (-0.75 + 4))  # Then decay 0.9.
    with pytest.raises(ValueError, match='no phase "Dreg"'):
        loss.accumulate_gradients(phase='Dreg', real_img=real, real_c=None, gen_z=z, gen_c=None, gain=1, cur_nimg=0)

#----------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.filterwarnings('ignore:.*RANDOM weights')
@pytest.mark.parametrize('num_classes', [None, 3])
def test_biggan_kd_training_generate_and_metrics(tmp_path, monkeypatch, num_classes):
    from tiny_clip import register_tiny_clip
    clip_dir = tmp_path / 'clip'
    clip_dir.mkdir()
    clip_name = register_tiny_clip(str(clip_dir))
    data = make_dataset_zip(tmp_path / 'data.zip', num=8, res=32, num_classes=num_classes)
    outdir = str(tmp_path / 'runs')
    cond = ['--cond=1'] if num_classes else []
    result = run_train(['--outdir', outdir, '--data', data, '--kimg=0.032', '--kd=agg,corr', f'--kd-clip={clip_name}',
        '--kd-teacher=random', '--lecam=0.3'] + cond + BIGGAN_TINY)
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(outdir)

    options = json.load(open(os.path.join(run_dir, 'training_options.json')))
    assert options['D_steps'] == 4 and options['batch_size'] == 4 and options['ema_start_kimg'] == 200
    assert options['G_opt_kwargs']['betas'] == [0.0, 0.999] and options['G_opt_kwargs']['lr'] == 2e-4
    # lecam-gan's BigGAN form: anchor decay 0.9, penalty off until G iteration 1000 (200 kimg of reals).
    assert options['loss_kwargs'] == {'class_name': 'training.loss.BigGANLoss', 'diffaugment': 'translation,cutout', 'lecam': 0.3,
        'lecam_decay': 0.9, 'lecam_start_kimg': 200}
    assert options['training_set_kwargs']['xflip'] is True  # The preset mirrors the data.

    ticks = [json.loads(line) for line in open(os.path.join(run_dir, 'stats.jsonl'))]
    # Each step shows D 4 batches of 4 reals: 16 images per step, one step per tick here.
    assert [t['Progress/kimg']['mean'] for t in ticks] == pytest.approx([0.016, 0.032])
    for key in ['Loss/D/loss', 'Loss/G/loss', 'Loss/kd/agg', 'Loss/kd/corr_real', 'Loss/kd/corr_fake']:
        assert np.isfinite(ticks[-1][key]['mean']), key
    assert 'Loss/lecam_penalty' not in ticks[-1]  # Off before G iteration 1000.
    assert ticks[-1]['Loss/D/loss']['num'] == 4  # One scalar per D step: 4 D steps per training step.

    pkl = os.path.join(run_dir, 'network-snapshot-000000.pkl')  # Named by whole kimg.
    snap = load_network_pkl(pkl)
    assert hasattr(snap['D'], 'kd_head') and snap['D'].kd_head.spectral_norm
    G = snap['G_ema']
    # Before ema_start_kimg, G_ema is a plain copy of G.
    for p_ema, p in zip(G.parameters(), snap['G'].parameters()):
        assert torch.equal(p_ema, p)

    # generate.py: deterministic per seed.
    gen_args = ['--network', pkl, '--seeds=0-1', '--device=cpu'] + (['--class=2'] if num_classes else [])
    for out in ['out1', 'out2']:
        res = CliRunner().invoke(generate.main, gen_args + ['--outdir', str(tmp_path / out)], catch_exceptions=False)
        assert res.exit_code == 0, res.output
    for seed in [0, 1]:
        a = np.asarray(PIL.Image.open(tmp_path / 'out1' / f'seed{seed:04d}.png'))
        b = np.asarray(PIL.Image.open(tmp_path / 'out2' / f'seed{seed:04d}.png'))
        assert a.shape == (32, 32, 3) and np.array_equal(a, b)

    # calc_metrics.py with the tiny detector and a small test-only FID.
    from test_metrics_pipeline import fid_tiny
    monkeypatch.setattr(metric_main, '_metric_dict', dict(metric_main._metric_dict))
    metric_main.register_metric(fid_tiny)
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path / 'dnnlib-cache'))
    detector_dir = save_tiny_detectors(str(tmp_path / 'detectors'))
    res = CliRunner().invoke(calc_metrics.main, ['--network', pkl, '--metrics=fid_tiny', f'--detector-dir={detector_dir}',
        '--device=cpu', '--verbose=false'])
    assert res.exit_code == 0, res.output
    record = json.loads(open(os.path.join(run_dir, 'metric-fid_tiny.jsonl')).read())
    assert np.isfinite(record['results']['fid_tiny']) and record['results']['fid_tiny'] >= 0

@pytest.mark.parametrize('extra, message', [
    (['--gamma=1'], 'does not apply to --cfg=biggan-cifar'),
    (['--cmax=8'], '--cmax does not apply'),
    (['--lecam=-1'], '--lecam must be non-negative'),
])
def test_biggan_invalid_options(tmp_path, extra, message):
    data = make_dataset_zip(tmp_path / 'data.zip', num=4, res=32)
    outdir = str(tmp_path / 'runs')
    result = CliRunner().invoke(train.main, ['--outdir', outdir, '--data', data, '--kimg=1'] + BIGGAN_TINY + extra)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not os.path.exists(outdir)

#----------------------------------------------------------------------------
