"""Blind spots of the training tests, found by planting bugs (tests/mutants/train-*.patch) that the suite
let through. Each test compares against an independent reference (a hand computation, a naive
implementation, a distribution's known moments) on fixtures where the things a slip could swap differ:
G != G_ema, real labels != fake labels, 0 < p < 1, batch_gpu < batch, lazy intervals > 1."""

import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import train
from test_network_reference import _fc, _randomise
from test_train_e2e import TINY_ARGS, final_snapshot, make_dataset_zip, one_thread, run_train  # noqa: F401 (fixture)
from test_training_arithmetic import _LinearG, _MeanD
from torch_utils import training_stats
from training import ada, diffaugment, ema
from training import networks_biggan as biggan
from training import networks_stylegan2 as sg2
from training.augment import AugmentPipe
from training.loss import BigGANLoss, StyleGAN2Loss
from training.snapshot import load_network_pkl
from training.weights import save_weights

#----------------------------------------------------------------------------
# One tiny StyleGAN2 run through train.py, recording what the loop hands to Adam, the EMA, ADA and the
# metrics. batch 4 in passes of 2 (batch_gpu < batch), G_reg 4 / D_reg 16, an EMA half-life of 20 images
# without ramp-up (so G_ema visibly lags G), ADA on, a metric at every snapshot.

EMA_NIMG = 20
LR = 0.002

def _params(module):
    return {name: p.detach().clone() for name, p in module.named_parameters()}

@pytest.fixture(scope='module')
def recorded_run(tmp_path_factory):
    from metrics import metric_main
    tmp = tmp_path_factory.mktemp('recorded')
    data = make_dataset_zip(tmp / 'tiny.zip', num=8)
    rec = dict(adam=[], ema=[], ema_start=None, ada=[], signs=[], metric=[])

    class RecordingAdam(torch.optim.Adam):
        def __init__(self, params, **kwargs):
            rec['adam'].append(dict(kwargs))
            super().__init__(params, **kwargs)

    step_G_ema, ada_adjust, report = ema.step_G_ema, ada.ada_adjust, training_stats.report
    def recording_step_G_ema(G, G_ema, **kwargs):
        if rec['ema_start'] is None:
            rec['ema_start'] = _params(G_ema)
        rec['ema'].append(_params(G))
        return step_G_ema(G, G_ema, **kwargs)
    def recording_ada_adjust(*args):
        rec['ada'].append(args)
        return ada_adjust(*args)
    def recording_report(name, value):
        if name == 'Loss/signs/real':
            rec['signs'].append(torch.as_tensor(value).detach().flatten().clone())
        return report(name, value)
    def fid_blindspot(opts):
        rec['metric'].append(_params(opts.G))
        return dict(fid_blindspot=float(len(rec['metric'])))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.optim, 'Adam', RecordingAdam)
        mp.setattr(ema, 'step_G_ema', recording_step_G_ema)
        mp.setattr(ada, 'ada_adjust', recording_ada_adjust)
        mp.setattr(training_stats, 'report', recording_report)
        mp.setattr(metric_main, '_metric_dict', dict(metric_main._metric_dict))
        metric_main.register_metric(fid_blindspot, detectors=())
        mp.setitem(train.CONFIG_PRESETS, 'stylegan2', dict(train.CONFIG_PRESETS['stylegan2'], ema=EMA_NIMG / 1000, ramp=None,
            lrate=LR))
        args = [a for a in TINY_ARGS if not a.startswith('--metrics')]
        outdir = str(tmp / 'runs')
        result = run_train(['--outdir', outdir, '--data', data, '--cfg=stylegan2', '--batch-gpu=2', '--aug=ada',
            '--kimg=0.016', '--metrics=fid_blindspot'] + args)
    torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    options = json.load(open(os.path.join(os.path.dirname(final_snapshot(outdir)), 'training_options.json')))
    assert (options['batch_size'], options['batch_gpu'], options['G_reg_interval'], options['D_reg_interval']) == (4, 2, 4, 16)
    rec['snapshot'] = load_network_pkl(final_snapshot(outdir))
    return rec

def test_lazy_regularisation_rescales_adam_as_stylegan2(recorded_run):
    # StyleGAN2 (Karras et al. 2020, appendix B): with regularisation every k steps, lr * k/(k+1), betas ** (k/(k+1)).
    G_opt, D_opt = recorded_run['adam']
    for opt, k in [(G_opt, 4), (D_opt, 16)]:
        ratio = k / (k + 1)
        assert opt['lr'] == pytest.approx(LR * ratio, rel=1e-12)
        assert opt['betas'] == [pytest.approx(0.0), pytest.approx(0.99 ** ratio, rel=1e-12)]

def test_snapshot_G_ema_is_the_hand_ema_of_the_whole_batch(recorded_run):
    # Each step: G_ema <- G + (G_ema - G) * 0.5 ** (batch / half-life), the batch being the step's 4 images.
    beta = 0.5 ** (4 / EMA_NIMG)
    expected = dict(recorded_run['ema_start'])
    for G in recorded_run['ema']:
        expected = {name: G[name] + (expected[name] - G[name]) * beta for name in expected}
    assert len(recorded_run['ema']) == 4
    snapshot = recorded_run['snapshot']
    got, G = _params(snapshot['G_ema']), _params(snapshot['G'])
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=2e-5, msg=name)  # float32 rounding: ~1e-6
    assert max((got[name] - G[name]).abs().max().item() for name in got) > 1e-4  # G_ema is not G.

def test_metrics_evaluate_G_ema(recorded_run):
    snapshot = recorded_run['snapshot']
    seen, G_ema, G = recorded_run['metric'][-1], _params(snapshot['G_ema']), _params(snapshot['G'])
    assert len(recorded_run['metric']) == 3  # Snapshots at 4, 12 and 16 images.
    for name in G_ema:
        assert torch.equal(seen[name], G_ema[name]), name
    assert any(not torch.equal(seen[name], G[name]) for name in G)

def test_ada_adjusts_by_the_mean_sign_of_the_interval_and_its_reals(recorded_run):
    # One adjustment after ada_interval = 4 steps: the reals shown are 4 steps x batch 4 = 16 (not batch_gpu),
    # the sign is the mean over every D(real) reported in those steps (ticks ended after steps 1 and 3).
    (call,) = recorded_run['ada']
    p, sign_mean, target, num_images, ada_kimg = call
    signs = torch.cat(recorded_run['signs']).double()
    assert (p, target, num_images, ada_kimg) == (0.0, 0.6, 16, 500)
    assert sign_mean == pytest.approx(signs.mean().item(), abs=1e-6)
    expected_p = max(0 + np.sign(signs.mean().item() - 0.6) * 16 / 500e3, 0)
    assert recorded_run['snapshot']['resume_state']['augment_p'] == pytest.approx(expected_p, abs=1e-9)

def test_ada_carry_counts_and_sums_signs_across_folds():
    # The carry is [count, sum]: folding 3 signs then 4 gives [7, their sum], whatever the split.
    ada_stats = training_stats.Collector(regex='Loss/signs/real', keep_previous=False)
    training_stats.report('Loss/signs/real', torch.tensor([1.0, 1.0, -1.0]))
    carry = ada.fold_ada_stats(ada_stats, [0, 0.0])
    training_stats.report('Loss/signs/real', torch.tensor([1.0, 1.0, 1.0, -1.0]))
    carry = ada.fold_ada_stats(ada_stats, carry)
    assert carry[0] == 7 and carry[1] == pytest.approx(1.0 + 2.0)

def test_biggan_progress_counts_the_reals_of_every_D_step(tmp_path):
    # biggan-cifar: 4 D steps per G step, each on its own batch of 4 reals: one step shows 16 reals, so a run of
    # 0.016 kimg is one step, and the data stream moves on by 16.
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=8, res=32)
    result = run_train(['--outdir', str(tmp_path / 'runs'), '--data', data, '--cfg=biggan-cifar', '--cbase=2', '--batch=4',
        '--kimg=0.016', '--tick=0.016', '--metrics=none', '--workers=0', '--snap=1', '--device=cpu'])
    assert result.exit_code == 0, result.output
    state = load_network_pkl(final_snapshot(str(tmp_path / 'runs')))['resume_state']
    assert (state['cur_nimg'], state['batch_idx'], state['sampler_pos']) == (16, 1, 16)

#----------------------------------------------------------------------------
# Losses.

def test_path_length_runs_on_the_shrunk_batch():
    # pl_batch_shrink=2 on a batch of 4: the penalty, its mean and its gradient come from the first 2 latents.
    G, D = _LinearG(), _MeanD()
    loss = StyleGAN2Loss(device='cpu', G=G, D=D, pl_weight=2.0, pl_decay=0.01, pl_batch_shrink=2)
    z, c = torch.randn(4, 4), torch.zeros(4, 0)
    A, B = G.synthesis.A.detach().clone().requires_grad_(), G.synthesis.B.detach().clone().requires_grad_()
    torch.manual_seed(5)
    loss.accumulate_gradients(phase='Greg', real_img=None, real_c=c, gen_z=z, gen_c=c, gain=1.0, cur_nimg=0)
    assert G.synthesis.seen[0].shape[0] == 2
    torch.manual_seed(5)
    n = (torch.randn(2, 3, 4, 4) / 4).flatten(1)
    lengths = ((n @ A.t()).square().sum(1) + (n @ B.t()).square().sum(1)).div(3).sqrt()
    new_mean = 0.01 * lengths.mean()
    gA, gB = torch.autograd.grad(((lengths - new_mean) ** 2).mean() * 2.0, [A, B])
    assert loss.pl_mean.item() == pytest.approx(new_mean.item(), rel=1e-6)
    torch.testing.assert_close(G.synthesis.A.grad, gA, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(G.synthesis.B.grad, gB, rtol=1e-5, atol=1e-7)

class _LabelD(torch.nn.Module):
    """D(x, c) = (c . v) * mean(x): a conditional D whose gradient names the labels it was given."""
    def __init__(self, c_dim):
        super().__init__()
        self.v = torch.nn.Parameter(torch.linspace(-1.0, 2.0, c_dim))

    def forward(self, img, c, return_features=False, update_emas=False):
        logits = (c @ self.v)[:, None] * img.flatten(1).mean(1, keepdim=True)
        return (logits, img.flatten(1)) if return_features else logits

class _ConstG(torch.nn.Module):
    """G(z) = z reshaped to images (one pixel per latent entry); its mapping ignores c."""
    z_dim, c_dim = 4, 3
    def __init__(self):
        super().__init__()
        self.mapping = lambda z, c, update_emas=False: z[:, None, :]
        self.synthesis = lambda ws, update_emas=False: ws[:, 0].reshape(-1, 1, 2, 2) + 0.5

def test_dmain_scores_fakes_with_their_own_labels():
    real = torch.randn(3, 1, 2, 2, generator=torch.Generator().manual_seed(1)) + 1
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(2))
    real_c, gen_c = torch.eye(3)[[0, 1, 2]], torch.eye(3)[[2, 2, 0]]
    D = _LabelD(3).requires_grad_(True)
    loss = StyleGAN2Loss(device='cpu', G=_ConstG(), D=D, r1_gamma=0)
    loss.accumulate_gradients(phase='Dmain', real_img=real, real_c=real_c, gen_z=z, gen_c=gen_c, gain=1, cur_nimg=0)
    # d/dv [mean softplus(D(f, c_f)) + mean softplus(-D(r, c_r))] = mean[sig(D_f) m_f c_f] - mean[sig(-D_r) m_r c_r].
    v = D.v.detach().double().numpy()
    m_f = (z.double().numpy() + 0.5).mean(1)
    m_r = real.double().flatten(1).numpy().mean(1)
    cf, cr = gen_c.double().numpy(), real_c.double().numpy()
    sig = lambda t: 1 / (1 + np.exp(-t))
    expected = ((sig((cf @ v) * m_f) * m_f)[:, None] * cf).mean(0) - ((sig(-(cr @ v) * m_r) * m_r)[:, None] * cr).mean(0)
    np.testing.assert_allclose(D.v.grad.numpy(), expected, rtol=1e-5, atol=1e-7)

class _ScaleG(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.s = torch.nn.Parameter(torch.tensor(1.5))

    def forward(self, z, c, **_kwargs):
        return self.s * z[:, :, None, None].expand(-1, -1, 2, 2)

class _PixelD(torch.nn.Module):
    def forward(self, img, c, return_features=False, **_kwargs):
        logits = img[:, :1, 0, 0] * 2
        return (logits, img.flatten(1)) if return_features else logits

def test_biggan_G_minimises_minus_D_of_fakes():
    # Hinge G loss -mean(D(G(z))) = -mean(2 s z0): d/ds = -2 mean(z0).
    G = _ScaleG()
    z = torch.tensor([[0.5, 0.1], [1.5, -0.3], [-0.25, 0.2]])
    BigGANLoss(device='cpu', G=G, D=_PixelD()).accumulate_gradients(phase='Gboth', real_img=None, real_c=None, gen_z=z,
        gen_c=None, gain=1, cur_nimg=0)
    assert G.s.grad.item() == pytest.approx(-2 * (0.5 + 1.5 - 0.25) / 3)

#----------------------------------------------------------------------------
# ADA: probabilities strictly between 0 and 1, and the transforms' matrices.

def _capture(pipe, N, H=4, W=4, seed=0):
    """Run the pipe on N images and return the geometric matrices G_inv and colour matrices M it built."""
    seen = dict(G_inv=torch.eye(3).expand(N, 3, 3), M=torch.eye(4).expand(N, 4, 4))
    pipe.warp = lambda images, G_inv: seen.__setitem__('G_inv', G_inv.clone()) or images
    pipe.apply_color_matrix = lambda images, M: seen.__setitem__('M', M.clone()) or images
    torch.manual_seed(seed)
    pipe(torch.rand([N, 3, H, W]))
    return seen

# Each transform's probability at an intermediate p: tests/test_augment_stream.py.

def test_integer_translation_moves_by_whole_pixels():
    pipe = AugmentPipe(xint=1, xint_max=0.125)
    seen = _capture(pipe, 400, H=32, W=32)
    shift = seen['G_inv'][:, :2, 2]
    assert torch.equal(shift, shift.round()) and shift.abs().max() == 4 and (shift != 0).any()

def test_luma_flip_is_a_reflection_of_the_luma():
    # Householder reflection about the grey axis: each pixel's channel mean m goes to -m, the chroma stays:
    # y = x - 2 m, per sample either that or the identity.
    x = torch.randn([32, 3, 4, 4], generator=torch.Generator().manual_seed(0))
    pipe = AugmentPipe(lumaflip=1)
    torch.manual_seed(1)
    y = pipe(x)
    flipped = x - 2 * x.mean(dim=1, keepdim=True)
    is_flip = [torch.allclose(y[i], flipped[i], atol=1e-5) for i in range(32)]
    is_same = [torch.allclose(y[i], x[i], atol=1e-6) for i in range(32)]
    assert all(f or s for f, s in zip(is_flip, is_same)) and any(is_flip) and any(is_same)

#----------------------------------------------------------------------------
# DiffAugment: the ranges of Zhao et al.'s reference code (DiffAugment_pytorch.py).

def _factors(y, x, dims):
    """Per-sample least-squares factor s in y - mean = s (x - mean), means over `dims`."""
    dx, dy = x - x.mean(dim=dims, keepdim=True), y - x.mean(dim=dims, keepdim=True)
    return ((dx * dy).flatten(1).sum(1) / dx.square().flatten(1).sum(1)).double()

def test_diffaugment_saturation_and_contrast_ranges():
    x = torch.randn([3000, 3, 4, 4], generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    s = _factors(diffaugment.rand_saturation(x, generator=gen), x, dims=[1])  # U(0, 2) about the channel mean.
    assert 0 <= s.min() < 0.01 and 1.99 < s.max() <= 2 and abs(s.mean() - 1) < 0.04
    c = _factors(diffaugment.rand_contrast(x, generator=gen), x, dims=[1, 2, 3])  # U(0.5, 1.5) about the image mean.
    assert 0.5 - 1e-5 <= c.min() < 0.51 and 1.49 < c.max() <= 1.5 + 1e-5 and abs(c.mean() - 1) < 0.02

def test_diffaugment_translation_reaches_both_ends(monkeypatch):
    # ratio 0.125 of 16 pixels: shifts uniform over the 5 integers -2..2 on each axis.
    seen = []
    monkeypatch.setattr(diffaugment, 'translate', lambda x, sy, sx: seen.append((sy.clone(), sx.clone())) or x)
    diffaugment.rand_translation(torch.zeros([4000, 1, 16, 16]), ratio=0.125, generator=torch.Generator().manual_seed(0))
    (sy, sx), = seen
    for shifts in (sy, sx):
        counts = torch.bincount(shifts + 2, minlength=5).double() / 4000
        assert counts.numel() == 5 and (counts - 0.2).abs().max() < 0.03, counts

#----------------------------------------------------------------------------
# Networks.

def test_conditional_stylegan2_D_projects_onto_the_normalised_label_map():
    # logits = <out(feature), cmap(c)> / sqrt(cmap_dim), cmap the label's mapping network (lr multiplier 0.01).
    D = sg2.Discriminator(c_dim=3, img_resolution=8, img_channels=3, channel_base=64, channel_max=8,
        mapping_kwargs=dict(num_layers=2), epilogue_kwargs=dict(mbstd_group_size=2))
    _randomise(D, 4)
    img = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    c = torch.eye(3)[[0, 2, 1, 2]]
    with torch.no_grad():
        logits, features = D(img, c, return_features=True)
    p = dict(D.named_parameters())
    y = _fc(p, 'mapping.embed', c.double().numpy())
    x = y / np.sqrt((y ** 2).mean(axis=1, keepdims=True) + 1e-8)
    for idx in range(2):
        x = _fc(p, f'mapping.fc{idx}', x, lr=0.01, act='lrelu')
    out = _fc(p, 'b4.out', features.double().numpy())
    expected = (out * x).sum(axis=1, keepdims=True) / np.sqrt(D.cmap_dim)
    assert D.cmap_dim == 8
    np.testing.assert_allclose(logits.double().numpy(), expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())

@pytest.mark.parametrize('c_dim', [5, 0])
def test_biggan_conditional_batch_norm_by_hand(c_dim):
    # Batch statistics (biased variance), then gain 1 + c W_g and bias c W_b (unconditional: 1 + w_g, w_b).
    gen = torch.Generator().manual_seed(0)
    bn = biggan.ClassConditionalBatchNorm(4, c_dim)
    with torch.no_grad():
        bn.gain_weight.copy_(torch.randn(bn.gain_weight.shape, generator=gen) * 0.3)
        bn.bias_weight.copy_(torch.randn(bn.bias_weight.shape, generator=gen) * 0.3)
    x = torch.randn(6, 4, 3, 3, generator=gen) * 2 + 1
    c = torch.eye(5)[[0, 3, 3, 1, 4, 2]] if c_dim else None
    got = bn(x, c).detach().double().numpy()
    xn = x.double().numpy()
    norm = (xn - xn.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(xn.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
    Wg, Wb = bn.gain_weight.detach().double().numpy(), bn.bias_weight.detach().double().numpy()
    gain, bias = (c.double().numpy() @ Wg, c.double().numpy() @ Wb) if c_dim else (np.tile(Wg, [6, 1]), np.tile(Wb, [6, 1]))
    expected = norm * (1 + gain)[:, :, None, None] + bias[:, :, None, None]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)

def test_biggan_D_sums_its_features_and_projects_the_label():
    # BigGAN's D: h = sum over pixels of relu(last block), logits = linear(h) + <embed(c), h>.
    D = biggan.Discriminator(c_dim=3, ch=2).eval()
    last = []
    D.blocks[-1].register_forward_hook(lambda module, inputs, output: last.append(output.detach().double()))
    img = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    c = torch.eye(3)[[2, 0, 1, 1]]
    with torch.no_grad():
        logits, features = D(img, c, return_features=True)
        W_out, b_out, W_emb = D.out.normalized_weight().double(), D.out.bias.double(), D.embed.normalized_weight().double()
    h = F.relu(last[0]).sum(dim=[2, 3])
    torch.testing.assert_close(features.double(), h, rtol=1e-4, atol=1e-5)
    expected = h @ W_out.t() + b_out + ((c.double() @ W_emb.t()) * h).sum(dim=1, keepdim=True)
    torch.testing.assert_close(logits.double(), expected, rtol=1e-4, atol=1e-5)

#----------------------------------------------------------------------------
# Weights files, the command line.

def test_resume_auto_continues_the_newest_of_several_continuable_runs(tmp_path):
    from training import resume
    options = dict(data_fingerprint='sha256:same', random_seed=0, total_kimg=1)
    for name in ('00000-a', '00001-b', '00002-c'):
        (tmp_path / name).mkdir()
        (tmp_path / name / 'training_options.json').write_text(json.dumps(options))
        (tmp_path / name / 'network-snapshot-000000.pkl').write_bytes(b'')
    (tmp_path / '00002-c' / 'training_options.json').write_text(json.dumps(dict(options, random_seed=1)))  # Not this one.
    pkl, notes = resume.find_continuable(str(tmp_path), dict(options, total_kimg=2))
    assert pkl == str(tmp_path / '00001-b' / 'network-snapshot-000000.pkl')
    assert len(notes) == 1 and notes[0].startswith('00002-c not continued')

def test_settings_set_by_how_a_run_began_do_not_block_its_continuation():
    # A run begun by transfer records ada_kimg=100 and no EMA ramp-up; its requeue (same command) asks for neither.
    from training import resume
    recorded = dict(data_fingerprint='sha256:same', random_seed=0, ada_kimg=100, ema_rampup=None)
    assert resume.option_differences(recorded, dict(data_fingerprint='sha256:same', random_seed=0, ema_rampup=0.05)) == []
    assert resume.option_differences(recorded, dict(recorded, random_seed=1)) == [('random_seed', 0, 1)]

def test_a_continued_run_that_reached_its_kimg_is_finished(tmp_path):
    from test_presets import _options, _tiny_snapshot
    run = tmp_path / 'runs' / '00000-old'
    run.mkdir(parents=True)
    (run / 'training_options.json').write_text(json.dumps(_options(tmp_path)))
    _tiny_snapshot(run / 'network-snapshot-000000.pkl', state=dict(cur_nimg=4))
    assert _options(tmp_path, f'--resume={run}', '--kimg=0.005')['resume_mode'] == 'continue'  # 4 of 5 images: more to do.
    dropped = ('--cbase', '--cmax', '--map-depth', '--mbstd-group', '--batch', '--snap', '--tick')  # As _options does.
    args = [a for a in TINY_ARGS if not a.startswith(dropped)]
    result = run_train(['--outdir', str(tmp_path / 'runs'), '--data', str(tmp_path / 'tiny.zip'), '--dry-run', f'--resume={run}',
        '--kimg=0.004'] + args)  # 4 of 4 images: done.
    assert result.exit_code == 0 and 'The run already reached 0.004 kimg' in result.output, result.output
    assert 'Training options' not in result.output

def test_a_weights_file_missing_a_tensor_is_refused(tmp_path):
    G = sg2.Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=8, img_channels=3, channel_base=32, channel_max=4)
    path = str(tmp_path / 'net.weights.pt')
    save_weights(path, dict(G=G, G_ema=G, training_set_kwargs=None))
    assert set(load_network_pkl(path)) >= {'G', 'G_ema'}  # Whole: loads.
    data = torch.load(path, weights_only=True)
    key = sorted(data['networks']['G_ema']['state_dict'])[0]
    del data['networks']['G_ema']['state_dict'][key]
    torch.save(data, path)
    with pytest.raises(ValueError, match='G_ema'):
        load_network_pkl(path)

def test_biggan_mirror_and_lecam_defaults_and_overrides(tmp_path):
    from test_presets import _options
    # biggan-cifar mirrors unless --mirror=0; LeCam's anchor decay is lecam-gan's: 0.9 for BigGAN from G
    # iteration 1000 (200 kimg of reals), 0.99 for StyleGAN2 from the start.
    c = _options(tmp_path, '--cfg=biggan-cifar', '--lecam=0.3')
    assert c['training_set_kwargs']['xflip'] is True
    assert (c['loss_kwargs']['lecam_decay'], c['loss_kwargs']['lecam_start_kimg']) == (0.9, 200)
    assert _options(tmp_path, '--cfg=biggan-cifar', '--mirror=0')['training_set_kwargs']['xflip'] is False
    c = _options(tmp_path, '--lecam=0.3')
    assert c['training_set_kwargs']['xflip'] is False
    assert (c['loss_kwargs']['lecam_decay'], c['loss_kwargs']['lecam_start_kimg']) == (0.99, 0)

#----------------------------------------------------------------------------
