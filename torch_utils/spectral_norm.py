"""Spectral normalisation layers for BigGAN and the KD head.

torch.nn.utils.parametrizations.spectral_norm cannot be pickled (only state_dicts can), and our
snapshots pickle whole modules, so these layers keep the power-iteration vector as a plain buffer
and normalise the weight in forward().
"""

import torch
import torch.nn.functional as F

#----------------------------------------------------------------------------

def normalize_weight(weight, u, num_iters=1, eps=1e-8, update=True):
    """Return (weight / sigma, sigma), estimating sigma by power iteration started from u.

    The weight is viewed as a matrix [out, -1]. When update is set, u (a buffer) is overwritten
    in place with the new left singular vector estimate, as BigGAN does once per forward pass.
    """
    w_mat = weight.reshape(weight.shape[0], -1)
    with torch.no_grad():
        u_new = u
        for _ in range(num_iters):
            v_new = F.normalize(w_mat.t().to(u_new.dtype) @ u_new, dim=0, eps=eps)
            u_new = F.normalize(w_mat.to(u_new.dtype) @ v_new, dim=0, eps=eps)
        if update:
            u.copy_(u_new)
    sigma = torch.dot(u_new.to(weight.dtype), w_mat @ v_new.to(weight.dtype))
    return weight / sigma, sigma

#----------------------------------------------------------------------------

class _SpectralNormMixin:
    """Adds the buffers `sn_u` (power-iteration vector) and `sn_sigma` (last estimate)."""

    def _init_spectral_norm(self, num_outputs, num_iters, eps):
        self.sn_num_iters = num_iters
        self.sn_eps = eps
        self.register_buffer('sn_u', F.normalize(torch.randn(num_outputs), dim=0))
        self.register_buffer('sn_sigma', torch.ones([]))

    def normalized_weight(self):
        w, sigma = normalize_weight(self.weight, self.sn_u, num_iters=self.sn_num_iters, eps=self.sn_eps,
            update=self.training)
        if self.training:
            self.sn_sigma.copy_(sigma.detach())
        return w


class SNLinear(_SpectralNormMixin, torch.nn.Linear):
    def __init__(self, in_features, out_features, bias=True, num_iters=1, eps=1e-8):
        super().__init__(in_features, out_features, bias=bias)
        self._init_spectral_norm(out_features, num_iters, eps)

    def forward(self, x):
        return F.linear(x, self.normalized_weight(), self.bias)


class SNConv2d(_SpectralNormMixin, torch.nn.Conv2d):
    def __init__(self, in_channels, out_channels, kernel_size, padding=0, bias=True, num_iters=1, eps=1e-8):
        super().__init__(in_channels, out_channels, kernel_size, padding=padding, bias=bias)
        self._init_spectral_norm(out_channels, num_iters, eps)

    def forward(self, x):
        return self._conv_forward(x, self.normalized_weight(), self.bias)

#----------------------------------------------------------------------------
