"""Which rows and runs `evalkit compare` may pair, and why not.

Rows pair when both runs scored them (no failure; a judge record for a judged task). Two runs' task is
refused when a run is unfinished (unless allowed), or the task version, data version, data file checksums
or judge fingerprints differ. Each check returns the refusal's message (None when the pair is fine), which
`evalkit.analysis.compare.compare_runs` raises as `Incomparable` (exit 3); this module holds no statistics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalkit.analysis.runs import Run, canonical, judge_label
from evalkit.types import UserError

if TYPE_CHECKING:
    from evalkit.analysis.compare import Rule


def scored_rows(rows: list[dict[str, Any]], judged: bool) -> dict[str, dict[str, Any]]:
    """Rows that were scored: no failure and, for a judged task, a judge record."""
    return {r["id"]: r for r in rows if r.get("error") is None and (not judged or "judge" in r)}


def task_mismatch(base: Run, new: Run, task: str) -> str | None:
    """Why `task` of the two runs cannot be compared (task version, data version or data files differ)."""
    vb, vn = base.task_version(task), new.task_version(task)
    if vb != vn:
        return (
            f"{task}: task versions differ (base {base.name}: {vb}, new {new.name}: {vn}); scores of "
            "different task versions are not comparable — re-run or `evalkit rescore` both with one version"
        )
    db, dn = base.data_version(task), new.data_version(task)
    if db != dn:
        return (
            f"{task}: data versions differ (base {base.name}: {db or 'unknown'}, new {new.name}: "
            f"{dn or 'unknown'}); runs on different data are never compared — run both on the same data"
        )
    fb, fn = base.data_files(task), new.data_files(task)
    changed = sorted(k for k in fb.keys() & fn.keys() if fb[k] != fn[k])
    if changed:
        return (
            f"{task}: the data files differ (checksums of {', '.join(changed)}); runs on different data "
            "are never compared — run both on the same files"
        )
    return None


def generation_protocol(run: Run) -> str:
    """How the run's model was asked (`evalkit.models.protocol`, `evalkit.models.sampling`), from the
    fingerprint in its run.json: `chat-template/none/evalkit` for a run with the defaults."""
    model = run.header.get("model")
    fp = model.get("fingerprint") if isinstance(model, dict) else None
    fp = fp if isinstance(fp, dict) else {}
    protocol = fp.get("protocol") if isinstance(fp.get("protocol"), dict) else {}
    sampling = fp.get("sampling") if isinstance(fp.get("sampling"), dict) else {}
    return "/".join(
        str(x)
        for x in (
            protocol.get("prompt_style", "chat-template"),
            protocol.get("image_pad", "none"),
            sampling.get("style", "evalkit"),
        )
    )


def protocol_warning(base: Run, new: Run) -> str | None:
    """A warning when the two models were asked under different generation protocols: the difference
    then measures the protocol as well as the models (prompt style / image padding / sampling)."""
    pb, pn = generation_protocol(base), generation_protocol(new)
    if pb == pn:
        return None
    return (
        f"the runs were generated under different protocols (prompt style/image pad/sampling: base {pb}, "
        f"new {pn}); differences include the protocol's effect"
    )


def unfinished(runs: list[Run], allow_unfinished: bool, warnings: list[str]) -> str | None:
    """The refusal of a run that did not finish (status running, interrupted, unknown) unless allowed;
    warnings for failed runs and, when allowed, unfinished ones."""
    for run in runs:
        if run.status == "failed":
            warnings.append(
                f"run {run.name}: its failure rate was above --max-failure-rate (status failed); its failed "
                "rows are left out of the pairing"
            )
        if run.finished:
            continue
        if not allow_unfinished:
            return (
                f"run {run.name} ({run.path}) is not finished (status {run.status}); re-run its command to "
                "finish it, or pass --allow-unfinished to compare the samples stored so far"
            )
        warnings.append(f"run {run.name} is not finished (status {run.status}): its stored samples only")
    return None


def task_statistics(task: Any, run: Run, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The task's per-sample statistics; rows whose fields cannot be read (damaged by hand or by another
    tool) are a one-line `UserError` naming the run, never a traceback."""
    try:
        return task.statistics(rows)
    except NotImplementedError:
        raise
    except (TypeError, KeyError, ValueError, AttributeError, IndexError) as exc:
        raise UserError(
            f"{run.path}: the stored rows of {task.name} cannot be read ({type(exc).__name__}: {exc}); the "
            f"samples file is damaged — `evalkit run` the same command again to redo bad rows"
        ) from None


def judge_mismatch(base: Run, new: Run, task: str, rows_b: list[dict], rows_n: list[dict]) -> str | None:
    """Why the paired rows of `task` cannot be compared: they were scored by different judges."""
    fb, fn = base.judge_fingerprints(task, rows_b), new.judge_fingerprints(task, rows_n)
    if sorted(map(canonical, fb)) != sorted(map(canonical, fn)):
        keys = sorted({k for fp in [*fb, *fn] for k in fp if any(fp.get(k) != o.get(k) for o in [*fb, *fn])})
        return (
            f"{task}: the runs were scored by different judges (base: {judge_label(fb) or 'none'}, "
            f"new: {judge_label(fn) or 'none'}; differing fields: {', '.join(keys) or 'count'}); rows "
            "scored by different judges are never compared — judge both runs with the same judge"
        )
    return None


def select_metrics(
    task: str, available: list[str], headline: str, metrics: list[str] | None, rules: list[Rule]
) -> list[str]:
    wanted: list[str] = []
    if metrics is None:
        wanted.append(headline)
    for item in metrics or []:
        if item == "all":
            wanted.extend(available)
        elif "." in item:
            t, m = item.split(".", 1)
            wanted.extend([m] if t == task else [])
        elif item in available:
            wanted.append(item)
    wanted.extend(r.metric for r in rules if r.task == task)
    unknown = [m for m in wanted if m not in available]
    if unknown:
        raise UserError(f"{task} has no metric {unknown[0]!r}; its metrics here: {', '.join(available)}")
    return list(dict.fromkeys(wanted))
