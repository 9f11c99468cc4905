"""StyleGAN2 G and D forward passes on fixed weights against an independent numpy implementation of the
architecture, written layer by layer from the StyleGAN2 paper's description: equalized learning rate,
per-sample modulated and demodulated convolution, upsampling by zero insertion and the [1,3,3,1] FIR
filter, skip (G) and resnet/skip (D) architectures, minibatch standard deviation, projection output.
The resampling uses the loop-based references of test_upfirdn2d / test_conv2d_resample."""

import numpy as np
import pytest
import torch

from test_conv2d_resample import naive_conv2d_resample
from test_upfirdn2d import naive_upfirdn2d
from training import networks_stylegan2 as net

SQRT2 = np.sqrt(2)
F4 = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0  # The normalised 2D resampling filter.

def _p(params, name):
    return params[name].detach().double().numpy()

def _lrelu(x, gain=SQRT2):
    return np.where(x > 0, x, 0.2 * x) * gain

def _fc(params, prefix, x, lr=1.0, act=None, bias=True):
    w = _p(params, prefix + '.weight') * (lr / np.sqrt(x.shape[1]))
    y = x @ w.T
    if bias:
        y = y + _p(params, prefix + '.bias') * lr
    return _lrelu(y) if act == 'lrelu' else y

def _upsample(x):  # upsample2d(x, [1,3,3,1]): zero insertion, padding (2, 1), filter, gain 4.
    return naive_upfirdn2d(x, F4, up=(2, 2), down=(1, 1), padding=(2, 1, 2, 1), flip_filter=False, gain=4)

def _downsample(x):  # downsample2d(x, [1,3,3,1]): padding (1, 1), filter, keep every second sample.
    return naive_upfirdn2d(x, F4, up=(1, 1), down=(2, 2), padding=(1, 1, 1, 1), flip_filter=False, gain=1)

def _modconv(x, weight, styles, demodulate=True, up=1, padding=1):
    """Per sample n: weight * styles[n] over input channels, optionally divided by the output channel's
    norm, then convolved with that sample alone."""
    out = []
    for n in range(x.shape[0]):
        w = weight * styles[n][None, :, None, None]
        if demodulate:
            w = w / np.sqrt((w ** 2).sum(axis=(1, 2, 3), keepdims=True) + 1e-8)
        out.append(naive_conv2d_resample(x[n:n + 1], w, F4, up=up, down=1, padding=padding, groups=1,
            flip_weight=(up == 1), flip_filter=False)[0])
    return np.stack(out)

#----------------------------------------------------------------------------

def naive_generator(G, z):
    p = dict(G.named_parameters(), **dict(G.named_buffers()))
    syn = G.synthesis
    x = z / np.sqrt((z ** 2).mean(axis=1, keepdims=True) + 1e-8)
    for idx in range(G.mapping.num_layers):
        x = _fc(p, f'mapping.fc{idx}', x, lr=0.01, act='lrelu')
    ws = np.repeat(x[:, None], G.num_ws, axis=1)

    x = img = None
    w_idx = 0
    for res in syn.block_resolutions:
        block = getattr(syn, f'b{res}')
        pre = f'synthesis.b{res}'
        def layer(name, x, w, up=1):
            styles = _fc(p, f'{pre}.{name}.affine', w)
            y = _modconv(x, _p(p, f'{pre}.{name}.weight'), styles, up=up)
            y = y + _p(p, f'{pre}.{name}.noise_const')[None, None] * _p(p, f'{pre}.{name}.noise_strength')
            return y, _p(p, f'{pre}.{name}.bias')[None, :, None, None]
        if block.in_channels == 0:
            x = np.repeat(_p(p, f'{pre}.const')[None], z.shape[0], axis=0)
            y, b = layer('conv1', x, ws[:, w_idx]); x = _lrelu(y + b); w_idx += 1
        else:
            gain = np.sqrt(0.5) if block.architecture == 'resnet' else 1.0
            skip = None
            if block.architecture == 'resnet':  # 1x1 conv with up=2, no bias, linear, gain sqrt(0.5).
                wgt = _p(p, f'{pre}.skip.weight') / np.sqrt(block.in_channels)
                skip = naive_conv2d_resample(x, wgt, F4, up=2, down=1, padding=0, groups=1, flip_weight=False,
                    flip_filter=False) * gain
            y, b = layer('conv0', x, ws[:, w_idx], up=2); x = _lrelu(y + b)
            y, b = layer('conv1', x, ws[:, w_idx + 1]); x = _lrelu(y + b, gain=SQRT2 * gain)
            x = x + skip if skip is not None else x
            w_idx += 2
        if img is not None:
            img = _upsample(img)
        if block.is_last or block.architecture == 'skip':
            styles = _fc(p, f'{pre}.torgb.affine', ws[:, w_idx]) / np.sqrt(block.torgb.in_channels)
            y = _modconv(x, _p(p, f'{pre}.torgb.weight'), styles, demodulate=False, padding=0)
            y = y + _p(p, f'{pre}.torgb.bias')[None, :, None, None]
            img = img + y if img is not None else y
    return img

def naive_discriminator(D, img):
    """Unconditional D: logits and the pooled feature."""
    assert D.c_dim == 0
    p = dict(D.named_parameters(), **dict(D.named_buffers()))
    def conv(name, x, act=True, down=1, gain=1.0, bias=True):
        wgt = _p(p, f'{name}.weight')
        wgt = wgt / np.sqrt(wgt.shape[1] * wgt.shape[2] * wgt.shape[3])
        y = naive_conv2d_resample(x, wgt, F4, up=1, down=down, padding=wgt.shape[2] // 2, groups=1, flip_weight=True,
            flip_filter=False)
        if bias:
            y = y + _p(p, f'{name}.bias')[None, :, None, None]
        return _lrelu(y, gain=SQRT2 * gain) if act else y * gain
    x = None
    for res in D.block_resolutions:
        block = getattr(D, f'b{res}')
        pre = f'b{res}'
        if block.in_channels == 0 or block.architecture == 'skip':
            y = conv(f'{pre}.fromrgb', img)
            x = x + y if x is not None else y
            img = _downsample(img) if block.architecture == 'skip' else None
        if block.architecture == 'resnet':
            skip = conv(f'{pre}.skip', x, act=False, down=2, gain=np.sqrt(0.5), bias=False)
            x = conv(f'{pre}.conv0', x)
            x = conv(f'{pre}.conv1', x, down=2, gain=np.sqrt(0.5)) + skip
        else:
            x = conv(f'{pre}.conv1', conv(f'{pre}.conv0', x), down=2)
    ep = D.b4
    if ep.architecture == 'skip':
        x = x + conv('b4.fromrgb', img)
    # Minibatch std over groups of samples n, n + N/G, ...: one extra feature map per sample.
    N, C, H, W = x.shape
    G = min(ep.mbstd.group_size, N)
    groups = x.reshape(G, N // G, C, H, W)
    std = np.sqrt(groups.var(axis=0) + 1e-8).mean(axis=(1, 2, 3))  # [N // G]
    x = np.concatenate([x, np.tile(std, G)[:, None, None, None] * np.ones([N, 1, H, W])], axis=1)
    x = conv('b4.conv', x)
    features = _fc(p, 'b4.fc', x.reshape(N, -1), act='lrelu')
    out = _fc(p, 'b4.out', features)
    return out, features

#----------------------------------------------------------------------------

def _randomise(module, seed):
    """Non-trivial values for every parameter and buffer (biases, noise strengths included)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if t.is_floating_point() and not name.endswith('resample_filter') and not name.endswith('w_avg'):
                t.copy_(torch.randn(t.shape, generator=gen) * (0.5 if t.ndim <= 1 else 1.0))

@pytest.mark.parametrize('architecture', ['skip', 'resnet'])
def test_generator_matches_the_naive_implementation(architecture):
    G = net.Generator(z_dim=6, c_dim=0, w_dim=5, img_resolution=16, img_channels=3, architecture=architecture,
        mapping_kwargs=dict(num_layers=2), channel_base=48, channel_max=4).eval()
    _randomise(G, 0)
    z = torch.randn(2, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        got = G(z.float(), torch.zeros(2, 0), noise_mode='const').double().numpy()
    expect = naive_generator(G, z.numpy())
    np.testing.assert_allclose(got, expect, rtol=2e-4, atol=2e-4 * np.abs(expect).max())

@pytest.mark.parametrize('architecture', ['resnet', 'skip', 'orig'])
def test_discriminator_matches_the_naive_implementation(architecture):
    D = net.Discriminator(c_dim=0, img_resolution=16, img_channels=3, architecture=architecture, channel_base=48,
        channel_max=4, epilogue_kwargs=dict(mbstd_group_size=2))
    _randomise(D, 2)
    img = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits, features = D(img, torch.zeros(4, 0), return_features=True)
    expect_logits, expect_features = naive_discriminator(D, img.double().numpy())
    np.testing.assert_allclose(features.double().numpy(), expect_features, rtol=2e-4, atol=2e-4 * np.abs(expect_features).max())
    np.testing.assert_allclose(logits.double().numpy(), expect_logits, rtol=2e-4, atol=2e-4 * np.abs(expect_logits).max())
