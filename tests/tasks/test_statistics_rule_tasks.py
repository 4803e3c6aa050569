"""`statistics(rows)` of the rule-scored tasks (pope, amber, objhal, mmbench) on realistic scored rows from
their toy data: point values equal `aggregate`'s, every reported metric is exposed, unit keys are stable."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from support.scored import TOY_OPTIONS, scored_rows

from evalkit.registry import get_task
from evalkit.stats import Statistic


@pytest.fixture(scope="module", params=sorted(TOY_OPTIONS))
def case(request):
    limit = {"amber": 300, "mmbench": 200}.get(request.param)
    return request.param, scored_rows(request.param, limit=limit)


def point(stat: Statistic) -> float:
    return float(stat.stat(np.ones((1, len(stat.units))))[0])


def same(a, b) -> bool:
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)):
        return (a is None or math.isnan(a)) and (b is None or math.isnan(b))
    return a == pytest.approx(b, rel=1e-12, abs=1e-12)


def test_statistics_expose_every_aggregate_metric_with_equal_points(case):
    name, rows = case
    task = get_task(name)
    metrics = task.aggregate(rows)
    stats = task.statistics(rows)
    assert set(stats) == set(metrics)
    assert task.headline in stats
    for metric, stat in stats.items():
        assert same(point(stat), metrics[metric]["value"]), metric
        assert stat.n == metrics[metric]["n"], metric
        if metrics[metric]["ci_low"] is not None:  # interval metrics: aggregate's interval is the bootstrap's
            est = stat.estimate()
            assert (est.ci_low, est.ci_high) == (metrics[metric]["ci_low"], metrics[metric]["ci_high"])


def test_unit_keys_are_stable_under_shuffling(case):
    name, rows = case
    task = get_task(name)
    stats = task.statistics(rows)
    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    again = task.statistics(shuffled)
    assert set(again) == set(stats)
    for metric, stat in stats.items():
        assert set(again[metric].units) == set(stat.units), metric
        assert len(set(stat.units)) == len(stat.units)
        assert same(point(again[metric]), point(stat)), metric
        # the same weight per unit key gives the same value, whatever the row order
        rng = np.random.default_rng(3)
        w = rng.integers(0, 3, size=(4, len(stat.units))).astype(float)
        col = {u: i for i, u in enumerate(stat.units)}
        w2 = w[:, [col[u] for u in again[metric].units]]
        np.testing.assert_allclose(again[metric].stat(w2), stat.stat(w), rtol=1e-9, equal_nan=True)


def test_units_are_keyed_by_cluster_not_position(case):
    name, rows = case
    stats = get_task(name).statistics(rows)
    clusters = {("cluster", r["cluster"]) for r in rows}
    for metric, stat in stats.items():
        assert set(stat.units) <= clusters, metric


def test_pope_statistic_matches_hand_counts():
    rows = scored_rows("pope")
    random_rows = [r for r in rows if r["meta"]["split"] == "random"]
    tp = sum(r["parsed"] == "yes" and r["target"] == "yes" for r in random_rows)
    fp = sum(r["parsed"] == "yes" and r["target"] == "no" for r in random_rows)
    fn = sum(r["parsed"] == "no" and r["target"] == "yes" for r in random_rows)
    stats = get_task("pope").statistics(rows)
    assert point(stats["random/f1"]) == pytest.approx(100 * 2 * tp / (2 * tp + fp + fn))
    # weight 0 on every image but one: the metric of that image's questions alone
    stat = stats["random/acc"]
    image = stat.units[0][1]
    mine = [r for r in random_rows if r["cluster"] == image]
    w = np.zeros((1, len(stat.units)))
    w[0, 0] = 1
    assert stat.stat(w)[0] == pytest.approx(100 * np.mean([r["parsed"] == r["target"] for r in mine]))
