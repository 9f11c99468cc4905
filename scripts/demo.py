"""`make demo`: a few minutes of KD-DLGAN training on a tiny dataset that ships with scikit-learn.

1. datasets/demo-digits.zip: 100 of scikit-learn's 8x8 digits (10 per class, fixed seed), upscaled
   4x with nearest neighbour to 32x32 grayscale PNGs, labels and class names "digit 0".."digit 9",
   converted by dataset_tool.py.
2. train.py: a small StyleGAN2 (low_shot preset, tiny widths) with DiffAugment and --kd=agg,corr.
3. generate.py: a grid of images from the last snapshot.

Needs no network. The CLIP teacher uses real ViT-B-32/openai weights when they are cached,
downloadable, or given as a local file in KD_CLIP_WEIGHTS; otherwise the demo falls back to a
randomly initialised teacher and says so. See docs/demo.md.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time

START = time.time()  # Before the heavy imports, so that the reported total includes them.

import click
import numpy as np
import PIL.Image
import torch
from sklearn.datasets import load_digits

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # The repo's packages, when run as scripts/demo.py.
from kd.teacher import CLIPTeacher, CLIPWeightsUnavailableError

DATASET = os.path.join(REPO, 'datasets', 'demo-digits.zip')
IMAGES_PER_CLASS = 10
UPSCALE = 4  # 8x8 -> 32x32, a power of two as the networks need.
CLIP_MODEL = 'ViT-B-32'
CLIP_PRETRAINED = 'openai'

# Tiny StyleGAN2 (32 channels throughout, batch 4). On CPU the CLIP teacher's ViT-B/32 pass over each real and
# fake batch at 224x224 costs most of a step. --snap is large: snapshots only at the start and at the end.
TRAIN_ARGS = ['--cfg=low_shot', '--cbase=4096', '--cmax=32', '--map-depth=2', '--mbstd-group=4', '--batch=4',
    '--diffaugment=color,translation,cutout', '--kd=agg,corr', '--metrics=none', '--tick=0.1', '--snap=1000',
    '--workers=0']
GRID_SEEDS = '0-63'

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

def select_digits(images, targets, per_class, seed):
    """Indices of `per_class` images of every class, chosen with a fixed seed, in class order."""
    rnd = np.random.RandomState(seed)
    chosen = []
    for label in range(10):
        candidates = np.flatnonzero(targets == label)
        if len(candidates) < per_class:
            raise click.ClickException(f'scikit-learn digits: only {len(candidates)} images of class {label}')
        chosen.extend(sorted(rnd.choice(candidates, size=per_class, replace=False).tolist()))
    return chosen

def digits_to_uint8(image, upscale):
    """One 8x8 digit with values 0..16 -> (8*upscale)^2 uint8 image, nearest-neighbour upscaled."""
    pixels = np.rint(np.asarray(image, dtype=np.float64) * (255 / 16)).clip(0, 255).astype(np.uint8)
    return np.kron(pixels, np.ones([upscale, upscale], dtype=np.uint8))

def write_digit_folder(folder, per_class=IMAGES_PER_CLASS, seed=0):
    """PNGs plus dataset.json (labels, class names) in the layout dataset_tool.py reads."""
    digits = load_digits()
    labels = []
    for i, idx in enumerate(select_digits(digits.images, digits.target, per_class, seed)):
        label = int(digits.target[idx])
        fname = f'img{i:03d}-digit{label}.png'
        PIL.Image.fromarray(digits_to_uint8(digits.images[idx], UPSCALE), 'L').save(os.path.join(folder, fname))
        labels.append([fname, label])
    with open(os.path.join(folder, 'dataset.json'), 'w') as f:
        json.dump(dict(labels=labels, class_names=[f'digit {k}' for k in range(10)]), f)

def build_dataset(rebuild):
    if os.path.isfile(DATASET) and not rebuild:
        print(f'Using the existing {_show(DATASET)} (--rebuild-dataset makes it again).', flush=True)
        return
    with tempfile.TemporaryDirectory(prefix='demo-digits-') as folder:
        write_digit_folder(folder)
        _run(['dataset_tool.py', f'--source={folder}', f'--dest={DATASET}'] + (['--overwrite'] if os.path.exists(DATASET) else []))

#----------------------------------------------------------------------------
# Step 2: the teacher and the training run.

def choose_teacher():
    """(train.py arguments, message): real CLIP weights when they can be had, else the random teacher."""
    weights = os.environ.get('KD_CLIP_WEIGHTS')
    if weights:
        weights = os.path.abspath(weights)  # train.py runs in the repo root.
        if os.path.isfile(weights):
            return [f'--kd-clip-weights={weights}'], f'CLIP teacher: {CLIP_MODEL} with the weights file {weights} (KD_CLIP_WEIGHTS).'
        reason = f'KD_CLIP_WEIGHTS={weights} is not a file'
    else:
        try:
            # Fails fast offline: the teacher looks in the cache, then probes the server before downloading.
            # On the CPU, so the demo process takes no GPU memory away from training.
            CLIPTeacher(model=CLIP_MODEL, pretrained=CLIP_PRETRAINED, device='cpu', log=None)
            return [], f'CLIP teacher: {CLIP_MODEL} / {CLIP_PRETRAINED} (pretrained weights found).'
        except CLIPWeightsUnavailableError as err:
            reason = str(err)
    return ['--kd-teacher=random'], (
        f'WARNING: no pretrained CLIP weights: {reason}\n'
        f'Falling back to --kd-teacher=random: a randomly initialised {CLIP_MODEL} teacher. Distillation from random '
        f'weights is meaningless; it only shows that the pipeline runs. For real distillation set KD_CLIP_WEIGHTS to '
        f'a local {CLIP_MODEL} weights file, or run once with network access so open_clip caches the weights.')

def run_dirs(outdir):
    if not os.path.isdir(outdir):
        return set()
    return {d for d in os.listdir(outdir) if re.match(r'^\d+-', d) and os.path.isdir(os.path.join(outdir, d))}

def last_snapshot(run_dir):
    pkls = sorted(f for f in os.listdir(run_dir) if re.fullmatch(r'network-snapshot-\d+\.pkl', f))
    if not pkls:
        raise click.ClickException(f'training ended without a network snapshot in {_show(run_dir)}')
    return os.path.join(run_dir, pkls[-1])

#----------------------------------------------------------------------------

@click.command()
@click.option('--outdir', help='Where the run directory goes', metavar='DIR', default=os.path.join(REPO, 'runs', 'demo'), show_default='runs/demo')
@click.option('--kimg', help='Training length in thousands of images', type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option('--device', help='Device for training and generation', type=click.Choice(['auto', 'cpu', 'cuda']), default='auto', show_default=True)
@click.option('--keep-dataset/--rebuild-dataset', help='Reuse datasets/demo-digits.zip when it exists, or make it again', default=True, show_default=True)
def main(outdir, kimg, device, keep_dataset):
    """Build a 100-image digits dataset, train a small StyleGAN2 with KD-DLGAN's losses, draw a grid."""
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    elif device == 'cuda' and not torch.cuda.is_available():
        raise click.BadParameter('no CUDA device is visible', param_hint='--device')
    outdir = os.path.abspath(outdir)

    _banner(f'1/3 Dataset: 100 scikit-learn digits, 8x8 upscaled 4x (nearest) to 32x32 -> {_show(DATASET)}')
    build_dataset(rebuild=not keep_dataset)
    t_dataset = time.time()

    _banner('2/3 Training: small StyleGAN2 + DiffAugment + KD-DLGAN (--kd=agg,corr)')
    teacher_args, message = choose_teacher()
    print(message, flush=True)
    before = run_dirs(outdir)
    _run(['train.py', f'--outdir={outdir}', f'--data={DATASET}', f'--kimg={kimg:g}', f'--device={device}']
        + TRAIN_ARGS + teacher_args)
    new = sorted(run_dirs(outdir) - before, key=lambda d: int(re.match(r'^\d+', d).group()))
    if not new:
        raise click.ClickException(f'train.py made no run directory in {_show(outdir)}')
    run_dir = os.path.join(outdir, new[-1])
    snapshot = last_snapshot(run_dir)
    t_train = time.time()

    _banner('3/3 Images from the last snapshot')
    images = os.path.join(run_dir, 'generated')
    _run(['generate.py', f'--network={snapshot}', f'--seeds={GRID_SEEDS}', f'--outdir={images}', '--grid', f'--device={device}'])

    _banner('Done')
    print(f'Run directory:  {_show(run_dir)}  (log.txt, stats.jsonl, training_options.json, reals.png, fakes*.png)')
    print(f'Snapshot:       {_show(snapshot)}')
    print(f'Images:         {_show(os.path.join(images, "grid.png"))}  (and seed*.png beside it)')
    if '--kd-teacher=random' in teacher_args:
        print('Teacher:        RANDOM CLIP weights (no pretrained weights available): the distillation was meaningless.')
    end = time.time()
    print(f'Total time:     {end - START:.0f} s (imports and dataset {t_dataset - START:.0f} s, teacher check and training '
        f'{t_train - t_dataset:.0f} s, images {end - t_train:.0f} s)', flush=True)

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()

#----------------------------------------------------------------------------
