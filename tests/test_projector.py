"""projector.py with a tiny VGG16 stand-in of the same interface: the schedule, the noise regulariser,
a projection that recovers a target G can make, and generate.py --projected-w."""

import os

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import generate
import projector
import tiny_detector
from training import networks_stylegan2 as net
from training.snapshot import save_snapshot

def test_learning_rate_schedule():
    assert projector.learning_rate(0.0) == 0
    assert projector.learning_rate(0.025) == pytest.approx(0.05)  # Half-way up the 5 % ramp.
    assert projector.learning_rate(0.5) == pytest.approx(0.1)
    assert projector.learning_rate(0.875) == pytest.approx(0.05)  # Half-way down the cosine over the last 25 %.

def test_noise_regulariser_by_hand():
    noise = torch.randn(16, 16, generator=torch.Generator().manual_seed(0))
    expect = 0.0
    n = noise[None, None]
    for _ in range(2):  # 16 and 8.
        expect += (n * n.roll(1, 3)).mean() ** 2 + (n * n.roll(1, 2)).mean() ** 2
        n = torch.nn.functional.avg_pool2d(n, 2)
    assert float(projector.noise_regularisation(dict(a=noise))) == pytest.approx(float(expect))
    smooth = torch.ones(16, 16)  # Fully correlated noise is penalised far more than white noise.
    assert projector.noise_regularisation(dict(a=smooth)) > 100 * projector.noise_regularisation(dict(a=noise))

def _tiny_G():
    torch.manual_seed(0)
    return net.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, mapping_kwargs=dict(num_layers=2),
        channel_base=64, channel_max=8, use_noise=False).eval()

def test_projection_approaches_a_target_from_the_generator(tmp_path):
    G = _tiny_G()
    detectors = tiny_detector.save_tiny_detectors(str(tmp_path / 'det'))
    vgg16 = tiny_detector.load_detector(detectors, tiny_detector.VGG16_FILE)
    with torch.no_grad():
        w_true = G.mapping(torch.randn(1, 8, generator=torch.Generator().manual_seed(5)), torch.zeros(1, 0))
        target = ((G.synthesis(w_true, noise_mode='const')[0] + 1) * 127.5).clamp(0, 255).to(torch.uint8)
    steps = projector.project(G, target, vgg16, num_steps=150, w_avg_samples=500, log=None)
    assert steps.shape == (150, 8)
    def dist(w):
        img = (G.synthesis(w[None, None].repeat(1, G.num_ws, 1), noise_mode='const') + 1) * 127.5
        return float((projector._features(vgg16, img) - projector._features(vgg16, target[None].float())).square().sum())
    with torch.no_grad():
        assert dist(steps[-1]) < 0.2 * dist(steps[0])

def test_cli_and_generate_from_projected_w(tmp_path):
    G = _tiny_G()
    pkl = str(tmp_path / 'net.pkl')
    save_snapshot(pkl, dict(G=G, G_ema=G))
    detectors = tiny_detector.save_tiny_detectors(str(tmp_path / 'det'))
    PIL.Image.fromarray(np.random.RandomState(0).randint(0, 256, [20, 24, 3], dtype=np.uint8)).save(tmp_path / 't.png')
    out = tmp_path / 'out'
    result = CliRunner().invoke(projector.main, ['--network', pkl, '--target', str(tmp_path / 't.png'), '--num-steps=5',
        '--detector-dir', detectors, '--device=cpu', '--outdir', str(out)])
    assert result.exit_code == 0, result.output
    assert {'target.png', 'proj.png', 'projected_w.npz'} <= set(os.listdir(out))
    ws = np.load(out / 'projected_w.npz')['w']
    assert ws.shape == (1, G.num_ws, 8)
    result = CliRunner().invoke(generate.main, ['--network', pkl, '--projected-w', str(out / 'projected_w.npz'), '--outdir',
        str(tmp_path / 'gen'), '--device=cpu'])
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.asarray(PIL.Image.open(tmp_path / 'gen' / 'proj00.png')), np.asarray(PIL.Image.open(out / 'proj.png')))
    result = CliRunner().invoke(generate.main, ['--network', pkl, '--outdir', str(tmp_path / 'gen')])
    assert result.exit_code != 0 and 'either --seeds or --projected-w' in result.output

def test_tools_on_a_snapshot_of_a_short_training_run(tmp_path):
    # style_mixing.py, projector.py and export_weights.py on what train.py writes (TINY_ARGS networks).
    import export_weights
    import style_mixing
    from test_train_e2e import TINY_ARGS, make_dataset_zip, only_run_dir, run_train
    data = make_dataset_zip(tmp_path / 'tiny.zip', num=4)
    assert run_train(['--outdir', str(tmp_path / 'runs'), '--data', data, '--kimg=0.004'] + TINY_ARGS).exit_code == 0
    pkl = os.path.join(only_run_dir(str(tmp_path / 'runs')), 'network-snapshot-000000.pkl')
    detectors = tiny_detector.save_tiny_detectors(str(tmp_path / 'det'))
    PIL.Image.fromarray(np.random.RandomState(1).randint(0, 256, [16, 16, 3], dtype=np.uint8)).save(tmp_path / 't.png')
    runner = CliRunner()
    assert runner.invoke(export_weights.main, ['--network', pkl]).exit_code == 0
    for network in (pkl, pkl.replace('.pkl', '.weights.pt')):
        result = runner.invoke(style_mixing.main, ['--network', network, '--rows=1,2', '--cols=3', '--styles=0-1', '--outdir',
            str(tmp_path / 'mix'), '--device=cpu'])
        assert result.exit_code == 0, result.output
        result = runner.invoke(projector.main, ['--network', network, '--target', str(tmp_path / 't.png'), '--num-steps=3',
            '--detector-dir', detectors, '--device=cpu', '--outdir', str(tmp_path / 'proj')])
        assert result.exit_code == 0, result.output

@pytest.mark.parametrize('tool', ['projector', 'style_mixing', 'export_weights', 'legacy', 'generate', 'calc_metrics', 'gen_video', 'memorisation'])
def test_help_is_complete(tool):
    import importlib
    result = CliRunner().invoke(importlib.import_module(tool).main, ['--help'])
    assert result.exit_code == 0 and '--network' in result.output or '--source' in result.output
    for line in result.output.splitlines():
        if line.strip().startswith('--') and line.strip() != '--help':
            assert len(line.split()) > 1, f'{tool}: option without help text: {line}'
