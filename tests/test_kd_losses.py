"""AGKD, CGKD, diversity and the KD head against hand-computed values and numpy loops."""

import math
import pickle
import random

import numpy as np
import pytest
import torch

from kd import agkd
from kd import cgkd
from kd.heads import KDHead

#----------------------------------------------------------------------------
# AGKD. Hand-worked example (N = 2, d = 2); every term has a row whose l1 and l2 norms differ, so a term
# that drops `dist` (or takes the other norm) changes the result:
#   tr - sr = [[2, -1], [-1, 2]]    -> l2 [sqrt5, sqrt5]    l1 [3, 3]           mean sqrt5 / 3
#   tf - sf = [[-1, -3], [1, 1]]    -> l2 [sqrt10, sqrt2]   l1 [4, 2]           mean (sqrt10+sqrt2)/2 / 3
#   tr - sf = [[0, -3], [-1, 2]]    -> l2 [3, sqrt5]        l1 [3, 3]           mean (3+sqrt5)/2 / 3
#   tf - sr = [[1, -1], [1, 1]]     -> l2 [sqrt2, sqrt2]    l1 [2, 2]           mean sqrt2 / 2

TR = [[1., 0.], [0., 1.]]
TF = [[0., 0.], [2., 0.]]
SR = [[-1., 1.], [1., -1.]]
SF = [[1., 3.], [1., -1.]]
_L2_PAIRED = math.sqrt(5) + (math.sqrt(10) + math.sqrt(2)) / 2
_L2_CROSS = (3 + math.sqrt(5)) / 2 + math.sqrt(2)

def _agkd(dist, gate):
    t = lambda v: torch.tensor(v, dtype=torch.float64)
    return float(agkd.agkd_loss(t(TR), t(TF), t(SR), t(SF), dist=dist, cross_gate=gate))

def test_per_sample_distance_by_hand():
    a = torch.tensor([[3., 4.], [0., 0.]])
    b = torch.tensor([[0., 0.], [1., 1.]])
    assert agkd.per_sample_distance(a, b, 'l2').tolist() == pytest.approx([5.0, math.sqrt(2)])
    assert agkd.per_sample_distance(a, b, 'l1').tolist() == pytest.approx([7.0, 2.0])

@pytest.mark.parametrize('dist, gate, expected', [
    ('l2', 1.0, _L2_PAIRED + _L2_CROSS),
    ('l1', 1.0, 3 + 3 + 3 + 2),
    ('l2', 0.0, _L2_PAIRED),
    ('l1', 0.0, 6.0),
    ('l2', 0.5, _L2_PAIRED + 0.5 * _L2_CROSS),
])
def test_agkd_by_hand(dist, gate, expected):
    assert _agkd(dist, gate) == pytest.approx(expected, rel=1e-12)

def test_agkd_rejects_bad_input():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match='dist'):
        agkd.agkd_loss(x, x, x, x, dist='l3')
    with pytest.raises(ValueError, match='shape'):
        agkd.agkd_loss(x, x, x, torch.zeros(3, 3))
    with pytest.raises(ValueError, match='cross_gate'):
        agkd.agkd_loss(x, x, x, x, cross_gate=-1)

def test_agkd_l2_gradient_finite_at_zero_distance():
    t = torch.ones(3, 4)
    s = torch.ones(3, 4, requires_grad=True)
    agkd.agkd_loss(t, t, s, s, dist='l2', cross_gate=1.0).backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().max() == 0

def test_cross_gate_sampling():
    gen = torch.Generator().manual_seed(5)
    state = gen.get_state()
    assert agkd.sample_cross_gate(1.0, generator=gen) == 1.0
    assert agkd.sample_cross_gate(0.0, generator=gen) == 0.0
    assert torch.equal(gen.get_state(), state)  # p in {0, 1} draws nothing.
    draws = [agkd.sample_cross_gate(0.3, generator=gen) for _ in range(4000)]
    assert set(draws) == {0.0, 1.0}
    assert abs(np.mean(draws) - 0.3) < 0.04
    again = torch.Generator().manual_seed(5)
    assert [agkd.sample_cross_gate(0.3, generator=again) for _ in range(4000)] == draws
    py = [agkd.sample_cross_gate(0.7, generator=random.Random(1)) for _ in range(3)]
    assert py == [agkd.sample_cross_gate(0.7, generator=random.Random(1)) for _ in range(3)]
    for bad in [-0.1, 1.5]:
        with pytest.raises(ValueError, match='p must lie'):
            agkd.sample_cross_gate(bad)

#----------------------------------------------------------------------------
# CGKD. features F = [[1, 0], [0, 2]], text T = [[1, 0], [1, 1], [0, 1]] -> F T^t = [[1, 1, 0], [0, 2, 2]].

F_T = torch.tensor([[1., 0.], [0., 2.]], dtype=torch.float64)
F_S = torch.tensor([[0., 1.], [1., 0.]], dtype=torch.float64)   # F_S T^t = [[0, 1, 1], [1, 1, 0]]
TEXT = torch.tensor([[1., 0.], [1., 1.], [0., 1.]], dtype=torch.float64)

def test_correlation_by_hand():
    r = 1 / math.sqrt(2)
    assert cgkd.correlation(F_T, TEXT, 'row').flatten().tolist() == pytest.approx([r, r, 0, 0, r, r])
    m = 1 / math.sqrt(10)
    assert cgkd.correlation(F_T, TEXT, 'matrix').flatten().tolist() == pytest.approx([m, m, 0, 0, 2 * m, 2 * m])

def test_cgkd_by_hand():
    # Row norm: C_T - C_S = [[1, 0, -1], [-1, 0, 1]] / sqrt(2).
    assert float(cgkd.cgkd_loss(F_T, F_S, TEXT, 'row', 'l2')) == pytest.approx(2.0)
    assert float(cgkd.cgkd_loss(F_T, F_S, TEXT, 'row', 'l1')) == pytest.approx(2 * math.sqrt(2))
    # Matrix norm: C_T = [[1, 1, 0], [0, 2, 2]] / sqrt(10), C_S = [[0, 1, 1], [1, 1, 0]] / 2.
    c_t = np.array([[1, 1, 0], [0, 2, 2]]) / math.sqrt(10)
    c_s = np.array([[0, 1, 1], [1, 1, 0]]) / 2
    assert float(cgkd.cgkd_loss(F_T, F_S, TEXT, 'matrix', 'l2')) == pytest.approx(((c_t - c_s) ** 2).sum())
    assert float(cgkd.cgkd_loss(F_T, F_S, TEXT, 'matrix', 'l1')) == pytest.approx(np.abs(c_t - c_s).sum())

def test_cgkd_rejects_bad_options():
    with pytest.raises(ValueError, match='norm'):
        cgkd.correlation(F_T, TEXT, norm='col')
    with pytest.raises(ValueError, match='dist'):
        cgkd.cgkd_loss(F_T, F_S, TEXT, dist='huber')
    with pytest.raises(ValueError, match='features'):
        cgkd.correlation(F_T, TEXT[:, :1])

def test_diversity_against_numpy_loop():
    corr = torch.randn(5, 7, dtype=torch.float64)
    c = corr.numpy()
    sims = [c[i] @ c[j] / (np.linalg.norm(c[i]) * np.linalg.norm(c[j])) for i in range(5) for j in range(5) if i != j]
    assert float(cgkd.diversity_loss(corr)) == pytest.approx(np.mean(sims), rel=1e-12)
    same = torch.tensor([[1., 2.], [2., 4.], [3., 6.]])
    assert float(cgkd.diversity_loss(same)) == pytest.approx(1.0)

def test_diversity_two_rows_by_hand_and_scale_invariant():
    # Two rows: one ordered pair each way, cos = 1/sqrt(2). Correlation rows are small in practice (cosines of
    # CLIP features, ~0.2): the similarity must not depend on the rows' size (eps only guards zero rows).
    pair = torch.tensor([[1., 0.], [1., 1.]], dtype=torch.float64)
    assert float(cgkd.diversity_loss(pair)) == pytest.approx(1 / math.sqrt(2), rel=1e-12)
    corr = torch.randn(5, 7, dtype=torch.float64)
    assert float(cgkd.diversity_loss(corr * 1e-3)) == pytest.approx(float(cgkd.diversity_loss(corr)), rel=1e-9)

def test_defaults_are_the_documented_ones():
    t = lambda v: torch.tensor(v, dtype=torch.float64)
    assert float(agkd.agkd_loss(t(TR), t(TF), t(SR), t(SF))) == pytest.approx(_L2_PAIRED + _L2_CROSS)  # l2, gate 1.
    assert agkd.per_sample_distance(t(TR), t(SR)).tolist() == pytest.approx([math.sqrt(5)] * 2)
    with pytest.raises(ValueError, match='features'):
        cgkd.correlation(F_T[0], TEXT)  # 1-D features, a 2-D text matrix.

def test_diversity_single_row_is_zero_in_graph():
    corr = torch.randn(1, 4, requires_grad=True)
    loss = cgkd.diversity_loss(corr)
    loss.backward()
    assert float(loss.detach()) == 0 and torch.equal(corr.grad, torch.zeros(1, 4))

#----------------------------------------------------------------------------
# Gradient routing: D's features and the head get gradient, the teacher targets do not.

@pytest.mark.parametrize('spectral_norm', [False, True])
def test_gradients_reach_features_and_head_only(spectral_norm):
    head = KDHead(in_features=6, out_features=4, hidden=8, spectral_norm=spectral_norm)
    feat_real = torch.randn(3, 6, requires_grad=True)
    feat_fake = torch.randn(3, 6, requires_grad=True)
    teacher_real = torch.randn(3, 4)
    teacher_fake = torch.randn(3, 4)
    text = torch.randn(5, 4)
    s_real, s_fake = head(feat_real), head(feat_fake)
    loss = agkd.agkd_loss(teacher_real, teacher_fake, s_real, s_fake) + cgkd.cgkd_loss(teacher_real, s_real, text) \
        + cgkd.cgkd_loss(teacher_fake, s_fake, text)
    loss.backward()
    assert feat_real.grad.abs().sum() > 0 and feat_fake.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    assert teacher_real.grad is None and teacher_fake.grad is None

#----------------------------------------------------------------------------
# KD head.

def test_head_equalized_matches_hand_formula():
    head = KDHead(in_features=5, out_features=3, hidden=4)
    assert head.fc0.weight.shape == (4, 5) and head.fc1.weight.shape == (3, 4)
    with torch.no_grad():
        head.fc0.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
        head.fc1.bias.copy_(torch.tensor([1.0, 2.0, 3.0]))
    x = torch.randn(2, 5, dtype=torch.float64)
    w0, b0 = head.fc0.weight.detach().double().numpy(), head.fc0.bias.detach().double().numpy()
    w1, b1 = head.fc1.weight.detach().double().numpy(), head.fc1.bias.detach().double().numpy()
    hidden = x.numpy() @ (w0 / math.sqrt(5)).T + b0     # No activation between the layers.
    expected = hidden @ (w1 / math.sqrt(4)).T + b1
    assert head(x).detach().double().numpy() == pytest.approx(expected, rel=1e-5, abs=1e-5)

def test_head_default_width_and_init():
    head = KDHead(in_features=64, out_features=16)
    assert head.fc0.weight.shape == (1024, 64)
    assert abs(float(head.fc0.weight.detach().std()) - 1) < 0.05  # N(0, 1) storage, scaled at run time.

def test_head_spectral_norm_unit_sigma():
    head = KDHead(in_features=7, out_features=3, hidden=6, spectral_norm=True)
    head.train()
    x = torch.randn(4, 7)
    for _ in range(60):  # One power iteration per call, as in BigGAN.
        head(x)
    w = head.fc0.weight.detach().double().numpy()
    sigma = np.linalg.svd(w, compute_uv=False)[0]
    w_sn = head.fc0.normalized_weight().detach().double().numpy()
    assert w_sn == pytest.approx(w / sigma, rel=1e-3, abs=1e-5)

def test_head_pickles_and_rejects_bad_shapes():
    for spectral_norm in [False, True]:
        head = KDHead(in_features=5, out_features=3, hidden=4, spectral_norm=spectral_norm).eval()
        clone = pickle.loads(pickle.dumps(head)).eval()
        x = torch.randn(2, 5)
        assert torch.equal(head(x), clone(x))
    with pytest.raises(ValueError, match='in_features'):
        KDHead(in_features=0, out_features=3)
    with pytest.raises(ValueError, match=r'\[N, 5\]'):
        KDHead(in_features=5, out_features=3, hidden=4)(torch.randn(2, 6))

#----------------------------------------------------------------------------
