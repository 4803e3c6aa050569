"""`evalkit leaderboard`: runs × tasks with each task's headline metric and its 95% interval, from the run
folders' metrics.json (the store only).

A column holds one task scored one way. When runs of a task differ in task version, judge (fingerprint:
model, endpoint or weights, prompts, parser, sampling) or data version, the task gets one column per
variant, labelled with what differs, e.g. `mmvet.total [judge gpt-4-0613 #1a2b3c]` and
`mmvet.total [judge gpt-4o #4d5e6f]`; such numbers are never merged into one column. A cell scored with a
non-official NLP backend (AMBER without NLTK's tagger data or en_core_web_lg) carries a † and the
backend's id (`nlp` in JSON), explained by a footnote (`evalkit.analysis.nlp_marks`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.analysis import provenance
from evalkit.analysis.html_parts import number
from evalkit.analysis.nlp_marks import MARK, footnote, unofficial_backend
from evalkit.analysis.runs import Run, canonical, find_runs, judge_label, metric_info
from evalkit.types import UserError

FORMATS = ("md", "csv", "html", "json")


@dataclass(frozen=True)
class Column:
    task: str
    metric: str
    version: str | None
    judge: str | None
    data: str | None
    label: str
    direction: int
    #: the metric's unit and kind ("rate" or "count", `evalkit.task.MetricInfo`) and the task's group
    unit: str = ""
    kind: str = "rate"
    group: str = "other"

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "task": self.task,
            "metric": self.metric,
            "task_version": self.version,
            "judge": self.judge,
            "data": self.data,
            "higher_is_better": {1: True, -1: False}.get(self.direction),
            "unit": self.unit,
            "kind": self.kind,
            "group": self.group,
        }


@dataclass
class Entry:
    run: str
    model: str
    path: str
    status: str
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Leaderboard:
    columns: list[Column]
    entries: list[Entry]
    warnings: list[str]
    #: made, evalkit, per run (by name) its seed, evalkit version and start, and per column (by label) the
    #: judge its rows were judged by (None without judge calls) and its data version
    #: (`evalkit.analysis.provenance`)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def notes(self) -> list[str]:
        """Footnotes for the marked cells (empty when no cell is marked)."""
        backends = [c["nlp"] for e in self.entries for c in e.cells.values() if c.get("nlp")]
        return [footnote(backends)] if backends else []

    def to_dict(self) -> dict[str, Any]:
        return {
            "notes": self.notes,
            "provenance": self.provenance,
            "columns": [c.to_dict() for c in self.columns],
            "runs": [
                {"run": e.run, "model": e.model, "path": e.path, "status": e.status, "values": e.cells}
                for e in self.entries
            ],
        }


def _task(name: str):
    from evalkit.registry import TASKS, get_task

    return get_task(name) if name in TASKS else None


def _usable(runs: list[Run], warnings: list[str]) -> list[Run]:
    """Runs whose numbers may stand in the table: finished ("failed" runs too, marked by their status),
    with a readable metrics.json; every run left out is named in `warnings`."""
    kept = []
    for run in runs:
        if not run.finished:
            warnings.append(
                f"{run.path}: not finished (status {run.status}), left out; re-run its command to finish it"
            )
            continue
        try:
            metrics = run.metrics
        except UserError as exc:
            warnings.append(f"{exc}; run left out")
            continue
        if not metrics:
            warnings.append(f"{run.path}: no metrics.json, left out; `evalkit rescore {run.path}` writes it")
            continue
        if run.status == "failed":
            warnings.append(
                f"{run.path}: its failure rate was above --max-failure-rate (status failed); shown as "
                f"'{run.name} (failed)'"
            )
        kept.append(run)
    return kept


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _variant(run: Run, name: str, task: Any) -> tuple[str | None, str | None, str | None]:
    judged = task is None or hasattr(task, "judge_spec")
    fps = run.judge_fingerprints(name) if judged else []
    key = canonical(sorted(canonical(fp) for fp in fps)) if fps else None
    return run.task_version(name), key, run.data_version(name)


def build_leaderboard(
    paths: list[Path],
    *,
    tasks: list[str] | None = None,
    sort: str | None = None,
    filters: list[str] | None = None,
) -> Leaderboard:
    warnings: list[str] = []
    runs = _usable(find_runs(paths, warnings), warnings)
    if filters:
        low = [f.lower() for f in filters]
        runs = [r for r in runs if any(f in r.model.lower() or f in r.name.lower() for f in low)]
    names = list(tasks) if tasks else list(dict.fromkeys(t for r in runs for t in r.metrics))
    task_objs = {n: _task(n) for n in names}
    # (task, variant) → column; the label names only what differs between the task's variants
    variants: dict[str, dict[tuple, list[tuple[Run, dict]]]] = {n: {} for n in names}
    for run in runs:
        for name in names:
            summary = run.metrics.get(name)
            if summary is None:
                continue
            if not isinstance(summary, dict):
                warnings.append(f"{run.path / 'metrics.json'}: {name} is not an object, left out")
                continue
            version, judge_key, data = _variant(run, name, task_objs[name])
            variants[name].setdefault((version, judge_key, data), []).append((run, summary))
    columns: list[Column] = []
    judged: dict[str, str | None] = {}  # column label → the judge its rows were judged by (None: no calls)
    data_of: dict[str, str] = {}  # column label → its data version (label #hash, hub repo@revision)
    entries = {
        r.path: Entry(r.name + (" (failed)" if r.status == "failed" else ""), r.model, r.where, r.status)
        for r in runs
    }
    for name in names:
        keys = list(variants[name])
        differs = [len({k[i] for k in keys}) > 1 for i in range(3)]
        for key in keys:
            version, judge_key, data = key
            members = variants[name][key]
            metric = members[0][1].get("headline") or getattr(task_objs[name], "headline", None)
            metric = str(metric) if metric is not None else None
            judge = judge_label(
                members[0][0].judge_fingerprints(name) if judge_key is not None else []
            )  # the same for every member
            parts = []
            if differs[0]:
                parts.append(f"v{version}")
            if differs[1]:
                parts.append(f"judge {judge or 'none'}")
            if differs[2]:
                parts.append(f"data {data or 'unknown'}")
            label = f"{name}.{metric}" + (f" [{', '.join(parts)}]" if parts else "")
            info = metric_info(task_objs[name], metric) if metric else metric_info(None, "")
            group = str(getattr(task_objs[name], "group", None) or "other")
            columns.append(
                Column(name, metric, version, judge, data, label, info.direction, info.unit, info.kind, group)
            )
            used = {r.name: provenance.judge_of(r, name) for r, _ in members} if judge_key else {}
            judged[label] = provenance.summary(used, none="none") if any(used.values()) else None
            data_of[label] = provenance.summary({r.name: provenance.data_text(r, name) for r, _ in members})
            for run, summary in members:
                m = summary.get("metrics")
                m = m.get(metric) if isinstance(m, dict) else None
                if m is None:
                    continue
                keys = ("value", "ci_low", "ci_high", "n")
                cell = {k: m.get(k) for k in keys} if isinstance(m, dict) else {}
                bad = [k for k, v in cell.items() if v is not None and not _number(v)]
                if not cell or bad:
                    warnings.append(
                        f"{run.path / 'metrics.json'}: {name}.{metric} "
                        f"{'is not an object' if not cell else repr(bad[0]) + ' is not a number'}, left out; "
                        f"`evalkit rescore {run.path}` rewrites it from the samples"
                    )
                    continue
                backend = unofficial_backend(run.header, name)
                if backend is not None:
                    cell["nlp"] = backend
                entries[run.path].cells[label] = cell
    for run in runs:
        warnings += list(dict.fromkeys(run.problems))
    shown = [e for e in entries.values() if e.cells]
    by_path = {r.where: r for r in runs}  # Entry.path is the run's `where` (hf:// for a hub run)
    prov = {
        "made": provenance.made_now(),
        "evalkit": provenance.evalkit_version(),
        "runs": {},
        "columns": {c.label: {"judge": judged[c.label], "data": data_of[c.label]} for c in columns},
    }
    for e in shown:  # by run name; a name two runs share, by path
        prov["runs"][e.run if e.run not in prov["runs"] else e.path] = provenance.run_facts(by_path[e.path])
    board = Leaderboard(columns, shown, warnings, prov)
    if sort:
        _sort(board, sort)
    return board


def _sort(board: Leaderboard, key: str) -> None:
    """Best first by a column (`TASK.METRIC`, or a split column's full label); missing values last."""
    matches = [c for c in board.columns if c.label == key] or [
        c for c in board.columns if f"{c.task}.{c.metric}" == key
    ]
    if not matches:
        shown = ", ".join(c.label for c in board.columns) or "none"
        raise UserError(f"--sort {key!r}: no such column; columns: {shown}")
    if len(matches) > 1:
        raise UserError(
            f"--sort {key!r}: that metric is split into {len(matches)} columns (runs scored differently); "
            f"name one: {', '.join(repr(c.label) for c in matches)}"
        )
    col = matches[0]
    sign = -1 if col.direction == -1 else 1

    def order(e: Entry) -> tuple[int, float]:
        v = (e.cells.get(col.label) or {}).get("value")
        missing = v is None or (isinstance(v, float) and math.isnan(v))
        return (1, 0.0) if missing else (0, -sign * float(v))

    board.entries.sort(key=order)


# ------------------------------------------------------------------------------------------------ output


def _num(x: Any, count: bool = False) -> str:
    return number(x, count=count, missing="")


def _cell(c: dict[str, Any] | None, count: bool = False) -> str:
    """`value [low, high]`; a count (kind "count") as integers."""
    if not c or c.get("value") is None:
        return "—"
    ci = f" [{_num(c['ci_low'], count)}, {_num(c['ci_high'], count)}]" if c.get("ci_low") is not None else ""
    return _num(c["value"], count) + (MARK if c.get("nlp") else "") + ci


def provenance_lines(board: Leaderboard) -> list[tuple[str, str]]:
    """(name, text) lines: made, evalkit, the runs' evalkit versions and seeds, each column's judge and
    data."""
    prov = board.provenance
    if not prov:
        return []
    runs = prov.get("runs") or {}
    out = [
        ("made", f"{prov.get('made')} by evalkit {prov.get('evalkit')}"),
        ("runs by evalkit", provenance.summary({k: r.get("evalkit") for k, r in runs.items()})),
        ("run seeds", provenance.summary({k: r.get("seed") for k, r in runs.items()})),
    ]
    for c in board.columns:
        col = (prov.get("columns") or {}).get(c.label) or {}
        if col.get("judge"):
            out.append((f"{c.label} judge", col["judge"]))
        out.append((f"{c.label} data", col.get("data") or provenance.UNRECORDED))
    return out


def to_markdown(board: Leaderboard) -> str:
    head = ["run", "model", *(c.label for c in board.columns)]
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(esc, head)) + " |", "|" + "---|" * len(head)]
    for e in board.entries:
        cells = [e.run, e.model, *(_cell(e.cells.get(c.label), c.kind == "count") for c in board.columns)]
        lines.append("| " + " | ".join(map(esc, cells)) + " |")
    prov = [f"- {k}: {v}" for k, v in provenance_lines(board)]
    notes = ["", *board.notes] if board.notes else []
    return "\n".join([*lines, *notes, *(["", *prov] if prov else [])]) + "\n"


def to_csv(board: Leaderboard) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        ["run", "model", *(f"{c.label}{s}" for c in board.columns for s in ("", " ci_low", " ci_high"))]
    )
    for e in board.entries:
        vals = []
        for c in board.columns:
            cell = e.cells.get(c.label) or {}
            vals += [cell.get("value"), cell.get("ci_low"), cell.get("ci_high")]
        w.writerow([e.run, e.model, *("" if v is None else repr(float(v)) for v in vals)])
    return buf.getvalue()


def to_json(board: Leaderboard) -> str:
    return json.dumps(board.to_dict(), indent=2) + "\n"


def to_html(board: Leaderboard) -> str:
    """The self-contained HTML page (`evalkit.analysis.leaderboard_html`)."""
    from evalkit.analysis.leaderboard_html import page_html

    return page_html(board)


RENDER = {"md": to_markdown, "csv": to_csv, "html": to_html, "json": to_json}


def render(board: Leaderboard, fmt: str) -> str:
    if fmt not in RENDER:
        raise UserError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return RENDER[fmt](board)


def format_for(path: Path | None, fmt: str | None) -> str:
    if fmt:
        return fmt
    suffix = path.suffix.lower().lstrip(".") if path else ""
    return (
        {"markdown": "md", "htm": "html"}.get(suffix, suffix)
        if suffix in (*FORMATS, "markdown", "htm")
        else "md"
    )


def rich_table(board: Leaderboard):
    """The terminal table: one row per run, one column per task metric; where that is wider than the
    terminal, one block per run (`evalkit.analysis.report.Records`). No number is ever cut, no header
    folded."""
    from rich.markup import escape

    from evalkit.analysis.report import Fit, Records
    from evalkit.analysis.report import table as plain_table

    head = ["run", "model", *(c.label for c in board.columns)]
    cols = board.columns
    rows = [
        [escape(e.run), escape(e.model), *(_cell(e.cells.get(c.label), c.kind == "count") for c in cols)]
        for e in board.entries
    ]
    title = "evalkit leaderboard"
    fit = Fit(
        plain_table(title, head, rows, left=2),
        plain_table(title, head, rows, left=2, compact=True),
        Records(title, head, rows, keys=2),
    )
    if not board.notes:
        return fit
    from rich.console import Group
    from rich.text import Text

    return Group(fit, *(Text(n, style="dim") for n in board.notes))
