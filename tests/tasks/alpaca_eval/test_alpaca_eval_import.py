"""`evalkit import` of official AlpacaEval annotations reproduces the published leaderboard numbers with no
judge call, and `rescore` re-derives every preference from the stored judge records to the same numbers."""

import csv
import json
import shutil

import numpy as np
import pytest
from support.cli import run_cli

from evalkit.registry import get_task
from evalkit.task import DataSpec
from evalkit.tasks.alpaca_eval import data as files
from evalkit.tasks.alpaca_eval import length_controlled as lc
from evalkit.types import UserError

AE = "alpaca_eval"
V2, V1 = "weighted_alpaca_eval_gpt4_turbo", "alpaca_eval_gpt4"
WEIGHTS = "src/alpaca_eval/metrics/weights/weighted_alpaca_eval_gpt4_turbo/length_controlled_v1/"
LEADERBOARDS = {
    "alpaca_eval": "src/alpaca_eval/leaderboards/data_AlpacaEval_2/" + V2 + "_leaderboard.csv",
    "alpaca_eval_v1": "src/alpaca_eval/leaderboards/data_AlpacaEval/" + V1 + "_leaderboard.csv",
}
COUNTS = ("n_wins", "n_wins_base", "n_draws", "n_total", "avg_length")


def import_run(shared, out, task, model, annotator, *extra):
    results = shared / AE / "results" / model
    return run_cli(
        "import",
        "--task",
        task,
        "--answers",
        str(results / "model_outputs.json"),
        "--judgments",
        str(results / annotator / "annotations.json"),
        "--output",
        str(out),
        "--json",
        *extra,
    )


def published(shared, task, model):
    with open(shared / AE / LEADERBOARDS[task], newline="") as f:
        return next(row for row in csv.DictReader(f) if row[""] == model)


def read_rows(out, task):
    return [json.loads(line) for line in (out / f"samples/{task}.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    ("task", "model", "annotator", "shown", "source"),
    [
        ("alpaca_eval", "alpaca-7b", V2, (2.5915, 0.4871), "judge_output"),
        ("alpaca_eval_v1", "alpaca-7b", V1, (26.4596, 1.5357), "official_preference"),
        ("alpaca_eval_v1", "gpt4", V1, (95.2795, 0.7163), "official_preference"),
    ],
)
def test_official_annotations_reproduce_the_leaderboard(
    shared, tmp_path, task, model, annotator, shown, source
):
    out = tmp_path / "run"
    proc = import_run(shared, out, task, model, annotator)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)["metrics"][task]
    metrics = summary["metrics"]
    assert summary["headline"] == "win_rate" and summary["n_samples"] == 805 and summary["n_errors"] == 0
    win = metrics["win_rate"]
    assert (round(win["value"], 4), round(metrics["standard_error"]["value"], 4)) == shown
    assert win["ci_low"] < win["value"] < win["ci_high"] and win["n"] == 805  # bootstrap over instructions
    row = published(shared, task, model)
    assert [metrics[k]["value"] for k in COUNTS] == [int(row[k]) for k in COUNTS]
    assert metrics["discrete_win_rate"]["value"] == pytest.approx(float(row["discrete_win_rate"]), rel=1e-12)
    assert all(metrics[k]["ci_low"] is None for k in (*COUNTS, "standard_error", "n_invalid"))
    assert metrics["n_invalid"]["value"] == 0 and metrics["n_preference_mismatch"]["value"] == 0
    assert "length_controlled_win_rate" not in metrics

    rows = read_rows(out, task)
    assert {r["preference_source"] for r in rows} == {source, "identical_outputs"}
    assert metrics["n_from_official_preference"]["value"] == sum(
        r["preference_source"] == "official_preference" for r in rows
    )
    judge = rows[0]["judge"]
    assert judge["fingerprint"]["annotator"] == annotator and "switched" in judge
    assert (len(judge["outputs"]) == 1) == (task == "alpaca_eval")  # 2.0 keeps the raw logprobs

    rescored = run_cli("rescore", str(out), "--json")
    assert rescored.returncode == 0, rescored.stderr
    assert json.loads(rescored.stdout)["metrics"][task]["metrics"] == metrics

    info = json.loads((out / "run.json").read_text())["tasks"][task]["data"]
    # the user's files are inputs (the run's identity); the benchmark files read (none here) its data
    assert set(info["inputs"]) == {"model_outputs.json", "annotations.json"} and info["files"] == {}
    assert "partial" not in info  # all 805 instructions
    if task == "alpaca_eval":  # LC needs the hub-only difficulties: left out, and the note says so
        assert not info["length_controlled"]["computed"]
        assert "instruction_difficulty.csv" in info["length_controlled"]["note"]


def test_length_controlled_win_rate_from_the_published_weights(shared, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(shared / AE / WEIGHTS / lc.WEIGHTS_FILE, data)
    # a stand-in for the hub-only file (the real one is not stored here): one difficulty per instruction
    difficulty = np.random.default_rng(0).normal(size=805)
    (data / "instruction_difficulty.csv").write_text(
        "index,instruction_difficulty\n" + "".join(f"{i},{float(d)!r}\n" for i, d in enumerate(difficulty))
    )
    out = tmp_path / "run"
    proc = import_run(shared, out, "alpaca_eval", "alpaca-7b", V2, "--data-dir", str(data))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)["metrics"]["alpaca_eval"]["metrics"]
    weights = files.read_glm_weights(data / lc.WEIGHTS_FILE)
    value, se = lc.lc_from_weights(weights["alpaca-7b"], weights[lc.BASELINE], difficulty)
    assert metrics["length_controlled_win_rate"]["value"] == pytest.approx(value, rel=1e-12)
    assert metrics["lc_standard_error"]["value"] == pytest.approx(se, rel=1e-12)
    assert round(metrics["win_rate"]["value"], 4) == 2.5915
    info = json.loads((out / "run.json").read_text())["tasks"]["alpaca_eval"]["data"]
    assert info["length_controlled"]["computed"] and "instruction_difficulty.csv" in info["files"]

    rescored = run_cli("rescore", str(out), "--json")
    assert json.loads(rescored.stdout)["metrics"]["alpaca_eval"]["metrics"] == metrics

    # the reference against itself needs no difficulties: 50 exactly, as published
    (data / "instruction_difficulty.csv").unlink()
    proc = import_run(
        shared, tmp_path / "base", "alpaca_eval", "gpt4_1106_preview", V2, "--data-dir", str(data)
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)["metrics"]["alpaca_eval"]["metrics"]
    assert metrics["length_controlled_win_rate"]["value"] == 50.0
    assert metrics["win_rate"]["value"] == 50.0 and metrics["n_draws"]["value"] == 805


def test_import_needs_the_annotations_file(shared, tmp_path):
    proc = run_cli(
        "import",
        "--task",
        "alpaca_eval",
        "--answers",
        str(shared / AE / "results/alpaca-7b/model_outputs.json"),
        "--output",
        str(tmp_path / "run"),
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--judgments" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("task", "model", "annotator", "answers", "message"),
    [
        ("alpaca_eval", "alpaca-7b", V1, "alpaca-7b", "--task alpaca_eval_v1"),
        ("alpaca_eval_v1", "alpaca-7b", V2, "alpaca-7b", "--task alpaca_eval"),
        ("alpaca_eval_v1", "alpaca-7b", V1, "gpt4", "outputs differ from the ones judged"),
    ],
)
def test_mismatched_files_are_one_line_errors(shared, tmp_path, task, model, annotator, answers, message):
    results = shared / AE / "results"
    proc = run_cli(
        "import",
        "--task",
        task,
        "--answers",
        str(results / answers / "model_outputs.json"),
        "--judgments",
        str(results / model / annotator / "annotations.json"),
        "--output",
        str(tmp_path / "run"),
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["alpaca_eval", "alpaca_eval_v1"])
def test_run_without_reference_outputs_names_them_and_the_import_alternative(name):
    with pytest.raises(UserError, match="model_outputs.json.*evalkit import"):
        get_task(name).load(DataSpec())
