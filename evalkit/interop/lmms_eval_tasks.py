"""The per-task converters of `evalkit.interop.lmms_eval`: an lmms-eval log's records turned into the
official answer files each task's `import_answers` reads (POPE, MMBench, MM-Vet); see that module's
docstring."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from evalkit.datafiles import mark_partial, sha256_file
from evalkit.interop.lmms_eval import POPE_TASK_SPLIT, Record, _metric
from evalkit.task import Imported
from evalkit.types import Message, Sample, UserError


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


def pope(task, records, lmms_task, tmp, data_dir, path):
    from evalkit.tasks.pope import SPLITS, data_label, read_label_files

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
    info = {
        "source": str(data_dir),
        "version": data_label(Path(data_dir), n),
        "files": {p.name: sha256_file(p) for p in paths.values()},
    }
    # a partial set is another column on a leaderboard, never merged silently
    mark_partial(info, len(matched), sum(n), "questions", " in the lmms-eval log")
    return items, info, counts


# ------------------------------------------------------------------------------------------ MMBench


def _na(value: Any) -> bool:
    """A cell lmms-eval's pandas reads as missing: None, NaN, or 'nan'-like text."""
    from evalkit.tasks.mmbench_protocol import is_na

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return isinstance(value, str) and is_na(value)


def mmbench(task, records, lmms_task, tmp, data_dir, path):
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


def mmvet(task, records, lmms_task, tmp, data_dir, path):
    answers, grades, metadata, doc_ids, failed = {}, {}, {}, {}, 0
    for rec in records:
        g, doc = _metric(rec, "gpt_eval_score"), rec.doc or {}
        qid = g.get("question_id", doc.get("question_id"))
        key = qid if isinstance(qid, str) and qid.startswith("v1_") else f"v1_{qid}"
        score = g.get("score")
        if qid is None or not isinstance(score, (int, float)):
            raise UserError(f"{path}: doc_id {rec.doc_id}: no gpt_eval_score with question_id and score")
        caps = g.get("capabilities", doc.get("capability", ""))
        caps = [c.strip() for c in caps.split(",")] if isinstance(caps, str) else caps
        if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
            raise UserError(f"{path}: doc_id {rec.doc_id}: capabilities must be text or a list of text")
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
    from evalkit.tasks.mmvet import OFFICIAL_ITEMS

    info = {"source": "lmms-eval", "version": "lmms-lab/MMVet, as logged by lmms-eval"}
    # a judge failure leaves its item out: fewer than the 218 items is a partial set, labelled as such
    mark_partial(info, len(items), OFFICIAL_ITEMS, "items", " in the lmms-eval log")
    return items, info, {"judge_failures_left_out": failed}
