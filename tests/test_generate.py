"""generate.py and training/snapshot.py: deterministic per seed, grid, conditional networks, bad pickles."""

import os
import pickle

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import generate
from training.networks_stylegan2 import Generator
from training.snapshot import load_network_pkl, save_snapshot

def _snapshot(tmp_path, c_dim=0):
    G = Generator(z_dim=8, c_dim=c_dim, w_dim=8, img_resolution=8, img_channels=3, mapping_kwargs=dict(num_layers=1),
        channel_base=64, channel_max=8).eval().requires_grad_(False)
    path = str(tmp_path / f'net{c_dim}.pkl')
    save_snapshot(path, dict(G=G, D=None, G_ema=G, augment_pipe=None, training_set_kwargs=None))
    return path, G

def _run(args):
    return CliRunner().invoke(generate.main, args)

def _read(path):
    return np.asarray(PIL.Image.open(path))

def test_generate_is_deterministic_per_seed(tmp_path):
    pkl, G = _snapshot(tmp_path)
    first, second = str(tmp_path / 'a'), str(tmp_path / 'b')
    assert _run(['--network', pkl, '--seeds=0-2,7', '--outdir', first, '--grid', '--device=cpu']).exit_code == 0
    result = _run(['--network', pkl, '--seeds=7', '--outdir', second, '--device=cpu'])
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(first)) == ['grid.png', 'seed0000.png', 'seed0001.png', 'seed0002.png', 'seed0007.png']
    np.testing.assert_array_equal(_read(os.path.join(first, 'seed0007.png')), _read(os.path.join(second, 'seed0007.png')))
    assert not np.array_equal(_read(os.path.join(first, 'seed0000.png')), _read(os.path.join(first, 'seed0001.png')))

    # The image is G(z) with z = RandomState(seed).randn, mapped from [-1, 1] to uint8.
    z = torch.from_numpy(np.random.RandomState(7).randn(1, G.z_dim)).float()
    with torch.no_grad():
        expected = (G(z, torch.zeros([1, 0]), noise_mode='const')[0].permute(1, 2, 0) * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    np.testing.assert_array_equal(_read(os.path.join(second, 'seed0007.png')), expected.numpy())

    # 4 images -> a 2x2 grid, seed order row by row.
    grid = _read(os.path.join(first, 'grid.png'))
    assert grid.shape == (16, 16, 3)
    np.testing.assert_array_equal(grid[8:, 8:], _read(os.path.join(first, 'seed0007.png')))

def test_conditional_network_requires_class(tmp_path):
    pkl, _G = _snapshot(tmp_path, c_dim=3)
    outdir = str(tmp_path / 'out')
    result = _run(['--network', pkl, '--seeds=0', '--outdir', outdir, '--device=cpu'])
    assert result.exit_code == 2 and 'conditional (3 classes): pass --class' in result.output
    result = _run(['--network', pkl, '--seeds=0', '--outdir', outdir, '--class=5', '--device=cpu'])
    assert result.exit_code == 2 and 'out of range' in result.output
    result = _run(['--network', pkl, '--seeds=0', '--outdir', outdir, '--class=1', '--device=cpu'])
    assert result.exit_code == 0, result.output
    assert os.listdir(outdir) == ['seed0000.png']

def test_several_classes_go_to_one_folder_each_and_one_grid_row_each(tmp_path):
    pkl, G = _snapshot(tmp_path, c_dim=3)
    outdir = str(tmp_path / 'out')
    result = _run(['--network', pkl, '--seeds=4,5', '--outdir', outdir, '--class=2,0,1', '--grid', '--device=cpu'])
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(outdir)) == ['class0', 'class1', 'class2', 'grid.png']
    assert sorted(os.listdir(os.path.join(outdir, 'class2'))) == ['seed0004.png', 'seed0005.png']
    # class2/seed0005.png is G(z of seed 5, one-hot label 2).
    z = torch.from_numpy(np.random.RandomState(5).randn(1, G.z_dim)).float()
    with torch.no_grad():
        img = G(z, torch.eye(3)[2:3], noise_mode='const')
    expected = (img[0].permute(1, 2, 0) * 127.5 + 128).clamp(0, 255).to(torch.uint8).numpy()
    np.testing.assert_array_equal(_read(os.path.join(outdir, 'class2', 'seed0005.png')), expected)
    assert not np.array_equal(expected, _read(os.path.join(outdir, 'class0', 'seed0005.png')))
    # Rows follow the classes in the order given, columns the seeds: 3 rows x 2 columns of 8x8.
    grid = _read(os.path.join(outdir, 'grid.png'))
    assert grid.shape == (24, 16, 3)
    np.testing.assert_array_equal(grid[:8, 8:], expected)
    np.testing.assert_array_equal(grid[8:16, :8], _read(os.path.join(outdir, 'class0', 'seed0004.png')))
    result = _run(['--network', pkl, '--seeds=0', '--outdir', str(tmp_path / 'bad'), '--class=0-3', '--device=cpu'])
    assert result.exit_code == 2 and 'out of range' in result.output and not os.path.exists(tmp_path / 'bad')

def test_bad_pickles_give_clear_errors(tmp_path):
    garbage = tmp_path / 'garbage.pkl'
    garbage.write_bytes(b'this is not a pickle')
    with pytest.raises(ValueError, match='not a network pickle'):
        load_network_pkl(str(garbage))
    other = tmp_path / 'other.pkl'
    other.write_bytes(pickle.dumps(dict(weights=[1, 2, 3])))
    with pytest.raises(ValueError, match=r"expected a dict with G_ema .* found \['weights'\]"):
        load_network_pkl(str(other))
    result = _run(['--network', str(garbage), '--seeds=0', '--outdir', str(tmp_path / 'out'), '--device=cpu'])
    assert result.exit_code == 1 and 'not a network pickle' in result.output
    assert not os.path.exists(tmp_path / 'out')

def test_snapshot_fills_optional_keys_and_accepts_file_objects(tmp_path):
    # NVIDIA's pickles may lack our resume_state; hand-made ones may lack more.
    path = tmp_path / 'minimal.pkl'
    from training import networks_stylegan2 as net
    G = net.Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=4, img_channels=3, channel_base=16, channel_max=4)
    path.write_bytes(pickle.dumps(dict(G_ema=G)))
    with open(path, 'rb') as f:
        data = load_network_pkl(f)
    assert data['G'] is None and data['resume_state'] is None and data['augment_pipe'] is None
    # Something that is not a generator is refused with the reason.
    path.write_bytes(pickle.dumps(dict(G_ema=torch.nn.Linear(1, 1))))
    with pytest.raises(ValueError, match='G_ema is a Linear without z_dim'):
        load_network_pkl(str(path))
    with pytest.raises(ValueError, match='at least G_ema'):
        save_snapshot(str(tmp_path / 'x.pkl'), dict(G=None))
    assert not os.path.exists(tmp_path / 'x.pkl')

#----------------------------------------------------------------------------
