"""TextVQA from lmms-eval logs: `textvqa_val` (lmms-eval `lmms_eval/tasks/textvqa/utils.py`: HF
lmms-lab/textvqa validation; the test split has no answers).

A record's question is found by its `question_id` (the logged `doc`, else the `submission` field
`textvqa_process_results` logs): with --data-dir, the question of `TextVQA_0.5.1_val.json` with that id
and its 10 human answers; without, the logged `doc` itself (lmms-eval logs it with its answers, which its
scorer has already normalised in place; the normalisation leaves a normalised answer as it is). Only the
answer (`filtered_resps`) is taken and scored by `protocol`; the prompt is lmms-eval's (`input`). Records
whose question the official file lacks, records repeating a question, and (with --data-dir) questions no
record answers are counted in run.json and warned about.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.task import Imported
from evalkit.tasks.short_answer import convert_logged
from evalkit.tasks.textvqa.data import check_record, data_label, read_annotations
from evalkit.tasks.textvqa.importing import sample_of
from evalkit.types import UserError
from evalkit.util.datafiles import sha256_file


def question_id(rec: Any) -> Any:
    doc = rec.doc or {}
    return doc.get("question_id", rec.metric("submission").get("question_id"))


def convert(
    records: list[Any], lmms_task: str | None, tmp: Path, data_dir: Path | None, path: Path
) -> tuple[list[Imported], dict[str, Any], dict[str, Any]]:
    if lmms_task is not None and lmms_task.startswith("textvqa_test"):
        raise UserError(f"{path}: {lmms_task} has no answers to score against; import textvqa_val logs")
    official = official_info = None
    if data_dir is not None:
        annotations, source = read_annotations(Path(data_dir))
        official = {r["question_id"]: r for r in annotations}
        official_info = {
            "source": str(data_dir),
            "version": data_label(Path(data_dir), len(official)),
            "files": {source.name: sha256_file(source)},
        }

    def checked_id(rec: Any) -> int:
        qid = question_id(rec)
        if not isinstance(qid, int) or isinstance(qid, bool):
            raise UserError(f"{path}: doc_id {rec.doc_id}: no question_id in its doc or submission field")
        return qid

    def from_doc(rec: Any, qid: int) -> dict[str, Any]:
        doc = rec.doc or {}
        if not all(
            isinstance(doc.get(k), t) for k, t in (("image_id", str), ("question", str), ("answers", list))
        ):
            raise UserError(
                f"{path}: doc_id {rec.doc_id}: the log holds no doc with image_id, question and answers; "
                "pass --data-dir with TextVQA_0.5.1_val.json"
            )
        check_record(f"{path}: doc_id {rec.doc_id}", doc)
        return {k: doc[k] for k in ("image_id", "question", "answers")} | {"question_id": qid}

    return convert_logged(
        records,
        path,
        question_id=checked_id,
        from_doc=from_doc,
        sample_of=lambda record, rec: sample_of(record, rec.input or "", f"{record['image_id']}.jpg"),
        official=official,
        official_info=official_info,
        logged_version="lmms-lab/textvqa validation, as logged by lmms-eval",
    )
