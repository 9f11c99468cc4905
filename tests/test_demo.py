"""scripts/demo.py and its measure (scripts/demo_score.py): the data split, the judge, the distillation choice,
and one short run of the whole demo through dataset_tool.py, train.py and generate.py."""

import io
import json
import os
import subprocess
import sys
import zipfile

import click
import numpy as np
import PIL.Image
import pytest
from sklearn.datasets import load_digits

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'scripts'))
import demo  # noqa: E402
import demo_score  # noqa: E402

#----------------------------------------------------------------------------
# The split and the judge.

def test_split_holds_out_30_of_every_class_and_is_fixed():
    train_idx, held_idx = demo_score.split_digits()
    targets = load_digits().target
    assert len(np.intersect1d(train_idx, held_idx)) == 0
    assert len(train_idx) + len(held_idx) == len(targets) == 1797
    assert np.bincount(targets[held_idx]).tolist() == [30] * 10
    again_train, again_held = demo_score.split_digits()
    np.testing.assert_array_equal(held_idx, again_held)
    assert not np.array_equal(held_idx, demo_score.split_digits(seed=1)[1])

def test_features_average_pixel_blocks_back_to_sklearn_scale():
    image = np.zeros([1, 16, 16], dtype=np.uint8)
    image[0, :2, :2] = 255  # One 2x2 block -> feature 0 at 16.
    image[0, 2:4, 0:2] = [[255, 0], [0, 0]]  # A quarter of a block -> feature 8 at 4.
    features = demo_score.to_digit_features(image)
    assert features.shape == (1, 64)
    np.testing.assert_allclose(features[0, [0, 8, 1]], [16, 4, 0])
    with pytest.raises(ValueError, match='multiple of 8'):
        demo_score.to_digit_features(np.zeros([1, 12, 12]))

def _write_class_folders(folder, images, labels, upscale=2):
    for i, (img, label) in enumerate(zip(images, labels)):
        os.makedirs(os.path.join(folder, f'class{label}'), exist_ok=True)
        big = np.kron(img, np.ones([upscale, upscale])).astype(np.uint8)
        PIL.Image.fromarray(big, 'L').save(os.path.join(folder, f'class{label}', f'seed{i:04d}.png'))

def _real_training_digits(per_class):
    digits = load_digits()
    train_idx, _held = demo_score.split_digits()
    chosen = np.concatenate([train_idx[digits.target[train_idx] == k][:per_class] for k in range(10)])
    return demo.digits_to_uint8(digits.images[chosen]), digits.target[chosen]

def test_judge_accepts_real_digits_and_rejects_wrong_labels_noise_and_copies(tmp_path):
    images, labels = _real_training_digits(per_class=20)
    _write_class_folders(str(tmp_path / 'real'), images, labels)
    real = demo_score.score_folder(str(tmp_path / 'real'))['generated']
    assert real['images'] == 200 and real['recognised'] >= 0.7 and real['classes'] == 10
    assert 0.8 <= real['diversity'] <= 1.2

    _write_class_folders(str(tmp_path / 'shifted'), images, (labels + 1) % 10)
    shifted = demo_score.score_folder(str(tmp_path / 'shifted'))['generated']
    assert shifted['recognised'] <= 0.05 and shifted['classes'] == 0

    noise = np.random.RandomState(0).randint(0, 256, size=images.shape).astype(np.uint8)
    _write_class_folders(str(tmp_path / 'noise'), noise, labels)
    assert demo_score.score_folder(str(tmp_path / 'noise'))['generated']['recognised'] <= 0.1

    # One image per class, repeated: recognisable, but no variety at all.
    firsts = np.stack([images[labels == label][0] for label in labels])
    _write_class_folders(str(tmp_path / 'copies'), firsts, labels)
    copies = demo_score.score_folder(str(tmp_path / 'copies'))
    assert copies['generated']['diversity'] == 0
    assert copies['real']['diversity'] == 1 and copies['real']['recognised'] >= 0.8
    assert 'recognised as the class asked for' in demo_score.describe(copies)

def test_judge_reports_bad_folders(tmp_path):
    with pytest.raises(ValueError, match='no classK/seedNNNN.png images'):
        demo_score.read_class_folders(str(tmp_path))
    _write_class_folders(str(tmp_path), np.zeros([2, 8, 8], dtype=np.uint8), [0, 1])
    PIL.Image.fromarray(np.zeros([8, 8], dtype=np.uint8)).save(tmp_path / 'class1' / 'seed0007.png')
    with pytest.raises(ValueError, match='different sizes'):
        demo_score.read_class_folders(str(tmp_path))

#----------------------------------------------------------------------------
# The distillation choice: a random teacher only when asked for; KD on the CPU only when asked for.

def _weights(found):
    return lambda: (['--kd-clip-weights=/w.pt'], None) if found else (None, 'not cached\nmore')

def test_choose_kd():
    assert demo.choose_kd('off', False, 'cpu', 60, _weights(True))[0] == []
    args, lines = demo.choose_kd('auto', False, 'cuda', 60, _weights(False))
    assert args == [] and 'no pretrained CLIP weights (not cached)' in lines[0]
    with pytest.raises(click.ClickException, match='needs pretrained CLIP weights: not cached'):
        demo.choose_kd('on', False, 'cpu', 60, _weights(False))
    args, lines = demo.choose_kd('auto', False, 'cpu', 60, _weights(True))
    assert args == [] and '--kd=on' in lines[1] and '1.9 h for 60 kimg' in lines[1]
    assert demo.choose_kd('auto', False, 'cuda', 60, _weights(True))[0] == ['--kd=agg,corr', '--kd-clip-weights=/w.pt']
    assert demo.choose_kd('on', False, 'cpu', 60, _weights(True))[0] == ['--kd=agg,corr', '--kd-clip-weights=/w.pt']
    args, lines = demo.choose_kd('on', True, 'cpu', 60, _weights(False))
    assert args == ['--kd=agg,corr', '--kd-teacher=random'] and 'WARNING' in lines[0]
    with pytest.raises(click.UsageError, match='--random-teacher needs --kd=on'):
        demo.choose_kd('auto', True, 'cpu', 60, _weights(True))

def test_find_clip_weights_reads_kd_clip_weights(tmp_path, monkeypatch):
    monkeypatch.setenv('KD_CLIP_WEIGHTS', str(tmp_path / 'missing.pt'))
    args, reason = demo.find_clip_weights()
    assert args is None and 'is not a file' in reason
    (tmp_path / 'w.pt').write_bytes(b'x')
    monkeypatch.setenv('KD_CLIP_WEIGHTS', str(tmp_path / 'w.pt'))
    assert demo.find_clip_weights() == ([f'--kd-clip-weights={tmp_path / "w.pt"}'], None)

def test_enlarged_grid_puts_classes_in_rows():
    images = np.arange(4 * 2 * 2, dtype=np.uint8).reshape(4, 2, 2) * 10
    labels = np.array([1, 0, 1, 1])
    grid = demo.enlarged_grid(images, labels, per_class=2, scale=3, gap=1)
    assert grid.shape == (2 * 7 + 1, 2 * 7 + 1)
    np.testing.assert_array_equal(grid[1:7, 1:7], np.kron(images[1], np.ones([3, 3])))  # Row of class 0.
    np.testing.assert_array_equal(grid[8:14, 8:14], np.kron(images[2], np.ones([3, 3])))  # Class 1, second image.
    assert (grid[1:7, 8:14] == 64).all()  # Class 0 has one image: the cell stays background.

def test_an_older_or_foreign_dataset_is_not_reused(tmp_path, monkeypatch):
    # The previous demo's zip: 100 digits at 32x32. Under the default path it is remade; elsewhere the demo refuses.
    old = tmp_path / 'old.zip'
    with zipfile.ZipFile(old, 'w') as z:
        buf = io.BytesIO()
        PIL.Image.fromarray(np.zeros([32, 32], dtype=np.uint8)).save(buf, format='PNG')
        z.writestr('img000.png', buf.getvalue())
        z.writestr('dataset.json', json.dumps(dict(labels=[['img000.png', 0]] * 100)))
    assert not demo.is_demo_dataset(str(old)) and not demo.is_demo_dataset(str(tmp_path / 'missing.zip'))
    with pytest.raises(click.ClickException, match='is not the demo.s digits'):
        demo.build_dataset(str(old), rebuild=False)
    calls = []
    monkeypatch.setattr(demo, '_run', calls.append)
    monkeypatch.setattr(demo, 'DATASET', str(old))
    demo.build_dataset(str(old), rebuild=False)
    assert calls and calls[0][0] == 'dataset_tool.py' and '--overwrite' in calls[0]

#----------------------------------------------------------------------------
# The whole demo, shortened: dataset_tool.py, train.py, generate.py, the measure and the printed paths.

def test_short_demo_writes_and_prints_every_output(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1', KD_CLIP_WEIGHTS='')
    cmd = [sys.executable, os.path.join(REPO, 'scripts', 'demo.py'), f'--outdir={tmp_path / "runs"}', '--kimg=0.128',
        f'--dataset={tmp_path / "digits.zip"}', '--per-class=3', '--device=cpu', '--kd=off']
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (run_name,) = os.listdir(tmp_path / 'runs')
    run_dir = tmp_path / 'runs' / run_name
    generated = run_dir / 'generated'
    assert sorted(os.listdir(generated / 'class7')) == ['seed0000.png', 'seed0001.png', 'seed0002.png']
    for path in [generated / 'grid.png', generated / 'digits.png', run_dir / 'curves.png']:
        assert path.is_file() and str(path) in result.stdout  # Outside the current folder: printed in full.
    assert PIL.Image.open(generated / 'grid.png').size == (3 * 8, 10 * 8)  # One row per class.
    score = json.load(open(generated / 'score.json'))
    assert score['generated']['images'] == 30 and score['kd'] == 'none' and score['real']['recognised'] >= 0.8
    options = json.load(open(run_dir / 'training_options.json'))
    assert options['training_set_kwargs']['use_labels'] and options['loss_kwargs']['r1_gamma'] == 10
    assert 'Distillation: off (--kd=off).' in result.stdout and 'Total time:' in result.stdout
    assert 'resolution 8x8, 1 channel, labels: yes, classes: 10' in result.stdout
    assert demo.is_demo_dataset(str(tmp_path / 'digits.zip'))

#----------------------------------------------------------------------------
