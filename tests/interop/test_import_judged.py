"""`evalkit import` of official judged outputs reproduces the published numbers with no judge call, and
`rescore` re-parses the stored judge outputs to the same numbers."""

import json

import pytest
from support.cli import run_cli


@pytest.mark.parametrize(("runs", "total", "per_run"), [(1, 36.1, [36.1]), (3, 36.3, [36.1, 36.5, 36.3])])
def test_mmvet_llava13b_from_the_official_grades(shared, tmp_path, runs, total, per_run):
    base = shared / "mm_vet/llava_eval_zip"
    out = tmp_path / "run"
    proc = run_cli(
        "import",
        "--task",
        "mmvet",
        "--answers",
        str(base / "answers/llava-v1.5-13b.jsonl"),
        "--judgments",
        str(base / f"results/llava-v1.5-13b_gpt-4-grade-{runs}runs.json"),
        "--output",
        str(out),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)["metrics"]["mmvet"]
    assert metrics["metrics"]["total"]["value"] == total
    assert [metrics["metrics"][f"run{i + 1}/total"]["value"] for i in range(runs)] == per_run
    assert metrics["n_samples"] == 218 and metrics["n_errors"] == 0
    row = json.loads((out / "samples/mmvet.jsonl").read_text().splitlines()[0])
    assert len(row["judge"]["outputs"]) == runs and row["judge_scores"] == row["judge"]["official_scores"]

    rescored = run_cli("rescore", str(out), "--json")
    assert rescored.returncode == 0, rescored.stderr
    assert json.loads(rescored.stdout)["metrics"]["mmvet"]["metrics"] == metrics["metrics"]


def test_mmvet_import_needs_the_grade_file(shared, tmp_path):
    base = shared / "mm_vet/llava_eval_zip"
    proc = run_cli(
        "import",
        "--task",
        "mmvet",
        "--answers",
        str(base / "answers/llava-v1.5-13b.jsonl"),
        "--output",
        str(tmp_path / "run"),
    )
    assert proc.returncode == 2 and "--judgments" in proc.stderr and "Traceback" not in proc.stderr
