"""BigGAN 32x32: shapes, conditioning, features for KD, spectral norm, init, pickling."""

import pickle

import numpy as np
import pytest
import torch

from training.networks_biggan import Discriminator, Generator


def _tiny(c_dim):
    G = Generator(z_dim=16, c_dim=c_dim, img_resolution=32, img_channels=3, ch=4)
    D = Discriminator(c_dim=c_dim, img_resolution=32, img_channels=3, ch=4)
    return G, D


@pytest.mark.parametrize('c_dim', [0, 10])
def test_forward_backward_shapes(c_dim):
    G, D = _tiny(c_dim)
    z = torch.randn(5, 16)
    c = torch.nn.functional.one_hot(torch.arange(5) % 10, 10).float() if c_dim else torch.zeros(5, 0)
    img = G(z, c)
    assert img.shape == (5, 3, 32, 32)
    assert img.abs().max() <= 1
    logits, feat = D(img, c, return_features=True)
    assert logits.shape == (5, 1) and feat.shape == (5, D.feature_dim) == (5, 16)
    D.eval()    # in train mode every call advances the spectral-norm power iteration
    assert torch.allclose(D(img, c), D(img, c, return_features=True)[0])
    (logits.sum() + feat.sum()).backward()
    assert all(p.grad is not None for p in G.parameters() if p.requires_grad)


def test_projection_uses_label():
    G, D = _tiny(10)
    D.eval()
    img = torch.randn(2, 3, 32, 32)
    c_a = torch.nn.functional.one_hot(torch.tensor([1, 1]), 10).float()
    c_b = torch.nn.functional.one_hot(torch.tensor([2, 2]), 10).float()
    logits_a, feat = D(img, c_a, return_features=True)
    logits_b = D(img, c_b)
    # Projection term: <embed(c), features>; the difference is the difference of two embedding rows.
    w = D.embed.normalized_weight().detach()
    expected = (feat * (w[:, 1] - w[:, 2])).sum(dim=1, keepdim=True)
    assert torch.allclose(logits_a - logits_b, expected, atol=1e-4)


def test_generator_label_changes_output():
    G, _ = _tiny(10)
    z = torch.randn(4, 16)
    c1 = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 3]), 10).float()
    c2 = torch.nn.functional.one_hot(torch.tensor([4, 5, 6, 7]), 10).float()
    assert not torch.allclose(G(z, c1), G(z, c2))


def test_init_is_normal_002():
    G = Generator(z_dim=128, c_dim=0, ch=16)
    w = G.blocks[0].conv1.weight.detach().numpy().ravel()
    assert abs(w.std() - 0.02) < 0.002 and abs(w.mean()) < 0.002


def test_spectral_norm_after_training_steps():
    _, D = _tiny(0)
    D.train()
    x = torch.randn(2, 3, 32, 32)
    for _ in range(60):
        D(x, None)
    for layer in (D.blocks[1].conv1, D.out):
        w = layer.normalized_weight().detach().reshape(layer.weight.shape[0], -1).numpy()
        assert abs(np.linalg.svd(w, compute_uv=False)[0] - 1) < 1e-2


def test_pickle_roundtrip_same_output():
    G, D = _tiny(10)
    G2 = pickle.loads(pickle.dumps(G))
    z = torch.randn(3, 16)
    c = torch.nn.functional.one_hot(torch.tensor([0, 3, 9]), 10).float()
    G.eval(); G2.eval()
    assert torch.allclose(G(z, c), G2(z, c))


def test_bad_resolution_rejected():
    with pytest.raises(ValueError, match='img_resolution'):
        Generator(img_resolution=48)
