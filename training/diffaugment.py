"""Differentiable Augmentation (DiffAugment, Zhao et al. 2020) for data-efficient GAN training.

The same random transform family is applied to real and fake images right before D sees them;
every operation is differentiable with respect to the images, so G receives gradients through it.
Randomness is drawn per sample. Pass a `torch.Generator` for reproducible draws; the draws are
made on the generator's device and moved to the images' device.
"""

import torch
import torch.nn.functional as F

#----------------------------------------------------------------------------

def _rand(shape, x, generator):
    """Uniform [0, 1) draws of the given shape, on x's device and dtype."""
    device = x.device if generator is None else generator.device
    return torch.rand(shape, generator=generator, device=device).to(device=x.device, dtype=x.dtype)

def _randint(low, high, shape, x, generator):
    """Integer draws in [low, high), on x's device."""
    device = x.device if generator is None else generator.device
    return torch.randint(low, high, shape, generator=generator, device=device).to(x.device)

#----------------------------------------------------------------------------
# Colour: each draws one scalar per sample.

def rand_brightness(x, generator=None):
    """Adds U(-0.5, 0.5) to every pixel of a sample."""
    return x + (_rand([x.shape[0], 1, 1, 1], x, generator) - 0.5)

def rand_saturation(x, generator=None):
    """Scales each pixel's deviation from its channel mean by U(0, 2)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_rand([x.shape[0], 1, 1, 1], x, generator) * 2) + mean

def rand_contrast(x, generator=None):
    """Scales each sample's deviation from its global mean by U(0.5, 1.5)."""
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (_rand([x.shape[0], 1, 1, 1], x, generator) + 0.5) + mean

#----------------------------------------------------------------------------
# Geometry.

def translate(x, shift_y, shift_x):
    """out[n, :, i, j] = x[n, :, i + shift_y[n], j + shift_x[n]] where that pixel exists, else 0."""
    N, _C, H, W = x.shape
    shift_y = torch.as_tensor(shift_y, device=x.device).reshape(N, 1, 1)
    shift_x = torch.as_tensor(shift_x, device=x.device).reshape(N, 1, 1)
    rows = torch.arange(H, device=x.device).reshape(1, H, 1) + shift_y
    cols = torch.arange(W, device=x.device).reshape(1, 1, W) + shift_x
    # Index into a copy padded by one zero pixel on each side; out-of-range pixels hit the border.
    padded = F.pad(x, [1, 1, 1, 1])
    rows = (rows + 1).clamp(0, H + 1).expand(N, H, W)
    cols = (cols + 1).clamp(0, W + 1).expand(N, H, W)
    flat = (rows * (W + 2) + cols).reshape(N, 1, H * W).expand(-1, x.shape[1], -1)
    return padded.flatten(2).gather(2, flat).reshape(x.shape)

def rand_translation(x, ratio=0.125, generator=None):
    """Shifts each sample by up to ratio * size pixels in each direction, zero filling."""
    N, _C, H, W = x.shape
    max_y, max_x = int(H * ratio + 0.5), int(W * ratio + 0.5)
    shift_y = _randint(-max_y, max_y + 1, [N], x, generator)
    shift_x = _randint(-max_x, max_x + 1, [N], x, generator)
    return translate(x, shift_y, shift_x)

def rand_cutout(x, ratio=0.5, generator=None):
    """Zeroes one (ratio*H) x (ratio*W) rectangle per sample, centred uniformly, clipped at the border."""
    N, _C, H, W = x.shape
    size_y, size_x = int(H * ratio + 0.5), int(W * ratio + 0.5)
    # Centres range so that even-sized boxes reach both borders equally often.
    center_y = _randint(0, H + (1 - size_y % 2), [N, 1, 1], x, generator)
    center_x = _randint(0, W + (1 - size_x % 2), [N, 1, 1], x, generator)
    top, left = center_y - size_y // 2, center_x - size_x // 2
    rows = torch.arange(H, device=x.device).reshape(1, H, 1)
    cols = torch.arange(W, device=x.device).reshape(1, 1, W)
    inside = (rows >= top) & (rows < top + size_y) & (cols >= left) & (cols < left + size_x)
    return x * (~inside).unsqueeze(1).to(x.dtype)

#----------------------------------------------------------------------------

AUGMENT_FNS = {
    'color':       [rand_brightness, rand_saturation, rand_contrast],
    'translation': [rand_translation],
    'cutout':      [rand_cutout],
}

def parse_policy(policy):
    """'color,translation' -> ['color', 'translation']; raises ValueError on unknown names."""
    names = [name.strip() for name in policy.split(',') if name.strip()]
    unknown = [name for name in names if name not in AUGMENT_FNS]
    if unknown:
        raise ValueError(f'Unknown DiffAugment policy {unknown}; choose a comma-separated subset of {sorted(AUGMENT_FNS)}')
    return names

def DiffAugment(x, policy='color,translation,cutout', channels_first=True, generator=None):
    """Applies the policy's transforms, in the order listed, to a batch of NCHW (or NHWC) images."""
    names = parse_policy(policy)
    if x.ndim != 4:
        raise ValueError(f'DiffAugment expects a 4-D image batch, got shape {list(x.shape)}')
    if not names:
        return x
    if not channels_first:
        x = x.permute(0, 3, 1, 2)
    for name in names:
        for fn in AUGMENT_FNS[name]:
            x = fn(x, generator=generator)
    if not channels_first:
        x = x.permute(0, 2, 3, 1)
    return x.contiguous()

#----------------------------------------------------------------------------
