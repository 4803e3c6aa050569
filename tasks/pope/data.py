"""Reading and validating POPE's official files: the three split files (AoiDragon/POPE `output/coco/`)
and the COCO val2014 image folder; the data version is told from the question counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.tasks.pope.protocol import SPLITS
from evalkit.types import UserError
from evalkit.util.datafiles import read_jsonl, require_fields, toy_label

IMAGE_DIR_CANDIDATES = ("val2014", "images", "coco/val2014", "COCO/val2014")
FILE_DIR_CANDIDATES = (".", "output/coco", "pope", "coco")
#: Question counts that identify the two public versions of the files.
VERSIONS = {
    (2910, 3000, 3000): "2023-08-10 (8,910 questions; LLaVA-1.5 / LLaVA-RLHF)",
    (3000, 3000, 3000): "current",
}


def _find_files(data_dir: Path) -> dict[str, Path]:
    for sub in FILE_DIR_CANDIDATES:
        paths = {s: data_dir / sub / f"coco_pope_{s}.json" for s in SPLITS}
        if all(p.is_file() for p in paths.values()):
            return paths
    raise UserError(
        f"POPE question files not found in {data_dir}: expected coco_pope_random.json, "
        "coco_pope_popular.json and coco_pope_adversarial.json there (from github.com/AoiDragon/POPE "
        "output/coco/; the 2023-08-10 version with 8,910 questions matches the LLaVA papers)"
    )


def find_images(data_dir: Path, image_dir: Path | None, first_image: str) -> Path:
    candidates = [image_dir] if image_dir else [data_dir / c for c in IMAGE_DIR_CANDIDATES]
    for c in candidates:
        if c is not None and (c / first_image).is_file():
            return c
    where = str(image_dir) if image_dir else " or ".join(str(data_dir / c) for c in IMAGE_DIR_CANDIDATES[:2])
    raise UserError(
        f"POPE images not found: {first_image} is not in {where}; put the COCO val2014 images there "
        "(cocodataset.org, val2014.zip) or pass --image-dir DIR"
    )


def data_label(data_dir: Path, counts: tuple[int, ...]) -> str:
    """The label of a set of split files, from their content: the toy world's (its toy_meta.json), a
    public version's (question counts), else the counts."""
    unknown = f"unknown ({counts[0]}/{counts[1]}/{counts[2]} questions)"
    return toy_label(data_dir) or VERSIONS.get(counts, unknown)


def read_label_files(data_dir: Path) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Path]]:
    """The three official split files, validated; rows keep file order (the official alignment key)."""
    paths = _find_files(data_dir)
    splits = {}
    for split, path in paths.items():
        rows = read_jsonl(path)
        for i, row in enumerate(rows, 1):
            require_fields(path, i, row, {"question_id": int, "image": str, "text": str, "label": str})
            if row["label"] not in ("yes", "no"):
                raise UserError(f"{path}:{i}: label must be 'yes' or 'no', got {row['label']!r}")
        splits[split] = rows
    return splits, paths
