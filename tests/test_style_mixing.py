"""style_mixing.py: the grid layout and that each cell takes exactly the chosen layers from its column."""

import os

import numpy as np
import PIL.Image
import torch
from click.testing import CliRunner

import generate
import style_mixing
from training import networks_stylegan2 as net
from training.snapshot import save_snapshot

def _G():
    torch.manual_seed(0)
    return net.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, mapping_kwargs=dict(num_layers=2),
        channel_base=64, channel_max=8).eval()

def test_cells_take_the_column_styles_on_the_chosen_layers():
    G = _G()
    with torch.no_grad():
        images = style_mixing.mix_styles(G, [1, 2], [3, 4, 5], styles=[0, 1, 2])
        z = lambda s: torch.from_numpy(np.random.RandomState(s).randn(1, 8)).float()
        w_row, w_col = G.mapping(z(2), torch.zeros(1, 0)), G.mapping(z(4), torch.zeros(1, 0))
        w = w_row.clone()
        w[:, :3] = w_col[:, :3]
        expect = generate.to_uint8(G.synthesis(w, noise_mode='const'))[0]
    assert np.array_equal(images[(2, 4)], expect)
    assert np.array_equal(images[(1, None)], images[(None, 1)])
    grid = style_mixing.grid_image(images, [1, 2], [3, 4, 5])
    assert grid.shape == (3 * 16, 4 * 16, 3) and (grid[:16, :16] == 0).all()
    assert np.array_equal(grid[:16, 16:32], images[(None, 3)]) and np.array_equal(grid[32:48, 32:48], images[(2, 4)])

def test_cli_writes_the_grid_and_refuses_bad_layers(tmp_path):
    G = _G()
    pkl = str(tmp_path / 'net.pkl')
    save_snapshot(pkl, dict(G=G, G_ema=G))
    out = tmp_path / 'out'
    result = CliRunner().invoke(style_mixing.main, ['--network', pkl, '--rows=1,2', '--cols=3-5', '--styles=0-2', '--outdir', str(out),
        '--device=cpu'])
    assert result.exit_code == 0, result.output
    assert PIL.Image.open(out / 'grid.png').size == (4 * 16, 3 * 16)
    assert sorted(os.listdir(out)) == sorted(['grid.png'] + [f'{r}-{c}.png' for r in (1, 2) for c in (3, 4, 5)])
    result = CliRunner().invoke(style_mixing.main, ['--network', pkl, '--rows=1', '--cols=2', '--styles=0-40', '--outdir', str(out),
        '--device=cpu'])
    assert result.exit_code != 0 and 'out of range' in result.output
