"""The reports that stand alone (the alignment-tax table's Markdown, HTML and JSON, the leaderboard's HTML and
Markdown): provenance read from the runs (date, evalkit versions, seeds, judges, data versions), a judge
only where a judge model judged the rows, the reference column named by the reference run, counts as
integers, and interval scales shared within a group and unit — checked on the rendered geometry."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

import pytest
from support.runs import JUDGE, pope_items, pope_rows, write_run
from support.scored import scored_rows

import evalkit
from evalkit.analysis.leaderboard import build_leaderboard, render
from evalkit.analysis.tax import TaxRow, TaxTable, tax_table
from evalkit.analysis.tax_render import print_table, read_table, to_html, to_markdown, write_report
from evalkit.store import RunStore

HUB = {"repo": "lmms-lab/POPE", "revision": "0123456789abcdef0123456789abcdef01234567", "pinned": True}


def _edit_header(path, **changes):
    store = RunStore(path)
    header = store.read_header()
    for key, value in changes.items():
        if key == "seed":
            header["command"]["seed"] = value
        elif key == "pope_data":
            header["tasks"]["pope"]["data"] = value
        else:
            header[key] = value
    store.write_header(header)


def _judged(rows):
    """The rows as a judge model judged them: each judge record holds the call made."""
    out = []
    for r in rows:
        judge = {**r["judge"], "fingerprint": JUDGE}
        judge["calls"] = [{"slot": "extract", "run": 0, "prompt_hash": "h", "output": "x", "cached": False}]
        out.append({**r, "judge": judge})
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """POPE runs `ref`, `dpo` (another seed and evalkit version) and `bdhs`, the same hub data; Object
    HalBench by word matching (fingerprint, no call) and judged by a model (calls)."""
    tmp = tmp_path_factory.mktemp("prov")
    items = pope_items(600)
    right = [sid for sid, *_, c in items if c]
    paths = {}
    for name, flip in (("ref", frozenset()), ("dpo", frozenset(right[:40])), ("bdhs", frozenset(right[:5]))):
        paths[name] = write_run(tmp / name, "pope", pope_rows(items, flip))
        _edit_header(paths[name], seed=0, pope_data={"version": "lmms-lab v1 #abcd1234", "hub": HUB})
    _edit_header(paths["dpo"], seed=7, evalkit_version="0.0.9")
    rows = scored_rows("objhal")
    words = {n: write_run(tmp / f"words-{n}", "objhal", rows, judge=JUDGE) for n in ("ref", "dpo")}
    judged = {n: write_run(tmp / f"llm-{n}", "objhal", _judged(rows), judge=JUDGE) for n in ("ref", "dpo")}
    return paths, words, judged


def _expected_judge_id(fingerprints) -> str:
    canon = [json.dumps(fp, sort_keys=True, default=str) for fp in fingerprints]
    return hashlib.sha256(json.dumps(sorted(canon), sort_keys=True).encode()).hexdigest()[:6]


def test_tax_provenance_from_the_runs(runs):
    paths, _, _ = runs
    before = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    table = tax_table(paths["ref"], {"dpo": paths["dpo"], "bdhs": paths["bdhs"]}, n_resamples=200, seed=5)
    made = dt.datetime.strptime(table.provenance["made"], "%Y-%m-%d %H:%M UTC").replace(tzinfo=dt.UTC)
    assert before <= made <= dt.datetime.now(dt.UTC)
    assert table.provenance["evalkit"] == evalkit.__version__
    md = to_markdown(table)
    assert f"- made: {table.provenance['made']} by evalkit {evalkit.__version__}" in md
    # the runs differ in seed and evalkit version: each run's value is named
    assert "- run seeds: ref: 0; dpo: 7; bdhs: 0" in md
    assert f"- runs by evalkit: ref: {evalkit.__version__}; dpo: 0.0.9; bdhs: {evalkit.__version__}" in md
    assert "- bootstrap seed: 5 (200 resamples)" in md
    assert "- pope data: lmms-lab v1 #abcd1234 · hub lmms-lab/POPE@0123456" in md
    assert "judge" not in md.split("## Provenance")[1]  # POPE has no judge
    page = to_html(table)
    assert "<dt>run seeds</dt><dd>ref: 0; dpo: 7; bdhs: 0</dd>" in page
    assert "lmms-lab v1 #abcd1234 · hub lmms-lab/POPE@0123456" in page
    back = read_table_roundtrip(table, paths["ref"].parent / "report")
    assert back.provenance == table.provenance


def read_table_roundtrip(table, folder):
    paths = write_report(table, folder)
    data = json.loads(paths[3].read_text())
    assert data["provenance"]["runs"]["dpo"]["seed"] == 7
    return read_table(paths[3])


def test_judge_only_where_a_model_judged(runs):
    _, words, judged = runs
    table = tax_table(words["ref"], {"dpo": words["dpo"]}, n_resamples=100)
    assert table.tasks["objhal"]["judge"] is None
    assert "objhal judge" not in to_markdown(table) and "objhal judge" not in to_html(table)
    assert '<td class="l">none</td></tr>' in to_html(table)  # the benchmarks table's judge column
    table = tax_table(judged["ref"], {"dpo": judged["dpo"]}, n_resamples=100)
    label = f"gpt-3.5-turbo-0613 #{_expected_judge_id([JUDGE])}"
    assert table.tasks["objhal"]["judge"] == label
    assert f"- objhal judge: {label}" in to_markdown(table)
    board = build_leaderboard([words["ref"], judged["ref"]])
    md = render(board, "md")
    judged_col = [c.label for c in board.columns]
    assert len(judged_col) == 1  # the same fingerprint: one column, one with calls and one without
    assert f"- {judged_col[0]} judge: words-ref: none; llm-ref: {label}" in md
    board = build_leaderboard([words["ref"], words["dpo"]])
    assert " judge:" not in render(board, "md") and " judge</dt>" not in render(board, "html")


def test_reference_column_is_named(runs, capsys):
    paths, _, _ = runs
    table = tax_table(paths["ref"], {"dpo": paths["dpo"]}, n_resamples=100)
    md = to_markdown(table)
    assert "| benchmark | metric | unit | n | ref (reference) | dpo | Δ dpo [95% CI] | verdict |" in md
    assert md.startswith("# Alignment tax: reference `ref` → `dpo`")
    assert '<th class="ck">ref (reference)</th>' in to_html(table)
    from rich.console import Console

    console = Console(width=200, record=True, color_system=None)
    print_table(table, console=console)
    text = console.export_text()
    assert "ref (reference)" in text and "reference ref" in text
    assert not re.search(r"\bbase\b", md.split("## Provenance")[0])


def _row(ck, task, metric, unit, base, diff, low, high):
    return TaxRow(ck, "g", task, metric, 1, unit, base, base + diff, diff, low, high, 0.01, "gain", 50, 50)


def test_counts_print_as_integers():
    rows = [
        _row("a", "t", "mentions", "count", 12.0, 3.0, 1.0, 5.5),
        _row("a", "t", "acc", "%", 12.0, 3.0, 1.0, 5.5),
    ]
    table = TaxTable("ref", "r", {"a": "a"}, rows, {"t": {"counts": ["mentions"]}})
    md = to_markdown(table)
    assert "| t | mentions ↑ | count | 50 | 12 | 15 | +3 [1, 5.5] | **gain** |" in md
    assert "| t | acc ↑ | % | 50 | 12.00 | 15.00 | +3.00 [1.00, 5.50] | **gain** |" in md
    assert ">+3</text>" in to_html(table) and ">+3.00</text>" in to_html(table)


def test_counts_are_marked_from_the_metric_kind(runs):
    _, words, _ = runs
    table = tax_table(words["ref"], {"dpo": words["dpo"]}, metrics=["all"], n_resamples=100)
    from evalkit.registry import get_task

    task = get_task("objhal")
    shown = [r.metric for r in table.rows if r.task == "objhal"]
    assert set(table.tasks["objhal"].get("counts", [])) == {
        m for m in shown if task.metric(m).unit == "count"
    }


def _panels(svg: str) -> list[tuple[str, float, list[float], list[str]]]:
    """Per panel: title, x of the zero line, x of each point, tick labels."""
    out = []
    for chunk in svg.split('<text x="4" ')[1:]:
        title = re.search(r">([^<]+)</text>", chunk).group(1)
        zero = float(re.search(r'<line x1="([\d.]+)"[^>]*stroke-dasharray', chunk).group(1))
        points = [float(x) for x in re.findall(r'<circle cx="([\d.]+)"', chunk)]
        ticks = re.findall(r'fill="#555">([^<]+)</text>', chunk)
        out.append((title, zero, points, ticks))
    return out


def test_one_scale_per_group_and_unit():
    diffs = {("t", "small"): 1.0, ("t", "large"): 30.0, ("t", "n"): 3.0}
    rows = [
        _row(ck, t, m, "count" if m == "n" else "%", 10.0, d * k, d * k - 0.5, d * k + 0.5)
        for (t, m), d in diffs.items()
        for ck, k in (("a", 1), ("b", -0.5))
    ]
    table = TaxTable("ref", "r", {"a": "a", "b": "b"}, rows, {"t": {"counts": ["n"]}})
    from evalkit.analysis.tax_html import svg_plot

    panels = {
        title.split(" ")[0]: (zero, pts, ticks) for title, zero, pts, ticks in _panels(svg_plot(table, "g"))
    }
    px_per_unit = {}
    for (t, m), d in diffs.items():
        zero, points, ticks = panels[f"{t}.{m}"]
        ratios = [(p - zero) / (d * k) for p, k in zip(points, (1, -0.5), strict=True)]
        assert ratios[0] == pytest.approx(ratios[1], rel=0.02)
        px_per_unit[m] = (ratios[0], tuple(ticks))
    # the two percentages share one axis (same pixels per point, same ticks); the count has its own
    assert px_per_unit["small"][1] == px_per_unit["large"][1]
    assert px_per_unit["small"][0] == pytest.approx(px_per_unit["large"][0], rel=0.02)
    assert px_per_unit["n"][1] != px_per_unit["small"][1]
    # the shared axis reaches the largest interval end (30.5), the count's its own (3.5)
    assert float(px_per_unit["small"][1][-1]) >= 30.5 and 3.5 <= float(px_per_unit["n"][1][-1]) < 30.5


def test_leaderboard_bars_share_the_group_axis(tmp_path):
    items = pope_items(300)
    right = [sid for sid, *_, c in items if c]
    for name, k in (("a", 0), ("b", 60), ("c", 120)):
        write_run(tmp_path / name, "pope", pope_rows(items, frozenset(right[:k])))
    rows = scored_rows("objhal")
    write_run(tmp_path / "d", "objhal", rows)
    board = build_leaderboard([tmp_path])
    page = render(board, "html")
    values, xs = [], []
    for e in board.entries:
        for c in board.columns:
            cell = e.cells.get(c.label)
            if cell:
                values.append(cell["value"])
    xs = [float(x) for x in re.findall(r'<circle cx="([\d.]+)" cy="6.0" r="3"', page)]
    assert len(xs) == len(values) == 4  # pope and objhal: one group ("hallucination"), one unit (%)
    slope = (xs[1] - xs[0]) / (values[1] - values[0])
    for v, x in zip(values, xs, strict=True):  # one linear map value → x for every cell of the group
        assert x == pytest.approx(xs[0] + slope * (v - values[0]), abs=0.11)
    assert page.count('class="g" colspan="2">hallucination</th>') == 1


def test_run_table_prints_counts_as_integers():
    from rich.console import Console

    from evalkit.analysis.report import results_table

    def m(value, low=None, high=None):
        return {"value": value, "ci_low": low, "ci_high": high, "n": 100.0}

    summary = {"headline": "CHAIRs", "n_samples": 100, "n_errors": 0}
    summary["metrics"] = {"CHAIRs": m(45.0, 40.0, 50.0), "mentions": m(312.0, 300.0, 324.5)}
    console = Console(width=200, record=True, color_system=None)
    console.print(results_table({"objhal": summary}, all_metrics=True))
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in console.export_text().splitlines()]
    assert ["objhal", "CHAIRs", "45.00", "[40.00, 50.00]", "100", "0/100"] in cells
    assert ["", "mentions", "312", "[300, 324.5]", "100", ""] in cells


def test_leaderboard_provenance_from_the_runs(runs):
    paths, _, _ = runs
    board = build_leaderboard([paths["ref"], paths["dpo"], paths["bdhs"]])
    md = render(board, "md")
    assert f"- made: {board.provenance['made']} by evalkit {evalkit.__version__}" in md
    assert "- run seeds: ref: 0; dpo: 7; bdhs: 0" in md
    assert "- pope.f1_mean data: lmms-lab v1 #abcd1234 · hub lmms-lab/POPE@0123456" in md
    page = render(board, "html")
    assert f"Made {board.provenance['made']} by evalkit {evalkit.__version__}" in page
    assert json.loads(render(board, "json"))["provenance"]["runs"]["dpo"]["evalkit"] == "0.0.9"


def test_a_checkpoint_named_like_the_reference_keeps_its_own_provenance(runs):
    paths, _, _ = runs
    table = tax_table(paths["ref"], {"ref": paths["dpo"]}, n_resamples=100)
    assert {k: v["seed"] for k, v in table.provenance["runs"].items()} == {"ref (reference)": 0, "ref": 7}
