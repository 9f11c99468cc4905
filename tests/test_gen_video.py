"""gen_video.py and training/latent_walk.py: StyleGAN3's keyframe layout, looping interpolation, and mp4s whose
decoded frames are the network's images (W walks for StyleGAN2, Z walks for BigGAN), plus bad input."""

import os

import imageio.v2 as imageio
import numpy as np
import pytest
import scipy.interpolate
import torch
from click.testing import CliRunner

import gen_video
import generate
from training import latent_walk
from training import networks_biggan
from training import networks_stylegan2 as net
from training.snapshot import save_snapshot

#----------------------------------------------------------------------------
# Helpers.

def _stylegan2(c_dim=0, res=16):
    torch.manual_seed(0)
    G = net.Generator(z_dim=8, c_dim=c_dim, w_dim=8, img_resolution=res, img_channels=3, mapping_kwargs=dict(num_layers=2),
        channel_base=64, channel_max=8).eval().requires_grad_(False)
    G.mapping.w_avg.copy_(torch.randn(8) * 2)  # A trained-looking mean, so truncation visibly changes the image.
    for name, param in G.named_parameters():
        if name.endswith('noise_strength'):
            param.fill_(0.5)  # Trained-looking noise, so frames show whether it is held constant.
    return G

def _biggan():
    torch.manual_seed(0)
    return networks_biggan.Generator(z_dim=8, c_dim=0, img_resolution=8, ch=4).eval().requires_grad_(False)

def _save(tmp_path, G, name='net.pkl'):
    path = str(tmp_path / name)
    save_snapshot(path, dict(G=G, G_ema=G))
    return path

def _run(args):
    return CliRunner().invoke(gen_video.main, [str(a) for a in args] + ['--device=cpu'])

def _decode(path):
    reader = imageio.get_reader(str(path))
    try:
        return np.stack([frame for frame in reader])
    finally:
        reader.close()

def _image(G, seed, psi=1, label=None):
    """What generate.py writes for this seed: G(z of the seed) at psi, uint8 [H, W, C]."""
    z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).float()
    label = torch.zeros([1, G.c_dim]) if label is None else label
    with torch.no_grad():
        return generate.to_uint8(G(z, label, truncation_psi=psi, noise_mode='const'))[0]

def _luma_diff(a, b):
    """Mean abs difference of BT.601 luma: yuv420p keeps luma at full resolution but halves chroma, so tiny noisy
    images lose ~10 levels of colour to the codec while their luma comes back within ~3 (a wrong seed, class or
    psi: 10 and more)."""
    weights = np.array([0.299, 0.587, 0.114])
    return float(np.abs(a.astype(np.float64) @ weights - b.astype(np.float64) @ weights).mean())

def _cell(frame, y, x, res):
    return frame[y * res:(y + 1) * res, x * res:(x + 1) * res]

#----------------------------------------------------------------------------
# Pure logic.

def test_grid_parsing():
    assert latent_walk.parse_grid('4x2') == (4, 2) and latent_walk.parse_grid('3,1') == (3, 1)
    for bad in ['4', '2x', 'axb', '0x2', '2x2x2', '-1x2']:
        with pytest.raises(ValueError):
            latent_walk.parse_grid(bad)

def test_keyframe_layout_follows_stylegan3():
    # Consecutive seeds are one cell's keyframes; cells row by row; [grid_h, grid_w, num_keyframes].
    layout = latent_walk.keyframe_seeds(range(12), grid_w=3, grid_h=2)
    assert layout.shape == (2, 3, 2)
    assert layout[0, 0].tolist() == [0, 1] and layout[0, 2].tolist() == [4, 5] and layout[1, 0].tolist() == [6, 7]
    # --num-keyframes: the seeds repeat in order.
    layout = latent_walk.keyframe_seeds([10, 11, 12], grid_w=2, grid_h=1, num_keyframes=2)
    assert layout.tolist() == [[[10, 11], [12, 10]]]
    # --shuffle-seed: the filled slots shuffled by RandomState(shuffle_seed).shuffle.
    slots = np.array([i % 5 for i in range(8)], dtype=np.int64)
    np.random.RandomState(3).shuffle(slots)
    layout = latent_walk.keyframe_seeds(range(5), grid_w=2, grid_h=2, num_keyframes=2, shuffle_seed=3)
    assert layout.reshape(-1).tolist() == slots.tolist()
    with pytest.raises(ValueError, match='5 seeds do not fill a 2x2 grid evenly'):
        latent_walk.keyframe_seeds(range(5), grid_w=2, grid_h=2)
    with pytest.raises(ValueError, match='do not fill'):
        latent_walk.keyframe_seeds(range(3), grid_w=2, grid_h=2)  # Fewer seeds than cells.

@pytest.mark.parametrize('kind', latent_walk.KINDS)
def test_interpolation_passes_the_keyframes_and_loops(kind):
    keyframes = np.random.RandomState(0).randn(4, 3, 2)
    interpolate = latent_walk.looping_interpolator(keyframes, kind=kind)
    for k in range(4):
        np.testing.assert_allclose(interpolate(k), keyframes[k], atol=1e-12)
    np.testing.assert_allclose(interpolate(4.0), keyframes[0], atol=1e-12)  # The loop closes.
    np.testing.assert_allclose(interpolate(-0.25), interpolate(3.75), atol=1e-12)
    if kind == 'linear':
        np.testing.assert_allclose(interpolate(3.5), (keyframes[3] + keyframes[0]) / 2)
    else:  # Smooth across the loop: the slope just before the end is the slope at the start.
        eps = 1e-5
        slope_start = (interpolate(eps) - interpolate(0)) / eps
        slope_end = (interpolate(4.0) - interpolate(4 - eps)) / eps
        np.testing.assert_allclose(slope_start, slope_end, atol=1e-3)
    np.testing.assert_allclose(latent_walk.looping_interpolator(keyframes[:1], kind=kind)(0.3), keyframes[0])

def test_cubic_is_stylegan3s_tiled_spline_in_the_limit():
    # StyleGAN3 fits an ordinary cubic spline through the keyframes tiled 5 times (2 wraps each side).
    keyframes = np.random.RandomState(1).randn(5, 6)
    tiled = scipy.interpolate.interp1d(np.arange(-10, 15), np.tile(keyframes, [5, 1]), kind='cubic', axis=0)
    t = latent_walk.frame_times(5, w_frames=7)
    np.testing.assert_allclose(latent_walk.looping_interpolator(keyframes, kind='cubic')(t), tiled(t), atol=1e-3)

def test_frame_times():
    t = latent_walk.frame_times(3, w_frames=4)
    assert len(t) == 12 and t[0] == 0 and t[4] == 1 and t[8] == 2 and t[-1] < 3

def test_odd_sizes_are_padded_and_grayscale_becomes_rgb(tmp_path):
    odd = np.random.RandomState(0).randint(0, 256, [5, 7, 1]).astype(np.uint8)
    frame = gen_video.video_frame(odd)
    assert frame.shape == (6, 8, 3)
    assert np.array_equal(frame[:5, :7, 1], odd[:, :, 0]) and (frame[5] == 0).all() and (frame[:, 7] == 0).all()
    # H.264 in yuv420p refuses odd sizes; the padded frames encode and come back at the padded size.
    path = tmp_path / 'odd.mp4'
    gen_video.write_video([np.full([9, 15, 3], 40 * i, np.uint8) for i in range(3)], str(path), num_frames=3)
    frames = _decode(path)
    assert frames.shape == (3, 10, 16, 3) and os.listdir(tmp_path) == ['odd.mp4']
    assert abs(float(frames[2, :9, :15].mean()) - 80) < 3

#----------------------------------------------------------------------------
# The command line.

def test_stylegan2_walk_in_w(tmp_path):
    G = _stylegan2()
    pkl = _save(tmp_path, G)
    out = tmp_path / 'videos' / 'walk.mp4'
    result = _run(['--network', pkl, '--seeds=0-5', '--grid=2x1', '--w-frames=4', '--trunc=0.7', '--output', out])
    assert result.exit_code == 0, result.output
    assert 'walking in W' in result.output and '12/12' in result.output  # Progress: frames done / total.
    frames = _decode(out)
    assert frames.shape == (3 * 4, 16, 2 * 16, 3)  # num_keyframes * w_frames frames, grid x resolution.
    assert os.listdir(tmp_path / 'videos') == ['walk.mp4']  # No temporary file left.
    assert min(_luma_diff(frames[i], frames[i + 1]) for i in range(11)) > 0.5  # Every frame moves.
    # Keyframe k of a cell is frame k * w_frames; cell 0 walks seeds 0, 1, 2 and cell 1 seeds 3, 4, 5.
    for frame_idx, x, seed in [(0, 0, 0), (0, 1, 3), (4, 0, 1), (8, 1, 5)]:
        cell = _cell(frames[frame_idx], 0, x, 16)
        assert _luma_diff(cell, _image(G, seed, psi=0.7)) < 6, (frame_idx, x, seed)
        assert _luma_diff(cell, _image(G, seed, psi=1)) > 10  # The truncation is applied ...
        assert _luma_diff(cell, _image(G, seed + 1, psi=0.7)) > 10  # ... to the right seed.

def test_trunc_cutoff_truncates_only_the_first_ws():
    G = _stylegan2()
    layout = latent_walk.keyframe_seeds([7], grid_w=1, grid_h=1)
    label = torch.zeros([1, 0])
    full = gen_video.keyframe_latents(G, layout, label, truncation_psi=0.5)
    none = gen_video.keyframe_latents(G, layout, label)
    cut = gen_video.keyframe_latents(G, layout, label, truncation_psi=0.5, truncation_cutoff=2)
    assert cut.shape == (1, 1, G.num_ws, G.w_dim)
    np.testing.assert_allclose(cut[0, 0, :2], full[0, 0, :2])
    np.testing.assert_allclose(cut[0, 0, 2:], none[0, 0, 2:])
    assert not np.allclose(full, none)

def test_biggan_walks_in_z(tmp_path):
    G = _biggan()
    pkl = _save(tmp_path, G)
    out = tmp_path / 'z.mp4'
    result = _run(['--network', pkl, '--seeds=4,9,5,6', '--grid=1x2', '--w-frames=3', '--kind=linear', '--trunc=0.5',
        '--output', out])
    assert result.exit_code == 0, result.output
    assert 'walking in Z' in result.output and 'no effect on this network' in result.output
    frames = _decode(out)
    assert frames.shape == (6, 16, 8, 3)  # --grid is WIDTHxHEIGHT: one column, two rows.
    # Each cell is generate.py's image of its seed: BigGAN's batch norm must see one cell at a time.
    for frame_idx, y, seed in [(0, 0, 4), (3, 0, 9), (0, 1, 5), (3, 1, 6)]:
        assert _luma_diff(_cell(frames[frame_idx], y, 0, 8), _image(G, seed)) < 6, (frame_idx, y, seed)
    assert _luma_diff(_cell(frames[0], 0, 0, 8), _image(G, 9)) > 10 and _luma_diff(frames[0], frames[1]) > 0.5

def test_conditional_network_takes_class(tmp_path):
    G = _stylegan2(c_dim=3)
    pkl = _save(tmp_path, G)
    out = tmp_path / 'c.mp4'
    result = _run(['--network', pkl, '--seeds=0-1', '--w-frames=2', '--class=2', '--output', out])
    assert result.exit_code == 0, result.output
    frame = _decode(out)[0]
    assert _luma_diff(frame, _image(G, 0, label=torch.eye(3)[2:3])) < 6
    assert _luma_diff(frame, _image(G, 0, label=torch.eye(3)[0:1])) > 10

#----------------------------------------------------------------------------
# Bad input: one line, a non-zero exit, no traceback, no video.

def _assert_clean_error(result, message):
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), result.output
    assert message in result.output and 'Traceback' not in result.output, result.output
    assert len([line for line in result.output.splitlines() if line.startswith('Error:')]) == 1, result.output

def test_bad_input(tmp_path):
    pkl = _save(tmp_path, _stylegan2())
    pkl_cond = _save(tmp_path, _stylegan2(c_dim=3), name='cond.pkl')
    out = tmp_path / 'out' / 'v.mp4'
    cases = [
        (['--network', tmp_path / 'none.pkl', '--seeds=0'], 'none.pkl'),
        (['--network', pkl, '--seeds=0-2', '--grid=2x2'], '3 seeds do not fill a 2x2 grid evenly'),
        (['--network', pkl, '--seeds=0-3', '--grid=2by2'], 'expected WIDTHxHEIGHT'),
        (['--network', pkl, '--seeds=0-3', '--grid=0x4'], 'at least one column'),
        (['--network', pkl, '--seeds=x'], 'cannot parse'),
        (['--network', pkl, '--seeds=0', '--class=1'], 'the network is unconditional'),
        (['--network', pkl_cond, '--seeds=0'], 'conditional (3 classes): pass --class'),
        (['--network', pkl_cond, '--seeds=0', '--class=3'], 'out of range'),
        (['--network', pkl, '--seeds=0', '--w-frames=0'], '--w-frames'),
    ]
    for args, message in cases:
        _assert_clean_error(_run(args + ['--output', out]), message)
    result = _run(['--network', pkl, '--seeds=0', '--output', tmp_path / 'out' / 'v.gif'])
    _assert_clean_error(result, 'does not end in .mp4')
    assert not os.path.exists(tmp_path / 'out')

def test_interrupted_render_leaves_no_file(tmp_path, monkeypatch):
    pkl = _save(tmp_path, _stylegan2())
    real_render, calls = gen_video.render_cells, []
    def interrupt_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C mid-video.
        return real_render(*args, **kwargs)
    monkeypatch.setattr(gen_video, 'render_cells', interrupt_third)
    (tmp_path / 'out').mkdir()
    (tmp_path / 'out' / 'v.mp4').write_bytes(b'the last good video')
    result = _run(['--network', pkl, '--seeds=0-1', '--w-frames=4', '--output', tmp_path / 'out' / 'v.mp4'])
    assert result.exit_code != 0 and len(calls) == 3
    assert os.listdir(tmp_path / 'out') == ['v.mp4']  # Neither a half-written video nor a temporary file ...
    assert (tmp_path / 'out' / 'v.mp4').read_bytes() == b'the last good video'  # ... and the old video is intact.

#----------------------------------------------------------------------------
