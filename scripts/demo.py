"""`make demo`: two and a half minutes on 2 CPU cores that end in recognisable digits of every class.

1. datasets/demo-digits.zip: scikit-learn's 8x8 handwritten digits (values 0..16 scaled to 0..255), all but
   the 300 that the judge trains on (scripts/demo_score.py), with their labels, written by dataset_tool.py.
2. train.py: a small class-conditional StyleGAN2 (the cifar preset at 64 channels, R1 gamma 10, batch 64) for
   60 kimg. Knowledge distillation (--kd=agg,corr) only with pretrained CLIP weights; see choose_kd().
3. generate.py --class=0-9: 50 images of every class (classK/seedNNNN.png), their grid, and digits.png,
   the first 12 of every class enlarged so that a person can judge them.
4. The measure (scripts/demo_score.py): a classifier trained on held-out digits says how many images are
   recognisably the digit asked for, and how varied each class is.

Needs no network. See docs/demo.md for the figures and what changes with real CLIP weights.
"""

import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile

START = time.time()  # Before the heavy imports, so that the reported total includes them.

import click
import numpy as np
import PIL.Image
from sklearn.datasets import load_digits

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # The repo's packages, when run as scripts/demo.py.
sys.path.insert(0, os.path.join(REPO, 'scripts'))
import demo_score  # noqa: E402
from training.run_dir import latest_snapshot, run_dirs  # noqa: E402 (train.py's own finders)

DATASET = os.path.join(REPO, 'datasets', 'demo-digits.zip')
CLIP_MODEL = 'ViT-B-32'
CLIP_PRETRAINED = 'openai'

# The cifar preset (no path-length regularisation or style mixing, lr 0.0025) at 64 channels on every
# resolution, class-conditional, with StyleGAN2's own R1 gamma (10) instead of the preset's 0.01: at 60 kimg
# it keeps more variety within a class (docs/demo.md). No augmentation: 1,497 images are enough for
# 60 kimg. --snap is large: snapshots (and the curves) at the start and at the end only.
TRAIN_ARGS = ['--cfg=cifar', '--cond=1', '--cbase=2048', '--cmax=64', '--batch=64', '--mbstd-group=4', '--gamma=10',
    '--aug=noaug', '--metrics=none', '--tick=4', '--snap=1000', '--workers=0']
KD_ARGS = ['--kd=agg,corr']
DEFAULT_KIMG = 60
SHOWN_PER_CLASS = 12
SHOWN_SCALE = 6

# This run with --kd=agg,corr on the development machine's 2 CPU cores (docs/demo.md): 116 s/kimg instead
# of 2.3, nearly all of it the ViT-B/32 teacher on 128 images at 224x224 in every D step.
KD_CPU_SEC_PER_KIMG = 116

#----------------------------------------------------------------------------

def _show(path):
    """Path relative to the current folder when it lies below it, else absolute."""
    path = os.path.abspath(path)
    rel = os.path.relpath(path)
    return path if rel.startswith('..') else rel

def _banner(text):
    print(f'\n=== {text}', flush=True)

def _run(args):
    """Runs a repo tool with its output streamed to the user; stops the demo when it fails."""
    env = dict(os.environ, PYTHONUNBUFFERED='1')  # Progress ticks appear as they happen, also through a pipe.
    result = subprocess.run([sys.executable] + args, cwd=REPO, env=env)
    if result.returncode != 0:
        raise click.ClickException(f'{args[0]} failed with exit code {result.returncode} (its output is above)')

#----------------------------------------------------------------------------
# Step 1: the dataset.

def digits_to_uint8(image):
    """One 8x8 digit with values 0..16 -> 8x8 uint8."""
    return np.rint(np.asarray(image, dtype=np.float64) * (255 / 16)).clip(0, 255).astype(np.uint8)

def write_digit_folder(folder):
    """The training digits as PNGs plus dataset.json (labels, class names) in the layout dataset_tool.py reads."""
    digits = load_digits()
    train_idx, _held = demo_score.split_digits()
    labels = []
    for i, idx in enumerate(train_idx):
        label = int(digits.target[idx])
        fname = f'img{i:04d}-digit{label}.png'
        PIL.Image.fromarray(digits_to_uint8(digits.images[idx]), 'L').save(os.path.join(folder, fname))
        labels.append([fname, label])
    with open(os.path.join(folder, 'dataset.json'), 'w') as f:
        json.dump(dict(labels=labels, class_names=[f'digit {k}' for k in range(10)]), f)

def is_demo_dataset(path):
    """Does the zip hold this demo's digits (an older demo's 100 digits at 32x32 do not count)?"""
    try:
        with zipfile.ZipFile(path) as z:
            meta = json.loads(z.read('dataset.json'))
            first = sorted(name for name in z.namelist() if name.endswith('.png'))[0]
            with PIL.Image.open(io.BytesIO(z.read(first))) as img:
                size = img.size
    except (OSError, KeyError, IndexError, ValueError, zipfile.BadZipFile):
        return False
    return len(meta.get('labels') or []) == len(demo_score.split_digits()[0]) and size == (8, 8)

def build_dataset(path, rebuild):
    if os.path.isfile(path) and not rebuild:
        if is_demo_dataset(path):
            print(f'Using the existing {_show(path)} (--rebuild-dataset makes it again).', flush=True)
            return
        if os.path.abspath(path) != DATASET:
            raise click.ClickException(f'--dataset={path} exists and is not the demo\'s digits; give a new path or --rebuild-dataset')
        print(f'{_show(path)} is not this demo\'s dataset (an older demo\'s?): making it again.', flush=True)
    with tempfile.TemporaryDirectory(prefix='demo-digits-') as folder:
        write_digit_folder(folder)
        _run(['dataset_tool.py', f'--source={folder}', f'--dest={path}'] + (['--overwrite'] if os.path.exists(path) else []))

#----------------------------------------------------------------------------
# Step 2: distillation or not, and the training run.

def find_clip_weights():
    """(train.py arguments, None) when pretrained CLIP weights can be had, else (None, the reason)."""
    from kd.teacher import CLIPWeightsUnavailableError, default_cache_dir, resolve_checkpoint
    weights = os.environ.get('KD_CLIP_WEIGHTS')
    if weights:
        weights = os.path.abspath(weights)  # train.py runs in the repo root.
        if os.path.isfile(weights):
            return [f'--kd-clip-weights={weights}'], None
        return None, f'KD_CLIP_WEIGHTS={weights} is not a file'
    try:
        # The cache first; a download only when the server answers (fails within seconds offline).
        resolve_checkpoint(CLIP_MODEL, CLIP_PRETRAINED, weights=None, random_init=False, cache_dir=default_cache_dir())
        return [], None
    except CLIPWeightsUnavailableError as err:
        return None, str(err)

def choose_kd(kd, random_teacher, device, kimg, find_weights=find_clip_weights):
    """(train.py arguments, lines to print). kd: 'auto' (on with pretrained weights on a GPU), 'on' or 'off'."""
    if kd == 'off':
        return [], ['Distillation: off (--kd=off).']
    if random_teacher:
        if kd != 'on':
            raise click.UsageError('--random-teacher needs --kd=on')
        return KD_ARGS + ['--kd-teacher=random'], [
            f'WARNING: --random-teacher: distilling from a randomly initialised {CLIP_MODEL}. Its features mean nothing,',
            'so this checks only that the distillation machinery runs; the images do not gain from it.']
    weight_args, reason = find_weights()
    if weight_args is None:
        if kd == 'on':
            raise click.ClickException(f'--kd=on needs pretrained CLIP weights: {reason}')
        return [], [f'Distillation: off, no pretrained CLIP weights ({reason.splitlines()[0]})',
            'A randomly initialised teacher would teach nothing, so this run trains the plain conditional StyleGAN2.',
            f'With weights (KD_CLIP_WEIGHTS=FILE, or open_clip\'s cache, or a network) the demo adds {" ".join(KD_ARGS)} '
            'on a GPU by default, and on the CPU with --kd=on.']
    source = 'KD_CLIP_WEIGHTS' if weight_args else f'{CLIP_PRETRAINED} weights from open_clip'
    if kd == 'auto' and device == 'cpu':
        hours = KD_CPU_SEC_PER_KIMG * kimg / 3600
        return [], [f'Distillation: off on the CPU although {CLIP_MODEL} weights were found ({source}).',
            f'The frozen teacher costs about {KD_CPU_SEC_PER_KIMG} s per kimg on 2 CPU cores (docs/demo.md): '
            f'{hours:.1f} h for {kimg:g} kimg. --kd=on runs it anyway; on a GPU it is on by default.']
    return KD_ARGS + weight_args, [f'Distillation: {" ".join(KD_ARGS)}, teacher {CLIP_MODEL} ({source}); '
        'the prompts are the class names, "a photo of a digit 0" ...']

#----------------------------------------------------------------------------
# Step 3: the enlarged picture.

def enlarged_grid(images, labels, per_class, scale, gap=6):
    """The first `per_class` images of every class, one row per class, each pixel a scale x scale block."""
    rows = []
    for label in sorted(set(labels.tolist())):
        rows.append(images[labels == label][:per_class])
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    h, w = images.shape[1] * scale, images.shape[2] * scale
    canvas = np.full([n_rows * (h + gap) + gap, n_cols * (w + gap) + gap], 64, dtype=np.uint8)
    for y, row in enumerate(rows):
        for x, img in enumerate(row):
            top, left = gap + y * (h + gap), gap + x * (w + gap)
            canvas[top:top + h, left:left + w] = np.kron(img, np.ones([scale, scale], dtype=np.uint8))
    return canvas

#----------------------------------------------------------------------------

@click.command()
@click.option('--outdir', help='Where the run directory goes', metavar='DIR', default=os.path.join(REPO, 'runs', 'demo'), show_default='runs/demo')
@click.option('--kimg', help='Training length in thousands of images', type=click.FloatRange(min=0, min_open=True), default=DEFAULT_KIMG, show_default=True)
@click.option('--device', help='Device for training and generation', type=click.Choice(['auto', 'cpu', 'cuda']), default='auto', show_default=True)
@click.option('--kd', help='Distillation: auto = on with pretrained CLIP weights on a GPU', type=click.Choice(['auto', 'on', 'off']), default='auto', show_default=True)
@click.option('--random-teacher', help='With --kd=on: a randomly initialised teacher (a pipeline check; teaches nothing)', is_flag=True)
@click.option('--per-class', help='Images generated and scored per class', type=click.IntRange(min=2), default=50, show_default=True)
@click.option('--dataset', 'dataset_path', help='The dataset zip (made when missing)', metavar='ZIP', default=DATASET, show_default='datasets/demo-digits.zip')
@click.option('--keep-dataset/--rebuild-dataset', help='Reuse the dataset zip when it exists, or make it again', default=True, show_default=True)
def main(outdir, kimg, device, kd, random_teacher, per_class, dataset_path, keep_dataset):
    """Train a small conditional StyleGAN2 on scikit-learn's digits, generate every class, and score the digits."""
    import torch  # Here, so that --help answers at once.
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    elif device == 'cuda' and not torch.cuda.is_available():
        raise click.BadParameter('no CUDA device is visible', param_hint='--device')
    outdir = os.path.abspath(outdir)
    kd_args, kd_lines = choose_kd(kd, random_teacher, device, kimg)

    _banner(f'1/4 Dataset: scikit-learn digits, 8x8, labels 0-9, the judge\'s 300 held out -> {_show(dataset_path)}')
    build_dataset(dataset_path, rebuild=not keep_dataset)
    t_dataset = time.time()

    _banner(f'2/4 Training: a small conditional StyleGAN2 for {kimg:g} kimg on the {device.upper()}')
    print('\n'.join(kd_lines), flush=True)
    before = set(run_dirs(outdir))
    _run(['train.py', f'--outdir={outdir}', f'--data={dataset_path}', f'--kimg={kimg:g}', f'--device={device}']
        + TRAIN_ARGS + kd_args)
    new = [d for d in run_dirs(outdir) if d not in before]  # In run-number order.
    if not new:
        raise click.ClickException(f'train.py made no run directory in {_show(outdir)}')
    run_dir = os.path.join(outdir, new[-1])
    snapshot = latest_snapshot(run_dir)
    if snapshot is None:
        raise click.ClickException(f'training ended without a network snapshot in {_show(run_dir)}')
    t_train = time.time()

    _banner(f'3/4 Images: {per_class} of every class from the last snapshot')
    images_dir = os.path.join(run_dir, 'generated')
    _run(['generate.py', f'--network={snapshot}', '--class=0-9', f'--seeds=0-{per_class - 1}', f'--outdir={images_dir}',
        '--grid', f'--device={device}'])
    images, labels = demo_score.read_class_folders(images_dir)
    digits_png = os.path.join(images_dir, 'digits.png')
    PIL.Image.fromarray(enlarged_grid(images, labels, SHOWN_PER_CLASS, SHOWN_SCALE), 'L').save(digits_png)

    _banner('4/4 Measure')
    result = demo_score.score_images(images, labels)  # The images read once, above.
    score_json = os.path.join(images_dir, 'score.json')
    with open(score_json, 'w') as f:
        json.dump(dict(result, kd=' '.join(kd_args) or 'none', kimg=kimg), f, indent=2)
    print(demo_score.describe(result))

    _banner('Done')
    curves = os.path.join(run_dir, 'curves.png')
    print(f'Digits:         {_show(digits_png)}  (one row per class, {SHOWN_PER_CLASS} images each, enlarged {SHOWN_SCALE}x)')
    print(f'Images:         {_show(images_dir)}/class0 .. class9/seedNNNN.png and {_show(os.path.join(images_dir, "grid.png"))}')
    print(f'Curves:         {_show(curves)}' + ('' if os.path.isfile(curves) else '  (missing)'))
    print(f'Measure:        {_show(score_json)}')
    print(f'Run directory:  {_show(run_dir)}  (log.txt, stats.jsonl, training_options.json, reals.png, fakes*.png)')
    print(f'Snapshot:       {_show(snapshot)}')
    print('Distillation:   ' + (' '.join(kd_args) if kd_args else 'none (see the lines under step 2)'))
    end = time.time()
    print(f'Total time:     {end - START:.0f} s (imports and dataset {t_dataset - START:.0f} s, training '
        f'{t_train - t_dataset:.0f} s, images and measure {end - t_train:.0f} s)', flush=True)

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()

#----------------------------------------------------------------------------
