"""Metric formulas against independent references: closed forms, naive loops, hand-computed values."""

import numpy as np
import pytest
import torch

from metrics import frechet_inception_distance, inception_score, kernel_inception_distance
from metrics import metric_utils, perceptual_path_length, precision_recall

#----------------------------------------------------------------------------
# Feature statistics.


def test_feature_stats_mean_cov_match_numpy():
    x = np.random.RandomState(0).randn(50, 6).astype(np.float32) * 3 + 1
    stats = metric_utils.FeatureStats(capture_all=True, capture_mean_cov=True, max_items=37)
    for batch in np.array_split(x, 7):
        stats.append(batch)
    assert stats.num_items == 37 and stats.is_full()
    mean, cov = stats.get_mean_cov()
    np.testing.assert_allclose(mean, x[:37].astype(np.float64).mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(cov, np.cov(x[:37].astype(np.float64), rowvar=False, bias=True), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(stats.get_all(), x[:37])


def test_feature_stats_save_load_roundtrip(tmp_path):
    stats = metric_utils.FeatureStats(capture_mean_cov=True)
    stats.append(np.random.RandomState(1).randn(10, 3))
    stats.save(tmp_path / 'stats.pkl')
    loaded = metric_utils.FeatureStats.load(tmp_path / 'stats.pkl')
    for a, b in zip(stats.get_mean_cov(), loaded.get_mean_cov()):
        np.testing.assert_array_equal(a, b)
    assert [p.name for p in tmp_path.iterdir()] == ['stats.pkl']  # No temporary file left behind.

#----------------------------------------------------------------------------
# FID.


def test_fid_diagonal_closed_form():
    rng = np.random.RandomState(2)
    mu1, mu2 = rng.randn(5), rng.randn(5)
    s1, s2 = rng.uniform(0.1, 3, size=5), rng.uniform(0.1, 3, size=5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    got = frechet_inception_distance.fid_from_mean_cov(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got == pytest.approx(expected, rel=1e-10)


def test_fid_full_covariance_matches_symmetric_form():
    # Tr((S1 S2)^1/2) = Tr((S1^1/2 S2 S1^1/2)^1/2): the right side only needs symmetric eigendecompositions.
    rng = np.random.RandomState(3)
    a, b = rng.randn(6, 6), rng.randn(6, 6)
    s1, s2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    mu1, mu2 = rng.randn(6), rng.randn(6)
    def sqrt_psd(m):
        w, v = np.linalg.eigh(m)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    r1 = sqrt_psd(s1)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(sqrt_psd(r1 @ s2 @ r1))
    assert frechet_inception_distance.fid_from_mean_cov(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    assert frechet_inception_distance.fid_from_mean_cov(mu1, s1, mu1, s1) == pytest.approx(0, abs=1e-8)


def test_fid_from_gaussian_samples():
    # Many samples of two known diagonal Gaussians: the FID of their statistics nears the closed form.
    rng = np.random.RandomState(4)
    mu1, mu2 = np.array([0.0, 1.0, -1.0]), np.array([0.5, 1.0, 0.0])
    sd1, sd2 = np.array([1.0, 2.0, 0.5]), np.array([1.5, 1.0, 0.5])
    stats1 = metric_utils.FeatureStats(capture_mean_cov=True)
    stats2 = metric_utils.FeatureStats(capture_mean_cov=True)
    stats1.append(rng.randn(200000, 3) * sd1 + mu1)
    stats2.append(rng.randn(200000, 3) * sd2 + mu2)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(sd1 ** 2 + sd2 ** 2 - 2 * sd1 * sd2)
    got = frechet_inception_distance.fid_from_mean_cov(*stats1.get_mean_cov(), *stats2.get_mean_cov())
    assert got == pytest.approx(expected, abs=0.03)


def test_fid_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match='mismatched'):
        frechet_inception_distance.fid_from_mean_cov(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))

#----------------------------------------------------------------------------
# KID.


def _naive_mmd2(x, y):
    d = x.shape[1]
    k = lambda a, b: (float(np.dot(a, b)) / d + 1) ** 3
    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_equals_naive_unbiased_mmd():
    # With equal set sizes and subsets as large as the sets, every subset is a permutation of the full sets.
    rng = np.random.RandomState(5)
    real, gen = rng.randn(12, 4), rng.randn(12, 4) * 1.3 + 0.4
    got = kernel_inception_distance.kid_from_features(real, gen, num_subsets=3, max_subset_size=1000)
    assert got == pytest.approx(_naive_mmd2(gen, real), rel=1e-10)


def test_kid_subsets_capped_and_drawn_as_documented():
    rng = np.random.RandomState(6)
    real, gen = rng.randn(15, 3), rng.randn(9, 3) + 0.3
    got = kernel_inception_distance.kid_from_features(real, gen, num_subsets=4, max_subset_size=6, seed=7)
    draw = np.random.RandomState(7)
    expected = []
    for _ in range(4):
        x = gen[draw.choice(9, 6, replace=False)]
        y = real[draw.choice(15, 6, replace=False)]
        expected.append(_naive_mmd2(x, y))
    assert got == pytest.approx(np.mean(expected), rel=1e-10)


def test_kid_near_zero_for_one_distribution_and_large_for_a_shift():
    rng = np.random.RandomState(8)
    real, other = rng.randn(300, 8), rng.randn(300, 8)
    same = kernel_inception_distance.kid_from_features(real, other, num_subsets=5, max_subset_size=300)
    shifted = kernel_inception_distance.kid_from_features(real, other + 1, num_subsets=5, max_subset_size=300)
    assert abs(same) < 0.1 and shifted > 2

#----------------------------------------------------------------------------
# Precision / recall.


def _naive_pr(real, gen, k):
    def coverage(manifold, probes):
        dist = np.sqrt(((manifold[:, None] - manifold[None]) ** 2).sum(-1))
        radii = np.sort(dist, axis=1)[:, k]  # Index 0 is the point itself.
        hits = [any(np.sqrt(((p - q) ** 2).sum()) <= r for q, r in zip(manifold, radii)) for p in probes]
        return float(np.mean(hits))
    return coverage(real, gen), coverage(gen, real)


def test_pr_hand_computed_1d():
    # k = 1 radii -- reals: 1, 1, 1, 1, 4, 4; generated: 6, 6, 2.5, 2.5.
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0], [10.0], [14.0]])
    gen = torch.tensor([[0.5], [6.5], [20.0], [17.5]])
    precision, recall = precision_recall.precision_recall_from_features(real, gen, nhood_size=1)
    assert precision == pytest.approx(3 / 4)  # 20 lies 6 from 14, outside its radius 4.
    assert recall == pytest.approx(5 / 6)  # 14 lies 3.5 from 17.5 (radius 2.5) and 7.5 from 6.5 (radius 6).


@pytest.mark.parametrize('row_batch, col_batch', [(10000, 10000), (7, 5)])
def test_pr_matches_naive_knn(row_batch, col_batch):
    rng = np.random.RandomState(9)
    real = rng.randn(40, 5).astype(np.float32)
    gen = (rng.randn(33, 5) * 1.4 + 0.5).astype(np.float32)
    got = precision_recall.precision_recall_from_features(torch.from_numpy(real), torch.from_numpy(gen), nhood_size=3,
        row_batch_size=row_batch, col_batch_size=col_batch)
    assert got == pytest.approx(_naive_pr(real.astype(np.float64), gen.astype(np.float64), k=3))


def test_pr_needs_enough_points():
    with pytest.raises(ValueError, match='nhood_size'):
        precision_recall.precision_recall_from_features(torch.zeros(3, 2), torch.zeros(5, 2), nhood_size=3)

#----------------------------------------------------------------------------
# Inception Score.


def test_is_hand_computed():
    k = 4
    one_hot = np.tile(np.eye(k), (5, 1))  # Each split of 4 holds every class once: IS = k.
    assert inception_score.is_from_probs(one_hot, num_splits=5) == pytest.approx((k, 0))
    uniform = np.full([20, k], 1 / k)  # No information: IS = 1.
    assert inception_score.is_from_probs(uniform, num_splits=5) == pytest.approx((1, 0))


def test_is_matches_numpy_loop():
    probs = np.random.RandomState(10).dirichlet(np.full(6, 0.3), size=53)
    scores = []
    for i in range(10):  # Consecutive splits with boundaries floor(i * N / 10).
        part = probs[i * 53 // 10 : (i + 1) * 53 // 10]
        p_y = part.mean(axis=0)
        kl = [sum(p[j] * np.log(p[j] / p_y[j]) for j in range(6) if p[j] > 0) for p in part]
        scores.append(np.exp(np.mean(kl)))
    mean, std = inception_score.is_from_probs(probs, num_splits=10)
    assert (mean, std) == pytest.approx((np.mean(scores), np.std(scores)), rel=1e-10)

#----------------------------------------------------------------------------
# PPL outlier filter.


def test_ppl_filtered_mean_drops_outer_percentiles():
    rng = np.random.RandomState(11)
    dist = rng.exponential(size=301)
    dist[[3, 77]] = [1e6, 1e7]  # Singular paths.
    s = np.sort(dist)
    n = len(s)
    lo, hi = s[int(np.floor(0.01 * (n - 1)))], s[int(np.ceil(0.99 * (n - 1)))]
    expected = np.mean([d for d in dist if lo <= d <= hi])
    assert perceptual_path_length.filtered_mean(dist) == pytest.approx(expected, rel=1e-12)
    assert perceptual_path_length.filtered_mean(dist) < 10

#----------------------------------------------------------------------------
