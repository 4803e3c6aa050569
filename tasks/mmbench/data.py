"""Reading MMBench's official TSV: columns, missing cells, base64 images, circular passes.

The TSV (`index, question, hint, A, B, C, D, answer, category, l2-category, split, image, source, comment`;
the test files have no answers) is read as text with `csv` in the dialect pandas' `read_table` uses (tab,
double-quote quoting); a cell pandas would read as NaN (`NA_VALUES`) is missing. Every cell stays a string:
the official scorer's pandas would turn an all-numeric option column into numbers, which MMBench's mixed
columns never are.

Images: VLMEvalKit's TSVs store an image once and give later rows the *index* of that row instead (a cell of
at most 64 characters); the legacy files repeat the base64. Each distinct image is decoded once into
`<cache>/mmbench/<first 16 hex of the TSV's sha256>/images/` (or `--image-dir`), named by a hash of its
base64 text, written atomically.

Circular passes: a question (`g_index = index % 1,000,000`) with n options is asked n times, pass k with the
options shifted k places and index `g_index + k·1,000,000`. The legacy TSVs (`mmbench_dev_20230712.tsv`)
hold those rows; for a TSV without them the passes are built here the same way (shifting left or right
gives the same n orderings, so a question's hit does not depend on the direction).
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from evalkit.tasks.mmbench.protocol import is_na, rotate
from evalkit.types import UserError
from evalkit.util.environment import cache_root

CIRCULAR_STEP = 1_000_000
REQUIRED = ("index", "question", "A", "B", "image")
#: where each file comes from, for error messages
SOURCES = {
    "MMBench_DEV_EN.tsv": "VLMEvalKit: opencompass.openxlab.space/utils/VLMEval/MMBench_DEV_EN.tsv",
    "MMBench_TEST_EN.tsv": "VLMEvalKit: opencompass.openxlab.space/utils/VLMEval/MMBench_TEST_EN.tsv",
    "mmbench_dev_20230712.tsv": (
        "LLaVA docs/Evaluation.md: download.openmmlab.com/mmclassification/datasets/mmbench/"
        "mmbench_dev_20230712.tsv"
    ),
    "mmbench_test_20230712.tsv": (
        "download.openmmlab.com/mmclassification/datasets/mmbench/mmbench_test_20230712.tsv"
    ),
    "mmbench_dev_en_20231003.tsv": "open-compass/MMBench README (download.openmmlab.com)",
    "mmbench_test_en_20231003.tsv": "open-compass/MMBench README (download.openmmlab.com)",
}
#: file names tried for each split, in order
CANDIDATES = {
    "dev": ("MMBench_DEV_EN.tsv", "mmbench_dev_20230712.tsv", "mmbench_dev_en_20231003.tsv"),
    "test": ("MMBench_TEST_EN.tsv", "mmbench_test_20230712.tsv", "mmbench_test_en_20231003.tsv"),
}
#: md5 of the files VLMEvalKit's `image_mcq.py` pins, to name the version in run.json
KNOWN_MD5 = {
    "b6caf1133a01c6bb705cf753bb527ed8": "MMBench_DEV_EN (VLMEvalKit, v1.0)",
    "6939fadb0ce626fefc0bdc9c64efc528": "MMBench_TEST_EN (VLMEvalKit, v1.0)",
    "30c05be8f2f347a50be25aa067248184": "MMBench_DEV_EN_V11 (VLMEvalKit, v1.1)",
    "26f0f15381a21720255091d3e0316ce6": "MMBench_TEST_EN_V11 (VLMEvalKit, v1.1)",
}

KNOWN_NAMES = {
    "mmbench_dev_20230712.tsv": "MMBench dev 2023-07-12 (LLaVA-1.5's file; circular rows included)",
    "mmbench_test_20230712.tsv": "MMBench test 2023-07-12 (circular rows included)",
}


@dataclass(frozen=True)
class Pass:
    """One row to ask: a question with its options in one rotation (`k`), its image file."""

    index: int
    g_index: int
    k: int
    question: str
    hint: str | None
    options: dict[str, str]
    answer: str | None
    category: str | None
    l2_category: str | None
    split: str | None
    image: str  # decoded file
    built: bool  # rotation built here (not a row of the file)


def find_tsv(data_dir: Path, split: str, file: str | None) -> Path:
    """The TSV to read: `--task-option mmbench.file=NAME|PATH`, else the split's first file present."""
    if file:
        path = Path(file).expanduser()
        path = path if path.is_absolute() else data_dir / path
        if not path.is_file():
            where = SOURCES.get(path.name, "the MMBench TSV you named")
            raise UserError(f"MMBench file not found: {path} (from {where})")
        return path
    for name in CANDIDATES[split]:
        if (data_dir / name).is_file():
            return data_dir / name
    names = CANDIDATES[split]
    raise UserError(
        f"MMBench {split} TSV not found in {data_dir}: expected {names[0]} ({SOURCES[names[0]]}) or the "
        f"legacy {names[1]} ({SOURCES[names[1]]}); or pass --task-option mmbench.file=NAME"
    )


def read_tsv(path: Path) -> list[dict[str, str]]:
    """Rows as {column: text}; a missing column or a short row is a `UserError` naming the line."""
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))  # base64 images exceed the default
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter="\t", quotechar='"')
            header = next(reader, None)
            if header is None:
                raise UserError(f"{path}: empty file; expected the MMBench TSV header")
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise UserError(f"{path}: not an MMBench TSV (no column {missing[0]!r}; header {header[:6]})")
            rows = []
            for line in reader:
                if not line:
                    continue
                if len(line) != len(header):
                    raise UserError(
                        f"{path}: row {len(rows) + 1} has {len(line)} cells, the header {len(header)}"
                    )
                rows.append(dict(zip(header, line, strict=True)))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 TSV") from None
    return rows


def _cell(row: dict[str, str | None], key: str) -> str | None:
    value = row.get(key)
    return None if is_na(value) else value


def row_index(path: Path, row: dict[str, str | None], i: int) -> int:
    try:
        return int(float(row["index"]))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UserError(f"{path}: row {i + 1}: index {row['index']!r} is not a number") from None


def _image_bytes(path: Path, rows: list[dict[str, str]], indices: list[int]) -> list[str]:
    """Each row's base64 image text, following VLMEvalKit's by-index references."""
    by_index = {idx: r["image"] for idx, r in zip(indices, rows, strict=True)}
    out = []
    for idx, r in zip(indices, rows, strict=True):
        cell = r["image"]
        if len(cell) <= 64:
            try:
                ref = int(float(cell))
            except ValueError:
                raise UserError(
                    f"{path}: index {idx}: image cell {cell!r} is neither base64 nor an index"
                ) from None
            target = by_index.get(ref)
            if target is None or len(target) <= 64:
                raise UserError(f"{path}: index {idx}: image refers to index {ref}, which holds no image")
            cell = target
        out.append(cell)
    return out


_MAGIC = ((b"\x89PNG", ".png"), (b"\xff\xd8", ".jpg"), (b"GIF8", ".gif"), (b"BM", ".bmp"), (b"RIFF", ".webp"))


def _extension(text: str) -> str:
    try:
        head = base64.b64decode(text[:16])
    except (binascii.Error, ValueError):
        return ".img"
    return next((e for magic, e in _MAGIC if head.startswith(magic)), ".img")


def decode_images(path: Path, b64: list[str], folder: Path) -> list[str]:
    """Write each distinct image once into `folder` (kept from earlier loads); the file of every row."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    out = []
    for text in b64:
        name = files.get(text)
        if name is None:
            name = str(folder / (hashlib.sha256(text.encode()).hexdigest()[:24] + _extension(text)))
            if not os.path.exists(name):
                try:
                    data = base64.b64decode(text)
                except (binascii.Error, ValueError) as exc:
                    raise UserError(f"{path}: an image is not valid base64 ({exc})") from None
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=".part-")
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, name)
            files[text] = name
        out.append(name)
    return out


def image_folder(tsv_sha256: str, image_dir: Path | None) -> Path:
    return Path(image_dir) if image_dir else cache_root() / "mmbench" / tsv_sha256[:16] / "images"


def load_passes(path: Path, image_dir: Path | None, circular: bool) -> tuple[list[Pass], dict]:
    """Every pass of the file, grouped by question (the question's passes in order k = 0, 1, ...)."""
    rows = read_tsv(path)
    if not rows:
        raise UserError(f"{path}: no questions")
    sha, md5 = _digests(path)
    indices = [row_index(path, r, i) for i, r in enumerate(rows)]
    check_unique(path, indices)
    files = decode_images(path, _image_bytes(path, rows, indices), image_folder(sha, image_dir))
    passes, counts = build_passes(path, rows, indices, files, circular)
    info = {
        "file": path.name,
        "sha256": sha,
        "version": KNOWN_MD5.get(md5) or KNOWN_NAMES.get(path.name, "unknown (not a pinned file)"),
        **counts,
    }
    return passes, info


def check_unique(where: Path, indices: list[int]) -> None:
    if len(set(indices)) != len(indices):
        dup = next(i for i in indices if indices.count(i) > 1)
        raise UserError(f"{where}: index {dup} occurs more than once")


def build_passes(
    where: Path, rows: list[dict[str, str | None]], indices: list[int], files: list[str], circular: bool
) -> tuple[list[Pass], dict]:
    """The passes of rows read as the TSV's (`{column: text or None}`, their indices and image files),
    grouped by question, and the counts a run records (rows, questions, passes, how circular)."""
    letters = sorted(c for c in rows[0] if len(c) == 1 and "A" <= c <= "Z")
    passes = []
    for idx, r, image in zip(indices, rows, files, strict=True):
        options = {c: v for c in letters if (v := _cell(r, c)) is not None}
        if len(options) < 2:
            raise UserError(f"{where}: index {idx} has {len(options)} option(s); MMBench needs at least 2")
        answer = _cell(r, "answer")
        if answer is not None and answer not in options:
            raise UserError(
                f"{where}: index {idx}: answer {answer!r} is not one of its options {list(options)}"
            )
        passes.append(
            Pass(
                index=idx,
                g_index=idx % CIRCULAR_STEP,
                k=idx // CIRCULAR_STEP,
                question=r["question"],
                hint=_cell(r, "hint"),
                options=options,
                answer=answer,
                category=_cell(r, "category"),
                l2_category=_cell(r, "l2-category"),
                split=_cell(r, "split"),
                image=image,
                built=False,
            )
        )
    in_file = any(p.k > 0 for p in passes)
    if not circular:
        passes = [p for p in passes if p.k == 0]
    elif not in_file:
        passes = [rot for p in passes for rot in _rotations(p)]
    order = {g: i for i, g in enumerate(dict.fromkeys(p.g_index for p in passes))}
    passes.sort(key=lambda p: (order[p.g_index], p.k))
    counts = {
        "rows": len(rows),
        "questions": len(order),
        "passes": len(passes),
        "circular": "off" if not circular else ("from the file" if in_file else "built (options rotated)"),
    }
    return passes, counts


def _rotations(p: Pass) -> list[Pass]:
    out = [p]
    for k in range(1, len(p.options)):
        options, answer = rotate(p.options, p.answer, k)
        out.append(
            replace(p, index=p.g_index + k * CIRCULAR_STEP, k=k, options=options, answer=answer, built=True)
        )
    return out


def _digests(path: Path) -> tuple[str, str]:
    """sha256 (names the image cache, goes to run.json) and md5 (VLMEvalKit pins files by it)."""
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()
