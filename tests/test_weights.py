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

def test_every_network_keeps_its_own_weights(tmp_path):
    # G, G_ema and D all differ (a weights file written after one step has G_ema equal to G, where a swap hides).
    import copy
    from training import networks_stylegan2 as net
    from training.snapshot import save_snapshot
    torch.manual_seed(1)
    G = net.Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=8, img_channels=3, channel_base=64, channel_max=4)
    G_ema = copy.deepcopy(G)
    with torch.no_grad():
        for p in G_ema.parameters():
            p.add_(0.25)
    D = net.Discriminator(c_dim=0, img_resolution=8, img_channels=3, channel_base=64, channel_max=4)
    pkl = str(tmp_path / 'three.pkl')
    save_snapshot(pkl, dict(G=G, D=D, G_ema=G_ema))
    assert CliRunner().invoke(export_weights.main, ['--network', pkl]).exit_code == 0
    back = load_network_pkl(weights.weights_path(pkl))
    _same(back['G'], G)
    _same(back['G_ema'], G_ema)
    _same(back['D'], D)
    assert not torch.equal(back['G'].synthesis.b4.const, back['G_ema'].synthesis.b4.const)

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

def test_kd_discriminator_state_has_plain_stylegan2_names_and_G_has_sg2a_kwargs(tmp_path):
    # What StyleGAN2-ADA's own classes need to load our KD snapshots from a weights file.
    import json
    from kd.heads import KDHead
    from training import networks_stylegan2 as net
    D = net.Discriminator(c_dim=0, img_resolution=16, img_channels=3, channel_base=64, channel_max=8)
    plain_keys = set(D.state_dict())
    D.kd_head = KDHead(in_features=D.feature_dim, out_features=4)
    G = net.Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=16, img_channels=3, channel_base=64, channel_max=8)
    raw = weights.to_weights(dict(G=G, D=D, G_ema=G))
    assert set(raw['networks']['D']['state_dict']) == plain_keys and 'kd_head' in raw['networks']['D']['extras']
    sg2a = json.loads(raw['networks']['G']['sg2a_init_kwargs'])
    assert sg2a['synthesis_kwargs'] == dict(channel_base=64, channel_max=8) and sg2a['img_resolution'] == 16
    # Nesting the synthesis options back gives our constructor's arguments.
    rebuilt = net.Generator(**{k: v for k, v in sg2a.items() if k != 'synthesis_kwargs'}, **sg2a['synthesis_kwargs'])
    rebuilt.load_state_dict(raw['networks']['G']['state_dict'])
