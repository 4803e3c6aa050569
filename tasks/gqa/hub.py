"""GQA testdev-balanced from the Hugging Face hub: lmms-lab/GQA's two configs, read as the official files
are. `testdev_balanced_instructions` holds the questions (columns id, imageId, question, answer, and the
question's `types` {structural, semantic, detailed} among others), `testdev_balanced_images` the images
(id, image embedded {bytes, path}); a question's image is the image row whose `id` is its `imageId`, as
lmms-eval joins them. Images are written once under `$EVALKIT_CACHE/hub/`, named by their id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.hubdata.cache import checksums, locate
from evalkit.hubdata.parquet import image_bytes, image_folder, image_suffix, read_rows, write_once
from evalkit.hubdata.source import HubSource
from evalkit.tasks.gqa.data import types_of
from evalkit.types import UserError

QUESTION_FILES = "testdev_balanced_instructions/testdev-*.parquet"
IMAGE_FILES = "testdev_balanced_images/testdev-*.parquet"
#: a commit whose tree holds both configs (the testdev-balanced files last changed before it, at 6ac3999
#: and a4a19b5)
SOURCE = HubSource(
    repo_id="lmms-lab/GQA",
    mirrors=("lmms-lab-encoder/GQA",),
    revision="af87823c67247395481256d84ed3d6da4b11ef20",
    files=(QUESTION_FILES, IMAGE_FILES),
    config="testdev_balanced_instructions + testdev_balanced_images",
    split="testdev",
    rows=12578,
    size="68 MB",
    note=(
        "the official testdev-balanced questions (12,578) and their 398 images, in two configs joined "
        "on imageId"
    ),
)


def read_hub(limit: int | None) -> tuple[list[dict[str, Any]], Path, dict[str, Any]]:
    """The first `limit` records (or all; their images written), the image folder and the data info."""
    snap = locate(SOURCE, "gqa")
    sums = checksums(snap, "gqa")
    question_files = [n for n in snap.files if n.startswith(QUESTION_FILES.split("/")[0] + "/")]
    image_files = [n for n in snap.files if n.startswith(IMAGE_FILES.split("/")[0] + "/")]
    if not question_files or not image_files:
        raise UserError(f"{snap.folder}: expected parquet files of both {QUESTION_FILES} and {IMAGE_FILES}")
    records: list[dict[str, Any]] = []
    n_rows = 0
    for name in question_files:
        for i, row in enumerate(
            read_rows(snap.path(name), ("id", "imageId", "question", "answer"), ("types",)), 1
        ):
            where = f"{snap.path(name)}: row {i}"
            n_rows += 1
            if not all(isinstance(row[c], str) for c in ("question", "answer")):
                raise UserError(f"{where}: expected question and answer strings")
            if limit is not None and len(records) >= limit:
                continue
            structural, semantic = types_of(where, row.get("types"))
            records.append(
                {
                    "question_id": str(row["id"]),
                    "image_id": str(row["imageId"]),
                    "question": row["question"],
                    "answer": row["answer"],
                    "structural": structural,
                    "semantic": semantic,
                }
            )
    wanted = {r["image_id"] for r in records}
    images = image_folder(snap.repo_id, snap.revision)
    names: dict[str, str] = {}
    n_images = 0
    for name in image_files:
        for i, row in enumerate(read_rows(snap.path(name), ("id", "image")), 1):
            n_images += 1
            if str(row["id"]) in wanted:
                data, original = image_bytes(row["image"], f"{snap.path(name)}: row {i}")
                names[str(row["id"])] = str(row["id"]) + image_suffix(data, original)
                write_once(images / names[str(row["id"])], data)
    missing = sorted(wanted - set(names))
    if missing:
        raise UserError(
            f"{SOURCE.repo_id}: no image row with id {missing[0]} in {IMAGE_FILES} ({len(missing)} missing)"
        )
    for r in records:
        r["image"] = names[r["image_id"]]
    info = {
        "source": snap.uri,
        "image_dir": str(images),
        "version": f"hub testdev-balanced ({n_rows:,} questions)",
        "hub": {
            **snap.record(),
            "split": {"testdev": n_rows},
            "rows": n_rows,
            "images": n_images,
            "files": sums,
        },
    }
    return records, images, info
