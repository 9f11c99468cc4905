"""TF StyleGAN2 / DiffAugment pickles, built here with the real class path (dnnlib.tflib.network.Network)
and TF's variable names and layouts, read without TensorFlow and converted."""

import pickle
import sys
import types

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import generate
import legacy
from test_network_reference import naive_generator
from training import networks_stylegan2 as net
from training.snapshot import load_network_pkl

class _FakeTFNetwork:
    """Pickles as dnnlib.tflib.network.Network does: a dict state with name, static_kwargs, components, variables."""
    def __init__(self, name, static_kwargs, variables, components=None):
        self.state = dict(version=4, name=name, static_kwargs=static_kwargs, components=components or {},
            build_module_src='# TF source, never run', build_func_name=name, variables=list(variables.items()))

    def __reduce__(self):
        return (_new_network, (), self.state)

def _new_network():
    raise AssertionError('not called: the unpickler must not need TensorFlow code')

def _dump_as_tf(obj, path):
    """Pickle with the class path TF pickles carry; the fake module is gone before anything loads it."""
    module = types.ModuleType('dnnlib.tflib.network')
    class Network:  # noqa: N801 (TF's class name)
        pass
    Network.__module__ = 'dnnlib.tflib.network'
    Network.__qualname__ = 'Network'
    module.Network = Network
    sys.modules['dnnlib.tflib'] = types.ModuleType('dnnlib.tflib')
    sys.modules['dnnlib.tflib.network'] = module
    def to_network(fake):
        inst = Network.__new__(Network)
        inst.__dict__.update(fake.state)
        inst.__dict__['components'] = {k: to_network(v) for k, v in fake.state['components'].items()}
        return inst
    try:
        with open(path, 'wb') as f:
            pickle.dump(tuple(to_network(x) for x in obj), f)
    finally:
        del sys.modules['dnnlib.tflib.network'], sys.modules['dnnlib.tflib']

def _tf_conv(w, flip=False):
    w = w.detach().numpy().transpose(2, 3, 1, 0)  # [out, in, kh, kw] -> [kh, kw, in, out]
    return w[::-1, ::-1].copy() if flip else w

def _tf_generator(G, static_kwargs):
    """The TF variables of our G, in TF's names and layouts."""
    p = {k: v.detach() for k, v in G.state_dict().items()}
    mapping = {'Dense%d/weight' % i: p[f'mapping.fc{i}.weight'].numpy().T.copy() for i in range(G.mapping.num_layers)}
    mapping.update({'Dense%d/bias' % i: p[f'mapping.fc{i}.bias'].numpy() for i in range(G.mapping.num_layers)})
    if G.c_dim:
        mapping['LabelConcat/weight'] = p['mapping.embed_weight'].numpy()
    syn = {}
    def layer(ours, theirs, noise_idx, flip=False):
        syn[f'{theirs}/weight'] = _tf_conv(p[f'synthesis.{ours}.weight'], flip)
        syn[f'{theirs}/bias'] = p[f'synthesis.{ours}.bias'].numpy()
        syn[f'{theirs}/mod_weight'] = p[f'synthesis.{ours}.affine.weight'].numpy().T.copy()
        syn[f'{theirs}/mod_bias'] = p[f'synthesis.{ours}.affine.bias'].numpy() - 1
        if noise_idx is not None:
            syn[f'{theirs}/noise_strength'] = p[f'synthesis.{ours}.noise_strength'].numpy()
            syn[f'noise{noise_idx}'] = p[f'synthesis.{ours}.noise_const'].numpy()[None, None]
    for res in G.synthesis.block_resolutions:
        r, log2 = f'{res}x{res}', int(np.log2(res))
        if res == 4:
            syn['4x4/Const/const'] = p['synthesis.b4.const'].numpy()[None]
            layer('b4.conv1', '4x4/Conv', 0)
        else:
            layer(f'b{res}.conv0', f'{r}/Conv0_up', 2 * log2 - 5, flip=True)
            layer(f'b{res}.conv1', f'{r}/Conv1', 2 * log2 - 4)
        layer(f'b{res}.torgb', f'{r}/ToRGB', None)
    return _FakeTFNetwork('G', static_kwargs, {'dlatent_avg': p['mapping.w_avg'].numpy(), 'lod': np.float32(0)},
        components=dict(mapping=_FakeTFNetwork('G_mapping', {}, mapping), synthesis=_FakeTFNetwork('G_synthesis', {}, syn)))

def _tf_discriminator(D, static_kwargs):
    p = {k: v.detach() for k, v in D.state_dict().items()}
    v = {}
    for res in D.block_resolutions:
        r = f'{res}x{res}'
        if res == D.img_resolution:
            v[f'{r}/FromRGB/weight'], v[f'{r}/FromRGB/bias'] = _tf_conv(p[f'b{res}.fromrgb.weight']), p[f'b{res}.fromrgb.bias'].numpy()
        for i, theirs in ((0, 'Conv0'), (1, 'Conv1_down')):
            v[f'{r}/{theirs}/weight'], v[f'{r}/{theirs}/bias'] = _tf_conv(p[f'b{res}.conv{i}.weight']), p[f'b{res}.conv{i}.bias'].numpy()
        v[f'{r}/Skip/weight'] = _tf_conv(p[f'b{res}.skip.weight'])
    v['4x4/Conv/weight'], v['4x4/Conv/bias'] = _tf_conv(p['b4.conv.weight']), p['b4.conv.bias'].numpy()
    v['4x4/Dense0/weight'], v['4x4/Dense0/bias'] = p['b4.fc.weight'].numpy().T.copy(), p['b4.fc.bias'].numpy()
    v['Output/weight'], v['Output/bias'] = p['b4.out.weight'].numpy().T.copy(), p['b4.out.bias'].numpy()
    return _FakeTFNetwork('D', static_kwargs, v)

def _randomise(module, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if t.is_floating_point() and not name.endswith('resample_filter'):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.5)

# DiffAugment's TF kwargs as its released models carry them (impl, dlatent_avg_beta), at a tiny size.
G_KWARGS = dict(latent_size=8, dlatent_size=8, resolution=16, num_channels=3, fmap_base=32, fmap_max=8, mapping_layers=2,
    impl='cuda', dlatent_avg_beta=0.995, truncation_psi=0.5, architecture='skip')
D_KWARGS = dict(resolution=16, num_channels=3, fmap_base=32, fmap_max=8, impl='cuda', architecture='resnet')

def _ours(c_dim=0):
    G = net.Generator(z_dim=8, c_dim=c_dim, w_dim=8, img_resolution=16, img_channels=3, channel_base=64, channel_max=8,
        mapping_kwargs=dict(num_layers=2, label_concat=c_dim > 0, embed_features=8 if c_dim else None)).eval()
    _randomise(G, 0)
    D = net.Discriminator(c_dim=0, img_resolution=16, img_channels=3, channel_base=64, channel_max=8).eval()
    _randomise(D, 1)
    return G, D

@pytest.mark.parametrize('c_dim', [0, 3])
def test_tf_pickle_converts_to_the_same_networks(tmp_path, c_dim):
    G, D = _ours(c_dim)
    path = str(tmp_path / 'tf.pkl')
    tf_G = _tf_generator(G, dict(G_KWARGS, label_size=c_dim))
    _dump_as_tf([tf_G, _tf_discriminator(D, D_KWARGS), tf_G], path)
    assert 'dnnlib.tflib' not in sys.modules  # Nothing of TF's code is around to load it.
    data = load_network_pkl(path)
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(2))
    c = torch.eye(3)[[0, 2, 1]] if c_dim else torch.zeros(3, 0)
    with torch.no_grad():
        torch.testing.assert_close(data['G_ema'](z, c, noise_mode='const'), G(z, c, noise_mode='const'))
        img = torch.randn(4, 3, 16, 16)
        torch.testing.assert_close(data['D'](img, torch.zeros(4, 0)), D(img, torch.zeros(4, 0)))
    assert data['D'].b4.mbstd.group_size == 4  # TF's default group.
    assert data['G_ema'].mapping.w_avg_beta == 0.995
    if c_dim == 0:  # And the converted G computes StyleGAN2's math (independent layer-by-layer numpy).
        expect = naive_generator(data['G_ema'], z.double().numpy())
        np.testing.assert_allclose(data['G_ema'](z, c, noise_mode='const').numpy(), expect, rtol=2e-4, atol=2e-4 * np.abs(expect).max())

def test_label_concat_against_its_definition():
    G, _ = _ours(c_dim=3)
    z, c = torch.randn(2, 8), torch.eye(3)[[1, 2]]
    x = torch.cat([z, c @ G.mapping.embed_weight.detach()], dim=1)
    x = x / (x.square().mean(dim=1, keepdim=True) + 1e-8).sqrt()  # One normalisation over z and the label part.
    for i in range(2):
        fc = getattr(G.mapping, f'fc{i}')
        x = x @ (fc.weight * fc.weight_gain).t().detach() + fc.bias.detach() * fc.bias_gain
        x = torch.nn.functional.leaky_relu(x, 0.2) * np.sqrt(2)
    torch.testing.assert_close(G.mapping(z, c)[:, 0], x)

def test_unknown_variables_and_kwargs_stop_the_conversion(tmp_path):
    G, D = _ours()
    tf_G = _tf_generator(G, G_KWARGS)
    tf_G.state['components']['synthesis'].state['variables'].append(('8x8/Mystery/weight', np.zeros(3)))
    _dump_as_tf([tf_G, _tf_discriminator(D, D_KWARGS), tf_G], str(tmp_path / 'a.pkl'))
    with pytest.raises(ValueError, match='unknown TF variable synthesis/8x8/Mystery/weight'):
        load_network_pkl(str(tmp_path / 'a.pkl'))
    tf_G = _tf_generator(G, dict(G_KWARGS, fmap_decay=0.5))
    _dump_as_tf([tf_G, _tf_discriminator(D, D_KWARGS), tf_G], str(tmp_path / 'b.pkl'))
    with pytest.raises(ValueError, match='fmap_decay=0.5 cannot be converted'):
        load_network_pkl(str(tmp_path / 'b.pkl'))
    tf_G = _tf_generator(G, dict(G_KWARGS, new_thing=1))
    _dump_as_tf([tf_G, _tf_discriminator(D, D_KWARGS), tf_G], str(tmp_path / 'c.pkl'))
    with pytest.raises(ValueError, match='unknown TF keyword argument new_thing=1'):
        load_network_pkl(str(tmp_path / 'c.pkl'))

def test_generate_and_legacy_cli_on_a_tf_pickle(tmp_path):
    G, D = _ours()
    tf_G = _tf_generator(G, G_KWARGS)
    path = str(tmp_path / 'tf.pkl')
    _dump_as_tf([tf_G, _tf_discriminator(D, D_KWARGS), tf_G], path)
    result = CliRunner().invoke(generate.main, ['--network', path, '--seeds=0', '--outdir', str(tmp_path / 'out'), '--device=cpu'])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(legacy.main, ['--source', path, '--dest', str(tmp_path / 'ours.pkl')])
    assert result.exit_code == 0, result.output
    z = torch.randn(2, 8)
    with torch.no_grad():
        torch.testing.assert_close(load_network_pkl(str(tmp_path / 'ours.pkl'))['G_ema'](z, torch.zeros(2, 0), noise_mode='const'),
            G(z, torch.zeros(2, 0), noise_mode='const'))
