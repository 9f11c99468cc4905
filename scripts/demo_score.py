"""The demo's measure: are generated digits recognisable, of the class asked for, and varied?

scikit-learn's 1,797 8x8 digits are split once, with a fixed seed, into the digits the demo trains on
and HELD_OUT_PER_CLASS digits of every class that it never sees. A logistic-regression classifier
trained on the held-out digits judges the generated images:

- recognised: the share of images the classifier gives the asked-for class with probability >= CONFIDENCE;
- classes: how many of the ten classes have at least half of their images recognised;
- diversity: the mean pairwise distance between images of one class, divided by the same for the real
  training digits of that class (1 = as varied as the data, 0 = one image repeated), averaged over classes.

The same numbers for the real training digits (which the classifier has not seen either) are the
reference. Usage, on a folder of class0 .. class9 subfolders as `generate.py --class=0-9` writes them:

    python scripts/demo_score.py runs/demo/00000-.../generated
"""

import json
import os
import re
import sys

import click
import numpy as np
import PIL.Image
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

HELD_OUT_PER_CLASS = 30
SPLIT_SEED = 0
CONFIDENCE = 0.9
NUM_CLASSES = 10

#----------------------------------------------------------------------------

def split_digits(seed=SPLIT_SEED, held_out_per_class=HELD_OUT_PER_CLASS):
    """(train_idx, held_idx): indices into load_digits(), disjoint, held_out_per_class of every class held out."""
    targets = load_digits().target
    rnd = np.random.RandomState(seed)
    held = []
    for label in range(NUM_CLASSES):
        candidates = np.flatnonzero(targets == label)
        held.extend(rnd.choice(candidates, size=held_out_per_class, replace=False).tolist())
    held = np.sort(np.asarray(held))
    return np.setdiff1d(np.arange(len(targets)), held), held

def fit_classifier(held_idx):
    digits = load_digits()
    x = digits.images[held_idx].reshape(len(held_idx), -1)
    return LogisticRegression(max_iter=5000).fit(x, digits.target[held_idx])

def to_digit_features(images):
    """[N, H, W] uint8 images (H, W multiples of 8) -> [N, 64] in sklearn's 0..16 scale, by area averaging."""
    images = np.asarray(images, dtype=np.float64)
    n, h, w = images.shape
    if h % 8 or w % 8:
        raise ValueError(f'images must be a multiple of 8 pixels on each side, got {h}x{w}')
    small = images.reshape(n, 8, h // 8, 8, w // 8).mean(axis=(2, 4))
    return (small * (16 / 255)).reshape(n, 64)

def _mean_pairwise_distance(x):
    if len(x) < 2:
        return float('nan')
    d = np.sqrt(np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0))
    return float(d.sum() / (len(x) * (len(x) - 1)))

def score_features(features, labels, classifier, reference):
    """Measure for [N, 64] digit features asked to be of `labels`; `reference`: dict label -> [M, 64] real digits."""
    labels = np.asarray(labels)
    proba = classifier.predict_proba(features)
    recognised = (proba.max(axis=1) >= CONFIDENCE) & (proba.argmax(axis=1) == labels)
    per_class = {}
    diversity = []
    for label in range(NUM_CLASSES):
        mask = labels == label
        if not mask.any():
            continue
        per_class[label] = round(float(recognised[mask].mean()), 3)
        diversity.append(_mean_pairwise_distance(features[mask]) / _mean_pairwise_distance(reference[label]))
    return dict(images=int(len(labels)), recognised=round(float(recognised.mean()), 3),
        classes=int(sum(v >= 0.5 for v in per_class.values())), diversity=round(float(np.nanmean(diversity)), 3),
        recognised_per_class=per_class)

def read_class_folders(folder):
    """generate.py output with one subfolder per class, named classK -> ([N, H, W] uint8, labels)."""
    images, labels = [], []
    for name in sorted(os.listdir(folder)):
        match = re.fullmatch(r'class(\d)', name)
        if not match or not os.path.isdir(os.path.join(folder, name)):
            continue
        for fname in sorted(f for f in os.listdir(os.path.join(folder, name)) if re.fullmatch(r'seed\d+\.png', f)):
            with PIL.Image.open(os.path.join(folder, name, fname)) as img:
                images.append(np.asarray(img.convert('L')))
            labels.append(int(match.group(1)))
    if not images:
        raise ValueError(f'no classK/seedNNNN.png images in {folder}')
    if len({img.shape for img in images}) != 1:
        raise ValueError(f'images of different sizes in {folder}')
    return np.stack(images), np.asarray(labels)

def score_folder(folder):
    """The measure for a generated folder, with the real training digits' figures as 'real'."""
    return score_images(*read_class_folders(folder))

def score_images(images, labels):
    """The measure for [N, H, W] uint8 digits asked to be of `labels` (as read_class_folders returns them)."""
    train_idx, held_idx = split_digits()
    classifier = fit_classifier(held_idx)
    digits = load_digits()
    real_x = digits.images[train_idx].reshape(len(train_idx), -1)
    real_y = digits.target[train_idx]
    reference = {label: real_x[real_y == label] for label in range(NUM_CLASSES)}
    fake = score_features(to_digit_features(images), labels, classifier, reference)
    real = score_features(real_x, real_y, classifier, reference)
    return dict(generated=fake, real=real, confidence=CONFIDENCE, classifier_digits=int(len(held_idx)),
        classifier=f'logistic regression on {len(held_idx)} held-out scikit-learn digits')

def describe(result):
    """Three lines for the terminal."""
    fake, real = result['generated'], result['real']
    return (f'recognised as the class asked for (p >= {result["confidence"]}): {fake["recognised"]:.0%} of {fake["images"]} '
        f'generated digits, {fake["classes"]}/10 classes (real digits: {real["recognised"]:.0%}, {real["classes"]}/10)\n'
        f'diversity within a class, relative to the real digits: {fake["diversity"]:.2f} (1 = as varied as the data)\n'
        f'judge: {result["classifier"]}, which the demo does not train on')

#----------------------------------------------------------------------------

@click.command()
@click.argument('folder', type=click.Path(exists=True, file_okay=False))
@click.option('--json', 'json_path', help='Also write the figures to this file', metavar='FILE')
def main(folder, json_path):
    """Score generated digits: FOLDER holds class0 .. class9 subfolders of seedNNNN.png images."""
    try:
        result = score_folder(folder)
    except (OSError, ValueError) as err:
        raise click.ClickException(str(err))
    print(describe(result))
    if json_path:
        with open(json_path, 'w') as f:
            json.dump(result, f, indent=2)

if __name__ == '__main__':
    sys.exit(main())

#----------------------------------------------------------------------------
