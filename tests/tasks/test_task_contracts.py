"""Contracts every registered task keeps, parametrised over the registry (`evalkit.registry.TASKS`), so a new
task gets them without an edit here: on the rows of a real run (support/contract_runs.py),
- statistics equal aggregate: every metric `aggregate` reports (but counts and the numbers listed in
  NOT_STATISTICS, which carry no interval) is a `statistics` entry, every entry's point value, interval
  and n are aggregate's, and its units are keys (the same weight per unit gives the same value whatever
  the row order);
- rescore equals run: `evalkit rescore` of the run folder writes the metrics the run stored;
- import round trip: the run's answers (and judgments), written in the task's official files by its own
  `write_answers` and imported with `evalkit import`, score every sample and every metric as the run did
  (skipped, with the reason, for a task that declares no official importer: `Task.import_answers`).
A task that cannot provide what a contract needs fails it, unless a table below lists it with the reason
(official rounding; numbers that are no statistic; what an import records differently)."""

from __future__ import annotations

import json
import math
import random
import warnings
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np
import pytest
from support.contract_runs import play, run_task
from support.openai_server import FakeOpenAIServer
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.interop.importer import import_answers
from evalkit.registry import TASKS, get_task
from evalkit.store import RunStore
from evalkit.task import Task

#: tasks whose `aggregate` prints the official rounding (each judge run's value to 1 decimal, then their mean
#: to 1 decimal: MM-Vet, LLaVA-Bench), so a statistic's unrounded point value is within 0.1 of the metric
PRINTED_TO_1_DECIMAL = {"mmvet", "llava_bench", "llava_bench_coco"}

#: metrics `aggregate` reports without an interval that are no statistic, besides counts (`kind == "count"`):
#: task → name patterns. Each is a number the official script prints beside the headline, not an estimate
#: over samples: a judge run's own value, the spread over runs, a mean score before the ratio, a length, the
#: official standard error, or (AlpacaEval 2.0's LC) a fitted model's output
NOT_STATISTICS: dict[str, tuple[str, ...]] = {
    "mmvet": ("run*/total", "std"),
    "llava_bench": ("run*/relative", "model_score", "reference_score"),
    "llava_bench_coco": ("run*/relative", "model_score", "reference_score"),
    "alpaca_eval": ("avg_length", "discrete_win_rate", "standard_error", "length_controlled_win_rate"),
    "alpaca_eval_v1": ("avg_length", "discrete_win_rate", "standard_error"),
}

#: what an import records differently from the run it came from, by design: task → (per-sample fields that
#: differ, metrics the import leaves out, why); {"intervals"} instead: every metric's value and n agree, its
#: interval may not
IMPORT_DIFFERS: dict[str, tuple[set[str], set[str], str]] = {
    "mmvet": (set(), {"intervals"}, "an import reads no image per question, so it bootstraps over questions"),
    "alpaca_eval": (
        {"agrees_with_official"},
        {"length_controlled_win_rate"},
        "an import holds the official preference too, and computes LC only with the hub's instruction "
        "difficulties in --data-dir",
    ),
    "alpaca_eval_v1": ({"agrees_with_official"}, set(), "an import holds the official preference too"),
}


@pytest.fixture(scope="module")
def server():
    with FakeOpenAIServer(responder=play) as s:
        yield s


@pytest.fixture(scope="module", params=list(TASKS))
def run(request, server, tmp_path_factory):
    """(task, run folder, stored rows) of one finished run of each registered task."""
    task = get_task(request.param)
    root = tmp_path_factory.mktemp(f"contract-{task.name}")
    with pytest.MonkeyPatch.context() as mp:  # module scope: the autouse cache fixture is not set up yet
        mp.setenv("EVALKIT_CACHE", str(tmp_path_factory.getbasetemp() / "evalkit-cache"))
        mp.setenv("EVALKIT_JUDGE_CACHE", str(root / "judge_cache.sqlite"))
        result = run_task(task, server, root / "run", root / "judge_cache.sqlite")
    return task, result.run_dir, stored_rows(result.run_dir, task.name)


def stored_rows(run_dir, name) -> list[dict]:
    problems: list[str] = []
    rows = RunStore(run_dir).read_samples(name, problems)
    assert not problems, problems
    return rows


def point(stat) -> float:
    return float(stat.stat(np.ones((1, len(stat.units))))[0])


def same(a, b, tol=1e-9) -> bool:
    """Equal within `tol`, None and NaN both meaning 'no value'."""
    a = None if a is None or (isinstance(a, float) and math.isnan(a)) else a
    b = None if b is None or (isinstance(b, float) and math.isnan(b)) else b
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= tol)


def canonical(metrics: dict) -> str:
    return json.dumps(metrics, sort_keys=True)


def test_the_run_scored_every_sample(run):
    task, run_dir, rows = run
    metrics = json.loads((run_dir / "metrics.json").read_text())[task.name]
    assert rows and metrics["n_scored"] == len(rows) and metrics["headline_problem"] is None


def test_statistics_equal_aggregate(run):
    task, _, rows = run
    ok = [r for r in rows if r.get("error") is None]
    agg = task.aggregate(ok)
    stats = task.statistics(ok)
    assert task.headline in stats and set(stats) <= set(agg), set(stats) - set(agg)
    # every reported metric is exposed, but for counts and the listed numbers, which carry no interval
    listed = NOT_STATISTICS.get(task.name, ())
    left_out = {name for name in agg if name not in stats}
    assert all(agg[name]["ci_low"] is None for name in left_out), left_out
    unlisted = {
        n for n in left_out if task.metric(n).kind != "count" and not any(fnmatchcase(n, p) for p in listed)
    }
    assert not unlisted, f"{task.name} reports {sorted(unlisted)} but no statistic of them"
    tol = 0.1 + 1e-9 if task.name in PRINTED_TO_1_DECIMAL else 1e-9
    for name, stat in stats.items():
        m = agg[name]
        assert same(point(stat), m["value"], tol), (name, point(stat), m["value"])
        assert stat.n == m["n"], name
        if m["ci_low"] is not None:
            est = stat.estimate()
            assert same(est.ci_low, m["ci_low"]) and same(est.ci_high, m["ci_high"]), name


def test_statistics_units_are_keys_not_positions(run):
    """The same weight per unit gives the same value whatever the row order (compare pairs units by key)."""
    task, _, rows = run
    ok = [r for r in rows if r.get("error") is None]
    stats = task.statistics(ok)
    shuffled = ok[:]
    random.Random(7).shuffle(shuffled)
    again = task.statistics(shuffled)
    assert set(again) == set(stats)
    rng = np.random.default_rng(3)
    for name, stat in stats.items():
        assert len(set(stat.units)) == len(stat.units) and set(again[name].units) == set(stat.units), name
        w = rng.integers(0, 3, size=(4, len(stat.units))).astype(float)
        col = {u: i for i, u in enumerate(stat.units)}
        w2 = w[:, [col[u] for u in again[name].units]]
        np.testing.assert_allclose(
            again[name].stat(w2), stat.stat(w), rtol=1e-9, equal_nan=True, err_msg=name
        )


def test_rescore_equals_the_run(run):
    task, run_dir, _ = run
    stored = (run_dir / "metrics.json").read_text()
    result = CliRunner().invoke(app, ["rescore", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert canonical(json.loads((run_dir / "metrics.json").read_text())) == canonical(json.loads(stored))


def run_data_dir(rows) -> Path | None:
    """The toy data folder a run read, which an import reads again (`--data-dir`): Object HalBench's rows
    name its synonym list there, an image benchmark's images are in DATA_DIR/images/; None without images."""
    if "synonyms" in rows[0]["meta"]:
        return Path(rows[0]["meta"]["synonyms"]).parent
    return Path(rows[0]["images"][0]).parents[1] if rows[0].get("images") else None


def test_import_round_trip(run, tmp_path):
    task, run_dir, rows = run
    writes = type(task).write_answers is not Task.write_answers
    if not task.imports_official_files:  # the task declares no official answer files (e.g. MMBench, toy)
        assert not writes, f"{task.name} writes official files it cannot import"
        pytest.skip(f"{task.name} declares no official importer (Task.import_answers)")
    assert writes, f"{task.name} imports official files but declares no write_answers"
    files = task.write_answers(rows, tmp_path / "files")
    assert set(files) <= {"answers", "questions", "judgments"}, set(files)
    files["data_dir"] = run_data_dir(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = import_answers(task.name, output=tmp_path / "imported", **files)
    imported = {r["id"]: r for r in stored_rows(result.run_dir, task.name)}
    ok = [r for r in rows if r.get("error") is None]
    assert set(imported) == {r["id"] for r in ok}
    fields, metrics, _ = IMPORT_DIFFERS.get(task.name, (set(), set(), ""))
    differ = set()
    for row in ok:
        for field, value in task.score_row(row).items():
            if canonical({"v": imported[row["id"]][field]}) != canonical({"v": value}):
                differ.add(field)
    assert differ == fields, f"per-sample fields that differ: {sorted(differ)}"
    run_metrics = json.loads((run_dir / "metrics.json").read_text())[task.name]["metrics"]
    got = result.metrics[task.name]["metrics"]
    assert set(got) == set(run_metrics) - metrics, set(got) ^ (set(run_metrics) - metrics)
    for name, m in run_metrics.items():
        if "intervals" in metrics:
            assert same(got[name]["value"], m["value"]) and got[name]["n"] == m["n"], (name, got[name], m)
        elif name in got:
            assert canonical(got[name]) == canonical(m), (name, got[name], m)
