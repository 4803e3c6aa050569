"""`evalkit import` of official LLaVA-Bench reviews reproduces the published relative scores with no judge
call, and `rescore` re-parses the stored reviews to the same numbers."""

import json

import pytest
from support.cli import run_cli

from evalkit.registry import get_task
from evalkit.task import DataSpec
from evalkit.types import UserError

WILD = "llava_bench/in_the_wild_llava_eval_zip"
COCO = "llava_bench/coco"


def judgments(*paths):
    return [arg for p in paths for arg in ("--judgments", str(p))]


@pytest.mark.parametrize(
    ("runs", "relative", "per_run", "per_category"),
    [
        # what summarize_gpt_review.py prints for the first run
        ((1,), 72.8, [72.8], {"conv": 74.7, "detail": 52.6, "complex": 82.8}),
        # the published LLaVA-1.5-13B number: the mean of the three runs
        ((1, 2, 3), 72.5, [72.8, 72.7, 72.1], {"conv": 73.9, "detail": 51.6, "complex": 83.3}),
    ],
)
def test_llava13b_in_the_wild_from_the_official_reviews(
    shared, tmp_path, runs, relative, per_run, per_category
):
    base = shared / WILD
    out = tmp_path / "run"
    proc = run_cli(
        "import",
        "--task",
        "llava_bench",
        "--answers",
        str(base / "answers/llava-v1.5-13b.jsonl"),
        *judgments(*(base / f"reviews/llava-v1.5-13b-eval{i}.jsonl" for i in runs)),
        "--output",
        str(out),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)["metrics"]["llava_bench"]
    metrics = result["metrics"]
    assert result["headline"] == "relative" and result["n_samples"] == 60 and result["n_errors"] == 0
    head = metrics["relative"]
    assert head["value"] == relative and head["n"] == 60 and head["ci_low"] < relative < head["ci_high"]
    assert [metrics[f"run{i + 1}/relative"]["value"] for i in range(len(runs))] == per_run
    assert metrics["run1/relative"]["ci_low"] is None
    assert {c: metrics[f"cat/{c}"]["value"] for c in per_category} == per_category
    assert [metrics[f"cat/{c}"]["n"] for c in ("conv", "detail", "complex")] == [17, 15, 28]
    assert metrics["judge_fallbacks"]["value"] == 0.0

    row = json.loads((out / "samples/llava_bench.jsonl").read_text().splitlines()[0])
    assert len(row["judge"]["outputs"]) == len(runs) and row["judge"]["outputs"][0].startswith("8 10\n")
    assert row["judge_scores"] == row["judge"]["official_scores"]
    assert row["judge"]["fingerprint"]["model"] == "gpt-4-0314"
    assert row["meta"] == {"question_id": 0, "category": "conv"}

    rescored = run_cli("rescore", str(out), "--json")
    assert rescored.returncode == 0, rescored.stderr
    assert json.loads(rescored.stdout)["metrics"]["llava_bench"]["metrics"] == metrics


def test_import_needs_the_review_files(shared, tmp_path):
    proc = run_cli(
        "import",
        "--task",
        "llava_bench",
        "--answers",
        str(shared / WILD / "answers/llava-v1.5-13b.jsonl"),
        "--output",
        str(tmp_path / "run"),
    )
    assert proc.returncode == 2 and "--judgments" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_in_the_wild_reviews_are_refused_by_the_coco_task(shared, tmp_path):
    base = shared / WILD
    proc = run_cli(
        "import",
        "--task",
        "llava_bench_coco",
        "--answers",
        str(base / "answers/llava-v1.5-13b.jsonl"),
        *judgments(base / "reviews/llava-v1.5-13b-eval1.jsonl"),
        "--output",
        str(tmp_path / "run"),
    )
    assert proc.returncode == 2 and "--task llava_bench" in proc.stderr and "Traceback" not in proc.stderr


def test_coco_with_categories_from_the_questions_and_a_failed_review(shared, tmp_path):
    """No official COCO review files are in shared, so the reviews here are made up: run 1 scores every
    question (8, 6) but question 0's review "8, 6" fails the official parse and enters the means as
    (-1, -1); run 2 scores (9, 9) and records only the pair (no review text, no category)."""
    questions = [
        json.loads(line) for line in (shared / COCO / "qa90_questions.jsonl").read_text().splitlines()
    ]
    assert len(questions) == 90 and questions[0]["category"] == "conv"
    answers = tmp_path / "answers.jsonl"
    answers.write_text(
        "".join(json.dumps({"question_id": q["question_id"], "text": "ok"}) + "\n" for q in questions)
    )
    run1, run2 = tmp_path / "eval1.jsonl", tmp_path / "eval2.jsonl"
    run1.write_text(
        "".join(
            json.dumps(
                {
                    "question_id": q["question_id"],
                    "category": q["category"],
                    "content": "8, 6\nbad" if i == 0 else "8 6\nfine",
                    "tuple": [-1, -1] if i == 0 else [8, 6],
                }
            )
            + "\n"
            for i, q in enumerate(questions)
        )
    )
    run2.write_text(
        "".join(json.dumps({"question_id": q["question_id"], "tuple": [9, 9]}) + "\n" for q in questions)
    )
    out = tmp_path / "run"
    args = ["import", "--task", "llava_bench_coco", "--answers", str(answers)]
    # without --questions the categories come from the reviews, and run 2's carry none
    no_questions = run_cli(*args, *judgments(run2), "--output", str(tmp_path / "other"))
    assert no_questions.returncode == 2 and "--questions" in no_questions.stderr

    proc = run_cli(
        *args,
        *judgments(run1, run2),
        "--questions",
        str(shared / COCO / "qa90_questions.jsonl"),
        "--output",
        str(out),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)["metrics"]["llava_bench_coco"]["metrics"]
    # run 1: means 7.9 and 5.922 → 74.96 (75.0 printed); conv: 7.7 and 5.767 → 74.90, the others 75.0;
    # run 2: 100 everywhere. Dropping the failed review instead would give 75.0 for run 1 and conv.
    assert (metrics["run1/relative"]["value"], metrics["run2/relative"]["value"]) == (75.0, 100.0)
    assert metrics["relative"]["value"] == 87.5  # (74.96 + 100) / 2
    assert {c: metrics[f"cat/{c}"]["value"] for c in ("conv", "detail", "complex")} == {
        "conv": 87.4,  # (74.90 + 100) / 2 = 87.45 → 87.4
        "detail": 87.5,
        "complex": 87.5,
    }
    assert (metrics["model_score"]["value"], metrics["reference_score"]["value"]) == (74.6, 84.5)
    assert metrics["judge_fallbacks"]["value"] == 1.0
    rows = [json.loads(line) for line in (out / "samples/llava_bench_coco.jsonl").read_text().splitlines()]
    assert rows[0]["judge_scores"] == [[-1.0, -1.0], [9.0, 9.0]] and rows[0]["judge_fallbacks"] == 1
    assert rows[0]["cluster"] == questions[0]["image"] and len({r["cluster"] for r in rows}) == 30

    rescored = run_cli("rescore", str(out), "--json")
    assert rescored.returncode == 0, rescored.stderr
    assert json.loads(rescored.stdout)["metrics"]["llava_bench_coco"]["metrics"] == metrics


@pytest.mark.parametrize("name", ["llava_bench", "llava_bench_coco"])
def test_run_is_not_wired_yet(name):
    with pytest.raises(UserError, match="evalkit import --task"):
        get_task(name).load(DataSpec())
