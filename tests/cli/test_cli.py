"""Errors a user can fix print one clear line (no traceback) and exit 2."""

import json
import os
import subprocess
import sys

import pytest
from support.cli import EVALKIT, run_cli


def assert_user_error(proc, fragment):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error:"), proc.stderr
    assert fragment in " ".join(proc.stderr.split())


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "--model", "toy", "--tasks", "nosuchtask", "--data", "toy"], "unknown task 'nosuchtask'"),
        (["run", "--model", "toy", "--tasks", "pope"], "pope needs data"),
        (["run", "--model", "toy", "--tasks", "pope", "--data", "coco"], "only built-in data set is 'toy'"),
        (["run", "--model", "toy", "--tasks", "pope", "--data-dir", "/nonexistent"], "is not a folder"),
        (["run", "--model", "toy", "--tasks", "pope", "--data", "toy", "--limit", "0"], "--limit"),
        (["rescore", "/nonexistent-run"], "not a run folder"),
        (
            ["run", "--model", "toy", "--tasks", "pope", "--data", "toy", "--task-option", "x=1"],
            "TASK.KEY=VALUE",
        ),
        (
            ["run", "--model", "toy", "--tasks", "pope", "--data", "toy", "--task-option", "mmvet.k=1"],
            "named TASK.KEY for a task of this run",
        ),
        (
            ["run", "--model", "toy", "--tasks", "pope", "--data", "toy", "--task-option", "pope.k=1"],
            "pope.k: pope takes no option",
        ),
        (
            ["run", "--model", "toy", "--tasks", "amber", "--data", "toy", "--task-option", "amber.suffix=x"],
            "amber.suffix=x: expected one of none, short",
        ),
        (
            ["import", "--task", "pope", "--answers", "/nonexistent.jsonl", "--output", "/tmp/x"],
            "file not found",
        ),
    ],
)
def test_user_errors_are_one_line(args, fragment):
    assert_user_error(run_cli(*args), fragment)


def test_bad_model_path_is_a_user_error(tmp_path):
    proc = run_cli(
        "run",
        "--model",
        str(tmp_path / "no-such-checkpoint"),
        "--tasks",
        "pope",
        "--data",
        "toy",
        "--limit",
        "3",
        "--output",
        str(tmp_path / "run"),
    )
    assert_user_error(proc, "no-such-checkpoint")


def test_tasks_lists_pope_with_its_data_needs():
    proc = run_cli("tasks", "--json")
    assert proc.returncode == 0
    tasks = {t["name"]: t for t in json.loads(proc.stdout)}
    assert (
        tasks["pope"]["headline"] == "f1_mean"
        and "coco_pope_{random,popular,adversarial}.json" in tasks["pope"]["data"]
    )
    assert tasks["pope"]["options"] == {}
    assert tasks["mmbench"]["options"]["mmbench.split"]["choices"] == ["dev", "test"]
    assert set(tasks["alpaca_eval"]["options"]) == {"alpaca_eval.reference", "alpaca_eval.df_gamed"}


def test_tasks_show_each_group_and_how_metrics_read():
    """Groups, directions and units as the benchmarks define them: POPE's F1 is a percentage, its yes-ratio
    a bias with no better side; MMHal scores on 0–6 and reports the hallucination rate as a fraction; an
    MT-Bench score is on 1–10; MMBench's per-method pass tallies are counts."""
    proc = run_cli("tasks", "--json")
    assert proc.returncode == 0
    tasks = {t["name"]: t for t in json.loads(proc.stdout)}
    groups = {name: t["group"] for name, t in tasks.items()}
    assert groups["pope"] == groups["mmhal"] == "hallucination" and groups["mmbench"] == "visual knowledge"
    assert groups["mt_bench"] == groups["alpaca_eval"] == "language instruction-following"
    pope, mmhal = tasks["pope"]["metrics"], tasks["mmhal"]["metrics"]
    assert pope["f1_mean"] == {"direction": 1, "unit": "%", "kind": "rate"}
    assert pope["*/yes_ratio"]["direction"] == 0
    assert mmhal["score"]["unit"] == mmhal["type/*"]["unit"] == "score 0–6"
    assert mmhal["hallucination_rate"] == {"direction": -1, "unit": "fraction", "kind": "rate"}
    assert tasks["mt_bench"]["other_metrics"] == {"direction": 1, "unit": "score 1–10", "kind": "rate"}
    assert tasks["mmbench"]["metrics"]["passes/*"] == {"direction": 0, "unit": "count", "kind": "count"}

    env = {**os.environ, "COLUMNS": "1000"}  # wide enough that no cell wraps
    table = subprocess.run([*EVALKIT, "tasks"], capture_output=True, text=True, env=env, timeout=300).stdout
    assert "group: hallucination" in table and "hallucination_rate ↓ fraction" in table
    assert "*/yes_ratio · %" in table and "other metrics ↑ score 1–10" in table


def test_help_explains_every_command():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for command in ("run", "import", "rescore", "tasks"):
        assert command in proc.stdout


def test_dry_run_prints_judge_calls_without_loading_a_model(tmp_path):
    """MT-Bench's data is bundled: 80 questions, one judge call per turn; the model path is never opened."""
    proc = run_cli(
        "run", "--model", str(tmp_path / "not-a-checkpoint"), "--tasks", "mt_bench", "--dry-run", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)["mt_bench"]
    assert plan["judge"] == "openai:gpt-4" and plan["calls"] == 160 and plan["cached"] == 0
    assert plan["est_completion_tokens"] == 160 * 2048
    # gpt-4 list price: $30 / $60 per million prompt / completion tokens
    assert plan["est_cost_usd"] == pytest.approx((plan["est_prompt_tokens"] * 30 + 160 * 2048 * 60) / 1e6)


def test_budget_refuses_before_generating(tmp_path):
    # the model and the judge are a live endpoint (the run probes it) that gets no chat request: the
    # budget is checked before any generation
    from support.openai_server import FakeOpenAIServer

    with FakeOpenAIServer() as server:
        proc = run_cli(
            "run",
            "--model",
            "openai:candidate",
            "--base-url",
            server.base_url,
            "--judge-base-url",
            server.base_url,
            "--tasks",
            "mt_bench",
            "--limit",
            "2",
            "--judge-budget-usd",
            "0.01",
            "--output",
            str(tmp_path / "run"),
        )
        assert server.count == 0
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "error: estimated judge cost" in proc.stderr and "exceeds --judge-budget-usd 0.01" in proc.stderr
    assert not (tmp_path / "run").exists()  # nothing generated, no run folder


def test_importing_the_cli_loads_no_heavy_library():
    """`evalkit --help` and the light commands start at once: the command modules import torch,
    transformers and the NLP libraries inside the commands that need them."""
    code = (
        "import sys, evalkit.cli;"
        "bad = [m for m in ('torch', 'transformers', 'peft', 'spacy', 'nltk') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
