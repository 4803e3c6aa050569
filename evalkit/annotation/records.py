"""Prompt records for `evalkit annotate`: one JSON object a line,
`{"id": str, "question": str, "image": path or null, "reference": str (optional)}`.

evalkit's generic SFT records (`{"id", "prompt", "response", "image"}`) are read too: `prompt` is the
question, and `response` becomes the reference answer only with `response_as_reference` (otherwise a
reference would be whatever the file happens to hold). Relative image paths are resolved against
`image_dir`, else the file's folder; a missing image or a duplicate id is an error naming file:line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evalkit.types import UserError
from evalkit.util.datafiles import jsonl_records, read_text


@dataclass(frozen=True)
class PromptRecord:
    id: str
    question: str
    image: str | None = None
    reference: str | None = None


def load_prompts(
    path: str | Path, *, image_dir: str | Path | None = None, response_as_reference: bool = False
) -> list[PromptRecord]:
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"prompts file not found: {path} (give a JSONL file of {{id, question, image}} records)"
        )
    root = Path(image_dir) if image_dir is not None else path.parent
    records: list[PromptRecord] = []
    seen: set[str] = set()
    for n, row in jsonl_records(path, read_text(path)):
        where = f"{path}:{n}"
        question = row.get("question", row.get("prompt"))
        if not isinstance(question, str) or not question.strip():
            raise UserError(f"{where}: needs a non-empty 'question' (or 'prompt') string")
        rid = row.get("id")
        if not isinstance(rid, str | int) or str(rid) == "":
            raise UserError(f"{where}: needs an 'id' (a string)")
        rid = str(rid)
        if rid in seen:
            raise UserError(f"{where}: id {rid!r} appears twice; ids must be unique")
        seen.add(rid)
        reference = row.get("reference")
        if reference is None and response_as_reference:
            reference = row.get("response")
        if reference is not None and not isinstance(reference, str):
            raise UserError(f"{where}: 'reference' must be a string")
        image = row.get("image")
        if image is not None:
            if not isinstance(image, str):
                raise UserError(f"{where}: 'image' must be a path or null")
            full = Path(image) if Path(image).is_absolute() else root / image
            if not full.is_file():
                raise UserError(f"{where}: image not found: {full} (pass --image-dir FOLDER)")
            image = str(full.resolve())
        records.append(PromptRecord(rid, question, image, reference or None))
    if not records:
        raise UserError(f"{path}: no prompt records")
    return records
