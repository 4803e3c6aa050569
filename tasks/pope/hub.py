"""POPE from the Hugging Face hub: lmms-lab/POPE's `Full` config (one parquet file per split,
`Full/{adversarial,popular,random}-*.parquet`, 3,000 rows each; columns id, question_id, question, answer,
image_source, image (embedded {bytes, path}), category), read as the official split files are.

Each row becomes the official record (`question_id`, `image`, `text`, `label`): the split is the file's,
the label is `answer`, the image is written once under `$EVALKIT_CACHE/hub/` and named as COCO names it
(`image_source` plus the suffix of its bytes), so the samples, prompts and clusters are those the
official files give. The hub copy holds 3 × 3,000 questions, as the current official files do, not the
8,910 questions of the 2023-08-10 files LLaVA-1.5 used (those need --data-dir).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from evalkit.hubdata.cache import checksums, locate
from evalkit.hubdata.parquet import image_bytes, image_folder, image_suffix, read_rows, write_once
from evalkit.hubdata.source import HubSource
from evalkit.tasks.pope.protocol import SPLITS
from evalkit.types import UserError

#: lmms-lab/POPE at the commit lmms-eval's mirror lmms-lab-encoder/POPE also carries (byte-identical)
SOURCE = HubSource(
    repo_id="lmms-lab/POPE",
    mirrors=("lmms-lab-encoder/POPE",),
    revision="4db1276663dfa5eb8ad16a52d24c31a09e470896",
    files=tuple(f"Full/{s}-*.parquet" for s in SPLITS),
    config="Full",
    split="random, popular, adversarial",
    rows=9000,
    size="255 MB",
    note=(
        "3 × 3,000 questions with their COCO images embedded, as many as the current official files "
        "(AoiDragon/POPE output/coco since 2023-10-09; row-by-row identity not established); LLaVA-1.5 "
        "and LLaVA-RLHF used the 2023-08-10 files (2,910 / 3,000 / 3,000 = 8,910 questions): pass those "
        "with --data-dir"
    ),
)
COLUMNS = ("question_id", "question", "answer", "image_source", "image", "category")


def _split_of(name: str) -> str:
    split = Path(name).name.split("-", 1)[0]
    if split not in SPLITS:
        raise UserError(f"POPE hub file {name}: expected a name starting with one of {', '.join(SPLITS)}")
    return split


def _question_id(value: Any) -> Any:
    text = str(value).strip()
    return int(text) if text.isdigit() else text


def read_hub(limit_per_split: int | None) -> tuple[dict[str, list[dict[str, Any]]], Path, dict[str, Any]]:
    """The three splits as official records (the first `limit_per_split` of each, or all; their images
    written), the image folder, and the data info a run records (row counts of the whole files)."""
    snap = locate(SOURCE, "pope")
    sums = checksums(snap, "pope")  # before reading: a damaged cache is named as such
    by_split: dict[str, list[str]] = defaultdict(list)
    for name in snap.files:
        by_split[_split_of(name)].append(name)
    absent = [s for s in SPLITS if s not in by_split]
    if absent:
        raise UserError(f"{snap.folder}: no parquet file for POPE split(s) {', '.join(absent)}")
    images = image_folder(snap.repo_id, snap.revision)
    splits: dict[str, list[dict[str, Any]]] = {}
    rows: dict[str, int] = {}
    for split in SPLITS:
        records = []
        rows[split] = 0
        for name in by_split[split]:
            for i, row in enumerate(read_rows(snap.path(name), COLUMNS), 1):
                where = f"{snap.path(name)}: row {i}"
                label = str(row["answer"]).strip().lower()
                if label not in ("yes", "no"):
                    raise UserError(f"{where}: answer must be 'yes' or 'no', got {row['answer']!r}")
                if not isinstance(row["question"], str) or not row["question"]:
                    raise UserError(f"{where}: no question text")
                if row["category"] not in (None, split):
                    raise UserError(f"{where}: category {row['category']!r} in the {split} file")
                rows[split] += 1
                if limit_per_split is not None and len(records) >= limit_per_split:
                    continue
                data, original = image_bytes(row["image"], where)
                image = str(row["image_source"])
                image += "" if Path(image).suffix else image_suffix(data, original)
                write_once(images / image, data)
                qid = _question_id(row["question_id"])
                records.append({"question_id": qid, "image": image, "text": row["question"], "label": label})
        splits[split] = records
    counts = tuple(rows[s] for s in SPLITS)
    same = len(set(counts)) == 1
    label = f"3 × {counts[0]:,} questions" if same else "/".join(f"{c:,}" for c in counts) + " questions"
    info = {
        "source": snap.uri,
        "image_dir": str(images),
        "version": f"hub {SOURCE.config} ({label}; not the 2023-08-10 8,910-question files)",
        "hub": {
            **snap.record(),
            "split": dict(zip(SPLITS, counts, strict=True)),
            "rows": sum(counts),
            "files": sums,
        },
    }
    return splits, images, info
