"""`statistics(rows)` of the judged tasks (MM-Vet, LLaVA-Bench, MMHal, MT-Bench, AlpacaEval): on scored rows
imported from the official files (or built by hand where none are stored), every statistic's point value is
the metric `aggregate` reports (MM-Vet and LLaVA-Bench print it rounded to 1 decimal), its interval is
aggregate's interval, its units are stable keys (the same unit gets the same column value whatever the row
order), and the point values match numbers computed here from the files."""

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from evalkit.registry import get_task
from evalkit.scoring import make_row
from evalkit.stats import Statistic
from evalkit.tasks.mmvet.protocol import CAPABILITIES, official_round
from evalkit.types import Response

MMVET = "mm_vet/llava_eval_zip"
WILD = "llava_bench/in_the_wild_llava_eval_zip"
ALPACA = "alpaca_eval/results/alpaca-7b/weighted_alpaca_eval_gpt4_turbo"


def imported_rows(task, answers, judgments):
    """Stored rows as `evalkit import` writes them (through JSON, as they are read back)."""
    items, _ = task.import_answers(Path(answers), None, None, [Path(j) for j in judgments])
    rows = []
    for it in items:
        later = [Response(id=it.sample.id, text=t) for t in (it.responses or [])[1:]]
        response = Response(id=it.sample.id, text=it.response)
        row = make_row(task, it.sample, task.request(it.sample), response, it.judge, later)
        rows.append(json.loads(json.dumps(row)))
    return rows


def point(stat: Statistic) -> float:
    return float(stat.stat(np.ones((1, len(stat.units))))[0])


def same(a, b):
    """Equal to 1e-9, None and NaN both meaning 'no interval'."""
    a = None if a is None or (isinstance(a, float) and math.isnan(a)) else a
    b = None if b is None or (isinstance(b, float) and math.isnan(b)) else b
    return a is None and b is None or (a is not None and b is not None and abs(a - b) <= 1e-9)


def check(task, rows, printed=None) -> dict[str, Statistic]:
    """The statistics agree with `aggregate` and their units are keys, not positions. `printed` is how the
    task prints a statistic's point value (MM-Vet and LLaVA-Bench: rounded to 1 decimal)."""
    agg = task.aggregate(rows)
    stats = task.statistics(rows)
    assert stats and set(stats) <= set(agg)
    # every metric reported with an interval is a statistic
    assert {k for k, m in agg.items() if m["ci_low"] is not None} <= set(stats)
    for name, s in stats.items():
        m = agg[name]
        value = point(s) if printed is None else printed(point(s))
        assert same(value, m["value"]), (name, value, m["value"])
        est = s.estimate()
        assert same(est.ci_low, m["ci_low"]) and same(est.ci_high, m["ci_high"]), name
        assert est.n == m["n"] and len(set(s.units)) == len(s.units), name

    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    again = task.statistics(shuffled)
    assert set(again) == set(stats)
    rng = np.random.default_rng(0)
    for name, s in stats.items():
        t = again[name]
        assert set(t.units) == set(s.units), name
        # the same weight per unit key gives the same value whatever the column order
        w = rng.integers(0, 3, size=(5, len(s.units))).astype(float)
        col = {u: i for i, u in enumerate(s.units)}
        w_t = w[:, [col[u] for u in t.units]]
        np.testing.assert_allclose(t.stat(w_t), s.stat(w), rtol=1e-12, atol=1e-12, err_msg=name)
    return stats


def assert_directions_name_metrics(task, metrics):
    named = {k for k in task.metric_info if not any(c in k for c in "*?[")}
    assert named <= set(metrics) | {"length_controlled_win_rate", "lc_standard_error"}


# ------------------------------------------------------------------------------------------------ MM-Vet


def test_mmvet_official_three_run_grades(shared):
    task = get_task("mmvet")
    base = shared / MMVET
    grades = base / "results/llava-v1.5-13b_gpt-4-grade-3runs.json"
    rows = imported_rows(task, base / "answers/llava-v1.5-13b.jsonl", [grades])
    # images from LLaVA's MM-Vet question file, capabilities assigned by hand (mm-vet.json is not stored)
    images = {}
    for line in (base / "llava-mm-vet.jsonl").read_text().splitlines():
        q = json.loads(line)
        images[f"v1_{q['question_id']}"] = q["image"]
    for i, r in enumerate(rows):
        r["cluster"] = images[r["id"]]
        r["meta"]["capability"] = [CAPABILITIES[i % 6]] + ([CAPABILITIES[(i + 2) % 6]] if i % 3 == 0 else [])
    assert len({r["cluster"] for r in rows}) < len(rows)  # some images carry several questions

    stats = check(task, rows, printed=lambda x: official_round(x, 1))
    scores = {k: v["score"] for k, v in json.loads(grades.read_text()).items()}
    total = 100 * np.mean([np.mean(s) for s in scores.values()])
    assert point(stats["total"]) == pytest.approx(total, abs=1e-9)
    assert round(total, 1) == 36.3  # LLaVA-1.5-13B's 3-run grade file
    rec = [k for i, k in enumerate(scores) if CAPABILITIES[1] in rows[i]["meta"]["capability"]]
    assert point(stats[f"cap/{CAPABILITIES[1]}"]) == pytest.approx(
        100 * np.mean([np.mean(scores[k]) for k in rec]), abs=1e-9
    )
    assert stats["total"].units[0] == ("cluster", images["v1_0"])
    assert len(stats["total"].units) == len(set(images[k] for k in scores))
    assert any(name.startswith("capint/") for name in stats)
    assert not any(name.startswith(("run", "std", "judge_")) for name in stats)
    assert_directions_name_metrics(task, task.aggregate(rows))


# ------------------------------------------------------------------------------------------ LLaVA-Bench


def official_pairs(base, run):
    lines = (base / f"reviews/llava-v1.5-13b-eval{run}.jsonl").read_text().splitlines()
    return {json.loads(x)["question_id"]: json.loads(x)["tuple"] for x in lines}


def test_llava_bench_official_reviews_three_runs(shared):
    task = get_task("llava_bench")
    base = shared / WILD
    reviews = [base / f"reviews/llava-v1.5-13b-eval{i}.jsonl" for i in (1, 2, 3)]
    rows = imported_rows(task, base / "answers/llava-v1.5-13b.jsonl", reviews)
    stats = check(task, rows, printed=lambda x: round(x, 1))
    runs = [official_pairs(base, i) for i in (1, 2, 3)]
    relative = np.mean([100 * sum(p[1] for p in r.values()) / sum(p[0] for p in r.values()) for r in runs])
    assert point(stats["relative"]) == pytest.approx(relative, abs=1e-9)
    assert round(relative, 1) == 72.5  # published LLaVA-1.5-13B
    assert set(stats) == {"relative", "cat/conv", "cat/detail", "cat/complex"}
    assert stats["relative"].units == tuple(("id", str(q)) for q in range(60))

    # the same rows with images: units are images, each resampled with all its questions
    for r in rows:
        r["cluster"] = f"img{int(r['id']) // 3}"
    stats = check(task, rows, printed=lambda x: round(x, 1))
    assert stats["relative"].units == tuple(("cluster", f"img{i}") for i in range(20))
    assert point(stats["relative"]) == pytest.approx(relative, abs=1e-9)
    assert_directions_name_metrics(task, task.aggregate(rows))


# ------------------------------------------------------------------------------------------------ MMHal


def mmhal_review(rating):
    return (
        f"Explanation: checked against the image.\nRating: {rating}" if rating is not None else "No rating."
    )


def test_mmhal_imported_and_two_run_rows(shared, tmp_path):
    task = get_task("mmhal")
    records = json.loads((shared / "mmhal_bench/mmhal-bench_answer_template.json").read_text())
    ratings = [[(i * 5) % 7, (i * 3 + 1) % 7] for i in range(len(records))]
    ratings[4][0] = None  # no rating: scores 0 under the official rule
    for i, r in enumerate(records):
        r["model_answer"] = f"answer {i}"
    answers = tmp_path / "answered.json"
    answers.write_text(json.dumps(records))
    merged = tmp_path / "merged.json"
    merged.write_text(
        json.dumps([{**r, "gpt4_review": mmhal_review(ratings[i][0])} for i, r in enumerate(records)])
    )
    rows = imported_rows(task, answers, [merged])
    stats = check(task, rows)
    first = [s[0] or 0 for s in ratings]
    assert point(stats["score"]) == pytest.approx(np.mean(first), abs=1e-9)
    assert point(stats["hallucination_rate"]) == pytest.approx(np.mean([s < 3 for s in first]), abs=1e-9)
    assert stats["score"].units == tuple(("id", str(i)) for i in range(96))
    assert set(stats) == {"score", "hallucination_rate", "informativeness"} | {
        f"type/{r['question_type']}" for r in records
    }

    # two judge runs per row (the run path's record): each record's value is its mean over the runs
    for i, r in enumerate(rows):
        r["judge"]["outputs"] = [mmhal_review(s) for s in ratings[i]]
        r.update(task.score_row(r))
    stats = check(task, rows)
    both = [[s or 0 for s in pair] for pair in ratings]
    assert point(stats["score"]) == pytest.approx(np.mean(both), abs=1e-9)
    assert point(stats["hallucination_rate"]) == pytest.approx(np.mean(np.array(both) < 3), abs=1e-9)
    info = [[(s - 3 if s >= 3 else s) / 3 for s in pair] for pair in both]
    assert point(stats["informativeness"]) == pytest.approx(100 * np.mean(info), abs=1e-9)
    assert task.metric("hallucination_rate").direction == -1
    assert_directions_name_metrics(task, task.aggregate(rows))


# --------------------------------------------------------------------------------------------- MT-Bench


def test_mt_bench_rows_with_two_judge_runs_and_dropped_judgments(shared):
    task = get_task("mt_bench")
    questions = [json.loads(x) for x in (shared / "mt_bench/question.jsonl").read_text().splitlines()]
    rows, valid = [], []
    for q in questions:
        qid = q["question_id"]
        scores = [(qid * (k + 3)) % 10 + 1 for k in range(4)]  # (run, turn): (0,1) (0,2) (1,1) (1,2)
        if qid % 9 == 0:
            scores[1] = None  # no rating: dropped
        outputs = [f"Rating: [[{s}]]" if s is not None else "I cannot rate this." for s in scores]
        row = {
            "id": str(qid),
            "cluster": None,
            "meta": {"question_id": qid, "category": q["category"]},
            "judge": {"outputs": outputs, "turns": [1, 2, 1, 2], "runs": [0, 0, 1, 1]},
        }
        row.update(task.score_row(row))
        rows.append(row)
        valid += [
            (qid, q["category"], t, s) for t, s in zip([1, 2, 1, 2], scores, strict=True) if s is not None
        ]
    stats = check(task, rows)
    assert point(stats["score"]) == pytest.approx(np.mean([v[3] for v in valid]), abs=1e-9)
    assert point(stats["turn2"]) == pytest.approx(np.mean([v[3] for v in valid if v[2] == 2]), abs=1e-9)
    coding = [v[3] for v in valid if v[1] == "coding"]
    assert point(stats["category/coding"]) == pytest.approx(np.mean(coding), abs=1e-9)
    assert stats["score"].units == tuple(("id", str(q["question_id"])) for q in questions)
    assert "dropped" not in stats and task.aggregate(rows)["dropped"]["value"] == 9.0
    assert_directions_name_metrics(task, task.aggregate(rows))


# ------------------------------------------------------------------------------------------- AlpacaEval


def test_alpaca_eval_official_annotations(shared):
    task = get_task("alpaca_eval")
    base = shared / ALPACA
    rows = imported_rows(task, base.parent / "model_outputs.json", [base / "annotations.json"])
    stats = check(task, rows)
    assert set(stats) == {"win_rate"}  # the LC win rate needs a GLM refit per resample: not a statistic
    assert round(point(stats["win_rate"]), 4) == 2.5915  # the published AlpacaEval 2.0 win rate
    assert stats["win_rate"].units == tuple(("id", str(i)) for i in range(805))

    # judgements without a valid preference are left out of the units, as the win rate drops them
    for r in rows[:5]:
        r["preference"] = None
    stats = check(task, rows)
    prefs = np.array([r["preference"] for r in rows[5:]], dtype=float)
    assert point(stats["win_rate"]) == pytest.approx(100 * np.mean(prefs - 1), abs=1e-9)
    assert stats["win_rate"].units == tuple(("id", str(i)) for i in range(5, 805))
    assert task.metric("length_controlled_win_rate").direction == 1
    assert_directions_name_metrics(task, task.aggregate(rows))
