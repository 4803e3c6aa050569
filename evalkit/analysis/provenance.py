"""Where a report's numbers come from, read from the runs' run.json and rows, never invented: the date the
report was made and the evalkit version that made it; per run its seed, the evalkit version that ran it and
when it started; per task and run the judge (model and a short id of its fingerprints, from the rows that a
judge model judged: a judged task run without judge calls, e.g. Object HalBench by word matching, whose rows
carry a fingerprint but no call, has none) and the data version (run.json's data label with its content
hash, and the hub repo and revision where the data came from the hub). A fact run.json does not record
reads "unrecorded".

`summary` shows one value where every run agrees and the value per run where they differ."""

from __future__ import annotations

import datetime as _dt
import html
from typing import Any

from evalkit.analysis.runs import Run, judge_label

UNRECORDED = "unrecorded"


def made_now() -> str:
    """The report's date: now, UTC, to the second (`2026-12-07 23:40 UTC`)."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def evalkit_version() -> str:
    from evalkit import __version__

    return __version__


def run_facts(run: Run) -> dict[str, Any]:
    """A run's seed, evalkit version and start, as its run.json records them (None where it does not)."""
    command = run.header.get("command")
    command = command if isinstance(command, dict) else {}
    return {
        "run": run.name,
        "seed": command.get("seed"),
        "evalkit": run.header.get("evalkit_version"),
        "created": run.header.get("created"),
    }


def data_text(run: Run, task: str) -> str | None:
    """The task's data version in this run (`label #hash`, then `hub REPO@REVISION[:7]` for hub data)."""
    info = (run.header.get("tasks") or {}).get(task)
    data = info.get("data") if isinstance(info, dict) else None
    if not isinstance(data, dict):
        return None
    parts = [str(data["version"])] if data.get("version") is not None else []
    hub = data.get("hub")
    if isinstance(hub, dict) and hub.get("repo"):
        revision = str(hub.get("revision") or "unpinned")
        parts.append(f"hub {hub['repo']}@{revision[:7]}")
    return " · ".join(parts) or None


def called_judge(row: dict[str, Any]) -> bool:
    """Whether a row was judged by a judge model: its judge record holds calls made (or served from the
    judge cache) or, for an imported row, the judge's raw outputs. A row of a judged task scored without a
    judge (Object HalBench by word matching) carries a fingerprint but neither."""
    judge = row.get("judge")
    return isinstance(judge, dict) and bool(judge.get("calls") or judge.get("outputs"))


def judge_of(run: Run, task: str) -> str | None:
    """The judge behind the task's stored rows (model + short id of the fingerprints), None when no row
    was judged by a model."""
    return judge_label(run.judge_fingerprints(task, [r for r in run.rows(task) if called_judge(r)]))


def task_facts(run: Run, task: str, judged: bool) -> dict[str, Any]:
    return {
        "version": run.task_version(task),
        "judge": judge_of(run, task) if judged else None,
        "data": data_text(run, task),
    }


def collect(runs: dict[str, Run], tasks: dict[str, bool]) -> dict[str, Any]:
    """The provenance of a report over `runs` (label → run) and `tasks` (name → whether it is judged)."""
    return {
        "made": made_now(),
        "evalkit": evalkit_version(),
        "runs": {label: run_facts(run) for label, run in runs.items()},
        "tasks": {
            t: {label: task_facts(run, t, judged) for label, run in runs.items() if t in run.tasks}
            for t, judged in tasks.items()
        },
    }


def summary(values: dict[str, Any], none: str = UNRECORDED) -> str:
    """One value where every label agrees, else `label: value; label: value`."""
    shown = {label: none if v is None else str(v) for label, v in values.items()}
    distinct = list(dict.fromkeys(shown.values()))
    if len(distinct) <= 1:
        return distinct[0] if distinct else none
    return "; ".join(f"{label}: {v}" for label, v in shown.items())


def lines(prov: dict[str, Any], level_seed: str | None = None) -> list[tuple[str, str]]:
    """(name, text) lines of the provenance for the reports: made, evalkit, seeds, then per task its judge
    and data. `level_seed`: the analysis's own seed line (the tax table's bootstrap seed)."""
    runs = prov.get("runs") or {}
    out = [
        ("made", f"{prov.get('made') or UNRECORDED} by evalkit {prov.get('evalkit') or UNRECORDED}"),
        ("runs by evalkit", summary({k: r.get("evalkit") for k, r in runs.items()})),
        ("run seeds", summary({k: r.get("seed") for k, r in runs.items()})),
    ]
    if level_seed:
        out.append(("bootstrap seed", level_seed))
    for task, per_run in (prov.get("tasks") or {}).items():
        judges = {k: v.get("judge") for k, v in per_run.items()}
        if any(judges.values()):
            out.append((f"{task} judge", summary(judges, none="none")))
        out.append((f"{task} data", summary({k: v.get("data") for k, v in per_run.items()})))
    return out


def html_block(prov: dict[str, Any], level_seed: str | None = None) -> str:
    """The provenance as a definition list for the HTML reports."""
    e = html.escape
    items = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in lines(prov, level_seed))
    return f'<h2>Provenance</h2><dl class="prov">{items}</dl>'


def markdown_block(prov: dict[str, Any], level_seed: str | None = None) -> list[str]:
    return ["## Provenance", "", *(f"- {k}: {v}" for k, v in lines(prov, level_seed)), ""]
