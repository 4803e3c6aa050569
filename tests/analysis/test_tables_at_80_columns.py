"""Every table evalkit prints stays readable in a narrow terminal: rendered to a rich Console of width 80
and 120 (as in a CI log), no line is wider than the console, nothing is cut with an ellipsis, every
number appears whole and every header or column label appears in one piece (never folded one letter a
line). Covers the run table, the alignment-tax table, the leaderboard and `evalkit compare`'s table.
The expected strings are formatted here from the input values, not read back from the renderers."""

import re

import pytest
from rich.console import Console

from evalkit.analysis.compare import Comparison, MetricComparison, comparison_table
from evalkit.analysis.leaderboard import Column, Entry, Leaderboard
from evalkit.analysis.leaderboard import rich_table as leaderboard_table
from evalkit.analysis.report import results_table
from evalkit.analysis.tax import TaxRow, TaxTable
from evalkit.analysis.tax_render import rich_table as tax_table

WIDTHS = (80, 120)
NUMBER = re.compile(r"[-+]?\d+\.\d+")


def render(renderable, width):
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def check(text, width, numbers, labels):
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width, text
    assert "…" not in text, text
    found = NUMBER.findall(text)
    assert [n for n in numbers if n not in found] == [], text
    flat = " ".join(text.split())
    assert [label for label in labels if label not in flat] == [], text


def estimate(value, low, high, n):
    return {"value": value, "ci_low": low, "ci_high": high, "n": n}


METRICS = {
    "llava_bench_coco": {
        "headline": "relative",
        "metrics": {
            "relative": estimate(51.234, -12.5, 99.99, 90),
            "cat/conversation": estimate(100.0, 100.0, 100.0, 30),
        },
        "n_samples": 90,
        "n_errors": 2,
        "n_unparsed": 3,
        "n_failed": 5,
        "n_suspicious": 1,
    },
    "pope": {
        "headline": "f1_mean",
        "metrics": {
            "f1_mean": estimate(85.126, 83.9, 86.3, 8910),
            "adversarial/yes_ratio": estimate(48.2, 47.1, 49.3, 3000),
        },
        "n_samples": 8910,
        "n_errors": 0,
    },
}


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("all_metrics", [False, True])
def test_run_table(width, all_metrics):
    text = render(
        results_table(METRICS, title="evalkit · openai:gpt-4o-mini", all_metrics=all_metrics), width
    )
    numbers = ["51.23", "-12.50", "99.99", "85.13", "83.90", "86.30"]
    labels = ["relative", "f1_mean", "5/90 (3 unparsed)", "0/8910", "suspicious"]
    if all_metrics:
        numbers += ["100.00", "48.20", "47.10", "49.30"]
        labels += ["cat/conversation", "adversarial/yes_ratio"]
    check(text, width, numbers, labels)
    if not all_metrics:
        assert "cat/conversation" not in text and "yes_ratio" not in text


def tax_row(checkpoint, task, metric, base, diff, low, high, verdict, group):
    return TaxRow(
        checkpoint=checkpoint,
        group=group,
        task=task,
        metric=metric,
        direction=1,
        unit="%",
        base=base,
        aligned=base + diff,
        diff=diff,
        ci_low=low,
        ci_high=high,
        p_value=0.01,
        verdict=verdict,
        n_samples=218,
        n_units=200,
    )


def test_tax_table():
    lines = [  # (task, metric, base, diff, ci low, ci high, group)
        ("mmvet", "total", 31.1, 20.45, 15.3, 25.71, "visual instruction-following"),
        ("mmvet", "cap/rec", 38.2, -7.25, -11.94, -2.33, "visual instruction-following"),
        ("pope", "f1_mean", 85.9, -0.41, -1.27, 0.48, "hallucination"),
    ]
    checkpoints = {"llava-dpo-seed0": "runs/dpo", "llava-bdhs-seed0": "runs/bdhs"}
    rows = []
    for k, name in enumerate(checkpoints):
        for task, metric, base, diff, low, high, group in lines:
            verdict = "gain" if low > 0 else "loss" if high < 0 else "no significant change"
            rows.append(tax_row(name, task, metric, base, diff + k, low + k, high + k, verdict, group))
    table = TaxTable(base="llava-1.5-7b", base_path="runs/base", checkpoints=checkpoints, rows=rows, tasks={})
    numbers = [f"{r.base:.2f}" for r in rows] + [f"{r.aligned:.2f}" for r in rows]
    numbers += [f"{r.diff:+.2f}" for r in rows] + [f"{r.ci_low:.2f}" for r in rows]
    numbers += [f"{r.ci_high:.2f}" for r in rows]
    for width in WIDTHS:
        check(render(tax_table(table), width), width, numbers, [*checkpoints, "no significant change"])


def test_leaderboard():
    labels = ["pope/f1_mean", "mmvet/total [gpt-4-0613]", "mmvet/total [gpt-4o-mini]", "llava_bench/relative"]
    columns = [
        Column(task=lb.split("/")[0], metric="m", version="1", judge=None, data=None, label=lb, direction=1)
        for lb in labels
    ]
    values = [(85.1234, 84.0, 86.2), (31.11, 27.5, 34.75), (-3.5, -7.25, 0.25), (100.0, 98.5, 101.25)]
    entries = [
        Entry(
            run=f"llava-v1.5-7b-seed{s}-0123456789ab",
            model="liuhaotian/llava-v1.5-7b",
            path=f"results/run{s}",
            status="finished",
            cells={
                lb: estimate(v + s, lo + s, hi + s, 100)
                for lb, (v, lo, hi) in zip(labels, values, strict=True)
            },
        )
        for s in range(2)
    ]
    board = Leaderboard(columns=columns, entries=entries, warnings=[])
    numbers = [f"{x + s:.2f}" for s in range(2) for triple in values for x in triple]
    for width in WIDTHS:
        check(render(leaderboard_table(board), width), width, numbers, labels + [e.run for e in entries])


def test_comparison_table():
    metrics = [
        MetricComparison(
            task="pope",
            metric="f1_mean",
            direction=1,
            base=85.1234,
            new=83.2,
            diff=-1.9234,
            ci_low=-2.6543,
            ci_high=-1.1,
            p_value=0.00012,
            n_units=500,
            n_samples=8910,
            checked=True,
            rules=["pope.f1_mean>=-1.0"],
            p_holm=0.00036,
            verdict="loss",
            failed=True,
        ),
        MetricComparison(
            task="mmvet",
            metric="total",
            direction=1,
            base=31.1,
            new=32.45,
            diff=1.35,
            ci_low=-0.75,
            ci_high=3.5,
            p_value=0.21,
            n_units=200,
            n_samples=218,
            verdict="no significant change",
        ),
    ]
    result = Comparison(
        base="results/llava-v1.5-7b-base",
        new="results/llava-v1.5-7b-dpo",
        alpha=0.05,
        n_resamples=2000,
        seed=0,
        family="--fail-on metrics",
        metrics=metrics,
        warnings=[],
    )
    numbers = ["85.12", "83.20", "-1.92", "-2.65", "-1.10", "31.10", "32.45", "+1.35", "-0.75", "3.50"]
    numbers += ["0.0001", "0.0004", "0.2100"]
    for width in WIDTHS:
        check(render(comparison_table(result), width), width, numbers, ["pope.f1_mean>=-1.0", "FAIL"])


def test_a_few_headlines_stay_a_table_at_80_columns():
    """The default `evalkit run` view of a typical run keeps its columns side by side at 80 columns."""
    metrics = {
        "pope": {**METRICS["pope"], "metrics": {"f1_mean": estimate(72.625, 67.94, 72.62, 20)}},
        "objhal": {
            "headline": "CHAIRs_refine",
            "metrics": {"CHAIRs_refine": estimate(75.0, 55.0, 90.0, 20)},
            "n_samples": 20,
            "n_errors": 0,
            "n_unparsed": 0,
            "n_failed": 0,
            "n_suspicious": 0,
        },
    }
    text = render(results_table(metrics, title="evalkit · toy"), 80)
    check(text, 80, ["72.62", "67.94", "75.00", "55.00", "90.00"], ["CHAIRs_refine", "0/20"])
    header = next(line for line in text.splitlines() if "metric" in line)
    assert header.replace("┃", " ").split() == [
        "task",
        "metric",
        "value",
        "95%",
        "CI",
        "n",
        "failed",
        "suspicious",
    ]
