"""Generate images from a network snapshot.

Examples:
    python generate.py --network=runs/00000-obama/network-snapshot-000300.pkl --seeds=0-31 --outdir=out --grid
    python generate.py --network=cifar10.pkl --seeds=0-9 --class=3 --trunc=0.7 --outdir=out
    python generate.py --network=cifar10.pkl --seeds=0-9 --class=0-9 --outdir=out --grid   # out/classK/, grid rows = classes
"""

import math
import os

import click
import numpy as np
import PIL.Image
import torch

import dnnlib
from training.snapshot import load_network_pkl

#----------------------------------------------------------------------------

def to_uint8(img):
    """[N, C, H, W] in [-1, 1] -> [N, H, W, C] uint8."""
    return (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu().numpy()

def seed_latents(seeds, z_dim):
    """z of every seed, float64 [N, z_dim]: np.random.RandomState(seed).randn(z_dim), the draw every tool makes."""
    return np.stack([np.random.RandomState(int(seed)).randn(z_dim) for seed in seeds])

def to_pil(img):
    return PIL.Image.fromarray(img[:, :, 0], 'L') if img.shape[2] == 1 else PIL.Image.fromarray(img, 'RGB')

def save_png(image, path):
    with dnnlib.util.atomic_write(path, 'wb') as f:
        image.save(f, format='PNG')

def make_grid(images, columns=None):
    """Tile [N, H, W, C] uint8 images into a grid of `columns` (default: near-square; empty cells black)."""
    n, h, w, ch = images.shape
    gw = math.ceil(math.sqrt(n)) if columns is None else columns
    gh = math.ceil(n / gw)
    grid = np.zeros([gh * h, gw * w, ch], dtype=np.uint8)
    for i, img in enumerate(images):
        y, x = divmod(i, gw)
        grid[y * h:(y + 1) * h, x * w:(x + 1) * w] = img
    return grid

#----------------------------------------------------------------------------

def parse_seeds(text):
    """--seeds of every tool ('0-31', '1,5,9'): a list of seeds in [0, 2**32), or a usage error."""
    try:
        seeds = dnnlib.util.parse_range(text)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint='--seeds')
    if len(seeds) == 0:
        raise click.BadParameter('no seeds given', param_hint='--seeds')
    if any(seed < 0 or seed >= 2**32 for seed in seeds):
        raise click.BadParameter('seeds must be in [0, 2**32)', param_hint='--seeds')
    return seeds

def load_generator(network_pkl, device):
    """G_ema of a snapshot (path or URL), frozen, on `device`; an unreadable file is one error line."""
    print(f'Loading networks from "{network_pkl}"...')
    try:
        return load_network_pkl(network_pkl)['G_ema'].eval().requires_grad_(False).to(device)
    except (OSError, ValueError) as err:
        raise click.ClickException(str(err))

def resolve_device(device):
    """--device of every tool: 'auto' is CUDA when visible; 'cuda' without a device is a usage error."""
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if device == 'cuda' and not torch.cuda.is_available():
        raise click.BadParameter('no CUDA device is visible', param_hint='--device')
    return torch.device(device)

#----------------------------------------------------------------------------

@click.command()
@click.option('--network', 'network_pkl', help='Network pickle (path or URL)', required=True)
@click.option('--seeds', help='Seeds, e.g. 0-3,7')
@click.option('--projected-w', help='Synthesize from the ws of projector.py (projected_w.npz) instead of seeds', metavar='FILE')
@click.option('--trunc', 'truncation_psi', help='Truncation psi', type=float, default=1, show_default=True)
@click.option('--class', 'class_idx', help='Class index, or several, e.g. 0-9 (conditional networks; several: OUTDIR/classK/)')
@click.option('--noise-mode', help='Noise mode', type=click.Choice(['const', 'random', 'none']), default='const', show_default=True)
@click.option('--outdir', help='Where to save the images', type=str, required=True, metavar='DIR')
@click.option('--grid', help='Also write all images as one grid.png', is_flag=True)
@click.option('--device', help='Device', type=click.Choice(['auto', 'cpu', 'cuda']), default='auto', show_default=True)
def main(network_pkl, seeds, projected_w, truncation_psi, class_idx, noise_mode, outdir, grid, device):
    """Write OUTDIR/seedNNNN.png for every seed; z comes from np.random.RandomState(seed), so output is
    deterministic per seed. With --projected-w, OUTDIR/projNN.png for every w of the file."""
    if (seeds is None) == (projected_w is None):
        raise click.UsageError('give either --seeds or --projected-w')
    if projected_w is not None:
        return _from_projected_w(network_pkl, projected_w, noise_mode, outdir, device)
    seeds = parse_seeds(seeds)
    device = resolve_device(device)

    G = load_generator(network_pkl, device)

    classes = _parse_classes(class_idx, G.c_dim)
    os.makedirs(outdir, exist_ok=True)
    images = []
    for class_k in classes:
        label = torch.zeros([1, G.c_dim], device=device)
        if class_k is not None:
            label[:, class_k] = 1
        folder = outdir if len(classes) == 1 else os.path.join(outdir, f'class{class_k}')
        os.makedirs(folder, exist_ok=True)
        if len(classes) > 1:
            print(f'Generating {len(seeds)} images of class {class_k} into {folder} ...')
        for seed_idx, seed in enumerate(seeds):
            if len(classes) == 1:
                print(f'Generating image for seed {seed} ({seed_idx + 1}/{len(seeds)}) ...')
            z = torch.from_numpy(seed_latents([seed], G.z_dim)).to(device=device, dtype=torch.float32)
            if noise_mode == 'random':
                torch.manual_seed(seed)  # Random noise, but still the same image for the same seed.
            with torch.no_grad():
                img = to_uint8(G(z, label, truncation_psi=truncation_psi, noise_mode=noise_mode))[0]
            save_png(to_pil(img), os.path.join(folder, f'seed{seed:04d}.png'))
            images.append(img)
    if grid:
        columns = len(seeds) if len(classes) > 1 else None  # One row per class.
        save_png(to_pil(make_grid(np.stack(images), columns=columns)), os.path.join(outdir, 'grid.png'))
        print(f'Wrote {os.path.join(outdir, "grid.png")}')

def _parse_classes(class_arg, c_dim):
    """--class -> a list of class indices ([None] for an unconditional network)."""
    if c_dim == 0:
        if class_arg is not None:
            print('warn: --class is ignored for an unconditional network')
        return [None]
    if class_arg is None:
        raise click.UsageError(f'the network is conditional ({c_dim} classes): pass --class')
    try:
        classes = dnnlib.util.parse_range(class_arg)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint='--class')
    bad = [k for k in classes if not 0 <= k < c_dim]
    if not classes or bad:
        raise click.UsageError(f'--class={class_arg} is out of range: the network has {c_dim} classes')
    return list(dict.fromkeys(classes))  # Each class once, in the order given.

def _from_projected_w(network_pkl, projected_w, noise_mode, outdir, device):
    device = torch.device(('cuda' if torch.cuda.is_available() else 'cpu') if device == 'auto' else device)
    try:
        G = load_network_pkl(network_pkl)['G_ema'].eval().requires_grad_(False).to(device)
        ws = np.load(projected_w)['w']
    except (OSError, ValueError, KeyError) as err:
        raise click.ClickException(f'{err}')
    if not hasattr(G, 'synthesis') or ws.ndim != 3 or ws.shape[1:] != (G.num_ws, G.w_dim):
        raise click.ClickException(f'--projected-w: expected ws of shape [N, {getattr(G, "num_ws", "?")}, {getattr(G, "w_dim", "?")}] '
            f'for this network, got {list(ws.shape)}')
    os.makedirs(outdir, exist_ok=True)
    with torch.no_grad():
        for idx, w in enumerate(torch.from_numpy(ws).to(device, torch.float32)):
            img = to_uint8(G.synthesis(w[None], noise_mode=noise_mode))[0]
            save_png(to_pil(img), os.path.join(outdir, f'proj{idx:02d}.png'))
    print(f'Wrote {len(ws)} images to {outdir}')

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()

#----------------------------------------------------------------------------
