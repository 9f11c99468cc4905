"""The image grids of a run: reals.png and fakes*.png, a fixed set of latents and labels drawn through G_ema."""

import numpy as np
import PIL.Image
import torch

import dnnlib

#----------------------------------------------------------------------------

def setup_snapshot_image_grid(training_set, random_seed, max_size):
    rnd = np.random.RandomState(random_seed)
    gw = int(np.clip(7680 // training_set.image_shape[2], min(7, max_size), max_size))
    gh = int(np.clip(4320 // training_set.image_shape[1], min(4, max_size), max_size))
    if not training_set.has_labels:
        order = rnd.permutation(len(training_set))
        grid_indices = [int(order[i % len(order)]) for i in range(gw * gh)]
    else:
        # One class per row, so conditioning is visible at a glance.
        groups = dict()
        for idx in range(len(training_set)):
            groups.setdefault(int(np.argmax(training_set.get_label(idx))), []).append(idx)
        keys = sorted(groups)
        for key in keys:
            rnd.shuffle(groups[key])
        grid_indices = [groups[keys[y % len(keys)]][x % len(groups[keys[y % len(keys)]])] for y in range(gh) for x in range(gw)]
    images = np.stack([training_set[i][0] for i in grid_indices])
    labels = np.stack([training_set.get_label(i) for i in grid_indices])
    return (gw, gh), images, labels

def save_image_grid(img, fname, drange, grid_size):
    lo, hi = drange
    img = (np.asarray(img, dtype=np.float32) - lo) * (255 / (hi - lo))
    img = np.rint(img).clip(0, 255).astype(np.uint8)
    gw, gh = grid_size
    _N, C, H, W = img.shape
    img = img.reshape(gh, gw, C, H, W).transpose(0, 3, 1, 4, 2).reshape(gh * H, gw * W, C)
    pil = PIL.Image.fromarray(img[:, :, 0], 'L') if C == 1 else PIL.Image.fromarray(img, 'RGB')
    with dnnlib.util.atomic_write(fname, 'wb') as f:
        pil.save(f, format='PNG')

@torch.no_grad()
def generate_grid(G_ema, grid_z, grid_c):
    return torch.cat([G_ema(z=z, c=c, noise_mode='const').cpu() for z, c in zip(grid_z, grid_c)]).numpy()

#----------------------------------------------------------------------------

def grid_max_size(device):
    """Largest side, in images, of the fakes grid: 32 as StyleGAN2-ADA on CUDA, 8 on the slow CPU."""
    return 32 if torch.device(device).type == 'cuda' else 8

#----------------------------------------------------------------------------
