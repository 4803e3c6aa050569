"""Reading GQA's official files: the question file `testdev_balanced_questions.json` (question id → `imageId`,
`question`, `answer`, `isBalanced`, `types` {structural, semantic, detailed}, ...) and the image folder
(`images/<imageId>.jpg`, or --image-dir). Every reader returns the same records (`question_id`, `image_id`,
`question`, `answer`, `structural`, `semantic` (None when the file has no types), `image`: the file name in
the image folder), which the hub and toy readers produce too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evalkit.tasks import short_answer
from evalkit.types import UserError
from evalkit.util.datafiles import read_json, require_fields, toy_label

QUESTIONS = "testdev_balanced_questions.json"
IMAGE_DIR_CANDIDATES = ("images", "testdev_images", "gqa/images")
#: the question count of the official testdev-balanced file
OFFICIAL_COUNT = 12578


def data_label(data_dir: Path, n: int) -> str:
    """The toy world's label (its toy_meta.json), else the split and count."""
    if toy_label(data_dir):
        return toy_label(data_dir)
    official = " (the official file)" if n == OFFICIAL_COUNT else ""
    return f"testdev-balanced ({n:,} questions{official})"


def types_of(where: str, types: Any) -> tuple[str | None, str | None]:
    """(structural, semantic) of a question's `types` (None: absent); an object, or its JSON text (a hub
    column stored as a string)."""
    if types is None:
        return None, None
    if isinstance(types, str):
        try:
            types = json.loads(types)
        except ValueError:
            raise UserError(f"{where}: 'types' is text but not JSON: {types[:60]!r}") from None
    if not isinstance(types, dict):
        raise UserError(f"{where}: 'types' must be an object with 'structural' and 'semantic'")
    return types.get("structural"), types.get("semantic")


def record(where: str, qid: str, q: dict[str, Any]) -> dict[str, Any]:
    structural, semantic = types_of(where, q.get("types"))
    return {
        "question_id": qid,
        "image_id": str(q["imageId"]),
        "question": q["question"],
        "answer": q["answer"],
        "structural": structural,
        "semantic": semantic,
    }


def read_questions(data_dir: Path) -> tuple[list[dict[str, Any]], Path]:
    """The balanced questions of the question file, in file order."""
    path = data_dir / QUESTIONS
    if not path.is_file():
        raise UserError(
            f"GQA questions not found: {path}; put {QUESTIONS} there (gqadataset.org, questions1.2.zip) "
            "with the images in images/ (or pass --image-dir)"
        )
    doc = read_json(path, dict)
    records = []
    for i, (qid, q) in enumerate(doc.items(), 1):
        require_fields(path, i, q, {"imageId": str, "question": str, "answer": str})
        if q.get("isBalanced", True):
            records.append(record(f"{path}: question {qid}", str(qid), q))
    if not records:
        raise UserError(f"{path}: no balanced question")
    return records, path


def find_images(data_dir: Path, image_dir: Path | None, records: list[dict[str, Any]]) -> Path:
    """The image folder, each record's `image` set to its file (`short_answer.find_images`)."""
    hint = "put the GQA images there (gqadataset.org, images.zip)"
    return short_answer.find_images(data_dir, image_dir, records, IMAGE_DIR_CANDIDATES, "GQA", hint)
