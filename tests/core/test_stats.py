"""Bootstrap intervals checked against a second method (closed-form standard errors)."""

import numpy as np
import pytest

from evalkit.stats import bootstrap, cluster_index, mean_estimate, resample_weights


def test_weights_are_bootstrap_draws():
    w = resample_weights(50, 200, seed=3)
    assert w.shape == (200, 50)
    assert (w.sum(axis=1) == 50).all()  # each resample draws n units
    assert w.mean() == pytest.approx(1.0)
    assert np.array_equal(w, resample_weights(50, 200, seed=3))
    assert not np.array_equal(w, resample_weights(50, 200, seed=4))


def test_mean_interval_matches_the_normal_approximation():
    rng = np.random.default_rng(0)
    x = rng.binomial(1, 0.3, size=2000).astype(float)
    est = mean_estimate(x, scale=100)
    assert est.value == pytest.approx(100 * x.mean())
    se = 100 * x.std(ddof=1) / np.sqrt(len(x))
    assert est.ci_low == pytest.approx(est.value - 1.96 * se, abs=0.25 * se)
    assert est.ci_high == pytest.approx(est.value + 1.96 * se, abs=0.25 * se)


def test_clustered_interval_widens_for_correlated_clusters():
    # 100 clusters of 10 identical values: the effective sample size is 100, not 1000
    rng = np.random.default_rng(1)
    per_cluster = rng.binomial(1, 0.5, size=100).astype(float)
    x = np.repeat(per_cluster, 10)
    clusters = np.repeat(np.arange(100), 10)
    plain = mean_estimate(x)
    clustered = mean_estimate(x, clusters=list(clusters))
    se_clustered = per_cluster.std(ddof=1) / np.sqrt(100)
    width = clustered.ci_high - clustered.ci_low
    assert width == pytest.approx(2 * 1.96 * se_clustered, rel=0.2)
    assert width > 2.5 * (plain.ci_high - plain.ci_low)


def test_cluster_index_first_seen_order_and_singletons():
    idx, k = cluster_index(["b", "a", "b", None, None])
    assert list(idx) == [0, 1, 0, 2, 3] and k == 4


def test_degenerate_inputs():
    est = bootstrap(lambda w: w @ np.ones(1), 1)
    assert est.value == 1 and np.isnan(est.ci_low)
    est = mean_estimate([1.0, 1.0, 1.0])
    assert (est.value, est.ci_low, est.ci_high) == (1.0, 1.0, 1.0)
