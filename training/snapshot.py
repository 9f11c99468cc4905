"""Network snapshots: atomic pickle writes and a loader for this project's and NVIDIA's pickles."""

import os
import pickle

import torch

import dnnlib
from training import legacy_tf  # Its unpickler also reads NVIDIA's / DiffAugment's TensorFlow pickles (without TensorFlow).
from training import weights

#----------------------------------------------------------------------------
# Keys of a network pickle in the StyleGAN2-ADA format. Only G_ema is needed
# to generate; the rest may be absent in hand-made or trimmed pickles.

_NETWORK_KEYS = ('G', 'D', 'G_ema')
_OPTIONAL_KEYS = ('augment_pipe', 'training_set_kwargs', 'resume_state')

def save_snapshot(path, data):
    """Pickle `data` to `path` via a temporary file in the same folder, so a crash never leaves half a file."""
    if not isinstance(data, dict) or 'G_ema' not in data:
        raise ValueError('save_snapshot: data must be a dict holding at least G_ema')
    with dnnlib.util.atomic_write(path, 'wb') as f:
        pickle.dump(data, f)

#----------------------------------------------------------------------------

def load_network_pkl(f):
    """Load a network pickle from a path, URL or binary file object; returns a dict with G, D, G_ema, ...

    Missing optional entries are filled with None so callers can index them directly.
    """
    if isinstance(f, (str, os.PathLike)):
        name = os.fspath(f)
        with dnnlib.util.open_url(name, verbose=False) as fp:
            return _load(fp, name)
    return _load(f, getattr(f, 'name', '<file object>'))

_GENERATOR_ATTRS = ('z_dim', 'c_dim', 'img_resolution', 'img_channels')

def _check_networks(data, name):
    """G, D and G_ema are torch modules (or absent), and the generators have the attributes every tool reads."""
    for key in _NETWORK_KEYS:
        net = data.get(key)
        if net is None and key != 'G_ema':
            continue
        if not isinstance(net, torch.nn.Module):
            raise ValueError(f'{name}: not a network pickle: {key} is a {type(net).__name__}, not a network (torch.nn.Module)')
        if key != 'D':
            missing = [attr for attr in _GENERATOR_ATTRS if not hasattr(net, attr)]
            if missing:
                raise ValueError(f'{name}: {key} is a {type(net).__name__} without {", ".join(missing)}: not a generator')

def _load(fp, name):
    head = fp.read(4)
    fp.seek(0)
    if weights.is_weights_file(head):  # A weights-only file (torch zip) instead of a pickle: rebuilt, nothing executed.
        data = weights.load_weights(fp, name)
        _check_networks(data, name)
        return data
    try:
        data = legacy_tf.load_pickle(fp)
    except legacy_tf.TFConversionError as err:
        raise ValueError(f'{name}: {err}') from err
    except Exception as err:  # A corrupt or foreign file can fail in many ways; all mean the same here.
        raise ValueError(f'{name}: not a network pickle ({type(err).__name__}: {err})') from err
    if not isinstance(data, dict) or 'G_ema' not in data:
        found = sorted(data.keys()) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f'{name}: not a network pickle: expected a dict with G_ema (and G, D), found {found}')
    for key in _NETWORK_KEYS + _OPTIONAL_KEYS:
        data.setdefault(key, None)
    _check_networks(data, name)
    return data

#----------------------------------------------------------------------------
