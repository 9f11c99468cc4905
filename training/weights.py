"""Network files that execute nothing: construction arguments as JSON plus tensors.

A snapshot pickle of persistent classes runs the Python source stored inside it when it is opened;
opening a stranger's .pkl runs the stranger's code. A weights file holds, per network, the class
name, its constructor arguments as JSON and its state dict, written with torch.save and read with
torch.load(weights_only=True), which refuses anything but tensors and plain containers. The
networks are rebuilt from this repository's own classes. Extra submodules attached after
construction (D.kd_head) are recorded separately, so a KD discriminator's own state dict has the
names of a plain StyleGAN2 one; StyleGAN2 generators also carry their arguments in StyleGAN2-ADA's
layout (sg2a_init_kwargs), so StyleGAN2-ADA's classes can load our KD snapshots from this format
(`Generator(**json.loads(d['sg2a_init_kwargs'])).load_state_dict(d['state_dict'])`).

    python export_weights.py --network=run/network-snapshot-000100.pkl    # -> ...000100.weights.pt
    train.py --weights-only=1   writes one beside every snapshot
    every tool that takes --network / --resume accepts it
"""

import importlib
import io
import json
import os

import torch

import dnnlib

FORMAT = 'kd-dlgan-weights-1'
SUFFIX = '.weights.pt'

# Where a class name is looked up when a network is rebuilt, in order: only this repository's modules.
_MODULES = ('training.networks_stylegan2', 'training.networks_biggan', 'training.augment', 'kd.heads')
_EXTRAS = ('kd_head',)  # Submodules attached after construction.

#----------------------------------------------------------------------------

def _describe(module, what):
    if not hasattr(module, 'init_kwargs'):
        raise ValueError(f'{what}: {type(module).__name__} does not record its constructor arguments (not a persistent class); '
            f'it cannot be exported as weights')
    init_kwargs = dict(module.init_kwargs)
    try:
        kwargs_json = json.dumps(init_kwargs)
    except TypeError as err:
        raise ValueError(f'{what}: constructor arguments are not plain JSON ({err})') from None
    if module.init_args:
        raise ValueError(f'{what}: positional constructor arguments cannot be exported; use keywords')
    extras = {name: _describe(getattr(module, name), f'{what}.{name}') for name in _EXTRAS if isinstance(getattr(module, name, None), torch.nn.Module)}
    own = {k: v for k, v in module.state_dict().items() if not any(k.startswith(e + '.') for e in extras)}
    desc = dict(class_name=type(module).__name__, init_kwargs=kwargs_json, state_dict={k: v.detach().cpu() for k, v in own.items()},
        extras=extras)
    if type(module).__name__ == 'Generator' and hasattr(module, 'synthesis'):
        desc['sg2a_init_kwargs'] = json.dumps(_sg2a_generator_kwargs(init_kwargs))
    return desc

def _sg2a_generator_kwargs(kwargs):
    """Our StyleGAN2 Generator takes the synthesis options flat; StyleGAN2-ADA's nests them in synthesis_kwargs.
    Stored too, so its own classes can be built from a weights file (its state dict names are ours)."""
    top = ('z_dim', 'c_dim', 'w_dim', 'img_resolution', 'img_channels', 'mapping_kwargs')
    out = {k: kwargs[k] for k in top if k in kwargs}
    out['synthesis_kwargs'] = {k: v for k, v in kwargs.items() if k not in top}
    return out

def to_weights(data):
    """The weights-file dict of a snapshot dict (G, D, G_ema, augment_pipe, training_set_kwargs)."""
    networks = {key: _describe(data[key], key) for key in ('G', 'D', 'G_ema', 'augment_pipe') if data.get(key) is not None}
    return dict(format=FORMAT, networks=networks, training_set_kwargs=json.dumps(data.get('training_set_kwargs')))

def save_weights(path, data):
    with dnnlib.util.atomic_write(path, 'wb') as f:
        torch.save(to_weights(data), f)

#----------------------------------------------------------------------------

def _rebuild(desc, what):
    kwargs = json.loads(desc['init_kwargs'])
    errors = []
    for module_name in _MODULES:
        cls = getattr(importlib.import_module(module_name), desc['class_name'], None)
        if cls is None:
            continue
        try:
            net = cls(**kwargs)
            for name, extra in desc['extras'].items():
                setattr(net, name, _rebuild(extra, f'{what}.{name}'))
            missing, unexpected = net.load_state_dict(dict(desc['state_dict']), strict=False)
            extra_keys = [k for k in missing if not any(k.startswith(e + '.') for e in desc['extras'])]
            if extra_keys or unexpected:
                raise ValueError(f'state does not fit: missing {extra_keys[:3]}, unexpected {unexpected[:3]}')
            return net.eval().requires_grad_(False)
        except (TypeError, ValueError, RuntimeError) as err:
            errors.append(f'{module_name}.{desc["class_name"]}: {err}')
    raise ValueError(f'{what}: no class of this repository rebuilds a {desc["class_name"]} from these arguments and '
        f'weights ({"; ".join(errors) or "no class of that name"})')

def is_weights_file(head):
    return head[:4] == b'PK\x03\x04'  # torch.save's zip container; pickles start with b'\x80'.

def load_weights(fp, name):
    """A snapshot dict like load_network_pkl's, rebuilt from a weights file; runs no code from it."""
    try:
        data = torch.load(io.BytesIO(fp.read()), map_location='cpu', weights_only=True)
    except Exception as err:
        raise ValueError(f'{name}: not a weights file ({type(err).__name__}: {err})') from err
    if not isinstance(data, dict) or data.get('format') != FORMAT:
        raise ValueError(f'{name}: not a {FORMAT} weights file')
    out = {key: _rebuild(desc, f'{name}: {key}') for key, desc in data['networks'].items()}
    out['training_set_kwargs'] = json.loads(data.get('training_set_kwargs') or 'null')
    out['resume_state'] = None
    return out

def weights_path(pkl_path):
    return os.path.splitext(pkl_path)[0] + SUFFIX
