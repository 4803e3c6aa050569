"""The analysis commands: `compare` (two runs, paired statistics, a CI exit code) and `leaderboard`
(runs x tasks)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from evalkit.cli.display import fail, out, warn

COMPARE_HELP = (
    "Compare NEW_RUN with BASE_RUN, paired on the samples both scored.\n\n"
    "Per task (default: every task in both runs) and metric (default: the task's headline), the difference "
    "NEW - BASE with a 95% paired-bootstrap interval and p-value, Holm-corrected across the metrics checked: "
    "the --fail-on metrics, or without --fail-on every compared metric that has a better direction (then a "
    "significant loss in any of them fails).\n\n"
    "Exit codes: 0 no regression; 1 a checked metric regressed (significant after Holm and beyond its "
    "threshold); 2 usage error (bad flag, unparsable --fail-on, not a run folder); 3 the runs cannot be "
    "compared (task or data versions or judges differ, too few common samples or units, a checked metric is "
    "NaN, a run is unfinished without --allow-unfinished, a task missing from a run)."
)


def compare(
    base_run: Annotated[
        str, typer.Argument(help="The reference run folder, or a pushed run: hf://USER/NAME[@REVISION].")
    ],
    new_run: Annotated[str, typer.Argument(help="The run folder (or hf://USER/NAME) to check against it.")],
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-on",
            help="Rule 'TASK.METRIC OP THRESHOLD' (OP: <, <=, >, >=; threshold in the metric's unit, points "
            "for percentages), e.g. 'pope.f1_mean < -1.0'; repeatable.",
        ),
    ] = None,
    tasks: Annotated[str | None, typer.Option(help="Tasks to compare, comma-separated.")] = None,
    metrics: Annotated[
        list[str] | None,
        typer.Option(help="METRIC, TASK.METRIC or 'all'; comma-separated or repeated (default: headlines)."),
    ] = None,
    junit: Annotated[
        Path | None, typer.Option(help="Write JUnit XML (one testcase per checked metric).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 1234,
    alpha: Annotated[float, typer.Option(help="Significance level (after Holm).")] = 0.05,
    min_common: Annotated[
        int,
        typer.Option(
            help="Fewest samples scored in both runs, and fewest bootstrap units (images, questions) they "
            "share, per task, to compare at all."
        ),
    ] = 20,
    allow_unfinished: Annotated[
        bool,
        typer.Option(
            "--allow-unfinished",
            help="Compare a run that is still running or was interrupted (the rows stored so far).",
        ),
    ] = False,
) -> None:
    from evalkit.analysis.compare import (
        EXIT_INCOMPARABLE,
        Incomparable,
        Rule,
        compare_runs,
        comparison_table,
    )

    try:
        rules = [Rule.parse(r) for r in fail_on or []]
        result = compare_runs(
            base_run,
            new_run,
            tasks=[t.strip() for t in tasks.split(",") if t.strip()] if tasks else None,
            metrics=[m.strip() for item in metrics for m in item.split(",") if m.strip()]
            if metrics
            else None,
            rules=rules,
            n_resamples=resamples,
            seed=seed,
            alpha=alpha,
            min_common=min_common,
            allow_unfinished=allow_unfinished,
        )
    except Incomparable as exc:
        fail(f"not comparable: {exc}", EXIT_INCOMPARABLE)
    for warning in result.warnings:
        warn(warning)
    if junit is not None:
        from evalkit.analysis.junit import write_junit

        write_junit(result, junit)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        out.print(comparison_table(result))
        n_fail, n_checked = len(result.failures), len(result.checked)
        status = (
            f"[bold red]{n_fail} of {n_checked} checked metrics regressed[/bold red]"
            if n_fail
            else (f"[green]no regression[/green] in {n_checked} checked metrics")
        )
        out.print(f"{status} (alpha {alpha}, Holm over {result.family})")
    raise typer.Exit(result.exit_code)


LEADERBOARD_HELP = (
    "Runs x tasks: each task's headline metric with its 95% interval, from the runs' metrics.json.\n\n"
    "A task scored with different task versions, judges or data gets one column per variant, labelled with "
    "what differs (e.g. 'mmvet.total \\[judge gpt-4-0613 #1a2b3c]'); such numbers are never merged."
)


def leaderboard(
    results_dir: Annotated[
        list[str] | None,
        typer.Argument(
            help="Run folders, folders of run folders, or pushed runs: hf://USER/NAME[@REVISION] "
            "(default: results/)."
        ),
    ] = None,
    tasks: Annotated[str | None, typer.Option(help="Task columns to show, comma-separated.")] = None,
    sort: Annotated[str | None, typer.Option(help="Sort best first by a column: TASK.METRIC.")] = None,
    filter_: Annotated[
        list[str] | None,
        typer.Option("--filter", help="Keep runs whose model or run name contains this (repeatable)."),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="md, csv, html or json (default: from --output, else a table)."),
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Write to this file instead of printing.")] = None,
) -> None:
    from evalkit.analysis.leaderboard import build_leaderboard, format_for, render, rich_table

    board = build_leaderboard(
        results_dir or ["results"],
        tasks=[t.strip() for t in tasks.split(",") if t.strip()] if tasks else None,
        sort=sort,
        filters=filter_,
    )
    text = render(board, format_for(output, fmt)) if (fmt or output) else None
    for warning in board.warnings:
        warn(warning)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {escape(str(output))}: {len(board.entries)} runs, {len(board.columns)} columns")
    elif text is not None:
        sys.stdout.write(text)
    else:
        out.print(rich_table(board))
