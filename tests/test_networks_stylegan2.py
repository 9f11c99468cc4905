"""StyleGAN2 networks: shapes, mapping/truncation, noise, modulated conv and minibatch std against naive references."""

import copy
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from torch_utils.ops import conv2d_resample, upfirdn2d
from training import networks_stylegan2 as net

SMALL = dict(channel_base=256, channel_max=32)


def _G(c_dim=0, res=16, **kwargs):
    return net.Generator(z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=res, img_channels=3,
        mapping_kwargs=dict(num_layers=2), **SMALL, **kwargs)


def _D(c_dim=0, res=16, **kwargs):
    return net.Discriminator(c_dim=c_dim, img_resolution=res, img_channels=3, **SMALL, **kwargs)


def _labels(n, c_dim):
    return F.one_hot(torch.arange(n) % c_dim, c_dim).float() if c_dim else torch.zeros([n, 0])


@pytest.mark.parametrize('architecture', ['orig', 'skip', 'resnet'])
@pytest.mark.parametrize('c_dim', [0, 5])
def test_generator_output_shape(architecture, c_dim):
    G = _G(c_dim=c_dim, architecture=architecture)
    img = G(torch.randn([4, G.z_dim]), _labels(4, c_dim))
    assert img.shape == (4, 3, 16, 16) and img.dtype == torch.float32
    assert G.num_ws == 6 and G.mapping.num_ws == G.synthesis.num_ws  # 4x4: conv+torgb, 8x8/16x16: two convs, +torgb at the end.
    assert torch.isfinite(img).all()


@pytest.mark.parametrize('architecture', ['orig', 'skip', 'resnet'])
@pytest.mark.parametrize('c_dim', [0, 5])
def test_discriminator_output_and_feature_shapes(architecture, c_dim):
    D = _D(c_dim=c_dim, res=32, architecture=architecture, epilogue_kwargs=dict(mbstd_group_size=2))
    img, c = torch.randn([4, 3, 32, 32]), _labels(4, c_dim)
    logits = D(img, c)
    logits2, features = D(img, c, return_features=True)
    assert logits.shape == (4, 1) and features.shape == (4, D.feature_dim)
    assert D.feature_dim == 32  # min(channel_base // 4, channel_max)
    torch.testing.assert_close(logits, logits2)
    # The feature is the epilogue's fc output: the output layer applied to it gives the unconditional logits.
    if c_dim == 0:
        torch.testing.assert_close(D.b4.out(features), logits)


def test_bad_configuration_raises():
    with pytest.raises(ValueError, match='power of two'):
        _G(res=24)
    with pytest.raises(ValueError, match='architecture'):
        _D(architecture='dense')
    with pytest.raises(ValueError, match='noise_mode'):
        G = _G()
        G(torch.randn([2, 16]), None, noise_mode='fixed')


def test_truncation_psi_zero_gives_w_avg_and_update_emas_controls_tracking():
    G = _G()
    z = torch.randn([8, G.z_dim])
    assert torch.all(G.mapping.w_avg == 0)
    G.mapping(z, None)  # No tracking without update_emas.
    assert torch.all(G.mapping.w_avg == 0)
    ws = G.mapping(z, None, update_emas=True)
    expected = ws[:, 0].mean(dim=0) * (1 - G.mapping.w_avg_beta)  # lerp from zero
    torch.testing.assert_close(G.mapping.w_avg, expected)

    ws0 = G.mapping(torch.randn([5, G.z_dim]), None, truncation_psi=0)
    torch.testing.assert_close(ws0, G.mapping.w_avg.expand(5, G.num_ws, -1))
    ws_half = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
    ws_full = G.mapping(z, None)
    torch.testing.assert_close(ws_half[:, :2], 0.5 * (ws_full[:, :2] + G.mapping.w_avg))
    torch.testing.assert_close(ws_half[:, 2:], ws_full[:, 2:])


def test_style_mixing_via_ws():
    G = _G().eval()
    ws1 = G.mapping(torch.randn([2, G.z_dim]), None)
    ws2 = G.mapping(torch.randn([2, G.z_dim]), None)
    img1 = G.synthesis(ws1, noise_mode='const')
    img2 = G.synthesis(ws2, noise_mode='const')
    for cutoff, expected in [(0, img2), (G.num_ws, img1)]:
        mixed = torch.cat([ws1[:, :cutoff], ws2[:, cutoff:]], dim=1)
        torch.testing.assert_close(G.synthesis(mixed, noise_mode='const'), expected)
    mixed = torch.cat([ws1[:, :3], ws2[:, 3:]], dim=1)
    img_mix = G.synthesis(mixed, noise_mode='const')
    assert not torch.allclose(img_mix, img1) and not torch.allclose(img_mix, img2)


def test_noise_modes():
    G = _G().eval()
    for module in G.modules():
        if isinstance(module, net.SynthesisLayer):
            module.noise_strength.data.fill_(0.5)
    z = torch.randn([2, G.z_dim])
    const_a, const_b = G(z, None, noise_mode='const'), G(z, None, noise_mode='const')
    rand_a, rand_b = G(z, None, noise_mode='random'), G(z, None, noise_mode='random')
    none = G(z, None, noise_mode='none')
    assert torch.equal(const_a, const_b)
    assert not torch.allclose(rand_a, rand_b)
    assert not torch.allclose(none, const_a)


def _naive_modconv(x, weight, styles, demodulate, noise=None):
    """Per-sample loop: scale the shared weight by the sample's styles, demodulate, convolve with F.conv2d."""
    out = []
    for n in range(x.shape[0]):
        w = weight * styles[n].reshape(1, -1, 1, 1)
        if demodulate:
            w = w / torch.sqrt((w ** 2).sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
        y = F.conv2d(x[n:n + 1], w, padding=weight.shape[-1] // 2)
        out.append(y if noise is None else y + noise[n:n + 1])
    return torch.cat(out)


@pytest.mark.parametrize('fused', [True, False])
@pytest.mark.parametrize('demodulate', [True, False])
def test_modulated_conv2d_against_naive_loop(fused, demodulate):
    x, weight, styles = torch.randn([3, 4, 8, 8]), torch.randn([5, 4, 3, 3]), torch.randn([3, 4])
    noise = torch.randn([3, 1, 8, 8])
    y = net.modulated_conv2d(x, weight, styles, noise=noise, padding=1, demodulate=demodulate, fused_modconv=fused)
    torch.testing.assert_close(y, _naive_modconv(x, weight, styles, demodulate, noise), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('fused', [True, False])
def test_modulated_conv2d_upsampling_matches_per_sample_resampled_conv(fused):
    x, weight, styles = torch.randn([2, 4, 4, 4]), torch.randn([3, 4, 3, 3]), torch.randn([2, 4])
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    y = net.modulated_conv2d(x, weight, styles, up=2, padding=1, resample_filter=f, flip_weight=False, fused_modconv=fused)
    for n in range(2):
        w = weight * styles[n].reshape(1, -1, 1, 1)
        w = w / torch.sqrt((w ** 2).sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
        ref = conv2d_resample.conv2d_resample(x[n:n + 1], w, f=f, up=2, padding=1, flip_weight=False)
        torch.testing.assert_close(y[n:n + 1], ref, rtol=1e-4, atol=1e-4)
    assert y.shape == (2, 3, 8, 8)


@pytest.mark.parametrize('group_size,num_channels', [(2, 1), (4, 2), (None, 1)])
def test_minibatch_std_against_numpy(group_size, num_channels):
    x = torch.randn([8, 4, 3, 3], dtype=torch.float64)
    y = net.MinibatchStdLayer(group_size=group_size, num_channels=num_channels)(x).numpy()
    xn = x.numpy()
    N, C = xn.shape[:2]
    G = N if group_size is None else min(group_size, N)
    num_groups = N // G
    assert y.shape == (N, C + num_channels, 3, 3)
    np.testing.assert_array_equal(y[:, :C], xn)
    for n in range(N):
        members = [m for m in range(N) if m % num_groups == n % num_groups]
        for f in range(num_channels):
            chans = xn[members][:, f * (C // num_channels):(f + 1) * (C // num_channels)]
            expected = np.sqrt(chans.var(axis=0) + 1e-8).mean()
            np.testing.assert_allclose(y[n, C + f], expected, rtol=1e-10)


def test_minibatch_std_rejects_indivisible_batch():
    with pytest.raises(ValueError, match='divisible'):
        net.MinibatchStdLayer(group_size=4)(torch.randn([6, 2, 4, 4]))


@pytest.mark.parametrize('c_dim', [0, 3])
def test_discriminator_r1_second_derivative(c_dim):
    D = _D(c_dim=c_dim, epilogue_kwargs=dict(mbstd_group_size=2))
    img = torch.randn([2, 3, 16, 16], requires_grad=True)
    logits, features = D(img, _labels(2, c_dim), return_features=True)
    (grad,) = torch.autograd.grad(logits.sum(), img, create_graph=True)
    assert grad.shape == img.shape and grad.abs().sum() > 0
    r1 = grad.square().sum()
    r1.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in D.b16.conv0.parameters())
    assert D.b16.conv0.weight.grad.abs().sum() > 0


def test_fp16_blocks_fall_back_to_fp32_on_cpu():
    G16, G32 = _G(num_fp16_res=4, conv_clamp=256), _G(num_fp16_res=0, conv_clamp=256)
    G32.load_state_dict(G16.state_dict())
    z = torch.randn([2, G16.z_dim])
    torch.testing.assert_close(G16(z, None, noise_mode='const'), G32(z, None, noise_mode='const'))
    D16, D32 = _D(num_fp16_res=4), _D(num_fp16_res=0)
    D32.load_state_dict(D16.state_dict())
    img = torch.randn([4, 3, 16, 16])
    torch.testing.assert_close(D16(img, None), D32(img, None))


def test_freeze_layers_makes_early_d_layers_buffers():
    D = _D(block_kwargs=dict(freeze_layers=2))
    assert 'weight' not in dict(D.b16.fromrgb.named_parameters())
    assert 'weight' not in dict(D.b16.conv0.named_parameters())
    assert 'weight' in dict(D.b16.conv1.named_parameters())


def test_networks_pickle_and_deepcopy():
    G, D = _G(c_dim=2), _D(c_dim=2)
    z, c = torch.randn([2, 16]), _labels(2, 2)
    for module, args in [(G, (z, c)), (D, (torch.randn([2, 3, 16, 16]), c))]:
        module.eval()
        kwargs = dict(noise_mode='const') if module is G else {}
        for clone in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
            torch.testing.assert_close(clone(*args, **kwargs), module(*args, **kwargs))


@pytest.mark.gpu
def test_fp16_path_on_cuda():
    G = _G(num_fp16_res=2, conv_clamp=256).cuda()
    D = _D(num_fp16_res=2).cuda()
    img = G(torch.randn([4, 16], device='cuda'), None)
    assert img.dtype == torch.float32 and torch.isfinite(img).all()
    logits, features = D(img, None, return_features=True)
    assert logits.dtype == torch.float32 and features.shape == (4, D.feature_dim)


@pytest.mark.parametrize('fused', [False, True])
@pytest.mark.parametrize('demodulate', [True, False])
def test_modulated_conv_equals_materialised_per_sample_weights(fused, demodulate):
    # The demodulation coefficients come from a matrix product; StyleGAN2-ADA's way builds [N, O, I, k, k].
    torch.manual_seed(0)
    x, weight, styles = torch.randn(3, 6, 8, 8), torch.randn(5, 6, 3, 3), torch.randn(3, 6)
    out = net.modulated_conv2d(x=x, weight=weight, styles=styles, padding=1, demodulate=demodulate, fused_modconv=fused)
    w = weight[None] * styles[:, None, :, None, None]
    if demodulate:
        w = w / (w.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8).sqrt()
    ref = torch.cat([F.conv2d(x[n:n + 1], w[n], padding=1) for n in range(3)])
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
