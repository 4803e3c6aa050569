"""The alignment-tax table: what each aligned checkpoint gained and lost against its base, per benchmark
and metric, with a 95% paired-bootstrap interval over the samples both runs scored.

Every number comes from `evalkit.analysis.compare.compare_runs` (same pairing, refusals and bootstrap as
`evalkit compare`); this module selects the metrics, groups the benchmarks and marks each difference:
gain / loss when the interval excludes 0 on the metric's better (worse) side, "changed" for a metric with
no better direction, "no significant change" otherwise. The renderers live in `evalkit.analysis.tax_render`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from evalkit.analysis.compare import DEFAULT_MIN_COMMON, Incomparable, compare_runs
from evalkit.analysis.nlp_marks import unofficial_backend
from evalkit.analysis.provenance import collect
from evalkit.analysis.runs import Run, metric_info
from evalkit.stats import DEFAULT_RESAMPLES, DEFAULT_SEED
from evalkit.task import TAX_GROUPS
from evalkit.types import UserError
from evalkit.util.frames import FrameView

__all__ = ["GROUPS", "Incomparable", "TaxRow", "TaxTable", "interval_verdict", "tax_group", "tax_table"]

LEVEL = 0.95
OTHER = "other"
#: the fixed groups, in table order (a task names its own in `Task.group`; others follow by name)
GROUPS = TAX_GROUPS


def tax_group(name: str, task: Any = None) -> str:
    """The group a benchmark declares (`Task.group`); without `task`, that of the registered task `name`;
    "other" for a task that declares none or is not registered."""
    if task is None:
        from evalkit.registry import TASKS, get_task

        task = get_task(name) if name in TASKS else None
    return str(getattr(task, "group", None) or OTHER)


def metric_unit(name: str, task: Any, metric: str) -> str:
    """The unit `metric` of task `name` is reported in, as the task declares it ("" when not stated)."""
    return metric_info(task, metric).unit


def interval_verdict(ci_low: float, ci_high: float, direction: int) -> str:
    """gain / loss when the interval excludes 0 on the better / worse side ("changed" for a metric with no
    better direction), "no significant change" when it contains 0, "n/a" without an interval."""
    if ci_low is None or ci_high is None or math.isnan(ci_low) or math.isnan(ci_high):
        return "n/a"
    if ci_low <= 0 <= ci_high:
        return "no significant change"
    if direction == 0:
        return "changed"
    return "gain" if (ci_low > 0) == (direction > 0) else "loss"


@dataclass
class TaxRow:
    """One aligned checkpoint × benchmark × metric. `base` and `aligned` are over the `n_samples` samples
    both runs scored (`n_units` bootstrap units: images, questions or samples); `diff` = aligned − base."""

    checkpoint: str
    group: str
    task: str
    metric: str
    direction: int
    unit: str
    base: float
    aligned: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    verdict: str
    n_samples: int
    n_units: int

    def to_dict(self) -> dict[str, Any]:
        return {k: _clean(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaxRow:
        nan = float("nan")
        return cls(**{f.name: nan if data.get(f.name) is None else data[f.name] for f in fields(cls)})


@dataclass(repr=False)  # FrameView's short repr and `_repr_html_` (notebooks), `to_frame()`
class TaxTable(FrameView):
    """The alignment-tax table of one base run and its aligned checkpoints (name → run folder)."""

    base: str
    base_path: str
    checkpoints: dict[str, str]
    rows: list[TaxRow]
    #: task → {"group", "version", "judge"} (judge: a label of the judge fingerprints, or None), plus "nlp"
    #: (the non-official NLP backends that scored it, `evalkit.analysis.nlp_marks`) where any did, and
    #: "counts" (its shown metrics of kind "count", printed as integers) where it has any
    tasks: dict[str, dict[str, Any]]
    n_resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    level: float = LEVEL
    warnings: list[str] = field(default_factory=list)
    #: where the numbers come from (`evalkit.analysis.provenance.collect`; the base run under its name)
    provenance: dict[str, Any] = field(default_factory=dict)

    _columns = (
        "checkpoint", "group", "task", "metric", "unit", "base", "aligned", "diff", "ci_low", "ci_high",
        "p_value", "verdict", "n_samples", "n_units", "direction",
    )  # fmt: skip

    def _records(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.rows]

    def _title(self) -> str:
        return f"alignment tax of {', '.join(self.checkpoints)} against the base run {self.base}"

    def groups(self) -> list[str]:
        """The groups present, in table order (the fixed ones, then declared ones by name, then "other")."""
        present = {r.group for r in self.rows}
        fixed = [g for g in GROUPS if g in present]
        declared = sorted(present - set(GROUPS) - {OTHER})
        return fixed + declared + ([OTHER] if OTHER in present else [])

    def keys(self, group: str) -> list[tuple[str, str]]:
        """(task, metric) pairs of a group, in table order."""
        return list(dict.fromkeys((r.task, r.metric) for r in self.rows if r.group == group))

    def get(self, checkpoint: str, task: str, metric: str) -> TaxRow | None:
        return next(
            (r for r in self.rows if (r.checkpoint, r.task, r.metric) == (checkpoint, task, metric)), None
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "base_path": self.base_path,
            "checkpoints": self.checkpoints,
            "tasks": self.tasks,
            "resamples": self.n_resamples,
            "seed": self.seed,
            "level": self.level,
            "groups": self.groups(),
            "rows": [r.to_dict() for r in self.rows],
            "warnings": self.warnings,
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaxTable:
        return cls(
            data["base"],
            data["base_path"],
            dict(data["checkpoints"]),
            [TaxRow.from_dict(r) for r in data["rows"]],
            dict(data["tasks"]),
            data["resamples"],
            data["seed"],
            data["level"],
            list(data.get("warnings") or []),
            dict(data.get("provenance") or {}),
        )


def _clean(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


def _order(name: str) -> tuple[int, str]:
    """Table order of the tasks: the registry's order (which lists the benchmarks group by group)."""
    from evalkit.registry import TASKS

    order = list(TASKS)
    return (order.index(name) if name in order else len(order), name)


def _wanted(name: str, task: Any, available: list[str], metrics: list[str] | None) -> list[str]:
    """The metrics of one task to show, in order: the selection (as `evalkit compare --metrics` reads it),
    or the headline and the task's `tax_metrics` (those its benchmark's papers report)."""
    if metrics is None:
        extra = tuple(getattr(task, "tax_metrics", ()) or ())
        wanted = [task.headline, *extra]
        return [m for m in dict.fromkeys(wanted) if m in available]
    out: list[str] = []
    for item in metrics:
        if item == "all":
            out.extend(available)
        elif "." in item:
            t, m = item.split(".", 1)
            out.extend([m] if t == name and m in available else [])
        elif item in available:
            out.append(item)
    return list(dict.fromkeys(out))


def tax_table(
    base_run: str | Path,
    aligned_runs: dict[str, str | Path],
    *,
    tasks: list[str] | None = None,
    metrics: list[str] | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    min_common: int = DEFAULT_MIN_COMMON,
) -> TaxTable:
    """Compare every aligned run with the base run. `tasks`: default every task in all the runs (others are
    named in the warnings); `metrics`: `None` (each task's headline and its group's metrics), or items as
    `evalkit compare --metrics` reads them ("all", "METRIC", "TASK.METRIC"). Raises `Incomparable` on the
    rules of `evalkit compare` (a run not finished, task or data versions or judges that differ, fewer than
    `min_common` common samples or units) and when a shown metric is NaN; `UserError` on a bad selection."""
    from evalkit.registry import get_task

    if not aligned_runs:
        raise UserError("no aligned checkpoint to compare with the base run")
    base = Run.open(base_run)
    runs = {name: Run.open(path) for name, path in aligned_runs.items()}
    warnings: list[str] = []
    if tasks:
        names = list(dict.fromkeys(tasks))
    else:
        names = [t for t in base.tasks if all(t in r.tasks for r in runs.values())]
        left = sorted({t for r in (base, *runs.values()) for t in r.tasks} - set(names))
        if left:
            warnings.append(f"tasks not in every run, left out: {', '.join(left)}")
    if not names:
        raise Incomparable(f"{base.name} and the aligned runs have no task in common")
    names.sort(key=_order)
    task_objs = {n: get_task(n) for n in names}
    rows: list[TaxRow] = []
    for label, run in runs.items():
        try:
            result = compare_runs(
                base.path,
                run.path,
                tasks=names,
                metrics=["all"],
                n_resamples=n_resamples,
                seed=seed,
                min_common=min_common,
                refuse_nan=False,  # only the metrics shown must have values (checked below)
            )
        except Incomparable as exc:
            raise Incomparable(f"checkpoint {label} ({run.path}) against base {base.name}: {exc}") from None
        warnings += [
            f"{label}: {w}"
            for w in result.warnings
            if "no difference can be significant" not in w and "is NaN; shown as" not in w
        ]
        found = {(m.task, m.metric): m for m in result.metrics}
        for name in names:
            available = [m for (t, m) in found if t == name]
            for metric in _wanted(name, task_objs[name], available, metrics):
                m = found[(name, metric)]
                # a value must exist; an interval may not (a rate that is 0/0 in every resample, e.g.
                # AMBER's F1 against a run that never answers yes/no): its cell reads n/a, never a verdict
                undefined = [k for k in ("base", "new") if math.isnan(getattr(m, k))]
                if undefined:
                    raise Incomparable(
                        f"checkpoint {label} ({run.path}) against base {base.name}: {name}.{metric}: "
                        f"{' and '.join(undefined)} is NaN over {m.n_samples} common samples; a table cell "
                        "without a number is never shown as a result — check the runs' rows"
                    )
                rows.append(
                    TaxRow(
                        label,
                        tax_group(name, task_objs[name]),
                        name,
                        metric,
                        m.direction,
                        metric_unit(name, task_objs[name], metric),
                        m.base,
                        m.new,
                        m.diff,
                        m.ci_low,
                        m.ci_high,
                        m.p_value,
                        interval_verdict(m.ci_low, m.ci_high, m.direction),
                        m.n_samples,
                        m.n_units,
                    )
                )
    _check_selection(metrics, rows, names)
    judged = {n: hasattr(task_objs[n], "judge_spec") for n in names}
    ref = base.name if base.name not in runs else f"{base.name} (reference)"  # its label in the provenance
    prov = collect({ref: base, **runs}, judged)
    info: dict[str, dict[str, Any]] = {
        n: {
            "group": tax_group(n, task_objs[n]),
            "version": base.task_version(n),
            "judge": prov["tasks"][n][ref]["judge"],  # from the rows: none without judge calls
        }
        for n in names
    }
    for n in names:  # metrics that are tallies, printed as integers
        counts = [r.metric for r in rows if r.task == n and _is_count(task_objs[n], r.metric)]
        if counts:
            info[n]["counts"] = list(dict.fromkeys(counts))
    for n in names:  # AMBER scored without the official NLP backend in any run: its lines are marked
        unofficial = {b for r in (base, *runs.values()) if (b := unofficial_backend(r.header, n))}
        if unofficial:
            info[n]["nlp"] = sorted(unofficial)
    paths = {label: str(run.path) for label, run in runs.items()}
    return TaxTable(base.name, str(base.path), paths, rows, info, n_resamples, seed, LEVEL, warnings, prov)


def _is_count(task: Any, metric: str) -> bool:
    return metric_info(task, metric).kind == "count"


def _check_selection(metrics: list[str] | None, rows: list[TaxRow], names: list[str]) -> None:
    for item in metrics or []:
        if item == "all":
            continue
        task, metric = item.split(".", 1) if "." in item else ("", item)
        if task and task not in names:
            raise UserError(f"--metrics {item}: task {task} is not in the table ({', '.join(names)})")
        if not any(r.metric == metric and (not task or r.task == task) for r in rows):
            raise UserError(
                f"--metrics {item}: no compared task has this metric as a per-sample statistic (name it "
                "TASK.METRIC; metrics without one, e.g. AlpacaEval's length-controlled win rate, have no "
                "paired interval)"
            )
