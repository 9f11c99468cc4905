"""The 32x32 BigGAN of the DiffAugment / LeCam / KD-DLGAN CIFAR experiments.

G: z -> linear -> 4x4 -> three up-sampling residual blocks with class-conditional batch norm -> 32x32.
D: four residual blocks (two down-sampling) -> ReLU -> sum pooling -> linear + projection.
Spectral norm on every conv/linear of G and D (and D's class embedding), N(0, 0.02) init.

Call interface matches the StyleGAN2 networks: G(z, c) and D(img, c, return_features=False),
with c a one-hot (or soft) label vector of length c_dim (c_dim=0: unconditional).

Batch norm in G always normalises with the statistics of the current batch, also in eval mode.
This follows the authors' evaluation (BigGAN-PyTorch samples with G in train mode for CIFAR) and
keeps G_ema consistent without re-estimating running statistics after each EMA update.
"""

import numpy as np
import torch
import torch.nn.functional as F

from torch_utils import misc
from torch_utils import persistence
from torch_utils.spectral_norm import SNConv2d, SNLinear

#----------------------------------------------------------------------------

def init_normal_02(module):
    """N(0, 0.02) weights and zero biases for every conv, linear and label embedding below module."""
    for m in module.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)
        elif isinstance(m, ClassConditionalBatchNorm) and m.c_dim > 0:
            torch.nn.init.normal_(m.gain_weight, mean=0.0, std=0.02)
            torch.nn.init.normal_(m.bias_weight, mean=0.0, std=0.02)

#----------------------------------------------------------------------------

@persistence.persistent_class
class ClassConditionalBatchNorm(torch.nn.Module):
    """Batch norm whose gain (1 + c W_g) and bias (c W_b) depend on the label; plain affine BN when c_dim=0."""

    def __init__(self, num_features, c_dim, eps=1e-5):
        super().__init__()
        self.num_features = num_features
        self.c_dim = c_dim
        self.eps = eps
        rows = max(c_dim, 1)
        self.gain_weight = torch.nn.Parameter(torch.zeros([rows, num_features]))
        self.bias_weight = torch.nn.Parameter(torch.zeros([rows, num_features]))

    def forward(self, x, c):
        x = F.batch_norm(x, None, None, training=True, eps=self.eps)
        if self.c_dim > 0:
            gain = 1 + c.to(x.dtype) @ self.gain_weight
            bias = c.to(x.dtype) @ self.bias_weight
        else:
            gain = (1 + self.gain_weight).expand(x.shape[0], -1)
            bias = self.bias_weight.expand(x.shape[0], -1)
        return x * gain[:, :, None, None] + bias[:, :, None, None]

#----------------------------------------------------------------------------

@persistence.persistent_class
class GeneratorBlock(torch.nn.Module):
    """BN-ReLU-up-conv-BN-ReLU-conv with a 1x1 up-sampled shortcut."""

    def __init__(self, in_channels, out_channels, c_dim, sn_eps=1e-6):
        super().__init__()
        self.bn1 = ClassConditionalBatchNorm(in_channels, c_dim)
        self.conv1 = SNConv2d(in_channels, out_channels, 3, padding=1, eps=sn_eps)
        self.bn2 = ClassConditionalBatchNorm(out_channels, c_dim)
        self.conv2 = SNConv2d(out_channels, out_channels, 3, padding=1, eps=sn_eps)
        self.conv_sc = SNConv2d(in_channels, out_channels, 1, eps=sn_eps)

    def forward(self, x, c):
        h = F.relu(self.bn1(x, c))
        h = F.interpolate(h, scale_factor=2, mode='nearest')
        h = self.conv1(h)
        h = self.conv2(F.relu(self.bn2(h, c)))
        shortcut = self.conv_sc(F.interpolate(x, scale_factor=2, mode='nearest'))
        return h + shortcut

#----------------------------------------------------------------------------

@persistence.persistent_class
class Generator(torch.nn.Module):
    # Batch norm uses the batch's statistics, so the images depend on which latents share a forward pass:
    # metrics generate in fixed groups of this many consecutive items (the reference samples 50 at a time).
    metric_forward_batch = 50

    def __init__(self,
        z_dim           = 128,  # Latent size.
        c_dim           = 0,    # Label size, 0 = unconditional.
        w_dim           = None, # Unused; accepted so generic tools can pass StyleGAN2 keyword sets.
        img_resolution  = 32,   # Output resolution: bottom_width * 2**num_blocks.
        img_channels    = 3,    # Output channels.
        ch              = 64,   # Channel multiplier (G_ch).
        bottom_width    = 4,    # Spatial size after the linear layer.
        sn_eps          = 1e-6, # Epsilon of the spectral norm power iteration.
    ):
        super().__init__()
        num_blocks = int(np.log2(img_resolution // bottom_width))
        if bottom_width * 2 ** num_blocks != img_resolution:
            raise ValueError(f'BigGAN img_resolution must be {bottom_width} * 2**k, got {img_resolution}')
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.bottom_width = bottom_width
        width = 4 * ch
        self.width = width
        self.linear = SNLinear(z_dim, width * bottom_width ** 2, eps=sn_eps)
        self.blocks = torch.nn.ModuleList([GeneratorBlock(width, width, c_dim, sn_eps=sn_eps) for _ in range(num_blocks)])
        self.out_bn = ClassConditionalBatchNorm(width, 0)
        self.out_conv = SNConv2d(width, img_channels, 3, padding=1, eps=sn_eps)
        init_normal_02(self)

    def forward(self, z, c, **unused_kwargs):
        misc.assert_shape(z, [None, self.z_dim])
        if self.c_dim > 0:
            misc.assert_shape(c, [z.shape[0], self.c_dim])
        x = self.linear(z).reshape(z.shape[0], self.width, self.bottom_width, self.bottom_width)
        for block in self.blocks:
            x = block(x, c)
        x = F.relu(self.out_bn(x, None))
        return torch.tanh(self.out_conv(x))

#----------------------------------------------------------------------------

@persistence.persistent_class
class DiscriminatorBlock(torch.nn.Module):
    """Residual block; the first one skips the pre-activation ReLU, as in BigGAN."""

    def __init__(self, in_channels, out_channels, downsample, preactivation, sn_eps=1e-6):
        super().__init__()
        self.downsample = downsample
        self.preactivation = preactivation
        self.conv1 = SNConv2d(in_channels, out_channels, 3, padding=1, eps=sn_eps)
        self.conv2 = SNConv2d(out_channels, out_channels, 3, padding=1, eps=sn_eps)
        self.learnable_shortcut = (in_channels != out_channels) or downsample
        self.conv_sc = SNConv2d(in_channels, out_channels, 1, eps=sn_eps) if self.learnable_shortcut else None

    def forward(self, x):
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        shortcut = x
        if self.learnable_shortcut:
            if self.preactivation:
                shortcut = self.conv_sc(shortcut)
                shortcut = F.avg_pool2d(shortcut, 2) if self.downsample else shortcut
            else:
                shortcut = F.avg_pool2d(shortcut, 2) if self.downsample else shortcut
                shortcut = self.conv_sc(shortcut)
        return h + shortcut

#----------------------------------------------------------------------------

@persistence.persistent_class
class Discriminator(torch.nn.Module):
    kd_head_kind = 'spectral'   # The KD head on this D uses spectral norm (KD_METHOD.md, Student).

    def __init__(self,
        c_dim           = 0,    # Label size, 0 = unconditional.
        img_resolution  = 32,   # Input resolution.
        img_channels    = 3,    # Input channels.
        ch              = 64,   # Channel multiplier (D_ch).
        num_down        = 2,    # Number of down-sampling blocks (32 -> 8 for CIFAR).
        num_blocks      = 4,    # Total residual blocks.
        sn_eps          = 1e-6, # Epsilon of the spectral norm power iteration.
    ):
        super().__init__()
        if not 0 < num_down <= num_blocks:
            raise ValueError(f'BigGAN D needs 0 < num_down <= num_blocks, got {num_down} and {num_blocks}')
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        width = 4 * ch
        self.feature_dim = width
        self.blocks = torch.nn.ModuleList([
            DiscriminatorBlock(img_channels if i == 0 else width, width, downsample=(i < num_down),
                preactivation=(i > 0), sn_eps=sn_eps)
            for i in range(num_blocks)])
        self.out = SNLinear(width, 1, eps=sn_eps)
        self.embed = SNLinear(c_dim, width, bias=False, eps=sn_eps) if c_dim > 0 else None
        init_normal_02(self)

    def forward(self, img, c, return_features=False, **unused_kwargs):
        misc.assert_shape(img, [None, self.img_channels, self.img_resolution, self.img_resolution])
        x = img.to(torch.float32)
        for block in self.blocks:
            x = block(x)
        features = F.relu(x).sum(dim=[2, 3])
        logits = self.out(features)
        if self.embed is not None:
            misc.assert_shape(c, [img.shape[0], self.c_dim])
            logits = logits + (self.embed(c.to(features.dtype)) * features).sum(dim=1, keepdim=True)
        return (logits, features) if return_features else logits

#----------------------------------------------------------------------------
