"""Adaptive discriminator augmentation (ADA, Karras et al. 2020): the AugmentPipe.

Each transform is applied to each sample independently with probability `strength * p`, where
`p` is a buffer the training loop adjusts. Order: geometric (pixel blitting and general affine),
colour, image-space filtering, additive noise, cutout. All of it is differentiable with respect
to the images, so G is trained through it.

Geometric transforms (pixel blitting and general affine) are accumulated as one 3x3 matrix G_inv
per sample that maps output pixel coordinates to input coordinates (origin at the image centre,
y pointing down) and applied in one pass, as ADA does: reflect padding, 2x upsampling with ADA's
sym6 wavelet filter, bilinear grid_sample, 2x downsampling with the same filter. Colour transforms
are 4x4 matrices acting on homogeneous RGB; image-space filtering uses ADA's sym2 octave bank. The
random draws come in ADA's order, so a seed gives ADA's augmentations.
"""

import numpy as np
import torch

from torch_utils import misc
from torch_utils import persistence
from torch_utils.ops import conv2d_gradfix
from torch_utils.ops import grid_sample_gradfix
from torch_utils.ops import upfirdn2d

#----------------------------------------------------------------------------
# Filters of ADA (StyleGAN2-ADA, training/augment.py): Daubechies' symlet low-pass taps, the decomposition
# low-pass filters of PyWavelets' 'sym2' and 'sym6' (pywt.Wavelet(name).dec_lo).

SYM2 = [-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025]
SYM6 = [0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148]

def octave_filter_bank(lo=SYM2, num_bands=4):
    """ADA's filter bank for image-space filtering: one row per octave band, lowest first.

    With H(z) the wavelet low-pass, lo2 = H(z)H(1/z)/2 and hi2 = H(-z)H(-1/z)/2 are complementary
    (lo2 + hi2 = unit impulse). Starting from the impulse in band 0, each level dilates every row by
    two (zero insertion), low-passes it with lo2 and adds hi2 to the next band, so the rows always sum
    to the impulse: unit band gains leave the image unchanged.
    """
    lo = np.asarray(lo, dtype=np.float64)
    hi = lo * (-1.0) ** np.arange(lo.size)
    lo2 = np.convolve(lo, lo[::-1]) / 2
    hi2 = np.convolve(hi, hi[::-1]) / 2
    bank = np.zeros([num_bands, 1])
    bank[0, 0] = 1
    for band in range(1, num_bands):
        dilated = np.zeros([num_bands, 2 * bank.shape[1] - 1])
        dilated[:, ::2] = bank
        bank = np.stack([np.convolve(row, lo2) for row in dilated])
        start = (bank.shape[1] - hi2.size) // 2
        bank[band, start : start + hi2.size] += hi2
    return bank.astype(np.float32)

#----------------------------------------------------------------------------
# Batched homogeneous matrices; arguments are python scalars or [N] tensors.

def _matrix(*rows, device=None):
    elems = [x for row in rows for x in row]
    ref = next((x for x in elems if isinstance(x, torch.Tensor)), None)
    if ref is None:
        return misc.constant(np.asarray(rows), device=device)
    elems = [x if isinstance(x, torch.Tensor) else misc.constant(x, shape=ref.shape, device=ref.device) for x in elems]
    return torch.stack(elems, dim=-1).reshape(ref.shape + (len(rows), -1))

def translate2d(tx, ty, **kwargs):
    return _matrix([1, 0, tx], [0, 1, ty], [0, 0, 1], **kwargs)

def scale2d(sx, sy, **kwargs):
    return _matrix([sx, 0, 0], [0, sy, 0], [0, 0, 1], **kwargs)

def rotate2d(theta, **kwargs):
    return _matrix(
        [torch.cos(theta), torch.sin(-theta), 0],
        [torch.sin(theta), torch.cos(theta),  0],
        [0,                0,                 1], **kwargs)

def translate3d(tx, ty, tz, **kwargs):
    return _matrix([1, 0, 0, tx], [0, 1, 0, ty], [0, 0, 1, tz], [0, 0, 0, 1], **kwargs)

def scale3d(sx, sy, sz, **kwargs):
    return _matrix([sx, 0, 0, 0], [0, sy, 0, 0], [0, 0, sz, 0], [0, 0, 0, 1], **kwargs)

def rotate3d(v, theta, **kwargs):
    """Rotation by theta about the unit axis v (Rodrigues' formula)."""
    vx, vy, vz = v[..., 0], v[..., 1], v[..., 2]
    s, c = torch.sin(theta), torch.cos(theta)
    cc = 1 - c
    return _matrix(
        [vx * vx * cc + c,      vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
        [vy * vx * cc + vz * s, vy * vy * cc + c,      vy * vz * cc - vx * s, 0],
        [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c,      0],
        [0,                     0,                     0,                     1], **kwargs)

def translate2d_inv(tx, ty, **kwargs):
    return translate2d(-tx, -ty, **kwargs)

def scale2d_inv(sx, sy, **kwargs):
    return scale2d(1 / sx, 1 / sy, **kwargs)

def rotate2d_inv(theta, **kwargs):
    return rotate2d(-theta, **kwargs)

#----------------------------------------------------------------------------

def _reflect_index(idx, size):
    """Mirror integer indices into [0, size) without repeating the edge pixel (like 'reflect' padding),
    for any distance outside the range."""
    if size == 1:
        return torch.zeros_like(idx)
    period = 2 * (size - 1)
    idx = idx.remainder(period)
    return torch.where(idx >= size, period - idx, idx)

def _reflect_pad(x, pad_x0, pad_x1, pad_y0, pad_y1):
    rows = _reflect_index(torch.arange(-pad_y0, x.shape[2] + pad_y1, device=x.device), x.shape[2])
    cols = _reflect_index(torch.arange(-pad_x0, x.shape[3] + pad_x1, device=x.device), x.shape[3])
    return x.index_select(2, rows).index_select(3, cols)

#----------------------------------------------------------------------------

@persistence.persistent_class
class AugmentPipe(torch.nn.Module):
    def __init__(self,
        xflip=0, rotate90=0, xint=0, xint_max=0.125,
        scale=0, rotate=0, aniso=0, xfrac=0, scale_std=0.2, rotate_max=1, aniso_std=0.2, xfrac_std=0.125,
        brightness=0, contrast=0, lumaflip=0, hue=0, saturation=0, brightness_std=0.2, contrast_std=0.5, hue_max=1, saturation_std=1,
        imgfilter=0, imgfilter_bands=[1, 1, 1, 1], imgfilter_std=1,
        noise=0, cutout=0, noise_std=0.1, cutout_size=0.5,
    ):
        super().__init__()
        self.register_buffer('p', torch.ones([]))  # Overall augmentation probability, set by the training loop.

        # Pixel blitting.
        self.xflip            = float(xflip)            # Probability multiplier for x-flip.
        self.rotate90         = float(rotate90)         # Probability multiplier for rotations by multiples of 90 degrees.
        self.xint             = float(xint)             # Probability multiplier for integer translation.
        self.xint_max         = float(xint_max)         # Range of integer translation, relative to image dimensions.

        # General geometric transformations.
        self.scale            = float(scale)            # Probability multiplier for isotropic scaling.
        self.rotate           = float(rotate)           # Probability multiplier for arbitrary rotation.
        self.aniso            = float(aniso)            # Probability multiplier for anisotropic scaling.
        self.xfrac            = float(xfrac)            # Probability multiplier for fractional translation.
        self.scale_std        = float(scale_std)        # Log2 standard deviation of isotropic scaling.
        self.rotate_max       = float(rotate_max)       # Range of arbitrary rotation, 1 = full circle.
        self.aniso_std        = float(aniso_std)        # Log2 standard deviation of anisotropic scaling.
        self.xfrac_std        = float(xfrac_std)        # Standard deviation of fractional translation, relative to image dimensions.

        # Colour transformations.
        self.brightness       = float(brightness)       # Probability multiplier for brightness.
        self.contrast         = float(contrast)         # Probability multiplier for contrast.
        self.lumaflip         = float(lumaflip)         # Probability multiplier for luma flip.
        self.hue              = float(hue)              # Probability multiplier for hue rotation.
        self.saturation       = float(saturation)       # Probability multiplier for saturation.
        self.brightness_std   = float(brightness_std)   # Standard deviation of brightness.
        self.contrast_std     = float(contrast_std)     # Log2 standard deviation of contrast.
        self.hue_max          = float(hue_max)          # Range of hue rotation, 1 = full circle.
        self.saturation_std   = float(saturation_std)   # Log2 standard deviation of saturation.

        # Image-space filtering.
        self.imgfilter        = float(imgfilter)        # Probability multiplier for image-space filtering.
        self.imgfilter_bands  = [float(x) for x in imgfilter_bands]  # Probability multipliers for the individual octave bands.
        self.imgfilter_std    = float(imgfilter_std)    # Log2 standard deviation of the band gains.

        # Image-space corruptions.
        self.noise            = float(noise)            # Probability multiplier for additive RGB noise.
        self.cutout           = float(cutout)           # Probability multiplier for cutout.
        self.noise_std        = float(noise_std)        # Standard deviation of additive RGB noise.
        self.cutout_size      = float(cutout_size)      # Size of the cutout rectangle, relative to image dimensions.

        if len(self.imgfilter_bands) != 4:
            raise ValueError(f'imgfilter_bands needs one probability multiplier per octave band (4), got {len(self.imgfilter_bands)}')

        # ADA's filters: sym6 for the 2x up/downsampling around geometric resampling, the sym2 octave bank for
        # image-space filtering.
        self.register_buffer('Hz_geom', upfirdn2d.setup_filter(SYM6))
        self.register_buffer('Hz_fbank', torch.as_tensor(octave_filter_bank(SYM2, num_bands=4)))
        # Expected share of a natural image's power in each band (roughly 1/f), so band gains keep the expected power.
        self.register_buffer('band_power', torch.as_tensor([10.0, 1.0, 1.0, 1.0]) / 13)

    def _gate(self, value, identity, prob):
        """Keep each sample's draw with probability prob, else the identity value."""
        keep = torch.rand([value.shape[0]], device=value.device) < prob
        return torch.where(keep.reshape([-1] + [1] * (value.ndim - 1)), value, torch.full_like(value, identity))

    def forward(self, images):
        # Over 80 lines: one pass in ADA's order on purpose, so the random draws read top to bottom as ADA makes
        # them (tests/test_augment_stream.py replays them stage by stage).
        if images.ndim != 4 or not images.is_floating_point():
            raise ValueError(f'AugmentPipe expects a float [N, C, H, W] batch, got {images.dtype} of shape {list(images.shape)}')
        N, C, H, W = images.shape
        device = images.device
        p = self.p.to(device)

        # Geometric transformations, accumulated right-to-left into G_inv (output -> input coordinates).
        I_3 = torch.eye(3, device=device)
        G_inv = I_3.expand(N, 3, 3)
        if self.xflip > 0:
            i = self._gate(torch.floor(torch.rand([N], device=device) * 2), 0, self.xflip * p)
            G_inv = G_inv @ scale2d_inv(1 - 2 * i, torch.ones_like(i), device=device)
        if self.rotate90 > 0:
            i = self._gate(torch.floor(torch.rand([N], device=device) * 4), 0, self.rotate90 * p)
            G_inv = G_inv @ rotate2d_inv(-np.pi / 2 * i, device=device)
        if self.xint > 0:
            t = self._gate((torch.rand([N, 2], device=device) * 2 - 1) * self.xint_max, 0, self.xint * p)
            G_inv = G_inv @ translate2d_inv(torch.round(t[:, 0] * W), torch.round(t[:, 1] * H), device=device)
        if self.scale > 0:
            s = self._gate(torch.exp2(torch.randn([N], device=device) * self.scale_std), 1, self.scale * p)
            G_inv = G_inv @ scale2d_inv(s, s, device=device)
        # Rotation is split in two, before and after anisotropic scaling, with the probability shared so that
        # some rotation happens with probability rotate * p.
        p_rot = 1 - torch.sqrt((1 - self.rotate * p).clamp(0, 1))
        if self.rotate > 0:
            theta = self._gate((torch.rand([N], device=device) * 2 - 1) * np.pi * self.rotate_max, 0, p_rot)
            G_inv = G_inv @ rotate2d_inv(-theta, device=device)
        if self.aniso > 0:
            s = self._gate(torch.exp2(torch.randn([N], device=device) * self.aniso_std), 1, self.aniso * p)
            G_inv = G_inv @ scale2d_inv(s, 1 / s, device=device)
        if self.rotate > 0:
            theta = self._gate((torch.rand([N], device=device) * 2 - 1) * np.pi * self.rotate_max, 0, p_rot)
            G_inv = G_inv @ rotate2d_inv(-theta, device=device)
        if self.xfrac > 0:
            t = self._gate(torch.randn([N, 2], device=device) * self.xfrac_std, 0, self.xfrac * p)
            G_inv = G_inv @ translate2d_inv(t[:, 0] * W, t[:, 1] * H, device=device)
        # As in ADA, once any geometric transform is enabled the whole batch takes the resampling pass
        # (even samples drawn as the identity, and even at p = 0): one pass for blit and geometry together.
        if any(v > 0 for v in (self.xflip, self.rotate90, self.xint, self.scale, self.rotate, self.aniso, self.xfrac)):
            images = self.warp(images, G_inv)

        # Colour transformations, accumulated left-to-right into C (applied to homogeneous RGB).
        I_4 = torch.eye(4, device=device)
        M = I_4.expand(N, 4, 4)
        luma_axis = misc.constant(np.asarray([1, 1, 1, 0]) / np.sqrt(3), device=device)
        luma_proj = torch.outer(luma_axis, luma_axis)
        if self.brightness > 0:
            b = self._gate(torch.randn([N], device=device) * self.brightness_std, 0, self.brightness * p)
            M = translate3d(b, b, b, device=device) @ M
        if self.contrast > 0:
            c = self._gate(torch.exp2(torch.randn([N], device=device) * self.contrast_std), 1, self.contrast * p)
            M = scale3d(c, c, c, device=device) @ M
        if self.lumaflip > 0:
            i = self._gate(torch.floor(torch.rand([N, 1, 1], device=device) * 2), 0, self.lumaflip * p)
            M = (I_4 - 2 * luma_proj * i) @ M  # Householder reflection of the luma component.
        if self.hue > 0 and C > 1:
            theta = self._gate((torch.rand([N], device=device) * 2 - 1) * np.pi * self.hue_max, 0, self.hue * p)
            M = rotate3d(luma_axis.expand(N, 4), theta, device=device) @ M  # Rotation about the grey axis.
        if self.saturation > 0 and C > 1:
            s = self._gate(torch.exp2(torch.randn([N, 1, 1], device=device) * self.saturation_std), 1, self.saturation * p)
            M = (luma_proj + (I_4 - luma_proj) * s) @ M  # Scale the chroma, keep the luma.
        if (M != I_4).any():
            images = self.apply_color_matrix(images, M)

        # Image-space filtering: random gain per octave band, normalised to keep the expected power; ADA's
        # draws in ADA's order (the gain, then the gate). Samples left at unit gains get the identity filter.
        if self.imgfilter > 0:
            num_bands = self.Hz_fbank.shape[0]
            gains = torch.ones([N, num_bands], device=device)
            for band, band_strength in enumerate(self.imgfilter_bands):
                t = torch.exp2(torch.randn([N], device=device) * self.imgfilter_std)
                t = torch.where(torch.rand([N], device=device) < self.imgfilter * p * band_strength, t, torch.ones_like(t))
                band_gains = torch.ones([N, num_bands], device=device)
                band_gains[:, band] = t
                band_gains = band_gains / (self.band_power * band_gains.square()).sum(dim=1, keepdim=True).sqrt()
                gains = gains * band_gains
            images = self.apply_band_gains(images, gains)

        # Additive Gaussian noise with a random per-sample strength. The per-pixel noise is drawn even when every
        # gate is off, as ADA draws it: skipping it would shift every later draw of the run from ADA's stream.
        if self.noise > 0:
            sigma = self._gate(torch.randn([N, 1, 1, 1], device=device).abs() * self.noise_std, 0, self.noise * p)
            images = images + torch.randn_like(images) * sigma.to(images.dtype)

        # Cutout: zero one rectangle (side cutout_size relative to the image) at a uniform random centre.
        if self.cutout > 0:
            size = self._gate(torch.full([N, 2, 1, 1], self.cutout_size, device=device), 0, self.cutout * p)
            center = torch.rand([N, 2, 1, 1], device=device)
            coord_x = ((torch.arange(W, device=device) + 0.5) / W).reshape(1, 1, W)
            coord_y = ((torch.arange(H, device=device) + 0.5) / H).reshape(1, H, 1)
            outside_x = (coord_x - center[:, 0]).abs() >= size[:, 0] / 2
            outside_y = (coord_y - center[:, 1]).abs() >= size[:, 1] / 2
            images = images * (outside_x | outside_y).unsqueeze(1).to(images.dtype)

        return images

    def warp(self, images, G_inv):
        """out(u) = images(G_inv u) per sample, in centred pixel coordinates, as ADA resamples: reflect
        padding, 2x upsampling with the sym6 filter, bilinear grid_sample, 2x downsampling with it."""
        N, C, H, W = images.shape
        misc.assert_shape(G_inv, [N, 3, 3])
        device = images.device
        G_inv = G_inv.to(device=device, dtype=torch.float32)
        pad = self.Hz_geom.shape[0] // 4  # Output margin, in output pixels, that the downsampling filter reads.

        # Reflect-pad the input by how far the transformed output (grown by 2 * pad) reaches past its
        # edges, at most one mirrored copy per side.
        cx, cy = (W - 1) / 2, (H - 1) / 2
        corners = misc.constant(np.asarray([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], np.float32).T, device=device)
        reach = (G_inv @ corners)[:, :2, :].permute(1, 0, 2).flatten(1)  # [xy, N * 4]
        reach = torch.cat([-reach, reach]).amax(dim=1)  # Furthest corner left, up, right, down.
        reach = reach + misc.constant(np.asarray([2 * pad - cx, 2 * pad - cy] * 2, np.float32), device=device)
        reach = reach.clamp(min=0).minimum(misc.constant(np.asarray([W - 1, H - 1] * 2, np.float32), device=device))
        px0, py0, px1, py1 = [int(v) for v in reach.ceil().tolist()]
        images = torch.nn.functional.pad(input=images, pad=[px0, px1, py0, py1], mode='reflect')
        G_inv = translate2d((px0 - px1) / 2, (py0 - py1) / 2, device=device) @ G_inv  # Centre of the padded image.

        # 2x upsampling: coordinates double, and upsampled pixel k lies at input position (k - 0.5) / 2.
        images = upfirdn2d.upsample2d(x=images, f=self.Hz_geom.to(images.dtype), up=2)
        G_inv = scale2d(2, 2, device=device) @ G_inv @ scale2d_inv(2, 2, device=device)
        G_inv = translate2d(-0.5, -0.5, device=device) @ G_inv @ translate2d_inv(-0.5, -0.5, device=device)

        # Bilinear sampling of the 2x output grid (output grown by pad on each side), in grid_sample's
        # normalised coordinates of the upsampled input.
        shape = [N, C, (H + 2 * pad) * 2, (W + 2 * pad) * 2]
        G_inv = scale2d(2 / images.shape[3], 2 / images.shape[2], device=device) @ G_inv @ \
            scale2d_inv(2 / shape[3], 2 / shape[2], device=device)
        grid = torch.nn.functional.affine_grid(theta=G_inv[:, :2, :].to(images.dtype), size=shape, align_corners=False)
        images = grid_sample_gradfix.grid_sample(images, grid)

        # 2x downsampling with the same filter (correlation), cropping the margin.
        return upfirdn2d.downsample2d(x=images, f=self.Hz_geom.to(images.dtype), down=2, padding=-pad * 2, flip_filter=True)

    @staticmethod
    def apply_color_matrix(images, M):
        """Applies per-sample 4x4 colour matrices to RGB images (or to grey images seen as equal RGB)."""
        N, C, H, W = images.shape
        M = M.to(images.dtype)
        if C == 3:
            out = M[:, :3, :3] @ images.reshape(N, 3, H * W) + M[:, :3, 3:]
        elif C == 1:
            # Grey g is RGB (g, g, g); the output grey is the mean of the transformed RGB.
            gain = M[:, :3, :3].sum(dim=2).mean(dim=1).reshape(N, 1, 1)
            offset = M[:, :3, 3].mean(dim=1).reshape(N, 1, 1)
            out = images.reshape(N, 1, H * W) * gain + offset
        else:
            raise ValueError(f'Colour augmentation supports 1 or 3 image channels, got {C}')
        return out.reshape(N, C, H, W)

    def apply_band_gains(self, images, gains):
        """Filters each sample separably with sum_b gains[n, b] * band_b (reflect padding at the borders)."""
        N, C, H, W = images.shape
        kernel = (gains @ self.Hz_fbank).to(images.dtype)  # [N, taps], odd length, centred
        taps = kernel.shape[1]
        half = taps // 2
        x = _reflect_pad(images, half, half, half, half).reshape(1, N * C, H + 2 * half, W + 2 * half)
        kernel = kernel.repeat_interleave(C, dim=0)  # one filter per (sample, channel) group
        x = conv2d_gradfix.conv2d(input=x, weight=kernel.reshape(N * C, 1, 1, taps), groups=N * C)
        x = conv2d_gradfix.conv2d(input=x, weight=kernel.reshape(N * C, 1, taps, 1), groups=N * C)
        return x.reshape(N, C, H, W)

#----------------------------------------------------------------------------
# Named augmentation pipelines, as in StyleGAN2-ADA; the letters of the combinations stand for
# blit, geom, color, filter, noise, cutout in that order.

augpipe_specs = {
    'blit':   dict(xflip=1, rotate90=1, xint=1),
    'geom':   dict(scale=1, rotate=1, aniso=1, xfrac=1),
    'color':  dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1),
    'filter': dict(imgfilter=1),
    'noise':  dict(noise=1),
    'cutout': dict(cutout=1),
    'bg':     dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1),
    'bgc':    dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1),
    'bgcf':   dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1, imgfilter=1),
    'bgcfn':  dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1, imgfilter=1, noise=1),
    'bgcfnc': dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1, imgfilter=1, noise=1, cutout=1),
}

#----------------------------------------------------------------------------
