"""evalkit from Python and notebooks: `evalkit.evaluate`, `evalkit.compare`, `evalkit.tax_table` and
`evalkit.open_run`, each returning a result that shows itself in Jupyter (`_repr_html_`) and turns into a
pandas DataFrame.

`evaluate` takes exactly the settings `evalkit run` takes, by the flag names with underscores (`dtype`,
`device`, `judge`, `judge_base_url`, `batch_size`, ...): they are read from the `run` command's own
signature (`evalkit.cli.run_settings`), so the two cannot drift apart, and a config file (`config=`) reads
as `evalkit run CONFIG` reads it. Its progress bars are rich's, which render in Jupyter (through
ipywidgets, as tqdm's notebook bars do)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from evalkit.cli.run_settings import check_type, run_flags, settings_from, start_run, unknown_key
from evalkit.runner.results import EvalResult
from evalkit.types import UserError

#: `evalkit run` flags that only format the command's own output
DISPLAY_ONLY = ("json", "all_metrics")


def evaluate(
    model: Any = None,
    tasks: Any = None,
    *,
    config: str | Path | None = None,
    progress: bool = True,
    **settings: Any,
):
    """Run `model` on `tasks` as `evalkit run` does and return an `EvalResult` (`.metrics`: task, metric,
    value, ci_low, ci_high, n, headline; `.samples(task)`; `.summary`: metrics.json); with
    `dry_run=True` the planned judge calls as a DataFrame instead.

    `model`: a checkpoint path or hub id, "toy", "openai:NAME", "vllm:..." or a ready `Backend`; `tasks`:
    "pope,amber" or a list of names and/or `Task` objects; `config`: a YAML / JSON file of settings, the
    keywords overriding it; every other keyword is an `evalkit run` flag (see `evalkit run --help`).
    Raises `UserError` for a bad setting and `RunFailed` (with `.result`) when the run fails."""
    from evalkit.cli.evaluate import run

    flags = {key: flag for key, flag in run_flags(run).items() if key not in DISPLAY_ONLY}
    given: dict[str, Any] = {}
    for key, value in settings.items():
        flag = flags.get(key)
        if flag is None:
            raise unknown_key(key, ["config", "progress", *flags], "for evalkit.evaluate")
        given[flag.name] = check_type(flag, value, "evalkit.evaluate")
    if model is not None:
        given["model"] = model
    if tasks is not None:
        names = isinstance(tasks, list | tuple) and all(isinstance(t, str) for t in tasks)
        given["tasks"] = ",".join(tasks) if names else tasks
    merged = settings_from(run, config, given)
    result = start_run(merged, progress=progress)
    if merged["dry_run"]:
        from evalkit.util.frames import pandas

        return pandas().DataFrame.from_records([{"task": t, **e} for t, e in result.items()])
    return EvalResult(result.run_dir, result.metrics, result.header)


def open_run(run: str | Path) -> EvalResult:
    """The stored results of a run folder (or of a pushed run, `hf://USER/NAME`)."""
    from evalkit.hub.resolve import run_location

    return EvalResult.open(run_location(run))


def _check_keywords(fn, keywords: dict[str, Any], where: str) -> None:
    accepted = [n for n, p in inspect.signature(fn).parameters.items() if p.kind is p.KEYWORD_ONLY]
    for key in keywords:
        if key not in accepted:
            raise unknown_key(key, accepted, f"for {where}")


def compare(base_run: str | Path, new_run: str | Path, *, fail_on: list[str] | None = None, **options: Any):
    """`evalkit compare` from Python: a `Comparison` (`.to_frame()`: one row per compared metric; its
    `exit_code` is the command's). `fail_on`: rules as `--fail-on` reads them ("pope.f1_mean < -1");
    other keywords: `tasks`, `metrics` (lists), `n_resamples`, `seed`, `alpha`, `min_common`,
    `allow_unfinished`. Runs may be folders or pushed runs (`hf://USER/NAME`)."""
    from evalkit.analysis.compare import Rule, compare_runs

    _check_keywords(compare_runs, options, "evalkit.compare")
    if "rules" in options:
        raise UserError("evalkit.compare: pass rules as fail_on=['TASK.METRIC OP THRESHOLD', ...]")
    return compare_runs(base_run, new_run, rules=[Rule.parse(r) for r in fail_on or []], **options)


def tax_table(base_run: str | Path, aligned_runs: dict[str, str | Path], **options: Any):
    """The alignment-tax table of `aligned_runs` (name → run) against `base_run`: a `TaxTable`
    (`.to_frame()`: one row per checkpoint, task and metric). Keywords: `tasks`, `metrics`, `n_resamples`,
    `seed`, `min_common`."""
    from evalkit.analysis.tax import tax_table as build

    _check_keywords(build, options, "evalkit.tax_table")
    return build(base_run, aligned_runs, **options)
