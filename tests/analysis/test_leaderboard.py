"""`evalkit leaderboard`: columns split on judge / task version, sort, filter, every format read back."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from support.runs import JUDGE, pope_items, pope_rows, write_run
from support.scored import scored_rows
from typer.testing import CliRunner

from evalkit.analysis.leaderboard import build_leaderboard, render
from evalkit.cli import app
from evalkit.types import UserError

OTHER_JUDGE = {**JUDGE, "model": "gpt-4o-mini"}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Three POPE runs (one of task version 2) and three Object HalBench runs under two judges."""
    root = tmp_path_factory.mktemp("results")
    items = pope_items(300)
    right = [sid for sid, *_, c in items if c]
    write_run(root / "llava-base", "pope", pope_rows(items))
    write_run(root / "llava-dpo", "pope", pope_rows(items, frozenset(right[:30])))
    write_run(root / "qwen-v2", "pope", pope_rows(items, frozenset(right[:10])), version="2")
    rows = scored_rows("objhal")
    write_run(root / "llava-base-objhal", "objhal", rows, judge=JUDGE)
    write_run(root / "qwen-objhal", "objhal", rows[: len(rows) // 2], judge=JUDGE)
    write_run(root / "llava-dpo-objhal", "objhal", rows, judge=OTHER_JUDGE)
    (root / "unfinished").mkdir()
    (root / "unfinished" / "run.json").write_text(json.dumps({"run_id": "unfinished", "tasks": {}}))
    return root


def metric(root: Path, run: str, task: str, name: str) -> dict:
    return json.loads((root / run / "metrics.json").read_text())[task]["metrics"][name]


def test_columns_split_on_task_version_and_judge(results):
    board = build_leaderboard([results])
    labels = [c.label for c in board.columns]
    assert labels == [
        "pope.f1_mean [v1]",
        "pope.f1_mean [v2]",
        f"objhal.CHAIRs_refine [judge {board.columns[2].judge}]",
        f"objhal.CHAIRs_refine [judge {board.columns[3].judge}]",
    ]
    assert board.columns[2].judge.startswith("gpt-3.5-turbo-0613 #")
    assert board.columns[3].judge.startswith("gpt-4o-mini #")
    cells = {e.run: e.cells for e in board.entries}
    assert set(cells["qwen-v2"]) == {"pope.f1_mean [v2]"}
    assert set(cells["llava-dpo-objhal"]) == {labels[3]}
    assert set(cells["qwen-objhal"]) == set(cells["llava-base-objhal"]) == {labels[2]}
    assert cells["llava-dpo"]["pope.f1_mean [v1]"] == metric(results, "llava-dpo", "pope", "f1_mean")
    assert (
        "unfinished" not in cells
        and "unfinished: not finished (status unknown), left out" in board.warnings[0]
    )


def test_one_variant_keeps_the_plain_label(results):
    board = build_leaderboard([results / "llava-base", results / "llava-dpo"])
    assert [c.label for c in board.columns] == ["pope.f1_mean"]


def test_sort_and_filter(results):
    board = build_leaderboard([results], tasks=["pope"], sort="pope.f1_mean [v1]")
    assert [e.run for e in board.entries] == [
        "llava-base",
        "llava-dpo",
        "qwen-v2",
    ]  # higher first, missing last
    label = [c.label for c in build_leaderboard([results]).columns][2]
    board = build_leaderboard([results], tasks=["objhal"], sort=label)
    values = [
        metric(results, r, "objhal", "CHAIRs_refine")["value"] for r in ("llava-base-objhal", "qwen-objhal")
    ]
    want = (
        ["llava-base-objhal", "qwen-objhal"]
        if values[0] <= values[1]
        else ["qwen-objhal", "llava-base-objhal"]
    )
    assert [e.run for e in board.entries][:2] == want  # CHAIR: lower is better, first
    board = build_leaderboard([results], filters=["DPO"])
    assert {e.run for e in board.entries} == {"llava-dpo", "llava-dpo-objhal"}
    with pytest.raises(UserError, match="split into 2 columns"):
        build_leaderboard([results], sort="pope.f1_mean")
    with pytest.raises(UserError, match="no such column"):
        build_leaderboard([results], sort="pope.acc")


def test_every_format_is_written_and_read_back(results, tmp_path):
    board = build_leaderboard([results], tasks=["pope"], sort="pope.f1_mean [v1]")
    base = metric(results, "llava-base", "pope", "f1_mean")
    label = "pope.f1_mean [v1]"

    rows = list(csv.DictReader(io.StringIO(render(board, "csv"))))
    assert [r["run"] for r in rows] == ["llava-base", "llava-dpo", "qwen-v2"]
    assert float(rows[0][label]) == base["value"]
    assert float(rows[0][f"{label} ci_low"]) == base["ci_low"] and rows[2][label] == ""

    data = json.loads(render(board, "json"))
    assert data["columns"][0]["label"] == label and data["columns"][0]["task_version"] == "1"
    assert data["runs"][0]["values"][label] == base

    md = render(board, "md").splitlines()
    assert md[0] == "| run | model | pope.f1_mean [v1] | pope.f1_mean [v2] |"
    assert md[2].startswith(f"| llava-base | llava-base | {base['value']:.2f} [{base['ci_low']:.2f}, ")

    page = render(board, "html")
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http" not in page
    assert f"{base['value']:.2f}" in page and "pope.f1_mean [v2]" in page


def test_cli_writes_files_and_reports_usage_errors(results, tmp_path):
    runner = CliRunner()
    for suffix in ("md", "csv", "html", "json"):
        out = tmp_path / f"board.{suffix}"
        res = runner.invoke(app, ["leaderboard", str(results), "--output", str(out), "--tasks", "pope"])
        assert res.exit_code == 0, res.output
        assert "llava-dpo" in out.read_text()
    json.loads((tmp_path / "board.json").read_text())
    res = runner.invoke(app, ["leaderboard", str(results), "--format", "json", "--filter", "qwen"])
    assert res.exit_code == 0 and {r["run"] for r in json.loads(res.stdout)["runs"]} == {
        "qwen-v2",
        "qwen-objhal",
    }
    res = runner.invoke(app, ["leaderboard", str(results), "--format", "xls"])
    assert res.exit_code == 2 and "expected one of md, csv, html, json" in res.stderr
    res = runner.invoke(app, ["leaderboard", str(tmp_path / "missing")])
    assert res.exit_code == 2
    res = runner.invoke(app, ["leaderboard", str(results), "--sort", "pope.f1_mean"])
    assert res.exit_code == 2 and "'pope.f1_mean [v1]'" in res.stderr


def test_other_data_gets_its_own_column_and_unfinished_runs_are_left_out_with_a_warning(tmp_path):
    items = pope_items(100)
    write_run(tmp_path / "toy", "pope", pope_rows(items))
    official = write_run(tmp_path / "official", "pope", pope_rows(items, frozenset(i[0] for i in items[:20])))
    running = write_run(tmp_path / "running", "pope", pope_rows(items))
    for path, changes in ((official, {"data": "official v1"}), (running, {"status": "running"})):
        header = json.loads((path / "run.json").read_text())
        if "data" in changes:
            header["tasks"]["pope"]["data"]["version"] = changes["data"]
        header.update({k: v for k, v in changes.items() if k != "data"})
        (path / "run.json").write_text(json.dumps(header))
    board = build_leaderboard([tmp_path])
    labels = sorted(c.label for c in board.columns)
    assert labels == ["pope.f1_mean [data official v1]", "pope.f1_mean [data test]"]
    cells = {e.run: e.cells for e in board.entries}
    assert set(cells) == {"toy", "official"}  # never merged, never the unfinished run
    assert cells["toy"] == {"pope.f1_mean [data test]": metric(tmp_path, "toy", "pope", "f1_mean")}
    assert cells["official"]["pope.f1_mean [data official v1]"]["value"] == pytest.approx(
        metric(tmp_path, "official", "pope", "f1_mean")["value"]
    )
    assert any(w.startswith(f"{running}: not finished (status running), left out") for w in board.warnings)
