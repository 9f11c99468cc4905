"""Weights-only network files: written by export_weights.py and train.py --weights-only, read by every
tool, rebuilt from this repository's classes without running code from the file."""

import os
import pickle

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import export_weights
import generate
from test_train_e2e import TINY_ARGS, make_dataset_zip, one_thread, only_run_dir, run_train  # noqa: F401 (fixture)
from training import weights
from training.snapshot import load_network_pkl

def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key

@pytest.mark.filterwarnings('ignore:.*RANDOM weights')
def test_kd_snapshot_round_trips_and_generates_the_same_images(tmp_path):
    from tiny_clip import register_tiny_clip
    name = register_tiny_clip(str(tmp_path))
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=6, num_classes=3)
    result = run_train(['--outdir', str(tmp_path / 'runs'), '--data', data, '--kimg=0.004', '--cond=1', '--kd=agg,corr',
        f'--kd-clip={name}', '--kd-teacher=random', '--weights-only=1'] + TINY_ARGS)
    assert result.exit_code == 0, result.output
    pkl = os.path.join(only_run_dir(str(tmp_path / 'runs')), 'network-snapshot-000000.pkl')
    written = weights.weights_path(pkl)
    assert os.path.isfile(written)
    a, b = load_network_pkl(pkl), load_network_pkl(written)
    for key in ('G', 'D', 'G_ema', 'augment_pipe'):
        _same(a[key], b[key])
    assert hasattr(b['D'], 'kd_head') and b['training_set_kwargs'] == a['training_set_kwargs']
    outs = []
    for network in (pkl, written):
        out = tmp_path / os.path.basename(network)
        assert CliRunner().invoke(generate.main, ['--network', network, '--seeds=0-1', '--outdir', str(out), '--class=1',
            '--device=cpu']).exit_code == 0
        outs.append(np.asarray(__import__('PIL.Image').Image.open(out / 'seed0000.png')))
    assert np.array_equal(*outs)

def test_biggan_export_and_torch_only_load(tmp_path):
    from training import networks_biggan
    from training.snapshot import save_snapshot
    G = networks_biggan.Generator(z_dim=8, c_dim=2, ch=2)
    D = networks_biggan.Discriminator(c_dim=2, ch=2)
    pkl = str(tmp_path / 'big.pkl')
    save_snapshot(pkl, dict(G=G, D=D, G_ema=G))
    result = CliRunner().invoke(export_weights.main, ['--network', pkl])
    assert result.exit_code == 0, result.output
    path = weights.weights_path(pkl)
    raw = torch.load(path, weights_only=True)  # Plain torch, weights only: tensors and containers.
    assert raw['format'] == weights.FORMAT and set(raw['networks']) == {'G', 'D', 'G_ema'}
    _same(load_network_pkl(path)['D'], D)

def test_a_weights_file_runs_no_code(tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.system, ('touch ' + str(tmp_path / 'pwned'),))
    bad = tmp_path / 'evil.weights.pt'
    torch.save(dict(format=weights.FORMAT, networks=dict(G_ema=Boom())), str(bad))
    with pytest.raises(ValueError, match='not a weights file'):
        load_network_pkl(str(bad))
    assert not os.path.exists(tmp_path / 'pwned')
