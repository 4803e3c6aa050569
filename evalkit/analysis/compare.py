"""`evalkit compare BASE_RUN NEW_RUN`: paired bootstrap of NEW − BASE per task metric, over the samples
both runs scored, with Holm's correction across the metrics checked and a regression gate for CI.

Pairing: rows scored in both runs (same sample ids, no failure in either) are kept, each task's
`statistics` is evaluated on them, and one bootstrap weight matrix over the units both share (images,
questions, or samples) is applied to both runs (`evalkit.stats.paired_bootstrap`).

Checked metrics (the Holm family): the `--fail-on` rules' metrics, or, with no rule, every compared metric
that has a better direction. A checked metric fails when its Holm-adjusted p-value is below `alpha` and
its difference is beyond the rule's threshold (no rule: any significant change in the bad direction).
Other compared metrics form a second Holm family, reported but never failing.

The gate never passes on nothing: it refuses (exit 3) runs that are not finished (unless
`allow_unfinished`), tasks whose task version, data version or data file checksums or judges differ,
fewer than `min_common` common scored samples or bootstrap units (a POPE run at `--limit 30` holds two
images), and a checked metric that is NaN on either side. Damaged sample lines are skipped and named as
`file:line` in the warnings, as are runs generated under different protocols (`--prompt-style`,
`--image-pad`, `--sampling`); the samples files are only read. The pairing rules and refusal checks are in
`evalkit.analysis.pairing`; this module holds the statistics, the gate and the table.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evalkit.analysis.pairing import (
    judge_mismatch,
    protocol_warning,
    scored_rows,
    select_metrics,
    task_mismatch,
    task_statistics,
    unfinished,
)
from evalkit.analysis.runs import Run, metric_direction
from evalkit.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, holm, paired_bootstrap
from evalkit.types import UserError
from evalkit.util.frames import FrameView

EXIT_OK, EXIT_REGRESSION, EXIT_USAGE, EXIT_INCOMPARABLE = 0, 1, 2, 3
DEFAULT_MIN_COMMON = 20
#: a warning is printed when the common samples are fewer than this share of either run's scored samples
COVERAGE_WARNING = 0.9
OPS = {"<": lambda d, t: d < t, "<=": lambda d, t: d <= t, ">": lambda d, t: d > t, ">=": lambda d, t: d >= t}
RULE = re.compile(
    r"^\s*([A-Za-z0-9_\-]+)\.(\S+?)\s*(<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)


class Incomparable(Exception):
    """The two runs cannot be compared as asked (different judges or task versions, too few common
    samples, a task missing from one run); exit code 3."""


@dataclass(frozen=True)
class Rule:
    """`TASK.METRIC OP THRESHOLD`: fail when the difference NEW − BASE (in the metric's unit) satisfies
    `OP THRESHOLD` and is significant after Holm."""

    task: str
    metric: str
    op: str
    threshold: float

    @classmethod
    def parse(cls, text: str) -> Rule:
        m = RULE.match(text)
        if not m:
            raise UserError(
                f"--fail-on {text!r}: expected TASK.METRIC OP THRESHOLD with OP one of <, <=, >, >= and "
                "a number in the metric's unit, e.g. 'pope.f1_mean < -1.0' (fail on a drop beyond 1 point)"
            )
        return cls(m[1], m[2], m[3], float(m[4]))

    def __str__(self) -> str:
        return f"{self.task}.{self.metric} {self.op} {self.threshold:g}"

    def fails(self, diff: float) -> bool:
        return OPS[self.op](diff, self.threshold)


@dataclass
class MetricComparison:
    task: str
    metric: str
    direction: int
    base: float
    new: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n_units: int
    n_samples: int
    checked: bool = False
    rules: list[str] = field(default_factory=list)
    p_holm: float = math.nan
    verdict: str = "n/a"
    failed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


@dataclass(repr=False)  # FrameView's short repr and `_repr_html_` (notebooks), `to_frame()`
class Comparison(FrameView):
    base: str
    new: str
    alpha: float
    n_resamples: int
    seed: int
    family: str
    metrics: list[MetricComparison]
    warnings: list[str]

    @property
    def checked(self) -> list[MetricComparison]:
        return [m for m in self.metrics if m.checked]

    @property
    def failures(self) -> list[MetricComparison]:
        return [m for m in self.metrics if m.failed]

    @property
    def exit_code(self) -> int:
        return EXIT_REGRESSION if self.failures else EXIT_OK

    _columns = (
        "task", "metric", "base", "new", "diff", "ci_low", "ci_high", "p_value", "p_holm", "verdict",
        "checked", "failed", "n_samples", "n_units", "direction", "rules",
    )  # fmt: skip

    def _records(self) -> list[dict[str, Any]]:
        return [m.to_dict() for m in self.metrics]

    def _title(self) -> str:
        return (
            f"evalkit compare {self.new} against {self.base}: {len(self.failures)} of {len(self.checked)} "
            f"checked metrics regressed (alpha {self.alpha}, Holm over {self.family})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "new": self.new,
            "alpha": self.alpha,
            "resamples": self.n_resamples,
            "seed": self.seed,
            "holm_family": self.family,
            "metrics": [m.to_dict() for m in self.metrics],
            "checked": len(self.checked),
            "failed": len(self.failures),
            "warnings": self.warnings,
            "exit_code": self.exit_code,
        }


def verdict(diff: float, p_holm: float, direction: int, alpha: float) -> str:
    if math.isnan(p_holm):
        return "n/a"
    if p_holm >= alpha or diff == 0:
        return "no significant change"
    if direction == 0:
        return "changed"
    return "gain" if diff * direction > 0 else "loss"


def compare_runs(
    base_dir: str | Path,
    new_dir: str | Path,
    *,
    tasks: list[str] | None = None,
    metrics: list[str] | None = None,
    rules: list[Rule] | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    alpha: float = 0.05,
    min_common: int = DEFAULT_MIN_COMMON,
    allow_unfinished: bool = False,
    refuse_nan: bool = True,
) -> Comparison:
    """Compare two run folders; raises `Incomparable` or `UserError` (see the module docstring).

    Refused (`Incomparable`): a run not finished (unless `allow_unfinished`), different task or data
    versions or judges, fewer than `min_common` samples scored in both runs or bootstrap units (images,
    questions) shared by both, and (with `refuse_nan`) a checked metric that is NaN on either side."""
    from evalkit.registry import get_task

    rules = list(rules or [])
    if not 0 < alpha < 1:
        raise UserError(f"--alpha {alpha}: must be between 0 and 1")
    if n_resamples < 100:
        raise UserError(f"--resamples {n_resamples}: use at least 100")
    if min_common < 2:
        raise UserError(f"--min-common {min_common}: use at least 2 (an interval needs two units)")
    base, new = Run.open(base_dir), Run.open(new_dir)
    warnings: list[str] = []
    refusal = unfinished([base, new], allow_unfinished, warnings)
    if refusal:
        raise Incomparable(refusal)
    if (differ := protocol_warning(base, new)) is not None:
        warnings.append(differ)
    if tasks:
        names = list(dict.fromkeys(tasks))
    else:
        names = [t for t in base.tasks if t in new.tasks]
        only = sorted(set(base.tasks) ^ set(new.tasks))
        if only:
            warnings.append(f"tasks in one run only, not compared: {', '.join(only)}")
    names += [r.task for r in rules if r.task not in names]
    for name in names:
        get_task(name)  # an unknown name is a usage error
        missing = [run.name for run in (base, new) if name not in run.tasks]
        if missing:
            raise Incomparable(f"{name}: not in run {' and '.join(missing)}")
    if not names:
        raise Incomparable(f"{base.name} and {new.name} have no task in common")
    for name in names:
        refusal = task_mismatch(base, new, name)
        if refusal:
            raise Incomparable(refusal)

    out: list[MetricComparison] = []
    for name in names:
        task = get_task(name)
        judged = hasattr(task, "judge_spec")
        rows_b, rows_n = scored_rows(base.rows(name), judged), scored_rows(new.rows(name), judged)
        common = [i for i in rows_b if i in rows_n]
        sel_b, sel_n = [rows_b[i] for i in common], [rows_n[i] for i in common]
        refusal = judge_mismatch(base, new, name, sel_b, sel_n)
        if refusal:
            raise Incomparable(refusal)
        if len(common) < min_common:
            raise Incomparable(
                f"{name}: only {len(common)} samples are scored in both runs (at least {min_common} needed, "
                "--min-common); the runs used different data or limits"
            )
        share = len(common) / max(len(rows_b), len(rows_n))
        if share < COVERAGE_WARNING:
            warnings.append(
                f"{name}: {len(common)} common samples, {share:.0%} of the larger run "
                f"({len(rows_b)} base, {len(rows_n)} new); values are over the common samples"
            )
        try:
            stats_b, stats_n = task_statistics(task, base, sel_b), task_statistics(task, new, sel_n)
        except NotImplementedError:
            if any(r.task == name for r in rules):
                raise Incomparable(f"{name}: this task does not expose per-sample statistics yet") from None
            warnings.append(f"{name}: not compared (the task does not expose per-sample statistics yet)")
            continue
        available = [m for m in stats_b if m in stats_n]
        for metric in select_metrics(name, available, task.headline, metrics, rules):
            est = paired_bootstrap(stats_b[metric], stats_n[metric], n_resamples=n_resamples, seed=seed)
            if est.n_units < min_common:
                raise Incomparable(
                    f"{name}.{metric}: only {est.n_units} bootstrap units (images, questions or samples "
                    f"resampled together) are shared by the runs, over {len(common)} common samples (at "
                    f"least {min_common} needed, --min-common); compare runs over more data"
                )
            out.append(
                MetricComparison(
                    name,
                    metric,
                    metric_direction(task, metric),
                    est.base,
                    est.new,
                    est.diff,
                    est.ci_low,
                    est.ci_high,
                    est.p_value,
                    est.n_units,
                    len(common),
                    rules=[str(r) for r in rules if (r.task, r.metric) == (name, metric)],
                )
            )
    plain = [i for i in metrics or [] if i != "all" and "." not in i]
    unmatched = [i for i in plain if not any(m.metric == i for m in out)]
    if unmatched:
        raise UserError(f"--metrics {unmatched[0]}: no compared task has this metric (name it TASK.METRIC)")
    for m in out:
        m.checked = bool(m.rules) if rules else m.direction != 0
        undefined = [k for k in ("base", "new", "p_value") if math.isnan(getattr(m, k))]
        if undefined and m.checked and refuse_nan:
            raise Incomparable(
                f"{m.task}.{m.metric}: {' and '.join(undefined)} is NaN ({m.n_samples} common samples); a "
                "checked metric without a value can neither pass nor fail — check the runs' rows"
            )
        if undefined:
            warnings.append(f"{m.task}.{m.metric}: {' and '.join(undefined)} is NaN; shown as —")
    for run in (base, new):
        warnings += list(dict.fromkeys(run.problems))
    for r in rules:
        direction = next((m.direction for m in out if (m.task, m.metric) == (r.task, r.metric)), 0)
        if direction and (r.op[0] == "<") == (direction == -1):
            better = "lower" if direction == -1 else "higher"
            warnings.append(
                f"--fail-on {r}: {r.task}.{r.metric} is {better}-is-better, so this rule fails on gains"
            )
    for family in (True, False):
        members = [m for m in out if m.checked == family]
        for m, p in zip(members, holm([m.p_value for m in members]), strict=True):
            m.p_holm = p
            m.verdict = verdict(m.diff, p, m.direction, alpha)
            significant = not math.isnan(p) and p < alpha
            if m.checked and significant:
                mine = [r for r in rules if (r.task, r.metric) == (m.task, m.metric)]
                m.failed = any(r.fails(m.diff) for r in mine) if rules else m.verdict == "loss"
    n_checked = len({(m.task, m.metric) for m in out if m.checked})
    floor = 2.0 / (n_resamples + 1)  # the smallest bootstrap p-value
    if n_checked and n_checked * floor >= alpha:
        warnings.append(
            f"{n_checked} checked metrics with {n_resamples} resamples: no difference can be significant "
            f"after Holm (smallest p {floor:.4f} x {n_checked} >= alpha {alpha}); raise --resamples or check "
            "fewer metrics"
        )
    family = "--fail-on metrics" if rules else "every compared metric with a better direction"
    return Comparison(base.where, new.where, alpha, n_resamples, seed, family, out, warnings)


def _num(x: float, digits: int = 2) -> str:
    return "—" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def _signed(x: float) -> str:
    return "—" if x is None or math.isnan(x) else f"{x:+.2f}"


def _p(x: float) -> str:
    return "—" if math.isnan(x) else (f"{x:.4f}" if x >= 1e-4 else f"{x:.1e}")


def comparison_table(result: Comparison):
    """The rich table: one row per compared metric; where that is wider than the terminal, one block per
    metric (`evalkit.analysis.report.Records`). No number is ever cut."""
    from rich.markup import escape

    from evalkit.analysis.report import Fit, Records
    from evalkit.analysis.report import table as plain_table

    head = ["task", "metric", "base", "new", "diff [95% CI]", "p", "p_holm", "n", "verdict", "check"]
    colour = {"gain": "green", "loss": "red", "changed": "yellow"}
    rows = []
    for m in result.metrics:
        arrow = {1: " ↑", -1: " ↓", 0: ""}[m.direction]
        check = (
            ("[bold red]FAIL[/bold red] " if m.failed else "ok ") + escape("; ".join(m.rules))
            if m.checked
            else ""
        )
        v = f"[{colour[m.verdict]}]{m.verdict}[/{colour[m.verdict]}]" if m.verdict in colour else m.verdict
        rows.append(
            [
                escape(m.task),
                escape(m.metric + arrow),
                _num(m.base),
                _num(m.new),
                f"{_signed(m.diff)} [{_num(m.ci_low)}, {_num(m.ci_high)}]",
                _p(m.p_value),
                _p(m.p_holm),
                str(m.n_units),
                v,
                check,
            ]
        )
    title = f"evalkit compare · {escape(result.base)} → {escape(result.new)}"
    return Fit(
        plain_table(title, head, rows, right=(2, 3, 5, 6, 7)),
        plain_table(title, head, rows, right=(2, 3, 5, 6, 7), compact=True),
        Records(title, head, rows, keys=2),
    )
