"""Read NVIDIA's StyleGAN2 TensorFlow pickles and DiffAugment's released TF models, without TensorFlow.

A TF pickle holds (G, D, Gs) as dnnlib.tflib.network.Network objects: their constructor keyword
arguments (static_kwargs), sub-networks (components) and variables as (name, numpy array) pairs.
They are read with an unpickler that knows only those classes, and converted into this codebase's
StyleGAN2 networks: convolution weights [kh, kw, in, out] become [out, in, kh, kw], the transposed
(up-sampling) convolutions are flipped, TF's style bias (added to 1 at run time) gets its 1, and so
on. Anything the conversion does not know, an unknown variable or a keyword argument with a value
it cannot honour, stops it with a message naming it.

DiffAugment's files are read as TF built them: they carry impl='cuda' (a kernel choice, ignored),
name the W-average decay dlatent_avg_beta, use a minibatch-std group of 4 by default, and condition
G by LabelConcat (labels times a weight, joined to z before one normalisation).

training.snapshot.load_network_pkl reads every pickle through load_pickle; legacy.py is the command
line that converts a TF pickle once.
"""

import pickle
import re

import numpy as np
import torch

import dnnlib
from training import networks_stylegan2

#----------------------------------------------------------------------------

class TFConversionError(ValueError):
    """A TF pickle that this converter cannot turn into our networks; the message names what."""

class _TFNetwork:
    """Stands in for dnnlib.tflib.network.Network: unpickling just keeps its state."""
    def __setstate__(self, state):
        self.__dict__.update(state)

class _TFUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module == 'dnnlib.tflib.network' and name == 'Network':
            return _TFNetwork
        if module.startswith('dnnlib') and name == 'EasyDict':
            return dnnlib.EasyDict
        return super().find_class(module, name)

def is_tf_pickle(data):
    return isinstance(data, tuple) and len(data) == 3 and all(isinstance(net, _TFNetwork) for net in data)

def load_pickle(fp):
    """Unpickle fp with TF's network class known: a TF pickle comes back converted into a snapshot dict
    (convert_tf_pickle), anything else as it was pickled."""
    data = _TFUnpickler(fp).load()
    return convert_tf_pickle(data) if is_tf_pickle(data) else data

def _variables(net, prefix=''):
    """{'mapping/Dense0/weight': array, ...} over a network and its components."""
    if getattr(net, 'version', 0) < 4:
        raise TFConversionError(f'TF network {getattr(net, "name", "?")}: pickle version {getattr(net, "version", "?")} is too old')
    out = {prefix + name: np.asarray(value) for name, value in net.variables}
    for comp_name, comp in net.components.items():
        out.update(_variables(comp, prefix + comp_name + '/'))
    return out

class _Kwargs:
    """Reads TF keyword arguments; every key must be read or declared ignorable, else it is an error."""
    def __init__(self, what, kwargs):
        self.what, self.kwargs, self.seen = what, dict(kwargs), set()

    def __call__(self, name, default=None, expect=None):
        self.seen.add(name)
        value = self.kwargs.get(name, default)
        if expect is not None and value is not None and value not in expect:
            raise TFConversionError(f'{self.what}: TF keyword argument {name}={value!r} cannot be converted (supported: {expect})')
        return default if value is None else value

    def finish(self, *ignorable):
        unknown = sorted(set(self.kwargs) - self.seen - set(ignorable))
        if unknown:
            raise TFConversionError(f'{self.what}: unknown TF keyword argument {unknown[0]}={self.kwargs[unknown[0]]!r}')

def _conv(w):
    return w.transpose(3, 2, 0, 1)

def _assign(module, values, what):
    """Copy every parameter and buffer of module from values (name -> array); all must be covered."""
    state = module.state_dict()
    missing = [k for k in state if k not in values and not k.endswith('resample_filter')]
    if missing:
        raise TFConversionError(f'{what}: the TF pickle has nothing for {missing[0]}')
    with torch.no_grad():
        for key, value in values.items():
            if state[key].shape != tuple(value.shape):
                raise TFConversionError(f'{what}: {key} has shape {tuple(value.shape)} in the TF pickle, {tuple(state[key].shape)} here')
            state[key].copy_(torch.from_numpy(np.array(value, dtype=np.float32)))  # np.array keeps 0-d scalars 0-d.

def _finish(module, values, tf_vars, used, what):
    """Every TF variable must have been used (but 'lod', progressive growing's level), then copy."""
    leftover = sorted(set(tf_vars) - used - {'lod'})
    if leftover:
        raise TFConversionError(f'{what}: unknown TF variable {leftover[0]} {list(tf_vars[leftover[0]].shape)}')
    _assign(module, values, what)
    return module

def _take(tf_vars, used, name):
    if name not in tf_vars:
        raise TFConversionError(f'TF variable {name} is missing')
    used.add(name)
    return tf_vars[name]

#----------------------------------------------------------------------------

def convert_generator(tf_G):
    k = _Kwargs('G', tf_G.static_kwargs)
    c_dim = k('label_size', 0)
    kwargs = dict(z_dim=k('latent_size', 512), c_dim=c_dim, w_dim=k('dlatent_size', 512), img_resolution=k('resolution', 1024),
        img_channels=k('num_channels', 3), channel_base=k('fmap_base', 16384) * 2, channel_max=k('fmap_max', 512),
        architecture=k('architecture', 'skip', expect=('orig', 'skip', 'resnet')), resample_filter=list(k('resample_kernel', [1, 3, 3, 1])),
        activation=k('nonlinearity', 'lrelu', expect=('lrelu',)), num_fp16_res=k('num_fp16_res', 0), conv_clamp=k('conv_clamp', None),
        mapping_kwargs=dict(num_layers=k('mapping_layers', 8), layer_features=k('mapping_fmaps', None),
            activation=k('mapping_nonlinearity', 'lrelu', expect=('lrelu',)), lr_multiplier=k('mapping_lrmul', 0.01),
            w_avg_beta=k('dlatent_avg_beta', k('w_avg_beta', 0.995)), label_concat=c_dim > 0))
    if c_dim > 0:
        kwargs['mapping_kwargs']['embed_features'] = kwargs['z_dim']  # LabelConcat maps labels to latent_size.
    k('fmap_decay', 1.0, expect=(1.0, 1))
    k('normalize_latents', True, expect=(True,))
    k('use_noise', True, expect=(True,))
    k('impl', 'cuda', expect=('cuda', 'ref'))  # A kernel choice of the TF code: nothing to convert.
    k.finish('truncation_psi', 'truncation_cutoff', 'style_mixing_prob', 'structure', 'conditioning', 'fused_modconv',
        'randomize_noise', 'dtype', 'is_training', 'is_validation', 'is_template_graph', 'components', 'num_channels_in',
        'dlatent_broadcast', 'fmap_min', 'mapping_dtype', 'synthesis_func', 'mapping_func')

    tf_vars, used = _variables(tf_G), set()
    t = lambda name: _take(tf_vars, used, name)
    for name in list(tf_vars):  # The 'orig' architecture names its ToRGB layers by level of detail.
        match = re.fullmatch(r'synthesis/ToRGB_lod(\d+)/(.*)', name)
        if match:
            res = kwargs['img_resolution'] // 2 ** int(match.group(1))
            tf_vars[f'synthesis/{res}x{res}/ToRGB/{match.group(2)}'] = tf_vars.pop(name)
    G = networks_stylegan2.Generator(**kwargs).eval().requires_grad_(False)
    values = {'mapping.w_avg': t('dlatent_avg')}
    if c_dim > 0:
        values['mapping.embed_weight'] = t('mapping/LabelConcat/weight')
    for i in range(G.mapping.num_layers):
        values[f'mapping.fc{i}.weight'] = t(f'mapping/Dense{i}/weight').T
        values[f'mapping.fc{i}.bias'] = t(f'mapping/Dense{i}/bias')
    def layer(ours, theirs, noise_idx, flip=False):
        w = t(f'synthesis/{theirs}/weight')
        values[f'synthesis.{ours}.weight'] = _conv(w[::-1, ::-1] if flip else w)  # TF's transposed conv: flipped kernel.
        values[f'synthesis.{ours}.bias'] = t(f'synthesis/{theirs}/bias')
        values[f'synthesis.{ours}.affine.weight'] = t(f'synthesis/{theirs}/mod_weight').T
        values[f'synthesis.{ours}.affine.bias'] = t(f'synthesis/{theirs}/mod_bias') + 1  # TF adds the 1 at run time.
        if noise_idx is not None:
            values[f'synthesis.{ours}.noise_strength'] = t(f'synthesis/{theirs}/noise_strength')
            values[f'synthesis.{ours}.noise_const'] = t(f'synthesis/noise{noise_idx}')[0, 0]
    for res in G.synthesis.block_resolutions:
        block, r = getattr(G.synthesis, f'b{res}'), f'{res}x{res}'
        log2 = int(np.log2(res))
        if res == 4:
            values['synthesis.b4.const'] = t('synthesis/4x4/Const/const')[0]
            layer('b4.conv1', '4x4/Conv', 0)
        else:
            layer(f'b{res}.conv0', f'{r}/Conv0_up', 2 * log2 - 5, flip=True)
            layer(f'b{res}.conv1', f'{r}/Conv1', 2 * log2 - 4)
            if block.architecture == 'resnet':
                values[f'synthesis.b{res}.skip.weight'] = _conv(t(f'synthesis/{r}/Skip/weight')[::-1, ::-1])
        if hasattr(block, 'torgb'):
            layer(f'b{res}.torgb', f'{r}/ToRGB', None)
    return _finish(G, values, tf_vars, used, 'G')

def convert_discriminator(tf_D):
    k = _Kwargs('D', tf_D.static_kwargs)
    if k('label_size', 0):
        raise TFConversionError('D: conditional TF discriminators (label_size > 0) cannot be converted yet; '
            'generation and metrics need only G (Gs)')
    kwargs = dict(c_dim=0, img_resolution=k('resolution', 1024), img_channels=k('num_channels', 3),
        architecture=k('architecture', 'resnet', expect=('orig', 'skip', 'resnet')), channel_base=k('fmap_base', 16384) * 2,
        channel_max=k('fmap_max', 512), num_fp16_res=k('num_fp16_res', 0), conv_clamp=k('conv_clamp', None),
        block_kwargs=dict(activation=k('nonlinearity', 'lrelu', expect=('lrelu',)), resample_filter=list(k('resample_kernel', [1, 3, 3, 1]))),
        epilogue_kwargs=dict(mbstd_group_size=k('mbstd_group_size', 4), mbstd_num_channels=k('mbstd_num_features', 1)))
    k('fmap_decay', 1.0, expect=(1.0, 1))
    k('impl', 'cuda', expect=('cuda', 'ref'))
    k.finish('structure', 'conditioning', 'dtype', 'is_training', 'is_validation', 'is_template_graph', 'components',
        'fmap_min', 'freeze_layers')
    tf_vars, used = _variables(tf_D), set()
    t = lambda name: _take(tf_vars, used, name)
    for name in list(tf_vars):
        match = re.fullmatch(r'FromRGB_lod(\d+)/(.*)', name)
        if match:
            res = kwargs['img_resolution'] // 2 ** int(match.group(1))
            tf_vars[f'{res}x{res}/FromRGB/{match.group(2)}'] = tf_vars.pop(name)
    D = networks_stylegan2.Discriminator(**kwargs).eval().requires_grad_(False)
    values = {}
    for res in D.block_resolutions:
        block, r = getattr(D, f'b{res}'), f'{res}x{res}'
        if hasattr(block, 'fromrgb'):
            values[f'b{res}.fromrgb.weight'] = _conv(t(f'{r}/FromRGB/weight'))
            values[f'b{res}.fromrgb.bias'] = t(f'{r}/FromRGB/bias')
        for i, theirs in ((0, 'Conv0'), (1, 'Conv1_down')):
            values[f'b{res}.conv{i}.weight'] = _conv(t(f'{r}/{theirs}/weight'))
            values[f'b{res}.conv{i}.bias'] = t(f'{r}/{theirs}/bias')
        if block.architecture == 'resnet':
            values[f'b{res}.skip.weight'] = _conv(t(f'{r}/Skip/weight'))
    values['b4.conv.weight'] = _conv(t('4x4/Conv/weight'))
    values['b4.conv.bias'] = t('4x4/Conv/bias')
    values['b4.fc.weight'] = t('4x4/Dense0/weight').T
    values['b4.fc.bias'] = t('4x4/Dense0/bias')
    values['b4.out.weight'] = t('Output/weight').T
    values['b4.out.bias'] = t('Output/bias')
    return _finish(D, values, tf_vars, used, 'D')

def convert_tf_pickle(data):
    """Snapshot dict (G, D, G_ema) from the stubs of a TF pickle; D is None when it cannot be converted."""
    tf_G, tf_D, tf_Gs = data
    conditional_D = bool(tf_D.static_kwargs.get('label_size', 0))  # Not convertible yet: left out, G suffices.
    D = None if conditional_D else convert_discriminator(tf_D)
    return dict(G=convert_generator(tf_G), D=D, G_ema=convert_generator(tf_Gs))

#----------------------------------------------------------------------------
