"""MM-Vet from the Hugging Face hub: lmms-lab/MMVet's `default` config, split `test` (one parquet file,
`data/test-*.parquet`, 218 rows; columns question_id, question, answer, capability, image), read as the
official `mm-vet.json` and `images/` of the release zip are.

Each row becomes the official item: key `v1_<n>` (the hub's `question_id`, with or without the `v1_`
prefix), the question and the ground truth (with its `<AND>` / `<OR>` markers) as they are, the capabilities
split at the commas (`"ocr,math"` → `["ocr", "math"]`, the official list). The image is written once under
`$EVALKIT_CACHE/hub/` and named by the file name its cell carries (the `datasets` Image feature keeps the
original name), else after the first item showing the same bytes plus the suffix of the bytes, so items
that share an image share a cluster as in the official files. The samples, prompts, targets and
capabilities are thus those of `mm-vet.json`, and the judge sees the same grading message.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from evalkit.hubdata.cache import checksums, locate
from evalkit.hubdata.parquet import image_bytes, image_folder, image_suffix, read_rows, write_once
from evalkit.hubdata.source import HubSource
from evalkit.tasks.mmvet.data import METADATA, RELEASE_ZIP
from evalkit.types import UserError

SOURCE = HubSource(
    repo_id="lmms-lab/MMVet",
    mirrors=("lmms-lab-encoder/MMVet",),
    revision=None,
    files=("data/test-*.parquet",),
    config="default",
    split="test",
    rows=218,
    size="67 MB",
    note=(
        "the 218 questions of mm-vet.json with their images embedded; capabilities comma-joined, split "
        "back into the official list. Not pinned: no public file establishes a commit sha of this repo, "
        "so the cache's main is read and the resolved commit recorded in run.json. Which ground-truth "
        "revision of mm-vet.json (2023-08-15 or the 2023-10-18 re-upload) it carries is not established"
    ),
)
COLUMNS = ("question_id", "question", "answer", "capability", "image")


def item_key(value: Any, where: str) -> str:
    """The official item id (`v1_<n>`) of a hub `question_id` (`v1_<n>`, `<n>` or the integer n)."""
    text = str(value).strip()
    number = text[3:] if text.startswith("v1_") else text
    if not number.isdigit():
        raise UserError(f"{where}: question_id {value!r} is not v1_<n> or a number")
    return f"v1_{int(number)}"


def capabilities(value: Any, where: str) -> list[str]:
    """The official capability list of a hub `capability` cell ("rec,ocr", or already a list)."""
    parts = value if isinstance(value, list) else str(value or "").split(",")
    caps = [str(c).strip() for c in parts if str(c).strip()]
    if not caps:
        raise UserError(f"{where}: no capability")
    return caps


def read_hub(limit: int | None) -> tuple[dict[str, dict[str, Any]], Path, dict[str, Any]]:
    """The items as `mm-vet.json` holds them (key → imagename, question, answer, capability; the images
    of the first `limit` items, or all, written), the image folder and the data info a run records."""
    instead = f"pass --data toy, or --data-dir DIR with {METADATA} and images/ from {RELEASE_ZIP}"
    snap = locate(SOURCE, "mmvet", instead=instead)
    sums = checksums(snap, "mmvet")  # before reading: a damaged cache is named as such
    images = image_folder(snap.repo_id, snap.revision)
    metadata: dict[str, dict[str, Any]] = {}
    names: dict[str, str] = {}  # sha256 of image bytes → the file name given to them
    for name in snap.files:
        for i, row in enumerate(read_rows(snap.path(name), COLUMNS), 1):
            where = f"{snap.path(name)}: row {i}"
            key = item_key(row["question_id"], where)
            if key in metadata:
                raise UserError(f"{where}: question_id {key} appears twice")
            for field in ("question", "answer"):
                if not isinstance(row[field], str):
                    raise UserError(f"{where}: {field} must be text, got {row[field]!r}")
            data, original = image_bytes(row["image"], where)
            digest = hashlib.sha256(data).hexdigest()
            if digest not in names:
                given = Path(original).name if original else ""
                taken = given in names.values()  # two images under one name: name them by item instead
                names[digest] = given if given and not taken else key + image_suffix(data, original)
            if limit is None or len(metadata) < limit:
                write_once(images / names[digest], data)
            metadata[key] = {
                "imagename": names[digest],
                "question": row["question"],
                "answer": row["answer"],
                "capability": capabilities(row["capability"], where),
            }
    if not metadata:
        raise UserError(f"{snap.folder}: the MM-Vet parquet file(s) hold no rows")
    info = {
        "source": snap.uri,
        "image_dir": str(images),
        "version": f"hub MM-Vet ({len(metadata)} items)",
        "hub": {
            **snap.record(),
            "split": {SOURCE.split: len(metadata)},
            "rows": len(metadata),
            "files": sums,
        },
    }
    return metadata, images, info
