"""`evalkit import` of lmms-eval's per-sample logs (`--log_samples`), for the tasks both harnesses share.

Format (EvolvingLMMs-Lab/lmms-eval: `lmms_eval/evaluator.py`, `lmms_eval/loggers/evaluation_tracker.py`
`save_results_samples`; before the tracker, `lmms_eval/__main__.py`): the tracker writes
`<output>/<model>/<date>_samples_<task>.jsonl`, one object per document with `doc_id` (position in the
task's HF split), `target`, `input` (the prompt), `filtered_resps` (the answer after the task's filters;
`resps` only when it differs), `doc_hash`, `prompt_hash`, `target_hash` and one field per value the task's
`process_results` returned (`pope_accuracy`, `gpt_eval_score`, ...); it drops `doc`. Older versions wrote
`<task>.json`, an object {"args", "model_configs" (or "config"), "logs": [records with `doc`]}. Both are
read; the records, not the file name, decide the task.

Only the model's answers are taken; evalkit's official scorer scores them (lmms-eval's metric fields
follow other rules, spec/benchmarks.md). Per task (lmms-eval `lmms_eval/tasks/<dir>/`):

- POPE: `pope`, `pope_random`, `pope_pop`, `pope_adv` (`pope/utils.py`, `pope*.yaml`: HF lmms-lab/POPE,
  3,000 rows per split with question_id, question, answer, image_source, category). A record is paired
  with the row of the official file (`--data-dir`) with its split and question_id, when the question text
  ("imange" typo aside), label and image (when logged) agree. The split is `doc.category`, else the task
  name, else found from the content (`_pope_blocks`). What pairs with nothing is counted in run.json.
- MMBench: `mmbench_en_dev`, `mmbench_en_test` (`mmbench/en_utils.py`: HF lmms-lab/MMBench `en`).
  `gpt_eval_score` holds index, question, hint, A-E, answer, category, L2-category, split: each record is
  a circular pass (index = g_index + k·1e6). VLMEvalKit's rules read the answer; lmms-eval's ChatGPT
  matching is not logged per sample, so an unread answer takes the official random fallback
  (`matcher: none`, counted as passes/random). The prompt is lmms-eval's (`input`), not LLaVA's.
- MM-Vet: `mmvet` (`mmvet/utils.py`): `gpt_eval_score` holds question_id, question, gt_answer,
  capabilities, the parsed judge score and `eval_model`. The score is kept as a one-run judge record whose
  fingerprint names that model and lmms-eval (its judge set-up is not the official gpt-4-0613 with
  max_tokens 3), so such runs are never merged with officially judged ones.
- Not imported: `llava_in_the_wild` and `amber_g` (reasons in `UNSUPPORTED`).
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.datafiles import sha256_file
from evalkit.task import Imported, Task
from evalkit.types import Message, Sample, UserError

#: lmms-eval task → evalkit task
LMMS_TASKS: dict[str, str] = {
    "pope": "pope",
    "pope_random": "pope",
    "pope_pop": "pope",
    "pope_adv": "pope",
    "mmbench_en_dev": "mmbench",
    "mmbench_en_test": "mmbench",
    "mmvet": "mmvet",
}
UNSUPPORTED = {
    "llava_bench": (
        "lmms-eval's llava_in_the_wild records carry no question_id (its gpt_eval_llava_* fields hold the "
        "question text, which repeats across images, and a review by lmms-eval's own judge set-up); import "
        "a LLaVA-format answer file with the official review files instead"
    ),
    "amber": (
        "lmms-eval's amber_g log carries no AMBER item id per sample (only counters), so its answers "
        "cannot be matched to the official items; export {id, response} pairs and import those"
    ),
}
POPE_TASK_SPLIT = {"pope_random": "random", "pope_pop": "popular", "pope_adv": "adversarial"}
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
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
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
    """Every record of an lmms-eval samples file, in `doc_id` order; one record per document."""
    raw = _logs(_peek(path))
    if raw is None:
        raw = []
        for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").split("\n"), 1):
            if line.strip():
                try:
                    raw.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise UserError(f"{path}:{lineno}: malformed JSON ({exc.msg})") from None
    records: dict[int, Record] = {}
    for obj in raw:
        if not _is_record(obj):
            raise UserError(f"{path}: a record without doc_id and filtered_resps/resps: {str(obj)[:80]}")
        doc_id = int(obj["doc_id"])
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
        records[doc_id] = Record(doc_id, _text(answer, path, doc_id), obj.get("target"), prompt, doc, obj)
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


def _metric(rec: Record, *names: str) -> dict[str, Any]:
    for name in names:
        if isinstance(rec.fields.get(name), dict):
            return rec.fields[name]
    return {}


def detect(records: list[Record], lmms_task: str | None) -> str | None:
    """The evalkit task the records belong to, from their per-sample fields (the file name decides only
    when it names a task we know)."""
    if lmms_task in LMMS_TASKS:
        return LMMS_TASKS[lmms_task]
    rec = records[0]
    fields, doc = rec.fields, rec.doc or {}
    score = _metric(rec, "gpt_eval_score", "submission")
    if "pope_accuracy" in fields or {"question_id", "image_source", "category"} <= doc.keys():
        return "pope"
    if "L2-category" in score or "L2-category" in doc:
        return "mmbench"
    if "capabilities" in score or "capability" in doc:
        return "mmvet"
    if any(k.startswith("gpt_eval_llava") for k in fields):
        return "llava_bench"
    if "amber_chair" in fields:
        return "amber"
    return None


# ---------------------------------------------------------------------------------------- importing


def import_log(
    task: Task, path: Path, questions: Path | None, data_dir: Path | None, judgments: list[Path]
) -> tuple[list[Imported], dict[str, Any]]:
    """The imported answers and the data info of an lmms-eval samples file, for `task`."""
    records = read_log(path)
    lmms_task = log_task_name(path)
    family = detect(records, lmms_task)
    named = f"lmms-eval task {lmms_task!r}" if lmms_task else "an lmms-eval task"
    if family is None:
        shared = ", ".join(sorted(LMMS_TASKS))
        raise UserError(
            f"{path} is a log of {named} that evalkit does not share; importable lmms-eval tasks: {shared}"
        )
    if family in UNSUPPORTED:
        raise UserError(f"{path}: {UNSUPPORTED[family]}")
    if family != task.name:
        raise UserError(f"{path} is a log of {named}, which is evalkit's {family!r}; pass --task {family}")
    if lmms_task is not None and lmms_task not in LMMS_TASKS:
        raise UserError(f"{path}: {named} is not one evalkit imports; importable: {', '.join(LMMS_TASKS)}")
    if judgments:
        raise UserError("an lmms-eval log carries its own judge scores; --judgments does not apply")
    convert = {"pope": _pope, "mmbench": _mmbench, "mmvet": _mmvet}[family]
    with tempfile.TemporaryDirectory(prefix="evalkit-lmms-") as tmp:
        items, info, counts = convert(task, records, lmms_task, Path(tmp), data_dir, path)
    info["files"] = {**info.get("files", {}), path.name: sha256_file(path)}
    info["lmms_eval"] = {"task": lmms_task, "model": logged_model(path), "records": len(records), **counts}
    return items, info


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
    missing = {k: v for k, v in (counts.get("official_without_answer") or {}).items() if v}
    if missing:
        out.append(
            "official questions without an answer: " + ", ".join(f"{k} {v}" for k, v in missing.items())
        )
    return out


# --------------------------------------------------------------------------------------------- POPE


def _norm(text: str) -> str:
    return " ".join(text.replace("imange", "image").lower().split())


def _fits(row: dict[str, Any] | None, question: str | None, label: str, image: str | None) -> bool:
    if row is None or row["label"] != label:
        return False
    if question is not None and _norm(row["text"]) != _norm(question):
        return False
    return image is None or Path(row["image"]).stem == Path(str(image)).stem


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _pope_blocks(parsed: list[tuple], counts: dict[str, Any]) -> dict[int, str]:
    """The split of each record of a log that names none (lmms-eval's `pope` over lmms-lab/POPE's 9,000
    rows, `doc` dropped). A POPE split file numbers its questions 1, 2, ...; the log is cut into blocks
    where the id starts again (one per split when lmms-eval kept the files' order). A block takes the
    split that most of its records fitting exactly one split fit (positives are identical in every
    split, negatives mostly differ), when that split has at least twice the votes of the next and no
    other block claims it. The blocks and their votes are kept in run.json."""
    blocks: list[list[int]] = []
    for i, p in enumerate(parsed):
        if not blocks or p[0] <= parsed[blocks[-1][-1]][0]:
            blocks.append([])
        blocks[-1].append(i)
    winners: list[str | None] = []
    report = []
    for block in blocks:
        votes = Counter(parsed[i][5][0] for i in block if len(parsed[i][5]) == 1)
        ranked = votes.most_common(2) + [(None, 0)] * 2
        winners.append(ranked[0][0] if ranked[0][1] >= max(1, 2 * ranked[1][1]) else None)
        report.append({"records": len(block), "first_record": block[0], "votes": dict(votes)})
    claimed = Counter(w for w in winners if w is not None)
    out = {}
    for block, winner, entry in zip(blocks, winners, report, strict=True):
        entry["split"] = winner if winner is not None and claimed[winner] == 1 else None
        out.update({i: entry["split"] for i in block if entry["split"] is not None})
    counts["split_blocks"] = report
    return out


def _pope(task, records, lmms_task, tmp, data_dir, path):
    from evalkit.tasks.pope import SPLITS, VERSIONS, read_label_files

    if data_dir is None:
        raise UserError(
            "pope import of an lmms-eval log needs --data-dir with the official coco_pope_{random,popular,"
            "adversarial}.json (github.com/AoiDragon/POPE output/coco): labels and question ids come from "
            "there (lmms-eval's lmms-lab/POPE has 3,000 questions per split, as the POPE HEAD files do)"
        )
    splits, paths = read_label_files(Path(data_dir))
    official = {s: {int(r["question_id"]): r for r in rows} for s, rows in splits.items()}
    hint = POPE_TASK_SPLIT.get(lmms_task or "")
    parsed = []  # (question_id, question, label, image, split named by the log, splits it fits)
    for rec in records:
        doc = rec.doc or {}
        m = _metric(rec, "pope_accuracy", "pope_f1_score", "pope_precision", "pope_recall")
        try:
            qid = int(doc.get("question_id", m.get("question_id")))
        except (TypeError, ValueError):
            raise UserError(
                f"{path}: doc_id {rec.doc_id}: no POPE question_id (doc or pope_accuracy)"
            ) from None
        label = str(doc.get("answer", m.get("ground_truth", rec.target)) or "").strip().lower()
        question = doc.get("question") or (rec.input.split("\n")[0] if rec.input else None)
        split = doc.get("category") or hint
        if split is not None and split not in SPLITS:
            raise UserError(f"{path}: doc_id {rec.doc_id}: unknown POPE category {split!r}")
        image = doc.get("image_source")
        fits = [s for s in SPLITS if _fits(official[s].get(qid), question, label, image)]
        parsed.append((qid, question, label, image, split, fits))
    counts: dict[str, Any] = {}
    guessed = _pope_blocks(parsed, counts) if any(p[4] is None for p in parsed) else {}
    counts.update(unmatched_records=0, conflicting_records=0, ambiguous_records=0, duplicate_records=0)
    matched: dict[tuple[str, int], Record] = {}
    for i, (rec, (qid, question, label, image, split, _)) in enumerate(zip(records, parsed, strict=True)):
        split = split or guessed.get(i)
        if split is None:
            counts["ambiguous_records"] += 1
        elif not _fits(official[split].get(qid), question, label, image):
            counts["conflicting_records" if qid in official[split] else "unmatched_records"] += 1
        elif (split, qid) in matched:
            counts["duplicate_records"] += 1
        else:
            matched[(split, qid)] = rec
    if not matched:
        raise UserError(
            f"{path}: none of its {len(records)} POPE records matches a question of the official files in "
            f"{data_dir} (same split, question_id, question text and label); are they another POPE version?"
        )
    questions, answers = [], []
    counts["official_without_answer"] = {}
    for s in SPLITS:
        rows = [r for r in splits[s] if (s, int(r["question_id"])) in matched]
        counts["official_without_answer"][s] = len(splits[s]) - len(rows)
        _write_jsonl(tmp / f"coco_pope_{s}.json", rows)
        for r in rows:
            key = f"{s}-{r['question_id']}"
            questions.append({"question_id": key, "category": s})
            answers.append({"question_id": key, "text": matched[(s, int(r["question_id"]))].response})
    _write_jsonl(tmp / "questions.jsonl", questions)
    _write_jsonl(tmp / "answers.jsonl", answers)
    items, _ = task.import_answers(tmp / "answers.jsonl", tmp / "questions.jsonl", tmp, [])
    for it in items:
        meta = it.sample.meta
        meta.pop("answer_question_id", None)
        meta["lmms_eval_doc_id"] = matched[(meta["split"], int(meta["question_id"]))].doc_id
    counts["matched"] = len(matched)
    n = tuple(len(splits[s]) for s in SPLITS)
    version = VERSIONS.get(n, f"unknown ({n[0]}/{n[1]}/{n[2]} questions)")
    if len(matched) < sum(n):  # a partial set is another column on a leaderboard, never merged silently
        version += f"; {len(matched)} of {sum(n)} questions answered in the lmms-eval log"
    info = {
        "source": str(data_dir),
        "version": version,
        "files": {p.name: sha256_file(p) for p in paths.values()},
    }
    return items, info, counts


# ------------------------------------------------------------------------------------------ MMBench


def _na(value: Any) -> bool:
    """A cell lmms-eval's pandas reads as missing: None, NaN, or 'nan'-like text."""
    from evalkit.tasks.mmbench_protocol import is_na

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return isinstance(value, str) and is_na(value)


def _mmbench(task, records, lmms_task, tmp, data_dir, path):
    from evalkit.tasks.mmbench import _meta
    from evalkit.tasks.mmbench_data import CIRCULAR_STEP, Pass

    if lmms_task is not None and "_cn" in lmms_task:
        raise UserError(f"{path}: {lmms_task} is MMBench-CN; evalkit's mmbench is the English set")
    judge = {
        "fingerprint": {"model": "none", "source": "lmms-eval log (its matcher outputs are not logged)"},
        "outputs": [[]],
    }
    items, groups = [], set()
    for rec in records:
        f = rec.doc or _metric(rec, "gpt_eval_score", "submission")
        if "index" not in f or "question" not in f:
            raise UserError(f"{path}: doc_id {rec.doc_id}: no MMBench index/question (doc or gpt_eval_score)")
        index = int(f["index"])
        options = {c: str(f[c]) for c in "ABCDEFGHI" if c in f and not _na(f[c])}
        names = ("hint", "answer", "category", "L2-category", "split")
        hint, answer, category, l2, split = (None if _na(f.get(c)) else str(f[c]) for c in names)
        g, k = index % CIRCULAR_STEP, index // CIRCULAR_STEP
        p = Pass(index, g, k, str(f["question"]), hint, options, answer, category, l2, split, "", False)
        groups.add(p.g_index)
        meta = {**_meta(p), "matcher": "none", "lmms_eval_doc_id": rec.doc_id}
        sample = Sample(str(index), (Message("user", rec.input or ""),), p.answer, str(p.g_index), meta)
        items.append(Imported(sample, rec.response, judge))
    if len({it.sample.id for it in items}) != len(items):
        raise UserError(f"{path}: an MMBench index is logged twice")
    hidden = all(it.sample.target is None for it in items)
    info = {
        "source": "lmms-eval",
        "version": f"lmms-lab/MMBench en, as logged by lmms-eval ({lmms_task or 'task name unknown'})",
        "prompt": "lmms-eval",
        "matcher": "none",
        "answers": "hidden" if hidden else "given",
    }
    return items, info, {"questions": len(groups), "passes": len(items)}


# ------------------------------------------------------------------------------------------- MM-Vet


def _mmvet(task, records, lmms_task, tmp, data_dir, path):
    answers, grades, metadata, doc_ids, failed = {}, {}, {}, {}, 0
    for rec in records:
        g, doc = _metric(rec, "gpt_eval_score"), rec.doc or {}
        qid = g.get("question_id", doc.get("question_id"))
        key = qid if isinstance(qid, str) and qid.startswith("v1_") else f"v1_{qid}"
        score = g.get("score")
        if qid is None or not isinstance(score, (int, float)):
            raise UserError(f"{path}: doc_id {rec.doc_id}: no gpt_eval_score with question_id and score")
        caps = g.get("capabilities", doc.get("capability", ""))
        caps = [c.strip() for c in caps.split(",")] if isinstance(caps, str) else list(caps)
        if not g.get("eval_model"):  # lmms-eval scores 0.0 when its judge call fails: a failure, not a score
            failed += 1
            continue
        answers[key], doc_ids[key] = rec.response, rec.doc_id
        grades[key] = {"score": [float(score)], "content": [str(float(score))], "model": [g["eval_model"]]}
        metadata[key] = {
            "imagename": f"{key}.png",
            "question": str(g.get("question", doc.get("question", ""))),
            "answer": str(g.get("gt_answer", doc.get("answer", ""))),
            "capability": caps,
        }
    for name, data in (("answers.json", answers), ("grades.json", grades), ("mm-vet.json", metadata)):
        (tmp / name).write_text(json.dumps(data), encoding="utf-8")
    items, _ = task.import_answers(tmp / "answers.json", tmp / "mm-vet.json", None, [tmp / "grades.json"])
    for it in items:
        it.judge["fingerprint"]["source"] = "lmms-eval gpt_eval_score (parsed score only, one run)"
        it.sample.meta["lmms_eval_doc_id"] = doc_ids.get(it.sample.id)
    info = {"source": "lmms-eval", "version": "lmms-lab/MMVet, as logged by lmms-eval"}
    return items, info, {"judge_failures_left_out": failed}
