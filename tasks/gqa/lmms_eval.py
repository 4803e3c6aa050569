"""GQA from lmms-eval logs: `gqa` (lmms-eval `lmms_eval/tasks/gqa/`: HF lmms-lab/GQA
testdev_balanced_instructions). A record's question is its logged `doc` (`id`, `imageId`, `question`,
`answer`, `types`); with --data-dir the question of `testdev_balanced_questions.json` with that id is
used instead (records whose question it lacks, and questions no record answers, are counted in run.json
and warned about, as are records repeating a question). Only the answer (`filtered_resps`) is taken
and scored by LLaVA's rule (`protocol`), not lmms-eval's punctuation-free match; the prompt is lmms-eval's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.task import Imported
from evalkit.tasks.gqa.data import data_label, read_questions, types_of
from evalkit.tasks.gqa.importing import sample_of
from evalkit.types import UserError
from evalkit.util.datafiles import mark_partial, sha256_file


def convert(
    records: list[Any], lmms_task: str | None, tmp: Path, data_dir: Path | None, path: Path
) -> tuple[list[Imported], dict[str, Any], dict[str, Any]]:
    official: dict[str, dict[str, Any]] | None = None
    if data_dir is not None:
        questions, source = read_questions(Path(data_dir))
        official = {r["question_id"]: r for r in questions}
    items, seen = [], set()
    counts = {"unmatched_records": 0, "duplicate_records": 0}
    for rec in records:
        doc = rec.doc or {}
        where = f"{path}: doc_id {rec.doc_id}"
        if "id" not in doc:
            raise UserError(
                f"{where}: the log holds no doc with the question id; log samples with their docs"
            )
        qid = str(doc["id"])
        if qid in seen:
            counts["duplicate_records"] += 1
            continue
        seen.add(qid)
        if official is not None:
            if qid not in official:
                counts["unmatched_records"] += 1
                continue
            record = official[qid]
        else:
            if not all(isinstance(doc.get(k), str) for k in ("imageId", "question", "answer")):
                raise UserError(f"{where}: the doc lacks imageId, question or answer")
            structural, semantic = types_of(where, doc.get("types"))
            record = {"question_id": qid, "image_id": doc["imageId"], "question": doc["question"]}
            record |= {"answer": doc["answer"], "structural": structural, "semantic": semantic}
        items.append(Imported(sample_of(record, f"{record['image_id']}.jpg", rec.input or ""), rec.response))
    if not items:
        raise UserError(f"{path}: no record pairs with a question of the data read (--data-dir)")
    if official is not None:
        info = {
            "source": str(data_dir),
            "version": data_label(Path(data_dir), len(official)),
            "files": {source.name: sha256_file(source)},
        }
        info = mark_partial(info, len(items), len(official), "questions")
    else:
        info = {"source": "lmms-eval", "version": "lmms-lab/GQA testdev-balanced, as logged by lmms-eval"}
    info["prompt"] = "lmms-eval"
    if official is not None:
        counts["official_without_answer"] = {"questions": len(official) - len(items)}
    return items, info, {"questions": len(items), **counts}
