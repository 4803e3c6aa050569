"""POPE from lmms-eval logs: `pope`, `pope_random`, `pope_pop`, `pope_adv` (lmms-eval
`lmms_eval/tasks/pope/utils.py`, `pope*.yaml`: HF lmms-lab/POPE, 3,000 rows per split with question_id,
question, answer, image_source, category).

A log is POPE's by its records (`matches`: the `pope_*` objects `pope_process_results` logs, or a POPE doc),
whatever its file name. A record is paired with the row of the official file (`--data-dir`) with its split
and question_id, when the question text ("imange" typo aside), label and image (when logged) agree. The
split is `doc.category`, else the record's lmms-eval task name (`TASK_SPLIT`), else found from the content
(`_pope_blocks`, block by block within each log). The three per-split logs of one run import together; a
question answered in two logs is refused, and a split with no log among per-split logs is named. What pairs
with nothing is counted in run.json. The paired answers are written as official answer files and read by
`importing`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from evalkit.task import Imported
from evalkit.tasks.pope.data import data_label, read_label_files
from evalkit.tasks.pope.importing import import_answers
from evalkit.tasks.pope.protocol import SPLITS
from evalkit.types import UserError
from evalkit.util.datafiles import mark_partial, sha256_file

#: lmms-eval task → the POPE split its log holds (`pope` holds all three)
TASK_SPLIT = {"pope_random": "random", "pope_pop": "popular", "pope_adv": "adversarial"}
#: the per-sample fields lmms-eval's `pope_process_results` logs, each {question_id, score, prediction,
#: ground_truth}
METRIC_FIELDS = ("pope_accuracy", "pope_precision", "pope_recall", "pope_f1_score", "pope_yes_ratio")


def _yes_no(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() in ("yes", "no")


def matches(record: Any) -> bool:
    """Whether an lmms-eval record is POPE's: a `pope_*` object with a question_id and a yes/no ground
    truth, or (older logs) a doc with question_id, question and a yes/no answer."""
    m = record.metric(*METRIC_FIELDS)
    if "question_id" in m and _yes_no(m.get("ground_truth")):
        return True
    doc = record.doc or {}
    return {"question_id", "question"} <= doc.keys() and _yes_no(doc.get("answer"))


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
    rows, `doc` dropped). A POPE split file numbers its questions 1, 2, ...; the records whose split is
    not named are cut into blocks where the id starts again or the log changes (one per split when
    lmms-eval kept the files' order). A block takes the split that most of its records fitting exactly
    one split fit (positives are identical in every split, negatives mostly differ), when that split has
    at least twice the votes of the next and no other block claims it. The blocks and their votes are
    kept in run.json."""
    blocks: list[list[int]] = []
    for i, p in enumerate(parsed):
        if p[4] is not None:  # its split is named (doc or task name): it takes no part
            continue
        last = parsed[blocks[-1][-1]] if blocks else None
        if last is None or p[0] <= last[0] or p[6] != last[6]:
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


def convert(
    records: list[Any], lmms_task: str | None, tmp: Path, data_dir: Path | None, path: Path
) -> tuple[list[Imported], dict[str, Any], dict[str, Any]]:
    """The records as official POPE answers, paired with the official files of `data_dir` (see above)."""
    if data_dir is None:
        raise UserError(
            "pope import of an lmms-eval log needs --data-dir with the official coco_pope_{random,popular,"
            "adversarial}.json (github.com/AoiDragon/POPE output/coco): labels and question ids come from "
            "there (lmms-eval's lmms-lab/POPE has 3,000 questions per split, as the POPE HEAD files do)"
        )
    splits, paths = read_label_files(Path(data_dir))
    official = {s: {int(r["question_id"]): r for r in rows} for s, rows in splits.items()}
    parsed = []  # (question_id, question, label, image, split named by the log, splits it fits, file)
    for rec in records:
        doc = rec.doc or {}
        m = rec.metric(*METRIC_FIELDS)
        hint = TASK_SPLIT.get(rec.task or lmms_task or "")
        try:
            qid = int(doc.get("question_id", m.get("question_id")))
        except (TypeError, ValueError):
            raise UserError(
                f"{rec.path or path}: doc_id {rec.doc_id}: no POPE question_id (doc or pope_accuracy)"
            ) from None
        label = str(doc.get("answer", m.get("ground_truth", rec.target)) or "").strip().lower()
        question = doc.get("question") or (rec.input.split("\n")[0] if rec.input else None)
        split = doc.get("category") or hint
        if split is not None and split not in SPLITS:
            raise UserError(f"{rec.path or path}: doc_id {rec.doc_id}: unknown POPE category {split!r}")
        image = doc.get("image_source")
        fits = [s for s in SPLITS if _fits(official[s].get(qid), question, label, image)]
        parsed.append((qid, question, label, image, split, fits, rec.path))
    counts: dict[str, Any] = {}
    guessed = _pope_blocks(parsed, counts) if any(p[4] is None for p in parsed) else {}
    counts.update(unmatched_records=0, conflicting_records=0, ambiguous_records=0, duplicate_records=0)
    matched: dict[tuple[str, int], Any] = {}
    for i, (rec, (qid, question, label, image, split, *_)) in enumerate(zip(records, parsed, strict=True)):
        split = split or guessed.get(i)
        if split is None:
            counts["ambiguous_records"] += 1
        elif not _fits(official[split].get(qid), question, label, image):
            counts["conflicting_records" if qid in official[split] else "unmatched_records"] += 1
        elif (split, qid) in matched:
            first = matched[(split, qid)].path
            if first != rec.path:
                raise UserError(
                    f"{rec.path}: POPE {split} question {qid} is answered in {first} too; a question may "
                    "come from one log only (import each split's log once)"
                )
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
    items, _ = import_answers(tmp / "answers.jsonl", tmp / "questions.jsonl", tmp, [])
    for it in items:
        meta = it.sample.meta
        meta.pop("answer_question_id", None)
        meta["lmms_eval_doc_id"] = matched[(meta["split"], int(meta["question_id"]))].doc_id
    counts["matched"] = len(matched)
    if all(r.task in TASK_SPLIT for r in records):  # per-split logs: name the splits none of them holds
        logged = {TASK_SPLIT[r.task] for r in records}
        by_split = {v: k for k, v in TASK_SPLIT.items()}
        counts["splits_without_log"] = [f"{s} ({by_split[s]})" for s in SPLITS if s not in logged]
    n = tuple(len(splits[s]) for s in SPLITS)
    info = {
        "source": str(data_dir),
        "version": data_label(Path(data_dir), n),
        "files": {p.name: sha256_file(p) for p in paths.values()},
    }
    # a partial set is another column on a leaderboard, never merged silently
    mark_partial(info, len(matched), sum(n), "questions", " in the lmms-eval log")
    return items, info, counts
