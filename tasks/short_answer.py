"""What the short-answer VQA tasks (textvqa, gqa) share: finding the image folder of an official question
file, and pairing an lmms-eval log's records with the questions by question id."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from evalkit.task import Imported
from evalkit.types import Sample, UserError
from evalkit.util.datafiles import mark_partial

IMAGE_SUFFIXES = (".jpg", ".png", ".jpeg")


def find_images(
    data_dir: Path,
    image_dir: Path | None,
    records: list[dict[str, Any]],
    candidates: tuple[str, ...],
    name: str,
    hint: str,
) -> Path:
    """The image folder (`image_dir`, else the first of `candidates` under `data_dir` holding the first
    record's image), each record's `image` set to its file; else a `UserError` naming the benchmark
    (`name`), where the image was looked for, and `hint` (where to put which images, from where)."""
    first = records[0]["image_id"]
    folders = [image_dir] if image_dir else [data_dir / c for c in candidates]
    for folder in folders:
        if folder is not None and any((folder / f"{first}{s}").is_file() for s in IMAGE_SUFFIXES):
            for r in records:
                found = [s for s in IMAGE_SUFFIXES if (folder / f"{r['image_id']}{s}").is_file()]
                r["image"] = f"{r['image_id']}{found[0] if found else IMAGE_SUFFIXES[0]}"
            return folder
    where = str(image_dir) if image_dir else str(data_dir / candidates[0])
    raise UserError(f"{name} images not found: {first}.jpg is not in {where}; {hint} or pass --image-dir DIR")


def convert_logged(
    records: list[Any],
    path: Path,
    *,
    question_id: Callable[[Any], Any],
    from_doc: Callable[[Any, Any], dict[str, Any]],
    sample_of: Callable[[dict[str, Any], Any], Sample],
    official: dict[Any, dict[str, Any]] | None,
    official_info: dict[str, Any] | None,
    logged_version: str,
) -> tuple[list[Imported], dict[str, Any], dict[str, Any]]:
    """An lmms-eval log's records as imported answers: each question id's first record (repeats counted),
    asked about the `official` question of that id (--data-dir: records whose id it lacks are counted, and
    so are its questions no record answers; the import is partial then) or about the question `from_doc`
    builds of the logged doc; `sample_of(record, rec)` makes the sample. The data info is `official_info`,
    else the log's own (`logged_version`); the prompt is lmms-eval's."""
    items, seen = [], set()
    counts = {"unmatched_records": 0, "duplicate_records": 0}
    for rec in records:
        qid = question_id(rec)
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
            record = from_doc(rec, qid)
        items.append(Imported(sample_of(record, rec), rec.response))
    if not items:
        raise UserError(f"{path}: no record pairs with a question of the data read (--data-dir)")
    if official is not None:
        info = mark_partial(dict(official_info or {}), len(items), len(official), "questions")
        counts["official_without_answer"] = {"questions": len(official) - len(items)}
    else:
        info = {"source": "lmms-eval", "version": logged_version}
    info["prompt"] = "lmms-eval"
    return items, info, {"questions": len(items), **counts}
