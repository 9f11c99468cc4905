"""Did the generator copy its training images? Nearest training images of generated images in LPIPS space.

Examples:
    python memorisation.py --network=runs/00000-obama/network-snapshot-000300.pkl --outdir=out/memo
    python memorisation.py --network=net.pkl --seeds=0-499 --k=5 --mirror=1 --data=datasets/obama.zip --outdir=out/memo
    python memorisation.py --images=other_method_samples/ --data=datasets/obama.zip --outdir=out/memo

Writes OUTDIR/memorisation.png (one row per generated image, closest first: the image, then its k nearest
training images) and OUTDIR/memorisation.json (every distance), and prints the score. docs/memorisation.md
says how to read them.
"""

import copy
import json
import os

import click
import numpy as np
import torch

import dnnlib
from generate import parse_seeds, resolve_device, seed_latents
from metrics import memorisation
from metrics import metric_utils
from training import image_grid
from training.snapshot import load_network_pkl

#----------------------------------------------------------------------------

def read_images(dataset_kwargs, flag):
    """All images of a dataset as uint8 NCHW, and each one's index in the dataset's sorted file list."""
    try:
        dataset = dnnlib.util.construct_class_by_name(**dataset_kwargs)
        images = torch.from_numpy(np.stack([dataset[i][0] for i in range(len(dataset))]))
    except (ValueError, OSError) as err:
        raise click.UsageError(f'{flag}: {err}')
    return images, [dataset.get_details(i).raw_idx for i in range(len(dataset))]


def to_rgb(images):
    return images.repeat([1, 3, 1, 1]) if images.shape[1] == 1 else images


def training_set_kwargs(data, network):
    """The training set to search: --data (all its images), else the one recorded in the snapshot (its subset too)."""
    if data is not None:
        return dict(class_name='training.dataset.ImageFolderDataset', path=data)
    recorded = None if network is None else network.get('training_set_kwargs')
    if recorded is None:
        raise click.UsageError('the training set is not known: pass it with --data')
    return dict(copy.deepcopy(dict(recorded)), xflip=False, use_labels=False)  # Mirrors are added by the check itself.


@torch.no_grad()
def generate_images(G, seeds, class_idx, truncation_psi, device):
    """uint8 NCHW images of G_ema, one per seed, exactly as generate.py draws them (z = RandomState(seed).randn)."""
    label = torch.zeros([1, G.c_dim], device=device)
    if G.c_dim == 0 and class_idx is not None:
        print('warn: --class is ignored for an unconditional network')
    if G.c_dim > 0:
        if class_idx is None or not 0 <= class_idx < G.c_dim:
            raise click.UsageError(f'the network is conditional ({G.c_dim} classes): pass --class in [0, {G.c_dim - 1}]')
        label[:, class_idx] = 1
    images = []
    for seed in seeds:
        z = torch.from_numpy(seed_latents([seed], G.z_dim)).to(device=device, dtype=torch.float32)
        img = G(z, label, truncation_psi=truncation_psi, noise_mode='const')
        images.append((img * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu())  # generate.py's mapping to uint8.
    return torch.cat(images)

#----------------------------------------------------------------------------

def write_grid(path, result, generated, reference, rows):
    """Rows closest first: the generated image, then its k nearest reference images."""
    order = result.distances[:, 0].argsort(stable=True)[:rows]
    cells = [torch.cat([generated[i:i + 1], reference[result.indices[i]]]) for i in order.tolist()]
    image_grid.save_image_grid(torch.cat(cells).numpy(), path, drange=[0, 255], grid_size=(result.k + 1, len(cells)))
    return order.tolist()


def nearest_entries(result, i, raw_idx):
    """Generated image i's k nearest training images: file index in the dataset, flipped or not, LPIPS."""
    num_train = len(raw_idx)
    return [dict(train_image=raw_idx[j % num_train], flipped=bool(j >= num_train), lpips=float(d))
        for j, d in zip(result.indices[i].tolist(), result.distances[i].tolist())]


def write_json(path, result, names, raw_idx, grid_rows, extra):
    """The score with its numbers, and every distance behind it."""
    row_of = {i: r for r, i in enumerate(grid_rows)}
    record = dict(score=result.score, definition=memorisation.score_definition(result), threshold=result.threshold,
        quantile=result.quantile, median_nearest=result.median_nearest,
        median_train_nearest_other=result.median_train_nearest_other, num_generated=result.num_generated,
        num_train=result.num_train, mirror=result.mirror, k=result.k,
        feature_space='LPIPS: NVIDIA VGG16 (vgg16.pt, return_lpips=True), images average-pooled to at most 256 px', **extra,
        train_nearest_other=[dict(train_image=i, lpips=float(d)) for i, d in zip(raw_idx, result.train_nearest_other.tolist())],
        generated=[dict(name=name, grid_row=row_of.get(i), nearest=nearest_entries(result, i, raw_idx))
            for i, name in enumerate(names)])
    with dnnlib.util.atomic_write(path, 'w') as f:
        json.dump(record, f, indent=1)

#----------------------------------------------------------------------------

def _seeds(seeds):
    return list(dict.fromkeys(parse_seeds(seeds)))  # Each seed once: a repeated seed is the same image.


def _load_network(network_pkl):
    print(f'Loading network from "{network_pkl}"...')
    try:
        return load_network_pkl(network_pkl)
    except (OSError, ValueError) as err:
        raise click.ClickException(str(err))


def _generated(network, images, seeds, class_idx, truncation_psi, device, size):
    """(uint8 NCHW images, their names) from the snapshot's G_ema or from --images."""
    if images is not None:
        found, raw_idx = read_images(dict(class_name='training.dataset.ImageFolderDataset', path=images), '--images')
        return found, [f'image{i:04d}' for i in raw_idx]
    G = network['G_ema'].eval().requires_grad_(False).to(device)
    if list(size) != [G.img_resolution] * 2:
        raise click.UsageError(f'the network generates {G.img_resolution}x{G.img_resolution} images, but the training '
            f'images are {size[1]}x{size[0]}: pass the training set at that size with --data')
    print(f'Generating {len(seeds)} images...')
    return generate_images(G, seeds, class_idx, truncation_psi, device), [f'seed{seed:04d}' for seed in seeds]

#----------------------------------------------------------------------------

@click.command()
@click.option('--network', 'network_pkl', help='Network pickle (path or URL); its G_ema generates the images', metavar='PATH')
@click.option('--images', help='Instead of --network: a folder or zip of generated images (any method)', metavar='PATH')
@click.option('--seeds', help='Seeds of the generated images (z as generate.py draws it)', default='0-99', show_default=True)
@click.option('--class', 'class_idx', help='Class index (conditional networks)', type=click.IntRange(min=0))
@click.option('--trunc', 'truncation_psi', help='Truncation psi', type=float, default=1, show_default=True)
@click.option('--data', help='Training set, folder or zip [default: the snapshot\'s training set, its subset too]', metavar='PATH')
@click.option('--mirror', help='Also search the x-flipped training images [default: as the snapshot trained, else false]', type=bool, metavar='BOOL')
@click.option('--k', 'k', help='Nearest training images per generated image', type=click.IntRange(min=1), default=3, show_default=True)
@click.option('--rows', help='Grid rows: the generated images closest to the training set', type=click.IntRange(min=1), default=16, show_default=True)
@click.option('--quantile', help='q of the score: threshold = q-quantile of the training images\' nearest-other distances',
    type=click.FloatRange(min=0, max=1, min_open=True), default=memorisation.DEFAULT_QUANTILE, show_default=True)
@click.option('--batch', 'batch_size', help='Images per VGG16 batch', type=click.IntRange(min=1), default=16, show_default=True)
@click.option('--outdir', help='Where to write memorisation.png and memorisation.json', required=True, metavar='DIR')
@click.option('--detector-dir', help=f'Folder with vgg16.pt (no download) [default: ${metric_utils.DETECTOR_DIR_ENV}]', metavar='DIR')
@click.option('--device', help='Device', type=click.Choice(['auto', 'cpu', 'cuda']), default='auto', show_default=True)
def main(network_pkl, images, seeds, class_idx, truncation_psi, data, mirror, k, rows, quantile, batch_size, outdir,
        detector_dir, device):
    """Find each generated image's k nearest training images in LPIPS space (NVIDIA's VGG16) and score
    how many lie closer to the training set than typical pairs of training images do."""
    if (network_pkl is None) == (images is None):
        raise click.UsageError('give either --network or --images')
    if images is not None and data is None:
        raise click.UsageError('--images needs the training set: pass --data')
    if os.path.exists(outdir) and not os.path.isdir(outdir):
        raise click.BadParameter(f'{outdir} is a file, not a folder', param_hint='--outdir')
    seeds = _seeds(seeds) if network_pkl is not None else None
    device = resolve_device(device)
    try:  # Now, so a missing detector costs no generating.
        metric_utils.resolve_detector_file(metric_utils.VGG16_URL, detector_dir=detector_dir, verbose=True)
    except metric_utils.DetectorUnavailableError as err:
        raise click.ClickException(str(err)) from None

    network = _load_network(network_pkl) if network_pkl is not None else None
    set_kwargs = training_set_kwargs(data, network)
    if mirror is None:  # A generator trained on x-flips may reproduce a flipped training image.
        mirror = bool(network is not None and (network.get('training_set_kwargs') or {}).get('xflip', False))
    training, raw_idx = read_images(set_kwargs, '--data')
    generated, names = _generated(network, images, seeds, class_idx, truncation_psi, device, size=training.shape[2:])

    vgg16, _md5 = metric_utils.get_feature_detector(metric_utils.VGG16_URL, device=device, detector_dir=detector_dir)
    print(f'Searching {len(training)} training images{" and their x-flips" if mirror else ""} (LPIPS, VGG16)...')
    try:
        result = memorisation.check_memorisation(vgg16, generated, training, k=k, quantile=quantile, mirror=mirror,
            device=device, batch_size=batch_size)
    except ValueError as err:
        raise click.UsageError(str(err))

    os.makedirs(outdir, exist_ok=True)
    reference = to_rgb(memorisation.reference_images(training, mirror=mirror)[0])
    grid_rows = write_grid(os.path.join(outdir, 'memorisation.png'), result, to_rgb(generated), reference, rows)
    write_json(os.path.join(outdir, 'memorisation.json'), result, names, raw_idx, grid_rows,
        extra=dict(network=network_pkl, images=images, data=set_kwargs['path']))
    if result.num_near_duplicates:
        print(f'warn: {result.num_near_duplicates} training images have a near-duplicate in the training set; '
            'they lower the threshold (docs/memorisation.md)')
    print(memorisation.score_definition(result))
    print(f'median LPIPS to the nearest training image: {result.median_nearest:.4f} '
        f'(training images to their nearest other: {result.median_train_nearest_other:.4f})')
    print(f'Wrote {os.path.join(outdir, "memorisation.png")} ({len(grid_rows)} rows, closest first) and memorisation.json')

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter

#----------------------------------------------------------------------------
