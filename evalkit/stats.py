"""Confidence intervals by bootstrap, plain or clustered.

A statistic is written once as a function of resampling *weights*: `stat(w)` receives a `(B, n_units)`
array whose row b says how many times each unit (a sample, or a cluster of samples such as all questions
about one image) was drawn in resample b, and returns B values. Count-based metrics (accuracy, F1, ...)
and means are then a matrix product, so 1,000 resamples of 9,000 samples take milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 1234


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% interval (percentile bootstrap) and the number of units behind it."""

    value: float
    ci_low: float
    ci_high: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n}


@lru_cache(maxsize=8)
def resample_weights(
    n_units: int, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED
) -> np.ndarray:
    """`(n_resamples, n_units)` draw counts of a bootstrap with replacement; deterministic for a seed.

    Cached and read-only: every metric of a run is resampled with the same draws."""
    rng = np.random.default_rng(seed)
    draws = (
        rng.integers(0, n_units, size=(n_resamples, n_units)) if n_units else np.zeros((n_resamples, 0), int)
    )
    flat = draws + (np.arange(n_resamples) * n_units)[:, None]
    weights = np.bincount(flat.ravel(), minlength=n_resamples * n_units).reshape(n_resamples, n_units)
    weights = weights.astype(float)
    weights.flags.writeable = False
    return weights


def bootstrap(
    stat: Callable[[np.ndarray], np.ndarray],
    n_units: int,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> Estimate:
    """Point estimate `stat(ones)` and the percentile interval of `stat` over bootstrap weights."""
    point = float(stat(np.ones((1, n_units)))[0])
    if n_units < 2:
        return Estimate(point, float("nan"), float("nan"), n_units)
    values = np.asarray(stat(resample_weights(n_units, n_resamples, seed)), dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return Estimate(point, float("nan"), float("nan"), n_units)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return Estimate(point, float(low), float(high), n_units)


def cluster_index(keys: Sequence[Hashable | None]) -> tuple[np.ndarray, int]:
    """Map each sample's cluster key to an index 0..K-1 (first-seen order); `None` is a cluster of its own."""
    index: dict[Hashable, int] = {}
    out = np.empty(len(keys), dtype=int)
    for i, key in enumerate(keys):
        k = ("__sample__", i) if key is None else key
        out[i] = index.setdefault(k, len(index))
    return out, len(index)


def per_cluster(values: np.ndarray, clusters: np.ndarray, n_clusters: int) -> np.ndarray:
    """Sum per-sample values (shape `(n,)` or `(n, k)`) into per-cluster totals `(n_clusters, ...)`."""
    values = np.asarray(values, dtype=float)
    out = np.zeros((n_clusters,) + values.shape[1:])
    np.add.at(out, clusters, values)
    return out


def mean_estimate(
    values: Sequence[float],
    clusters: Sequence[Hashable | None] | None = None,
    *,
    scale: float = 1.0,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Estimate:
    """Mean of `values` × `scale`, with a bootstrap interval resampling whole clusters when given."""
    x = np.asarray(values, dtype=float)
    idx, k = cluster_index(clusters if clusters is not None else [None] * len(x))
    sums = per_cluster(x, idx, k)
    counts = per_cluster(np.ones_like(x), idx, k)

    def stat(w: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return scale * (w @ sums) / (w @ counts)

    est = bootstrap(stat, k, n_resamples=n_resamples, seed=seed)
    return Estimate(est.value, est.ci_low, est.ci_high, len(x))


@dataclass(frozen=True)
class Statistic:
    """A metric as a function of bootstrap weights over units, kept so that two runs can be compared with
    the *same* resamples (a paired bootstrap over the units both runs share).

    `stat(w)` maps `(B, len(units))` weights to B values, as `bootstrap` expects; `units` are the unit keys
    in column order: a sample's cluster key (`row["cluster"]`) or, for a sample without one, its id, so
    that the same unit has the same key in every run of the task; `n` is the number of samples behind it."""

    stat: Callable[[np.ndarray], np.ndarray]
    units: tuple[Hashable, ...]
    n: int

    def estimate(self, *, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> Estimate:
        est = bootstrap(self.stat, len(self.units), n_resamples=n_resamples, seed=seed)
        return Estimate(est.value, est.ci_low, est.ci_high, self.n)


def unit_index(rows: Sequence[dict]) -> tuple[np.ndarray, tuple[Hashable, ...]]:
    """Each row's unit column and the unit keys (`Statistic.units`): rows sharing a cluster form one unit;
    a row without a cluster is a unit of its own, keyed by its id."""
    keys = [("cluster", r["cluster"]) if r.get("cluster") is not None else ("id", r["id"]) for r in rows]
    idx, k = cluster_index(keys)
    order: list[Hashable] = [None] * k
    for key, i in zip(keys, idx, strict=True):
        order[i] = key
    return idx, tuple(order)


@dataclass(frozen=True)
class PairedEstimate:
    """Run B − run A on one metric over the units both share: the two point values there, the
    difference with its percentile interval and a two-sided bootstrap p-value (H0: no difference)."""

    base: float
    new: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n_units: int


def paired_bootstrap(
    a: Statistic,
    b: Statistic,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> PairedEstimate:
    """Paired bootstrap of `b − a`: one weight matrix over the common units (sorted by key, so the result
    does not depend on row order) is applied to both statistics; units only in one run get weight 0.

    The p-value is `min(1, 2·(m + 1) / (B' + 1))`, where m counts the resampled differences on the far
    side of 0 (≤ 0 or ≥ 0, whichever is fewer) and B' the resamples with a defined difference."""
    col_a = {u: i for i, u in enumerate(a.units)}
    col_b = {u: i for i, u in enumerate(b.units)}
    common = sorted((u for u in col_a if u in col_b), key=repr)
    ia = np.array([col_a[u] for u in common], dtype=int)
    ib = np.array([col_b[u] for u in common], dtype=int)

    def spread(w: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray:
        out = np.zeros((w.shape[0], n))
        out[:, cols] = w
        return out

    ones = np.ones((1, len(common)))
    base = float(a.stat(spread(ones, ia, len(a.units)))[0])
    new = float(b.stat(spread(ones, ib, len(b.units)))[0])
    nan = float("nan")
    if len(common) < 2:
        return PairedEstimate(base, new, new - base, nan, nan, nan, len(common))
    w = resample_weights(len(common), n_resamples, seed)
    d = np.asarray(b.stat(spread(w, ib, len(b.units))), float) - np.asarray(
        a.stat(spread(w, ia, len(a.units))), float
    )
    d = d[~np.isnan(d)]
    if d.size == 0:
        return PairedEstimate(base, new, new - base, nan, nan, nan, len(common))
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(d, [alpha, 1.0 - alpha])
    far = min(int((d <= 0).sum()), int((d >= 0).sum()))
    p = min(1.0, 2.0 * (far + 1) / (d.size + 1))
    return PairedEstimate(base, new, new - base, float(low), float(high), p, len(common))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1); NaN stays NaN and is not
    counted in the family."""
    indexed = sorted(((p, i) for i, p in enumerate(p_values) if not math.isnan(p)), key=lambda t: t[0])
    m = len(indexed)
    out = [float("nan")] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def mean_statistic(values: Sequence[float], keys: Sequence[Hashable], *, scale: float = 1.0) -> Statistic:
    """`scale` × the mean of `values` as a `Statistic` over the units named by `keys` (one key per value;
    values sharing a key are resampled together)."""
    idx, k = cluster_index(keys)
    units: list[Hashable] = [None] * k
    for key, i in zip(keys, idx, strict=True):
        units[i] = key
    x = np.asarray(values, dtype=float)
    sums, counts = per_cluster(x, idx, k), per_cluster(np.ones_like(x), idx, k)

    def stat(w: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return scale * (w @ sums) / (w @ counts)

    return Statistic(stat, tuple(units), len(x))
