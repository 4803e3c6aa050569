"""The Python API for notebooks: `evalkit.evaluate` takes `evalkit run`'s flags and returns tidy DataFrames;
`evalkit.compare` and `evalkit.tax_table` results turn into DataFrames and show themselves in Jupyter.

The model is a real OpenAI-compatible HTTP server on 127.0.0.1 (support.openai_server) answering POPE's toy
questions; every expected number is read from the run folder's own files or known from the answers."""

from __future__ import annotations

import json
import math

import pytest
from support.cli import run_cli
from support.runs import pope_items, pope_rows, write_run

import evalkit
from evalkit.types import UserError


def always_yes(body):
    return "Yes"


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key-not-secret")


def notebook_run(server, out, **extra):
    return evalkit.evaluate(
        "openai:candidate",
        ["pope"],
        data="toy",
        limit=6,
        base_url=server.base_url,
        concurrency=2,
        max_retries=1,
        timeout=5.0,
        output=out,
        progress=False,
        **extra,
    )


def test_evaluate_returns_tidy_metrics_and_sample_rows(tmp_path, openai_server, key):
    server = openai_server(responder=always_yes)
    result = notebook_run(server, tmp_path / "run")
    stored = json.loads((tmp_path / "run" / "metrics.json").read_text())["pope"]

    frame = result.metrics
    assert list(frame.columns) == ["task", "metric", "value", "ci_low", "ci_high", "n", "headline"]
    assert len(frame) == len(stored["metrics"]) and set(frame["task"]) == {"pope"}
    for _, row in frame.iterrows():
        m = stored["metrics"][row["metric"]]
        for col in ("value", "ci_low", "ci_high"):
            missing = m[col] is None or (isinstance(m[col], float) and math.isnan(m[col]))
            assert (row[col] is None or math.isnan(row[col])) if missing else row[col] == m[col]
        assert row["headline"] == (row["metric"] == stored["headline"])
    # every answer is "Yes": the pooled yes-ratio is 100 percent
    yes = frame[frame["metric"].str.startswith("yes_ratio")]
    assert len(yes) and (yes["value"] == 100.0).all()

    samples = result.samples("pope")
    lines = (tmp_path / "run" / "samples" / "pope.jsonl").read_text().splitlines()
    assert list(samples["id"]) == [json.loads(line)["id"] for line in lines] and len(samples) == 6
    assert set(samples["response"]) == {"Yes"}

    text = repr(result)
    assert text.splitlines()[0].startswith("evalkit run ") and "openai:candidate" in text
    assert len(text.splitlines()) <= 16
    html = result._repr_html_()
    assert html.count("<tr") == len(frame) + 1 and "f1_mean" in html

    # the same settings given to `evalkit run` are the same run: it resumes, asking the model nothing
    asked = server.count
    proc = run_cli(
        "run", "--model", "openai:candidate", "--tasks", "pope", "--data", "toy", "--limit", "6",
        "--base-url", server.base_url, "--concurrency", "2", "--max-retries", "1", "--timeout", "5",
        "--output", str(tmp_path / "run"), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert server.count == asked
    assert json.loads(proc.stdout)["metrics"]["pope"]["metrics"] == stored["metrics"]


def test_a_wrong_keyword_names_the_close_match():
    with pytest.raises(
        UserError, match="unknown setting 'batchsize' for evalkit.evaluate; did you mean batch_size"
    ):
        evalkit.evaluate("toy", "pope", batchsize=4)
    with pytest.raises(UserError, match="unknown setting 'json'"):  # it only formats the command's output
        evalkit.evaluate("toy", "pope", json=True)
    with pytest.raises(UserError, match="missing --tasks"):
        evalkit.evaluate("toy")
    with pytest.raises(UserError, match="evalkit.evaluate: limit must be an integer or None, got '5'"):
        evalkit.evaluate("toy", "pope", limit="5")
    with pytest.raises(UserError, match="trust_remote_code must be True or False"):
        evalkit.evaluate("toy", "pope", trust_remote_code="yes")


def test_dry_run_is_a_frame_of_judge_calls(tmp_path):
    plan = evalkit.evaluate(
        str(tmp_path / "never-opened"), "mt_bench", limit=2, dry_run=True, judge="openai:gpt-4o"
    )
    assert list(plan["task"]) == ["mt_bench"] and list(plan["calls"]) == [4]
    assert list(plan["judge"]) == ["openai:gpt-4o"]


def test_evaluate_reads_a_config_file_and_keywords_override_it(tmp_path):
    config = tmp_path / "mt.yaml"
    config.write_text("model: x\ntasks: [mt_bench]\nlimit: 5\ndry_run: true\n")
    assert list(evalkit.evaluate(config=config)["calls"]) == [10]
    assert list(evalkit.evaluate(config=config, limit=1)["calls"]) == [2]


def test_compare_and_tax_results_are_frames(tmp_path):
    items = pope_items(300)
    right = [sid for sid, *_, c in items if c]
    base = write_run(tmp_path / "base", "pope", pope_rows(items))
    new = write_run(tmp_path / "dpo", "pope", pope_rows(items, frozenset(right[:30])))

    comparison = evalkit.compare(base, new, fail_on=["pope.f1_mean < -1.0"], n_resamples=200)
    frame = comparison.to_frame()
    (m,) = comparison.metrics
    (row,) = frame.to_dict("records")
    assert (row["task"], row["metric"]) == ("pope", "f1_mean")
    assert (row["diff"], row["ci_low"], row["ci_high"], row["failed"]) == (
        m.diff,
        m.ci_low,
        m.ci_high,
        m.failed,
    )
    assert m.diff < 0 and repr(comparison).startswith(f"evalkit compare {new} against {base}")
    assert "<table" in comparison._repr_html_()
    with pytest.raises(UserError, match="did you mean n_resamples"):
        evalkit.compare(base, new, resamples=200)

    table = evalkit.tax_table(base, {"dpo": new}, n_resamples=200)
    frame = table.to_frame()
    assert len(frame) == len(table.rows) and set(frame["checkpoint"]) == {"dpo"}
    first = table.rows[0]
    assert frame.iloc[0]["diff"] == first.diff and frame.iloc[0]["metric"] == first.metric
    assert "alignment tax of dpo" in repr(table) and "<table" in table._repr_html_()


def test_open_run_reads_a_stored_run(tmp_path):
    run = write_run(tmp_path / "base", "pope", pope_rows(pope_items(60)))
    result = evalkit.open_run(run)
    stored = json.loads((run / "metrics.json").read_text())["pope"]
    f1 = result.metrics.set_index("metric").loc["f1_mean"]
    assert (
        f1["value"] == stored["metrics"]["f1_mean"]["value"] and f1["n"] == stored["metrics"]["f1_mean"]["n"]
    )
    assert len(result.samples("pope")) == 60


def test_without_pandas_a_frame_is_a_one_line_error(tmp_path):
    """pandas blocked the way Python blocks a missing module: the result still opens, its DataFrame is a
    `MissingDependency` naming pandas and the pip command."""
    import subprocess
    import sys

    run = write_run(tmp_path / "base", "pope", pope_rows(pope_items(30)))
    code = (
        "import sys; sys.modules['pandas'] = None\n"
        "import evalkit\n"
        "from evalkit.util.dependencies import MissingDependency\n"
        f"result = evalkit.open_run({str(run)!r})\n"
        "try:\n"
        "    result.metrics\n"
        "except MissingDependency as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    assert "pandas" in line and "-m pip install" in line
