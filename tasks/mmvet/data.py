"""Reading and validating MM-Vet's official files: `mm-vet.json` and the images of the release zip, model
answer files (submission JSON or LLaVA's JSONL), grade files (`*-grade-Nruns.json`) and score tables
(`*-cap-score-*.csv`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.types import UserError
from evalkit.util.datafiles import read_json, read_jsonl, read_text, require_fields

METADATA = "mm-vet.json"
#: where `mm-vet.json` may sit in --data-dir: the folder itself, or the `mm-vet/` folder the zip unpacks to
METADATA_DIRS = (".", "mm-vet")
RELEASE_ZIP = "https://github.com/yuweihao/MM-Vet/releases/download/v1/mm-vet.zip"
OFFICIAL_ITEMS = 218


def find_metadata(data_dir: Path) -> Path:
    for sub in METADATA_DIRS:
        path = data_dir / sub / METADATA
        if path.is_file():
            return path
    raise UserError(
        f"MM-Vet question file not found: {data_dir / METADATA} (also looked in {data_dir / 'mm-vet'}); "
        f"unzip the MM-Vet release zip ({RELEASE_ZIP}) so that DIR/{METADATA} and DIR/images/ exist"
    )


def check_images(metadata: dict[str, dict[str, Any]], keys: list[str], image_dir: Path) -> None:
    missing = [metadata[k]["imagename"] for k in keys if not (image_dir / metadata[k]["imagename"]).is_file()]
    if missing:
        raise UserError(
            f"MM-Vet image not found: {image_dir / missing[0]} ({len(set(missing))} images missing); "
            f"the images are in images/ of the MM-Vet release zip ({RELEASE_ZIP}), or pass --image-dir DIR"
        )


@dataclass(frozen=True)
class ItemGrade:
    """One entry of an official `*-grade-Nruns.json`: one value per judge run."""

    scores: tuple[float, ...]
    contents: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    #: only when the file carries it (the official evaluator does not write it)
    capability: tuple[str, ...] | None = None


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _str_list(path: Path, key: str, entry: Mapping[str, Any], field: str) -> tuple[str, ...]:
    value = entry.get(field, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(f"{path}: item {key!r}: {field!r} must be a list of strings")
    return tuple(value)


def read_grades(path: Path) -> dict[str, ItemGrade]:
    """Read an official grade file (`{model}_{judge}-grade-{N}runs.json`), in file order."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object keyed by item id ('v1_0', ...)")
    grades = {}
    for key, entry in data.items():
        if not isinstance(entry, dict) or "score" not in entry:
            raise UserError(f"{path}: item {key!r}: expected an object with a 'score' list")
        scores = entry["score"]
        if not isinstance(scores, list) or not all(_is_number(s) and 0 <= s <= 1 for s in scores):
            raise UserError(f"{path}: item {key!r}: 'score' must be a list of numbers in [0, 1]")
        contents = _str_list(path, key, entry, "content")
        models = _str_list(path, key, entry, "model")
        if any(len(x) not in (0, len(scores)) for x in (contents, models)):
            raise UserError(f"{path}: item {key!r}: 'score', 'content' and 'model' differ in length")
        capability = _str_list(path, key, entry, "capability") if "capability" in entry else None
        grades[key] = ItemGrade(tuple(float(s) for s in scores), contents, models, capability)
    return grades


def grade_scores(grades: Mapping[str, ItemGrade]) -> dict[str, tuple[float, ...]]:
    return {k: g.scores for k, g in grades.items()}


def capabilities_from_grades(grades: Mapping[str, ItemGrade]) -> dict[str, tuple[str, ...]] | None:
    """Capabilities carried by the grade file itself, if every entry has them (official files do not)."""
    caps = {k: g.capability for k, g in grades.items()}
    if not caps or any(c is None for c in caps.values()):
        return None
    return {k: c for k, c in caps.items() if c is not None}


def read_metadata(path: Path) -> dict[str, dict[str, Any]]:
    """Read `mm-vet.json` (release zip): item id → {imagename, question, answer, capability}."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object keyed by item id ('v1_0', ...) as in mm-vet.json")
    for key, item in data.items():
        if not isinstance(item, dict):
            raise UserError(f"{path}: item {key!r}: expected an object")
        for field in ("imagename", "question", "answer"):
            if not isinstance(item.get(field), str):
                raise UserError(f"{path}: item {key!r}: missing or non-string field {field!r}")
        caps = item.get("capability")
        if not isinstance(caps, list) or not caps or not all(isinstance(c, str) for c in caps):
            raise UserError(f"{path}: item {key!r}: 'capability' must be a non-empty list of strings")
    return data


def capabilities_of(metadata: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[str, ...]]:
    return {k: tuple(v["capability"]) for k, v in metadata.items()}


def read_answers(path: Path) -> dict[str, str]:
    """Model answers as item id → text, from either official format: the submission JSON
    `{"v1_0": answer}` or LLaVA's answer JSONL (`question_id` n ↦ item "v1_n", as its converter does)."""
    if path.suffix == ".jsonl":
        out: dict[str, str] = {}
        for i, row in enumerate(read_jsonl(path), 1):
            require_fields(path, i, row, {"question_id": int, "text": str})
            key = f"v1_{row['question_id']}"
            if key in out:
                raise UserError(f"{path}:{i}: duplicate question_id {row['question_id']}")
            out[key] = row["text"]
        return out
    data = read_json(path)
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise UserError(f'{path}: expected a JSON object {{"v1_0": "<answer>", ...}} of strings')
    return data


def read_score_csv(path: Path) -> dict[str, dict[str, Any]]:
    """Read an official `*-cap-score-*.csv` / `*-cap-int-score-*.csv`: model → column → value (floats;
    `runs` as a tuple of floats)."""
    rows = list(csv.reader(io.StringIO(read_text(path), newline="")))
    if len(rows) < 2 or rows[0][-3:] != ["total", "std", "runs"]:
        raise UserError(f"{path}: not an MM-Vet score table (header must end with total,std,runs)")
    out = {}
    for lineno, row in enumerate(rows[1:], 2):
        if len(row) != len(rows[0]):
            raise UserError(f"{path}:{lineno}: {len(row)} cells, header has {len(rows[0])}")
        try:
            values: dict[str, Any] = {c: float(v) for c, v in zip(rows[0][1:-1], row[1:-1], strict=True)}
            values["runs"] = tuple(float(x) for x in json.loads(row[-1]))
        except ValueError:
            raise UserError(f"{path}:{lineno}: a cell is not a number (runs must look like [36.1])") from None
        out[row[0]] = values
    return out
