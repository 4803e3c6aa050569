"""Broken judged results look broken: with a judge whose answers never parse, or that answers every call
with an error, `evalkit run` counts the rows as failed (the `failed` column, `--max-failure-rate`), a
headline with no value over n=0 fails the run (exit 1) with one line naming the task, and the first
message of each error type is shown with its count. The judge is a real OpenAI-compatible server on
127.0.0.1; every expected count comes from the responder's rule and the --limit, not from evalkit."""

import json
import os
import subprocess
import sys

import pytest
from support.openai_server import last_user_text

from evalkit.judges.settings import JudgeSettings
from evalkit.models.base import BackendOptions
from evalkit.models.openai_backend import OpenAIBackend
from evalkit.runner import RunFailed, evaluate

EVALKIT = [sys.executable, "-m", "evalkit"]


pytestmark = pytest.mark.usefixtures("fast_retries")


def run(server, tmp_path, tasks, name="run", **kw):
    backend = OpenAIBackend("candidate", BackendOptions(base_url=server.base_url, max_retries=1, timeout_s=5))
    judges = JudgeSettings(
        model="openai:judge", base_url=server.base_url, timeout_s=5.0, cache_path=tmp_path / f"{name}.sqlite"
    )
    try:
        return evaluate(
            backend, tasks, data="toy", output=tmp_path / name, judges=judges, progress=False, **kw
        )
    finally:
        backend.close()


def header(run_dir):
    return json.loads((run_dir / "run.json").read_text())


def test_mt_bench_without_any_rating_fails_on_its_nan_headline(tmp_path, openai_server):
    """Every rating unparseable: MT-Bench drops them all (official), so its score is NaN over n=0."""

    def reply(body):
        return "an answer" if body["model"] == "candidate" else "I cannot rate this."

    server = openai_server(responder=reply)
    with pytest.raises(RunFailed) as exc:
        run(server, tmp_path, ["mt_bench"], limit=3, max_failure_rate=1.0)
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith("mt_bench: score has no value (NaN over n=0)")
    assert "failure rate" not in message  # --max-failure-rate 1.0: only the headline fails the run
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())["mt_bench"]
    assert (summary["n_unparsed"], summary["n_failed"], summary["n_errors"]) == (3, 3, 0)
    assert summary["metrics"]["dropped"]["value"] == 3 * 2  # two turns per question, all dropped
    assert header(tmp_path / "run")["status"] == "failed"


def test_unparsed_judgments_count_toward_the_failure_rate(tmp_path, openai_server):
    """LLaVA-Bench keeps (-1, -1) pairs in the means (official) but the rows count as failed: one of
    four questions unreviewable is 25%, failing at --max-failure-rate 0.2, passing at 0.3."""
    bad = {}

    def reply(body):
        if body["model"] == "candidate":
            return f"answer to: {last_user_text(body)[:40]}"
        text = last_user_text(body)
        bad.setdefault("question", text.split("[Question]")[1][:60])
        return "no scores here" if bad["question"] in text else "8 6\nA fine answer."

    server = openai_server(responder=reply)
    with pytest.raises(RunFailed) as exc:
        run(server, tmp_path, ["llava_bench"], limit=4, max_failure_rate=0.2)
    assert "llava_bench: failure rate 25.0% above --max-failure-rate 20.0%" in str(exc.value)
    assert "(0 with errors + 1 with unparseable judgments of 4 samples)" in str(exc.value)
    passed = run(server, tmp_path, ["llava_bench"], limit=4, max_failure_rate=0.3)
    summary = passed.metrics["llava_bench"]
    assert (summary["n_unparsed"], summary["n_failed"], summary["failure_rate"]) == (1, 1, 0.25)
    assert summary["metrics"]["judge_fallbacks"]["value"] == 3  # the official count: 3 runs of 1 row
    assert header(passed.run_dir)["status"] == "finished"


def test_judge_errors_are_named_by_type_with_their_first_message(tmp_path, openai_server):
    def reply(body):
        return "an answer"

    def judge_refuses(index, body):
        return "400" if body["model"] != "candidate" else None

    server = openai_server(responder=reply, faults=judge_refuses)
    with pytest.raises(RunFailed) as exc:
        run(server, tmp_path, ["mmvet"], limit=3)
    args = ["--model", "openai:candidate", "--base-url", server.base_url, "--tasks", "mmvet", "--data"]
    args += ["toy", "--limit", "3", "--judge", "openai:judge", "--judge-base-url", server.base_url]
    args += ["--output", str(tmp_path / "cli")]
    proc = subprocess.run([*EVALKIT, "run", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "failed rows: mmvet judge_error ×3: openai:judge: " in proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1 and "errors: mmvet judge_error ×3: " in proc.stderr
    message = str(exc.value)
    assert "\n" not in message
    assert "mmvet: failure rate 100.0% above --max-failure-rate 2.0% (3 with errors of 3 samples)" in message
    assert "errors: mmvet judge_error ×3: openai:judge: " in message and "injected 400" in message
    summary = exc.value.result.metrics["mmvet"]
    assert (
        summary["errors_by_type"] == {"judge_error": 3}
        and "injected 400" in summary["error_examples"]["judge_error"]
    )


def test_cli_shows_failed_rows_and_exits_1_with_one_line(tmp_path, openai_server):
    """`evalkit run` with an unusable judge: the table shows every row failed, then one error line."""

    def reply(body):
        return "an answer" if body["model"] == "candidate" else "I will not review this."

    server = openai_server(responder=reply)
    args = ["--model", "openai:candidate", "--base-url", server.base_url, "--tasks", "llava_bench"]
    args += ["--data", "toy", "--limit", "3", "--judge", "openai:judge"]
    args += ["--judge-base-url", server.base_url, "--output", str(tmp_path / "run")]
    env = {**os.environ, "COLUMNS": "80"}
    proc = subprocess.run([*EVALKIT, "run", *args], capture_output=True, text=True, timeout=120, env=env)
    # the same run, resumed (nothing asked again), allowed to fail every row, with every metric
    again = [*args, "--max-failure-rate", "1", "--all-metrics"]
    full = subprocess.run([*EVALKIT, "run", *again], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: llava_bench: failure rate 100.0%")
    assert "3/3 (3 unparsed)" in proc.stdout  # the failed column, whatever the layout
    assert "judge_fallbacks" not in proc.stdout  # headline only without --all-metrics
    assert full.returncode == 0, full.stderr
    assert "3/3 (3 unparsed)" in full.stdout and "judge_fallbacks" in full.stdout
