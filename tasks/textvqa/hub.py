"""TextVQA from the Hugging Face hub: lmms-lab/textvqa's validation parquet files
(`data/validation-*.parquet`, 5,000 rows; columns image_id, question_id, question, answers (the 10 human
answers), ocr_tokens, image (embedded {bytes, path}), and others not read), read as the official annotation
file is, its images written once under `$EVALKIT_CACHE/hub/` and named by their image id. The hub copy
carries each question's OCR tokens, so the OCR prompt needs no other file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.hubdata.cache import checksums, locate
from evalkit.hubdata.parquet import image_bytes, image_folder, image_suffix, read_rows, write_once
from evalkit.hubdata.source import HubSource
from evalkit.tasks.textvqa.data import check_record
from evalkit.types import UserError

#: not pinned: no full commit sha of the repository could be established (its main was 3f6e5db at the
#: time of writing); the revision the cache holds is recorded in each run
SOURCE = HubSource(
    repo_id="lmms-lab/textvqa",
    mirrors=("lmms-lab-encoder/textvqa",),
    revision=None,
    files=("data/validation-*.parquet",),
    config="default",
    split="validation",
    rows=5000,
    size="1.4 GB",
    note=(
        "TextVQA 0.5.1 val with the images embedded and each question's OCR tokens (the OCR system of "
        "LLaVA's llava_textvqa_val_v051_ocr.jsonl is not established to be the same); not pinned to a commit"
    ),
)
COLUMNS = ("image_id", "question_id", "question", "answers", "image")


def read_hub(limit: int | None, ocr: bool) -> tuple[list[dict[str, Any]], Path, dict[str, Any]]:
    """The first `limit` records (or all; their images written), the image folder, and the data info a run
    records (the row count of the whole files)."""
    snap = locate(SOURCE, "textvqa")
    sums = checksums(snap, "textvqa")
    images = image_folder(snap.repo_id, snap.revision)
    records: list[dict[str, Any]] = []
    n_rows = 0
    for name in snap.files:
        optional = ("ocr_tokens",)
        for i, row in enumerate(read_rows(snap.path(name), COLUMNS, optional), 1):
            where = f"{snap.path(name)}: row {i}"
            n_rows += 1
            if not isinstance(row["question"], str) or not isinstance(row["answers"], list):
                raise UserError(f"{where}: expected a question string and a list of answers")
            check_record(where, row)
            if ocr and not isinstance(row.get("ocr_tokens"), list):
                raise UserError(f"{where}: textvqa.ocr=true needs the ocr_tokens column, which is absent")
            if limit is not None and len(records) >= limit:
                continue
            data, original = image_bytes(row["image"], where)
            image = str(row["image_id"]) + image_suffix(data, original)
            write_once(images / image, data)
            records.append(
                {
                    "question_id": int(row["question_id"]),
                    "image_id": str(row["image_id"]),
                    "question": row["question"],
                    "answers": list(row["answers"]),
                    "ocr_tokens": [str(t) for t in row["ocr_tokens"]] if ocr else None,
                    "image": image,
                }
            )
    info = {
        "source": snap.uri,
        "image_dir": str(images),
        "version": f"hub validation ({n_rows:,} questions)",
        "hub": {**snap.record(), "split": {"validation": n_rows}, "rows": n_rows, "files": sums},
    }
    return records, images, info
