"""The KD head: maps D's pooled feature to the teacher's embedding width. It belongs to D
(attached as `D.kd_head`), is trained by D's optimizer and pickled with D in snapshots."""

import numpy as np
import torch
import torch.nn.functional as F

from torch_utils import persistence
from torch_utils.spectral_norm import SNLinear

#----------------------------------------------------------------------------

@persistence.persistent_class
class EqualizedLinear(torch.nn.Module):
    """StyleGAN2's equalized learning rate: weights ~ N(0, 1), scaled by 1/sqrt(fan_in) at run time,
    so Adam sees every layer at the same scale."""

    def __init__(self, in_features, out_features):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]))
        self.bias = torch.nn.Parameter(torch.zeros([out_features]))
        self.weight_gain = 1 / np.sqrt(in_features)

    def forward(self, x):
        return F.linear(x, self.weight * self.weight_gain, self.bias)

    def extra_repr(self):
        return f'in_features={self.in_features:d}, out_features={self.out_features:d}'

#----------------------------------------------------------------------------

@persistence.persistent_class
class KDHead(torch.nn.Module):
    """Two linear layers, in_features -> hidden -> out_features, with no activation between them
    (as in KD-DLGAN). spectral_norm=True for BigGAN, equalized learning rate for StyleGAN2."""

    def __init__(self, in_features, out_features, hidden=1024, spectral_norm=False):
        super().__init__()
        for name, value in [('in_features', in_features), ('out_features', out_features), ('hidden', hidden)]:
            if not (isinstance(value, (int, np.integer)) and value > 0):
                raise ValueError(f'KDHead: {name} must be a positive integer, got {value!r}')
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.hidden = int(hidden)
        self.spectral_norm = bool(spectral_norm)
        layer = SNLinear if self.spectral_norm else EqualizedLinear
        self.fc0 = layer(self.in_features, self.hidden)
        self.fc1 = layer(self.hidden, self.out_features)
        if self.spectral_norm:
            # The head is part of the authors' BigGAN D, whose init is N(0, 0.02) with zero biases.
            for fc in (self.fc0, self.fc1):
                torch.nn.init.normal_(fc.weight, mean=0.0, std=0.02)
                torch.nn.init.zeros_(fc.bias)

    def forward(self, x):
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f'KDHead expects features [N, {self.in_features}], got {tuple(x.shape)}')
        return self.fc1(self.fc0(x.to(torch.float32)))

    def extra_repr(self):
        return f'spectral_norm={self.spectral_norm}'

#----------------------------------------------------------------------------
