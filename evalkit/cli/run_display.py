"""What `evalkit run` (and `merge`, `import`, `rescore`) prints: the run's table with its failed rows, the
NLP-backend note and judge usage, and the `--dry-run` plan of judge calls."""

from __future__ import annotations

import json

from rich.markup import escape

from evalkit.cli.display import out


def show(result, as_json: bool, title: str, all_metrics: bool = True) -> None:
    """The run's table (every metric of each task; `run` passes `all_metrics=False` unless --all-metrics,
    for one headline row per task), the first message of each error type with its count (so a failed
    row's cause is on screen), the NLP backend of a task scored a non-official way, and judge usage."""
    from evalkit.analysis.nlp_marks import summary_lines
    from evalkit.analysis.report import results_table
    from evalkit.runner import error_summary

    if as_json:
        print(json.dumps({"run_dir": str(result.run_dir), "metrics": result.metrics}, indent=2))
    else:
        out.print(results_table(result.metrics, title=escape(title), all_metrics=all_metrics))
        for line in error_summary(result.metrics):
            out.print(f"failed rows: {escape(line)}", highlight=False)
        for line in summary_lines(result.header):
            out.print(f"[yellow]{escape(line)}[/yellow]", highlight=False)
        for task, j in (result.header.get("judges") or {}).items():
            u = j["usage"]
            cost = "unknown cost" if u["cost_usd"] is None else f"${u['cost_usd']:.4f}"
            out.print(
                f"judge {task}: {escape(str(j['fingerprint']['model']))}, "
                f"{u['calls']} calls ({u['failures']} failed), "
                f"{u['cache_hits']} from the cache, "
                f"{u['prompt_tokens']}+{u['completion_tokens']} tokens, {cost}"
            )
        out.print(f"run folder: {escape(str(result.run_dir))}")


def show_plan(plan: dict, as_json: bool) -> None:
    from rich.table import Table

    if as_json:
        print(json.dumps(plan, indent=2))
        return
    if not plan:
        out.print("no judged task: the run makes no judge call")
        return
    table = Table(title="judge calls (dry run)")
    for col in (
        "task",
        "judge",
        "calls",
        "cached",
        "est. prompt tokens",
        "est. completion tokens",
        "est. cost",
    ):
        table.add_column(col, justify="left" if col in ("task", "judge") else "right")
    for task, e in plan.items():
        cost = "unknown price" if e["est_cost_usd"] is None else f"${e['est_cost_usd']:.2f}"
        table.add_row(
            task,
            e["judge"],
            str(e["calls"]),
            str(e["cached"]),
            str(e["est_prompt_tokens"]),
            str(e["est_completion_tokens"]),
            cost,
        )
    out.print(table)
    out.print(
        "first-round calls only (re-asks after unparseable answers come on top); answers not generated yet "
        "are counted at the task's maximum length, so this is an upper bound"
    )
