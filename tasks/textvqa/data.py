"""Reading TextVQA's official files: the annotation file `TextVQA_0.5.1_val.json` (`{"data": [...]}`, one
record per question with `question_id`, `image_id`, `question` and the 10 human `answers`), the image
folder (`train_images/`, where TextVQA keeps the val images, or --image-dir) and, for the OCR prompt, the
OCR tokens: a record's own `ocr_tokens` field where the file carries one, else LLaVA's question file
`llava_textvqa_val_v051_ocr.jsonl` (its prompts' "Reference OCR token:" line, paired with the record as
`eval_textvqa.py` pairs answers: by image id and lower-cased question).

Every reader returns the same records (`question_id`, `image_id`, `question`, `answers`, `ocr_tokens`
(None when not read), `image`: the file name in the image folder), which the hub and toy readers produce too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.tasks import short_answer
from evalkit.tasks.textvqa.protocol import N_ANSWERS, OCR_PREFIX, question_from_prompt
from evalkit.types import UserError
from evalkit.util.datafiles import read_json, read_jsonl, require_fields, toy_label

ANNOTATIONS = "TextVQA_0.5.1_val.json"
LLAVA_QUESTIONS = "llava_textvqa_val_v051_ocr.jsonl"
IMAGE_DIR_CANDIDATES = ("train_images", "images", "train_val_images/train_images")


def data_label(data_dir: Path, n: int) -> str:
    """The label of an annotation file: the toy world's (its toy_meta.json), else the release and count."""
    return toy_label(data_dir) or f"TextVQA 0.5.1 val ({n:,} questions)"


def check_record(where: str, row: dict[str, Any]) -> None:
    """A record's answers: exactly 10 strings, as the official evaluator asserts."""
    answers = row["answers"]
    if len(answers) != N_ANSWERS or not all(isinstance(a, str) for a in answers):
        raise UserError(
            f"{where}: expected {N_ANSWERS} human answers (strings), got {len(answers)}; the official "
            "evaluator scores only questions with 10 answers (the val split)"
        )


def read_annotations(data_dir: Path) -> tuple[list[dict[str, Any]], Path]:
    """The records of `TextVQA_0.5.1_val.json` in file order (their `ocr_tokens` when the file has them)."""
    path = data_dir / ANNOTATIONS
    if not path.is_file():
        raise UserError(
            f"TextVQA annotations not found: {path}; put {ANNOTATIONS} there (textvqa.org/dataset, "
            "TextVQA 0.5.1 val) with the images in train_images/ (or pass --image-dir)"
        )
    doc = read_json(path, dict)
    data = doc.get("data")
    if not isinstance(data, list) or not data:
        raise UserError(f"{path}: expected a JSON object whose 'data' is a non-empty list of questions")
    records = []
    for i, row in enumerate(data, 1):
        where = f"{path}: data[{i - 1}]"
        require_fields(path, i, row, {"question_id": int, "image_id": str, "question": str, "answers": list})
        check_record(where, row)
        tokens = row.get("ocr_tokens")
        if tokens is not None and not (isinstance(tokens, list) and all(isinstance(t, str) for t in tokens)):
            raise UserError(f"{where}: ocr_tokens must be a list of strings")
        records.append(
            {
                "question_id": row["question_id"],
                "image_id": row["image_id"],
                "question": row["question"],
                "answers": list(row["answers"]),
                "ocr_tokens": tokens,
            }
        )
    return records, path


def read_llava_ocr(path: Path) -> dict[tuple[str, str], list[str]]:
    """LLaVA's question file as (image id, lower-cased question) → the OCR tokens of its prompt (LLaVA's
    `question_id` field holds the image id)."""
    out = {}
    for i, row in enumerate(read_jsonl(path), 1):
        require_fields(path, i, row, {"question_id": str, "text": str})
        question = question_from_prompt(row["text"])
        lines = [line for line in row["text"].split("\n") if line.startswith(OCR_PREFIX[1:])]
        if question is None or len(lines) != 1:
            raise UserError(
                f"{path}:{i}: expected LLaVA's prompt 'QUESTION\\nReference OCR token: ...\\nAnswer the "
                "question using a single word or phrase.'"
            )
        tokens = lines[0][len(OCR_PREFIX) - 1 :]
        out[(row["question_id"], question)] = tokens.split(", ") if tokens else []
    return out


def attach_llava_ocr(records: list[dict[str, Any]], data_dir: Path) -> Path | None:
    """Give every record without `ocr_tokens` those of LLaVA's question file in `data_dir`; the file read
    (None when every record had its own). A record the file lacks is a `UserError`."""
    if all(r["ocr_tokens"] is not None for r in records):
        return None
    path = data_dir / LLAVA_QUESTIONS
    if not path.is_file():
        raise UserError(
            f"textvqa.ocr=true needs OCR tokens: {ANNOTATIONS} carries none, and {path} (LLaVA's question "
            "file, from LLaVA's eval.zip) is not there; put it there, or run without textvqa.ocr=true"
        )
    tokens = read_llava_ocr(path)
    for r in records:
        if r["ocr_tokens"] is None:
            key = (r["image_id"], r["question"].lower())
            if key not in tokens:
                raise UserError(f"{path}: no prompt for question {r['question_id']} ({r['question']!r})")
            r["ocr_tokens"] = tokens[key]
    return path


def find_images(data_dir: Path, image_dir: Path | None, records: list[dict[str, Any]]) -> Path:
    """The image folder, each record's `image` set to its file (`short_answer.find_images`)."""
    hint = "put the TextVQA train/val images there (textvqa.org/dataset, train_val_images.zip)"
    return short_answer.find_images(data_dir, image_dir, records, IMAGE_DIR_CANDIDATES, "TextVQA", hint)
