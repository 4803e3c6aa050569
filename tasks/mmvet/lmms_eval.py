"""MM-Vet from lmms-eval logs: `mmvet` (lmms-eval `lmms_eval/tasks/mmvet/utils.py`).

`gpt_eval_score` holds question_id, question, gt_answer, capabilities, the parsed judge score and
`eval_model`. The score is kept as a one-run judge record whose fingerprint names that model and lmms-eval
(its judge set-up is not the official gpt-4-0613 with max_tokens 3), so such runs are never merged with
officially judged ones. The records are written as the official answer, grade and question files and read
by `importing`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evalkit.task import Imported
from evalkit.tasks.mmvet.data import OFFICIAL_ITEMS
from evalkit.tasks.mmvet.importing import import_answers
from evalkit.types import UserError
from evalkit.util.datafiles import mark_partial


def convert(
    records: list[Any], lmms_task: str | None, tmp: Path, data_dir: Path | None, path: Path
) -> tuple[list[Imported], dict[str, Any], dict[str, Any]]:
    """The records' answers and parsed judge scores as official MM-Vet files, read by `importing`."""
    answers, grades, metadata, doc_ids, failed = {}, {}, {}, {}, 0
    for rec in records:
        g, doc = rec.metric("gpt_eval_score"), rec.doc or {}
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
    items, _ = import_answers(tmp / "answers.json", tmp / "mm-vet.json", None, [tmp / "grades.json"])
    for it in items:
        it.judge["fingerprint"]["source"] = "lmms-eval gpt_eval_score (parsed score only, one run)"
        it.sample.meta["lmms_eval_doc_id"] = doc_ids.get(it.sample.id)
    info = {"source": "lmms-eval", "version": "lmms-lab/MMVet, as logged by lmms-eval"}
    # a judge failure leaves its item out: fewer than the 218 items is a partial set, labelled as such
    mark_partial(info, len(items), OFFICIAL_ITEMS, "items", " in the lmms-eval log")
    return items, info, {"judge_failures_left_out": failed}
