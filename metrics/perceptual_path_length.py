"""Perceptual path length (Karras et al. 2019): LPIPS distance of the images at two points eps apart on a
path between two latents, divided by eps^2; the path is a lerp in W or a slerp in Z, sampled at its
start ('end') or uniformly ('full'), as StyleGAN2-ADA computes it."""

import numpy as np
import torch

from . import metric_utils

#----------------------------------------------------------------------------


def filtered_mean(dist, lo_percentile=1, hi_percentile=99):
    """Mean of the distances between the lo and hi percentiles: a few singular paths must not dominate."""
    dist = np.asarray(dist, np.float64)
    lo = np.percentile(dist, lo_percentile, method='lower')
    hi = np.percentile(dist, hi_percentile, method='higher')
    return float(dist[(dist >= lo) & (dist <= hi)].mean())


def _to_vgg_input(images, crop):
    """Generator output in [-1, 1] -> float [0, 255] at most 256x256, as the VGG16 LPIPS expects."""
    factor = images.shape[2] // 256  # Of the generator's resolution, before the crop, as StyleGAN2-ADA downsamples.
    if crop:  # The central face region of FFHQ-like images.
        c = images.shape[2] // 8
        images = images[:, :, c * 3 : c * 7, c * 2 : c * 6]
    if factor > 1:
        images = torch.nn.functional.avg_pool2d(images, kernel_size=factor)
    images = (images + 1) * (255 / 2)
    return images.repeat([1, 3, 1, 1]) if images.shape[1] == 1 else images


def slerp(a, b, t):
    """Spherical interpolation between the directions of a and b (rows), StyleGAN's slerp for Z."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    d = (a * b).sum(dim=-1, keepdim=True)
    p = t * torch.acos(d.clamp(-1, 1))
    c = b - d * a
    c = c / c.norm(dim=-1, keepdim=True)
    return a * torch.cos(p) + c * torch.sin(p)


def path_lengths(G, vgg16, z, c, epsilon, crop, space='w', t=None):
    """LPIPS(x(p(t)), x(p(t + eps))) / eps^2 per row, p the path from z0 to z1 (each row of z is
    [z0 | z1]): lerp in W (space='w') or slerp in Z (space='z'); t = 0 (endpoints) when None."""
    z0, z1 = z.chunk(2, dim=1)
    t = torch.zeros([z.shape[0], 1], device=z.device) if t is None else t.reshape(-1, 1).to(z.device)
    if space == 'w':
        w0, w1 = G.mapping(z=torch.cat([z0, z1]), c=torch.cat([c, c])).chunk(2)
        wt0 = torch.lerp(w0, w1, t.unsqueeze(1))
        wt1 = torch.lerp(w0, w1, (t + epsilon).unsqueeze(1))
    elif space == 'z':
        zt0, zt1 = slerp(z0, z1, t), slerp(z0, z1, t + epsilon)
        wt0, wt1 = G.mapping(z=torch.cat([zt0, zt1]), c=torch.cat([c, c])).chunk(2)
    else:
        raise ValueError(f"space must be 'w' or 'z', got {space!r}")
    images = G.synthesis(torch.cat([wt0, wt1]), noise_mode='const', force_fp32=True)
    lpips_t0, lpips_t1 = vgg16(_to_vgg_input(images, crop), resize_images=False, return_lpips=True).chunk(2)
    return (lpips_t0 - lpips_t1).square().sum(dim=1) / epsilon ** 2


def _randomize_const_noise(G, seed):
    """New constant noise for each batch, as StyleGAN2-ADA's PPL does (its noise_const buffers are redrawn
    per batch); drawn from the batch's first item, so a rerun gives the same noise."""
    gen = torch.Generator().manual_seed(seed)
    for name, buf in G.named_buffers():
        if name.endswith('.noise_const'):
            buf.copy_(torch.randn(buf.shape, generator=gen).to(buf.device))


@torch.no_grad()
def compute_ppl(opts, num_samples, epsilon, crop, batch_size, seed=0, space='w', sampling='end'):
    """PPL as in StyleGAN2-ADA: sampling 'end' (t = 0) or 'full' (t uniform in [0, 1), per item)."""
    if sampling not in ('end', 'full'):
        raise ValueError(f"sampling must be 'end' or 'full', got {sampling!r}")
    G = metric_utils.copy_generator(opts)
    if not (hasattr(G, 'mapping') and hasattr(G, 'synthesis')):
        raise ValueError(f'PPL in W needs a generator with mapping and synthesis networks (StyleGAN2); '
            f'{type(G).__name__} has none')
    vgg16, _md5 = metric_utils.get_feature_detector(metric_utils.VGG16_URL, device=opts.device, num_gpus=opts.num_gpus,
        rank=opts.rank, verbose=opts.progress, detector_dir=opts.detector_dir)
    sampler = metric_utils.LatentSampler(opts, z_dim=G.z_dim, c_dim=G.c_dim, seed=seed)

    dist = metric_utils.FeatureStats(capture_all=True, max_items=num_samples)
    items = metric_utils.rank_items(num_samples, opts)
    with metric_utils.progress_bar(opts, num_samples, 'path lengths') as bar:
        for start in range(0, len(items), batch_size):
            z, c = sampler(items[start : start + batch_size], num_latents=2)
            _randomize_const_noise(G, seed=seed * (1 << 32) + items[start])
            t = None
            if sampling == 'full':  # Per item, from its own seed: independent of batches and processes.
                t = torch.stack([torch.rand([], generator=torch.Generator().manual_seed(seed * (1 << 32) + i + (1 << 31)))
                    for i in items[start : start + batch_size]])
            lengths = path_lengths(G, vgg16, z.to(opts.device), c.to(opts.device), epsilon, crop, space=space, t=t)
            before = dist.num_items
            dist.append_torch(lengths[:, None], num_gpus=opts.num_gpus, rank=opts.rank)
            bar.update(dist.num_items - before)
    if opts.rank != 0:
        return float('nan')
    return filtered_mean(dist.get_all()[:, 0])

#----------------------------------------------------------------------------
