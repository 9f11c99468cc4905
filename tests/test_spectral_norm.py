"""Spectral norm layers: the power iteration converges to the largest singular value (numpy SVD)."""

import numpy as np
import pickle
import torch

from torch_utils.spectral_norm import SNConv2d, SNLinear, normalize_weight


def test_power_iteration_matches_numpy_svd():
    torch.manual_seed(1)
    w = torch.randn(7, 5, dtype=torch.float64)
    u = torch.nn.functional.normalize(torch.randn(7, dtype=torch.float64), dim=0)
    for _ in range(200):
        w_sn, sigma = normalize_weight(w, u, num_iters=1)
    expected = np.linalg.svd(w.numpy(), compute_uv=False)[0]
    assert abs(sigma.item() - expected) < 1e-8
    assert abs(np.linalg.svd(w_sn.numpy(), compute_uv=False)[0] - 1) < 1e-8


def test_layers_keep_largest_singular_value_near_one():
    torch.manual_seed(2)
    conv = SNConv2d(4, 6, 3, padding=1)
    lin = SNLinear(10, 3)
    for layer in (conv, lin):
        layer.train()
        for _ in range(100):     # one power iteration per training forward, as in BigGAN
            layer.normalized_weight()
        w = layer.normalized_weight().detach().reshape(layer.weight.shape[0], -1).double().numpy()
        assert abs(np.linalg.svd(w, compute_uv=False)[0] - 1) < 1e-3


def test_eval_mode_does_not_update_and_module_pickles():
    layer = SNLinear(6, 4).eval()
    u_before = layer.sn_u.clone()
    y1 = layer(torch.randn(2, 6))
    assert torch.equal(layer.sn_u, u_before)
    clone = pickle.loads(pickle.dumps(layer))
    x = torch.randn(3, 6)
    assert torch.allclose(clone(x), layer(x))
    assert y1.shape == (2, 4)


def test_gradient_flows_through_sigma():
    layer = SNLinear(3, 2).double()
    layer.train()
    x = torch.randn(4, 3, dtype=torch.float64)
    layer(x).sum().backward()
    assert layer.weight.grad is not None and torch.isfinite(layer.weight.grad).all()
