"""The experiment launchers in scripts/: each builds its datasets and reaches train.py with the
experiment's settings (--dry-run), and the CIFAR launcher trains its first tick with tiny overrides."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest

from test_dataset_tool import cifar_rows, make_cifar10
from test_train_e2e import make_dataset_zip

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def _launch(script, args, tmp_path):
    env = dict(os.environ, DOWNLOADS=str(tmp_path / 'downloads'), DATASETS=str(tmp_path / 'datasets'),
        RUNS=str(tmp_path / 'runs'), PYTHON=sys.executable, OMP_NUM_THREADS='1')
    return subprocess.run(['bash', os.path.join(REPO, 'scripts', script)] + args, env=env, capture_output=True,
        text=True, timeout=600)

@pytest.fixture
def downloads(tmp_path):
    folder = tmp_path / 'downloads'
    folder.mkdir()
    names = [f'class{k}' for k in range(10)]
    batches = [(cifar_rows(4, seed=i), [(i + k) % 10 for k in range(4)]) for i in range(5)]
    make_cifar10(folder / 'cifar-10-python.tar.gz', batches, (cifar_rows(4, seed=9), [0, 1, 2, 3]), names)
    shots = folder / 'obama'
    shots.mkdir()
    rnd = np.random.RandomState(0)
    for i in range(3):
        PIL.Image.fromarray(rnd.randint(0, 256, size=[64, 64, 3], dtype=np.uint8)).save(shots / f'{i}.png')
    return folder

@pytest.mark.slow
@pytest.mark.parametrize('script, args, expect', [
    ('cifar_biggan.sh', ['cifar10', '20', 'kd', 'nolecam', '--subset=8'], ['Published FID for cifar10 20% kd nolecam: 11.01',
        '"class_name": "training.loss.BigGANLoss"', '"kd": "agg,corr"', '"total_kimg": 50000', 'cifar10-test.zip',
        '"kd_preset": "authors"', '"kd_clip_norm": "none"', '"kd_resize": "nearest"', '"kd_prompts": "cifar10-authors"',
        '"prompt_list": [\n      "a airplane"', '"network_snapshot_ticks": 200']),
    ('cifar_biggan.sh', ['cifar10', '20', 'kd', 'lecam', '--subset=8'], ['Published FID for cifar10 20% kd lecam: none: no published number',
        '"lecam": 0.3', '"lecam_decay": 0.9', '"lecam_start_kimg": 200']),
    ('cifar_biggan.sh', ['cifar10', '100', 'kd-project', 'nolecam', '--subset=8'], ['"kd_preset": "project"', '"kd_clip_norm": "clip"',
        '"total_kimg": 50000']),
    ('cifar_biggan.sh', ['cifar10', '100', 'nokd', 'nolecam', '--subset=8'], ['Published FID for cifar10 100% nokd nolecam: 8.70']),
    ('low_shot.sh', ['obama', 'nokd'], ['Published FID for obama nokd: 46.87', '"total_kimg": 300',
        '"diffaugment": "color,translation,cutout"', '"fid5k_full"', '"network_snapshot_ticks": 10', '"channel_base": 32768',
        '"ema_kimg": 10', '"ema_rampup": null', '"num_layers": 2', '"lr": 0.002', '"r1_gamma": 10', '"mbstd_group_size": 4',
        '"batch_size": 8']),
])
def test_launchers_dry_run(tmp_path, downloads, script, args, expect):
    result = _launch(script, args + ['--dry-run'], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for text in expect:
        assert text in result.stdout, text
    assert not os.path.exists(tmp_path / 'runs')  # A dry run writes no run directory.

def test_ada_launcher_dry_run(tmp_path):
    data = make_dataset_zip(tmp_path / 'data.zip', num=4, res=32)
    result = _launch('ada_kd.sh', [data, 'kd', '--dry-run'], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"class_name": "training.augment.AugmentPipe"' in result.stdout and '"ada_target": 0.6' in result.stdout
    assert '"kd": "agg,corr"' in result.stdout
    result = _launch('ada_kd.sh', [str(tmp_path / 'missing.zip'), 'kd'], tmp_path)
    assert result.returncode == 1 and 'missing dataset' in result.stderr

def test_launchers_reject_bad_arguments(tmp_path, downloads):
    result = _launch('cifar_biggan.sh', ['cifar10', '30', 'kd', 'lecam'], tmp_path)
    assert result.returncode == 2 and "unknown percent '30'" in result.stderr
    result = _launch('low_shot.sh', ['panda', 'kd'], tmp_path)
    assert result.returncode == 1 and 'panda' in result.stderr  # Its source images are missing.

@pytest.mark.slow
def test_cifar_launcher_first_tick(tmp_path, downloads):
    tiny = ['--subset=8', '--cbase=2', '--batch=4', '--kimg=0.016', '--tick=0.016', '--metrics=none', '--workers=0',
        '--device=cpu']
    result = _launch('cifar_biggan.sh', ['cifar10', '10', 'nokd', 'lecam'] + tiny, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir, = glob.glob(str(tmp_path / 'runs' / '00000-*'))
    ticks = [json.loads(line) for line in open(os.path.join(run_dir, 'stats.jsonl'))]
    assert ticks[-1]['Progress/kimg']['mean'] == pytest.approx(0.016)
    assert os.path.isfile(os.path.join(run_dir, 'network-snapshot-000000.pkl'))

@pytest.mark.slow
def test_cifar100_full_length_and_authors_prompts(tmp_path, downloads):
    import tarfile
    from test_dataset_tool import _add_bytes, _pickle_py2_style
    names = [f'class{i}' for i in range(100)]
    with tarfile.open(downloads / 'cifar-100-python.tar.gz', 'w:gz') as tar:
        _add_bytes(tar, 'cifar-100-python/train', _pickle_py2_style({b'data': cifar_rows(8, seed=1), b'fine_labels': list(range(8)),
            b'coarse_labels': [0] * 8}))
        _add_bytes(tar, 'cifar-100-python/test', _pickle_py2_style({b'data': cifar_rows(4, seed=2), b'fine_labels': [0, 1, 2, 3],
            b'coarse_labels': [0] * 4}))
        _add_bytes(tar, 'cifar-100-python/meta', _pickle_py2_style({b'fine_label_names': [n.encode() for n in names],
            b'coarse_label_names': [b'a']}))
    result = _launch('cifar_biggan.sh', ['cifar100', '100', 'kd', 'nolecam', '--dry-run'], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"total_kimg": 100000' in result.stdout  # 2000 epochs of 50k images.
    assert 'Published FID for cifar100 100% kd nolecam: none: no published number' in result.stdout
    options = json.loads(result.stdout[result.stdout.index('{'):result.stdout.index('\nOutput directory')])
    assert options['kd_kwargs']['prompt_list'] == [f'a {n}' for n in ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog',
        'frog', 'horse', 'ship', 'truck')]  # The authors' ten CIFAR-10 prompts, for CIFAR-100 as well.
