"""`evalkit import` of lmms-eval's per-sample logs (`--log_samples`), for the tasks both harnesses share.

Format (EvolvingLMMs-Lab/lmms-eval: `lmms_eval/evaluator.py`, `lmms_eval/loggers/evaluation_tracker.py`
`save_results_samples`; before the tracker, `lmms_eval/__main__.py`): the tracker writes
`<output>/<model>/<date>_samples_<task>.jsonl`, one object per document with `doc_id` (position in the
task's HF split), `target`, `input` (the prompt), `filtered_resps` (the answer after the task's filters;
`resps` only when it differs), `doc_hash`, `prompt_hash`, `target_hash` and one field per value the task's
`process_results` returned (`pope_accuracy`, `gpt_eval_score`, ...); it drops `doc`. Older versions wrote
`<task>.json`, an object {"args", "model_configs" (or "config"), "logs": [records with `doc`]}. Both are
read; the records, not the file name, decide the task (a locally defined task, e.g. `toypope`, imports as
the benchmark its records belong to). Several logs of one run import together (`import_logs`: lmms-eval's
per-split POPE tasks `pope_random`, `pope_pop`, `pope_adv` write one file each), given as files or as the
folder holding them.

Only the model's answers are taken; evalkit's official scorer scores them (lmms-eval's metric fields
follow other rules, spec/benchmarks.md). Which lmms-eval tasks import as which evalkit task is declared by
the tasks themselves (`Task.lmms_eval_names`, `lmms_eval_matches` for a log whose file name names no known
task, `lmms_eval_convert`, implemented in `tasks/<bench>/lmms_eval.py`; `lmms_eval_unsupported` says why a
benchmark's logs cannot be imported): this reader iterates over the registry and names no benchmark.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.registry import TASKS, get_task
from evalkit.task import Imported, Task
from evalkit.types import UserError
from evalkit.util.datafiles import check_value, jsonl_records, read_text, sha256_file

NAME_PATTERNS = (
    re.compile(r"_samples_(?P<task>.+)\.jsonl$"),
    re.compile(r"^samples_(?P<task>.+?)_\d{4}-\d{2}-\d{2}T[\d\-.:]+\.jsonl$"),
)


@dataclass
class Record:
    """One logged document: its id, the answer text, and what the log kept about it."""

    doc_id: int
    response: str
    target: Any
    input: str | None
    doc: dict[str, Any] | None
    fields: dict[str, Any]
    #: the lmms-eval task its file names (None: the name says none) and the file it was read from
    task: str | None = None
    path: Path | None = None

    def metric(self, *names: str) -> dict[str, Any]:
        """The first of the per-sample fields `names` that holds an object (what a task's
        `process_results` logged, e.g. `gpt_eval_score`); {} when none does."""
        for name in names:
            if isinstance(self.fields.get(name), dict):
                return self.fields[name]
        return {}


# ----------------------------------------------------------------------------------------- reading


def _peek(path: Path) -> Any:
    """The first JSON-lines object, or the whole JSON document; None when the file is neither."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            first = next((line for line in f if line.strip()), None)
        if first is None:
            return None
        try:
            return json.loads(first)
        except json.JSONDecodeError:
            return json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None


def _is_record(obj: Any) -> bool:
    return isinstance(obj, dict) and "doc_id" in obj and ("filtered_resps" in obj or "resps" in obj)


def is_lmms_eval_log(path: Path) -> bool:
    """Whether the file's records are lmms-eval samples (JSONL records, or a JSON object with `logs`)."""
    found = _peek(path)
    logs = _logs(found)
    return _is_record(found) or (bool(logs) and _is_record(logs[0]))


def _logs(obj: Any) -> list[Any] | None:
    """The records of an older lmms-eval log: a JSON object {"args", "model_configs", "logs", "time"}."""
    logs = obj.get("logs") if isinstance(obj, dict) else None
    return logs if isinstance(logs, list) else None


def _text(value: Any, path: Path, doc_id: Any) -> str:
    """The answer string inside `filtered_resps` / `resps`, which nest one list per request."""
    while isinstance(value, list):
        if len(value) != 1:
            raise UserError(
                f"{path}: doc_id {doc_id}: expected one generated answer, got {len(value)} values; only "
                "generate_until tasks with one request per document can be imported"
            )
        value = value[0]
    if not isinstance(value, str):
        raise UserError(f"{path}: doc_id {doc_id}: the logged answer is not text ({type(value).__name__})")
    return value


def read_log(path: Path) -> list[Record]:
    """Every record of an lmms-eval samples file, in `doc_id` order; one record per document, each
    carrying the file's lmms-eval task name and path."""
    text = read_text(path)
    task = log_task_name(path)
    raw = _logs(_peek(path))
    if raw is not None:
        check_value(str(path), raw)
    else:
        raw = [row for _, row in jsonl_records(path, text)]
    records: dict[int, Record] = {}
    for obj in raw:
        if not _is_record(obj):
            raise UserError(f"{path}: a record without doc_id and filtered_resps/resps: {str(obj)[:80]!r}")
        doc_id = obj["doc_id"]
        if isinstance(doc_id, str) and doc_id.strip().isdigit():
            doc_id = int(doc_id)
        if not isinstance(doc_id, int) or isinstance(doc_id, bool):
            raise UserError(f"{path}: doc_id {str(doc_id)[:40]!r} is not a whole number")
        if doc_id in records:
            raise UserError(
                f"{path}: doc_id {doc_id} is logged twice (a task with several filters logs one record per "
                "filter); keep one filter's records"
            )
        answer = obj["filtered_resps"] if "filtered_resps" in obj else obj["resps"]
        doc = obj.get("doc") if isinstance(obj.get("doc"), dict) else None
        prompt = obj.get("input")
        if prompt is None and isinstance(obj.get("arguments"), list) and obj["arguments"]:
            first = obj["arguments"][0]
            prompt = first[0] if isinstance(first, list) and first else first
        prompt = prompt if isinstance(prompt, str) else None
        text_ = _text(answer, path, doc_id)
        records[doc_id] = Record(doc_id, text_, obj.get("target"), prompt, doc, obj, task, path)
    if not records:
        raise UserError(f"{path}: no lmms-eval records")
    return [records[k] for k in sorted(records)]


def log_task_name(path: Path) -> str | None:
    """The lmms-eval task of a samples file: in the tracker's file name, or in an older log's config."""
    for pattern in NAME_PATTERNS:
        m = pattern.search(path.name)
        if m:
            return m.group("task")
    top = _peek(path)
    if _logs(top) is not None:
        config = top.get("model_configs") or top.get("config")
        if isinstance(config, dict) and isinstance(config.get("task"), str):
            return config["task"]
    return None


def logged_model(path: Path) -> str | None:
    """The model of the run, from the results file the tracker writes beside the samples
    (`<date>_results.json`: `config.model` and `config.model_args`) or an older log's `args`."""
    prefix, sep, _ = path.name.partition("_samples_")
    top = _peek(path.parent / f"{prefix}_results.json") if sep else _peek(path)
    config = (top.get("config") or top.get("args")) if isinstance(top, dict) else None
    if not isinstance(config, dict) or not config.get("model"):
        return None
    return " ".join(str(config[k]) for k in ("model", "model_args") if config.get(k))


def _tasks() -> list[Task]:
    """Every registered task, in registry order (each declares its lmms-eval names and detection)."""
    return [get_task(name) for name in TASKS]


def importable_names(tasks: list[Task]) -> dict[str, str]:
    """lmms-eval task → the evalkit task its logs import as, from the tasks' `lmms_eval_names`."""
    return {lmms: t.name for t in tasks for lmms in t.lmms_eval_names}


def detect(records: list[Record], tasks: list[Task]) -> Task | None:
    """The task the records belong to: the first whose `lmms_eval_matches` recognises the first record's
    per-sample fields (never the file name, which a locally defined lmms-eval task chooses freely)."""
    return next((t for t in tasks if t.lmms_eval_matches(records[0])), None)


def log_files(answers: list[Path], task: Task) -> list[Path]:
    """The lmms-eval logs to import: each file given, and in each folder given, the logs whose records
    are `task`'s (lmms-eval writes every task of a run into one folder)."""
    files: list[Path] = []
    for given in answers:
        if not given.is_dir():
            files.append(given)
            continue
        logs = [p for p in sorted(given.iterdir()) if p.is_file() and is_lmms_eval_log(p)]
        mine = [p for p in logs if detect(read_log(p), [task]) is not None]
        if not mine:
            raise UserError(
                f"--answers {given}: no lmms-eval log of {task.name} in this folder ({len(logs)} lmms-eval "
                f"logs of other tasks); pass the {task.name} log files themselves"
            )
        files += mine
    return files


# ---------------------------------------------------------------------------------------- importing


def _read_family(task: Task, path: Path, tasks: list[Task], names: dict[str, str]) -> list[Record]:
    """The records of one log, refused (one line) unless they are `task`'s."""
    records = read_log(path)
    lmms_task = records[0].task
    family = detect(records, tasks)
    named = f"lmms-eval task {lmms_task!r}" if lmms_task else "an lmms-eval task"
    if family is None:
        need = f"; {task.name} records carry {task.lmms_eval_fields}" if task.lmms_eval_fields else ""
        fields = ", ".join(sorted(k for k in records[0].fields if k not in _COMMON))[:200] or "none"
        raise UserError(
            f"{path} is a log of {named} that evalkit does not share (its per-sample fields: {fields}{need});"
            f" importable lmms-eval tasks: {', '.join(sorted(names))}"
        )
    if family.lmms_eval_unsupported is not None:
        raise UserError(f"{path}: {family.lmms_eval_unsupported}")
    if family.name != task.name:
        raise UserError(
            f"{path} is a log of {named}, which is evalkit's {family.name!r}; pass --task {family.name}"
        )
    return records


#: the fields every lmms-eval record has, whatever its task
_COMMON = {"doc_id", "doc", "target", "input", "arguments", "resps", "filtered_resps", "doc_hash"}
_COMMON |= {"prompt_hash", "target_hash"}


def import_logs(
    task: Task, paths: list[Path], questions: Path | None, data_dir: Path | None, judgments: list[Path]
) -> tuple[list[Imported], dict[str, Any]]:
    """The imported answers and the data info of one run's lmms-eval samples files, for `task`. Every
    file must hold `task`'s records, no lmms-eval task may be logged in two files, and the files must
    name one model (where they name one)."""
    if judgments:
        raise UserError("an lmms-eval log carries its own judge scores; --judgments does not apply")
    tasks = _tasks()
    names = importable_names(tasks)
    records: list[Record] = []
    seen: dict[str, Path] = {}
    models: dict[Path, str] = {}
    for path in paths:
        recs = _read_family(task, path, tasks, names)
        lmms_task = recs[0].task
        key = lmms_task or str(path.resolve())
        if key in seen:
            what = f"logs of lmms-eval task {lmms_task!r}" if lmms_task else "the same file"
            raise UserError(f"{seen[key]} and {path} are both {what}; import one of them")
        seen[key] = path
        model = logged_model(path)
        if model:
            models[path] = model
        records += recs
    if len(set(models.values())) > 1:
        found = "; ".join(f"{p.name}: {m}" for p, m in models.items())
        raise UserError(
            f"the logs are of different models ({found}); import each model's logs as its own run"
        )
    one = len(paths) == 1
    lmms_task = records[0].task if one else None
    label = paths[0] if one else paths[0].parent
    with tempfile.TemporaryDirectory(prefix="evalkit-lmms-") as tmp:
        items, info, counts = task.lmms_eval_convert(records, lmms_task, Path(tmp), data_dir, label)
    if len({it.sample.id for it in items}) != len(items):
        raise UserError(
            f"{task.name}: an item is answered in more than one of the logs {', '.join(map(str, paths))}"
        )
    info["inputs"] = {p.name: sha256_file(p) for p in paths}
    logged = lmms_task if one else [r.task or str(r.path and r.path.name) for r in _firsts(records)]
    model = next(iter(models.values()), None)
    info["lmms_eval"] = {"task": logged, "model": model, "records": len(records), **counts}
    return items, info


def _firsts(records: list[Record]) -> list[Record]:
    """The first record of each file, in file order."""
    out: list[Record] = []
    for r in records:
        if not out or r.path != out[-1].path:
            out.append(r)
    return out


def problems(counts: dict[str, Any]) -> list[str]:
    """What an import left out, as sentences (empty when every record and official item was paired)."""
    out = []
    for key, what in (
        ("unmatched_records", "records match no official question"),
        ("conflicting_records", "records disagree with the official question of their id (text or label)"),
        ("ambiguous_records", "records could not be given a split"),
        ("duplicate_records", "records repeat an official question already answered"),
        (
            "judge_failures_left_out",
            "records were left out: lmms-eval's judge call failed (it scored them 0)",
        ),
    ):
        if counts.get(key):
            out.append(f"{counts[key]} {what}")
    if counts.get("splits_without_log"):
        out.append("no log of split " + ", ".join(counts["splits_without_log"]))
    missing = {k: v for k, v in (counts.get("official_without_answer") or {}).items() if v}
    if missing:
        out.append(
            "official questions without an answer: " + ", ".join(f"{k} {v}" for k, v in missing.items())
        )
    return out
