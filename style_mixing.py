"""Style mixing grid: rows x columns of images whose ws take the column image's styles on chosen layers.

    python style_mixing.py --network=runs/.../network-snapshot-000300.pkl --rows=85,100,75 \
        --cols=55,821,1789 --styles=0-6 --trunc=1 --outdir=out

The first row holds the column images, the first column the row images; cell (r, c) is row r's ws
with the layers in --styles taken from column c. Writes OUTDIR/grid.png and OUTDIR/R-C.png per cell.
"""

import os

import click
import numpy as np
import torch

import dnnlib
from generate import save_png, seed_latents, to_pil, to_uint8
from training.snapshot import load_network_pkl

#----------------------------------------------------------------------------

def mix_styles(G, row_seeds, col_seeds, styles, truncation_psi=1, noise_mode='const', device='cpu'):
    """{(row, col): uint8 HWC image} for row and col seeds (col/row alone under (r, None) / (None, c))."""
    seeds = list(dict.fromkeys(list(row_seeds) + list(col_seeds)))
    z = torch.from_numpy(seed_latents(seeds, G.z_dim)).to(device, torch.float32)
    c = torch.zeros([len(seeds), G.c_dim], device=device)
    ws = G.mapping(z, c, truncation_psi=truncation_psi)
    w_of = dict(zip(seeds, ws))
    images = dict()
    for seed in seeds:
        img = G.synthesis(w_of[seed][None], noise_mode=noise_mode)
        images[(seed, None)] = images[(None, seed)] = to_uint8(img)[0]
    for row in row_seeds:
        for col in col_seeds:
            w = w_of[row].clone()
            w[styles] = w_of[col][styles]
            images[(row, col)] = to_uint8(G.synthesis(w[None], noise_mode=noise_mode))[0]
    return images

def grid_image(images, row_seeds, col_seeds):
    """The (rows + 1) x (cols + 1) grid with a blank top-left cell."""
    h, w, ch = next(iter(images.values())).shape
    canvas = np.zeros([(len(row_seeds) + 1) * h, (len(col_seeds) + 1) * w, ch], dtype=np.uint8)
    for i, row in enumerate([None] + list(row_seeds)):
        for j, col in enumerate([None] + list(col_seeds)):
            if row is None and col is None:
                continue
            canvas[i * h:(i + 1) * h, j * w:(j + 1) * w] = images[(row, col)]  # (r, None), (None, c): the seeds alone.
    return canvas

#----------------------------------------------------------------------------

@click.command()
@click.option('--network', 'network_pkl', help='Network pickle: path or URL', required=True)
@click.option('--rows', 'row_seeds', help='Seeds of the rows, e.g. 85,100 or 0-3', required=True)
@click.option('--cols', 'col_seeds', help='Seeds of the columns', required=True)
@click.option('--styles', 'col_styles', help='Layers (ws) taken from the column image [default: 0-6]', default='0-6', show_default=True)
@click.option('--trunc', 'truncation_psi', help='Truncation psi', type=float, default=1, show_default=True)
@click.option('--noise-mode', help='Noise mode', type=click.Choice(['const', 'random', 'none']), default='const', show_default=True)
@click.option('--device', help='Device', type=click.Choice(['auto', 'cpu', 'cuda']), default='auto', show_default=True)
@click.option('--outdir', help='Where to save the images', required=True, metavar='DIR')
def main(network_pkl, row_seeds, col_seeds, col_styles, truncation_psi, noise_mode, device, outdir):
    """Style-mixing grid of a StyleGAN2 generator (the first ws of --styles come from each column's seed)."""
    try:
        rows, cols, styles = (dnnlib.util.parse_range(v) for v in (row_seeds, col_seeds, col_styles))
    except ValueError as err:
        raise click.BadParameter(str(err))
    if not rows or not cols:
        raise click.BadParameter('give at least one row seed and one column seed')
    device = ('cuda' if torch.cuda.is_available() else 'cpu') if device == 'auto' else device
    if device == 'cuda' and not torch.cuda.is_available():
        raise click.BadParameter('no CUDA device is visible', param_hint='--device')
    print(f'Loading networks from "{network_pkl}"...')
    try:
        G = load_network_pkl(network_pkl)['G_ema'].eval().requires_grad_(False).to(device)
    except (OSError, ValueError) as err:
        raise click.ClickException(str(err))
    if not (hasattr(G, 'mapping') and hasattr(G, 'synthesis')):
        raise click.ClickException('style mixing needs a StyleGAN2 generator (mapping and synthesis networks)')
    if G.c_dim != 0:
        raise click.ClickException(f'the network is conditional ({G.c_dim} classes); style mixing takes unconditional ones')
    bad = [s for s in styles if not 0 <= s < G.num_ws]
    if bad:
        raise click.BadParameter(f'layers {bad} are out of range: the network has {G.num_ws} ws (0-{G.num_ws - 1})', param_hint='--styles')
    with torch.no_grad():
        images = mix_styles(G, rows, cols, styles, truncation_psi=truncation_psi, noise_mode=noise_mode, device=device)
    os.makedirs(outdir, exist_ok=True)
    for (row, col), image in images.items():
        if row is not None and col is not None:
            save_png(to_pil(image), os.path.join(outdir, f'{row}-{col}.png'))
    save_png(to_pil(grid_image(images, rows, cols)), os.path.join(outdir, 'grid.png'))
    print(f'Wrote {os.path.join(outdir, "grid.png")}')

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
