"""Bad input to every command: one clear line (what is wrong, which option fixes it), a non-zero exit,
no traceback and nothing half-written, in particular no run directory. docs/troubleshooting.md lists
each case with its message."""

import io
import os
import pickle
import zipfile

import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import calc_metrics
import generate
import train
from test_train_e2e import TINY_ARGS, make_dataset_zip
from training import networks_stylegan2 as net
from training.snapshot import save_snapshot

def _tiny_G(res=16, c_dim=0, channels=3):
    return net.Generator(z_dim=4, c_dim=c_dim, w_dim=4, img_resolution=res, img_channels=channels, channel_base=64, channel_max=4)

def _snapshot(path, **kwargs):
    G = _tiny_G(**kwargs)
    save_snapshot(str(path), dict(G=G, G_ema=G, D=None))
    return str(path)

def _invoke(command, args):
    result = CliRunner().invoke(command, [str(a) for a in args])
    return result

def _assert_clean_error(result, message):
    assert result.exit_code != 0, result.output
    assert message in result.output, result.output
    # click turns its errors into SystemExit; anything else is an uncaught exception (a traceback for a user).
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert 'Traceback' not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.startswith('Error:')]
    assert len(lines) == 1, result.output  # One line says what is wrong.

#----------------------------------------------------------------------------

@pytest.fixture
def data(tmp_path):
    return make_dataset_zip(tmp_path / 'data16.zip', num=4, res=16)

def _train(tmp_path, data, *extra):
    outdir = tmp_path / 'runs'
    result = _invoke(train.main, ['--outdir', outdir, '--data', data, '--kimg=0.004'] + TINY_ARGS + list(extra))
    return result, outdir

def _no_run_dir(outdir):
    assert not os.path.exists(outdir) or os.listdir(outdir) == [], os.listdir(outdir)

def test_resume_from_a_corrupt_file(tmp_path, data):
    bad = tmp_path / 'corrupt.pkl'
    bad.write_bytes(b'\x80\x04this is not a pickle at all')
    result, outdir = _train(tmp_path, data, f'--resume={bad}')
    _assert_clean_error(result, f'--resume: {bad}: not a network pickle')
    _no_run_dir(outdir)

def test_resume_from_a_pickle_that_is_not_a_network(tmp_path, data):
    bad = tmp_path / 'dict.pkl'
    bad.write_bytes(pickle.dumps(dict(G_ema='a string', G=None)))
    result, outdir = _train(tmp_path, data, f'--resume={bad}')
    _assert_clean_error(result, 'G_ema is a str, not a network')
    _no_run_dir(outdir)

# Another label dimension is no error: transfer learning leaves the label embedding at its initialisation
# (tests/test_run_life.py).
@pytest.mark.parametrize('kwargs, shape', [(dict(res=32), '32x32, 3 channels'), (dict(channels=1), '16x16, 1 channel')])
def test_resume_network_that_does_not_fit_the_data(tmp_path, data, kwargs, shape):
    pkl = _snapshot(tmp_path / 'other.pkl', **kwargs)
    result, outdir = _train(tmp_path, data, f'--resume={pkl}')
    _assert_clean_error(result, f'the network in {pkl} is {shape}, but --data is 16x16, 3 channels;')
    _no_run_dir(outdir)

def test_resume_stylegan2_network_into_biggan(tmp_path):
    data = make_dataset_zip(tmp_path / 'data32.zip', num=4, res=32)
    pkl = _snapshot(tmp_path / 'sg2.pkl', res=32)
    result = _invoke(train.main, ['--outdir', tmp_path / 'runs', '--data', data, '--cfg=biggan-cifar', '--kimg=0.004',
        '--metrics=none', '--workers=0', '--device=cpu', f'--resume={pkl}'])
    _assert_clean_error(result, 'is a StyleGAN2 generator, but --cfg selects BigGAN')
    _no_run_dir(tmp_path / 'runs')

def _two_resolutions(tmp):
    """A zip whose last image is larger than the others: only a look at every image finds it."""
    path = make_dataset_zip(tmp / 'mixed.zip', num=4, res=16)
    with zipfile.ZipFile(path, 'a') as z:
        buf = io.BytesIO()
        PIL.Image.new('RGB', (32, 32)).save(buf, format='PNG')
        z.writestr('00000/img99999999.png', buf.getvalue())
    return path

def _not_a_zip(tmp):
    (tmp / 'text.zip').write_text('these are not the images you are looking for')
    return str(tmp / 'text.zip')

@pytest.mark.parametrize('make, message', [
    (lambda tmp: str(tmp / 'missing.zip'), '--data:'),
    (lambda tmp: make_dataset_zip(tmp / 'wide.zip', num=2, res=16, wide=True), 'images must be square'),
    (_two_resolutions, '4 images are 16x16 RGB'),
    (_not_a_zip, 'not a readable zip file'),
])
def test_missing_or_non_square_data(tmp_path, make, message):
    result, outdir = _train(tmp_path, make(tmp_path))
    _assert_clean_error(result, message)
    _no_run_dir(outdir)

@pytest.mark.parametrize('outdir, message', [
    (lambda tmp: tmp / 'a-file' / 'runs', 'is a file, not a folder'),
    (lambda tmp: '/proc/kd-dlgan-runs', 'not writable'),
])
def test_outdir_that_cannot_be_made(tmp_path, data, outdir, message):
    (tmp_path / 'a-file').write_text('')
    result = _invoke(train.main, ['--outdir', outdir(tmp_path), '--data', data, '--kimg=0.004'] + TINY_ARGS)
    _assert_clean_error(result, f'--outdir: {outdir(tmp_path)}')
    assert message in result.output
    assert not os.path.exists(outdir(tmp_path))

@pytest.mark.parametrize('extra, message', [
    (['--kimg=-1'], '--kimg must be positive'),
    (['--gpus=3', '--batch=4'], '--batch=4 must be a positive multiple of --gpus=3'),
    (['--metrics=fid50k_full,fidd'], "--metrics: unknown metric(s) fidd"),
    (['--snap=0'], '--snap must be at least 1'),
    (['--peer-timeout=1'], '--peer-timeout must be more than 2 seconds'),
    (['--lecam-decay=0.5'], '--lecam-decay has no effect without --lecam'),
    (['--kd-preset=authors'], '--kd-preset has no effect without --kd'),
    (['--resume-mode=continue'], '--resume-mode has no effect without --resume'),
    (['--resume=auto', '--resume-mode=transfer'], '--resume-mode has no effect with --resume=auto'),
    (['--keep=0'], '--keep must be at least 1'),
])
def test_bad_option_values(tmp_path, data, extra, message):
    result, outdir = _train(tmp_path, data, *extra)
    _assert_clean_error(result, message)
    _no_run_dir(outdir)

#----------------------------------------------------------------------------

def test_generate_on_a_pickle_whose_G_ema_is_not_a_network(tmp_path):
    bad = tmp_path / 'bad.pkl'
    bad.write_bytes(pickle.dumps(dict(G_ema=torch.zeros(3))))
    result = _invoke(generate.main, ['--network', bad, '--seeds=0', '--outdir', tmp_path / 'out', '--device=cpu'])
    _assert_clean_error(result, 'G_ema is a Tensor, not a network')
    assert not os.path.exists(tmp_path / 'out')

def test_generate_on_a_missing_file(tmp_path):
    result = _invoke(generate.main, ['--network', tmp_path / 'none.pkl', '--seeds=0', '--outdir', tmp_path / 'out', '--device=cpu'])
    _assert_clean_error(result, 'none.pkl')
    assert not os.path.exists(tmp_path / 'out')

def test_calc_metrics_with_data_at_the_wrong_resolution(tmp_path, monkeypatch):
    import tiny_detector
    detectors = tiny_detector.save_tiny_detectors(str(tmp_path / 'detectors'))
    pkl = _snapshot(tmp_path / 'net.pkl', res=16)
    data = make_dataset_zip(tmp_path / 'data32.zip', num=4, res=32)
    result = _invoke(calc_metrics.main, ['--network', pkl, '--metrics=fid5k_full', '--data', data, '--device=cpu',
        '--detector-dir', detectors])
    _assert_clean_error(result, 'Reference dataset')
    assert '32' in result.output and '16' in result.output  # Both resolutions are named.

def test_calc_metrics_unknown_metric(tmp_path):
    pkl = _snapshot(tmp_path / 'net.pkl')
    result = _invoke(calc_metrics.main, ['--network', pkl, '--metrics=fid1k'])
    _assert_clean_error(result, 'unknown metric(s) fid1k')
