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
from evalkit.tasks.short_answer import convert_logged
from evalkit.types import UserError
from evalkit.util.datafiles import sha256_file


def convert(
    records: list[Any], lmms_task: str | None, tmp: Path, data_dir: Path | None, path: Path
) -> tuple[list[Imported], dict[str, Any], dict[str, Any]]:
    official = official_info = None
    if data_dir is not None:
        questions, source = read_questions(Path(data_dir))
        official = {r["question_id"]: r for r in questions}
        official_info = {
            "source": str(data_dir),
            "version": data_label(Path(data_dir), len(official)),
            "files": {source.name: sha256_file(source)},
        }

    def question_id(rec: Any) -> str:
        doc = rec.doc or {}
        if "id" not in doc:
            raise UserError(
                f"{path}: doc_id {rec.doc_id}: the log holds no doc with the question id; log samples with "
                "their docs"
            )
        return str(doc["id"])

    def from_doc(rec: Any, qid: str) -> dict[str, Any]:
        doc, where = rec.doc, f"{path}: doc_id {rec.doc_id}"
        if not all(isinstance(doc.get(k), str) for k in ("imageId", "question", "answer")):
            raise UserError(f"{where}: the doc lacks imageId, question or answer")
        structural, semantic = types_of(where, doc.get("types"))
        record = {"question_id": qid, "image_id": doc["imageId"], "question": doc["question"]}
        return record | {"answer": doc["answer"], "structural": structural, "semantic": semantic}

    return convert_logged(
        records,
        path,
        question_id=question_id,
        from_doc=from_doc,
        sample_of=lambda record, rec: sample_of(record, f"{record['image_id']}.jpg", rec.input or ""),
        official=official,
        official_info=official_info,
        logged_version="lmms-lab/GQA testdev-balanced, as logged by lmms-eval",
    )
