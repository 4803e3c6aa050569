"""The HTML reports never overflow the window: in headless Chromium at 800 and 1400 px, the document is no
wider than the viewport (the measurement of `benchmarks/report_screenshots.py`), for an alignment-tax table
with four long-named checkpoints and a leaderboard of many long column labels. Skipped without Chromium."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from evalkit.analysis.leaderboard import Column, Entry, Leaderboard
from evalkit.analysis.leaderboard import to_html as board_html
from evalkit.analysis.tax import TaxRow, TaxTable
from evalkit.analysis.tax_render import to_html as tax_html

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (/usr/bin/chromium)")
SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "report_screenshots.py"


@pytest.fixture(scope="module")
def shots():
    spec = importlib.util.spec_from_file_location("report_screenshots", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wide_tax() -> TaxTable:
    methods = ("dpo", "bdhs", "steerlm", "rs")
    names = [f"llava-1.5-7b-{m}-lr5e-7-beta0.1-seed{i}" for i, m in enumerate(methods)]
    metrics = ["f1_mean", "adversarial/f1", "a_very_long_metric_name_without_any_space_in_it", "CHAIRs"]
    numbers = (71.234, 75.5, 4.266, -12.25, 19.75, 0.2, "gain", 9000, 500)
    rows = [TaxRow(c, "hallucination", "pope", m, 1, "%", *numbers) for c in names for m in metrics]
    ref = "llava-1.5-7b-sft-reference-checkpoint"
    return TaxTable(ref, "runs/sft", {c: f"runs/{c}" for c in names}, rows, {})


def wide_board() -> Leaderboard:
    label = "task{}.metric_with_a_long_name [judge gpt-4o-2024-08-06 #1a2b3c, data v{}]"
    labels = [label.format(i, i) for i in range(12)]
    columns = [
        Column(f"task{i}", "m", "1", None, None, lb, 1, "%", "rate", "hallucination")
        for i, lb in enumerate(labels)
    ]
    cells = {lb: {"value": 55.5, "ci_low": 50.25, "ci_high": 60.75, "n": 1200} for lb in labels}
    entries = [Entry(f"run-{i}-" + "x" * 40, "/models/" + "y" * 60, "p", "finished", cells) for i in range(3)]
    return Leaderboard(columns, entries, [])


@pytest.mark.parametrize("width", [800, 1400])
def test_reports_fit_the_window(tmp_path, shots, width):
    pages = {"tax.html": tax_html(wide_tax()), "board.html": board_html(wide_board())}
    for name, text in pages.items():
        page = tmp_path / name
        page.write_text(text, encoding="utf-8")
        scroll, view, _ = shots.measure(page, width, str(CHROMIUM))
        assert view <= width and view >= width - 30  # the viewport, less a scroll bar at most
        assert scroll <= view, f"{name} at {width} px: document {scroll} px wide in a {view} px viewport"


def test_the_measurement_sees_an_overflow(tmp_path, shots):
    page = tmp_path / "wide.html"
    page.write_text('<!DOCTYPE html><html><body><div style="width:1000px">x</div></body></html>')
    scroll, view, _ = shots.measure(page, 800, str(CHROMIUM))
    assert view <= 800 < 1000 <= scroll
