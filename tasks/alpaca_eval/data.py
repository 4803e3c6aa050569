"""AlpacaEval's official files: the judge prompts bundled in `assets/` (verbatim, SOURCE note in
assets/README.md) and the readers that check a model_outputs.json, a reference model's outputs and an
official annotations.json.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from evalkit.datafiles import read_json
from evalkit.tasks.alpaca_eval.protocol import BY_ANNOTATOR, Version, get_version
from evalkit.types import UserError

PROMPT_DIR = Path(__file__).parent / "assets"
CHECKOUT = "github.com/tatsu-lab/alpaca_eval"


@lru_cache(maxsize=4)
def load_template(version: str) -> str:
    """The official judge prompt (chatml text with {instruction}, {output_1}, {output_2}), verbatim."""
    return (PROMPT_DIR / get_version(version).prompt_file).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Annotation:
    """One judged pair of annotations.json; `preference` is final (already un-swapped), NaN if missing."""

    instruction: str
    output_1: str  # reference
    output_2: str  # model
    preference: float
    raw_completion: Any = None


@dataclass(frozen=True)
class Annotations:
    version: str
    model: str  # generator_2
    reference: str  # generator_1
    items: tuple[Annotation, ...]

    @property
    def preferences(self) -> list[float]:
        return [a.preference for a in self.items]


def _read_json_list(path: Path) -> list[dict[str, Any]]:
    data = read_json(path, list)
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise UserError(f"{path}: record {i} is {type(row).__name__}, expected an object")
    return data


def _require_str(path: Path, i: int, row: dict[str, Any], fields: Sequence[str]) -> None:
    for name in fields:
        if name not in row:
            raise UserError(f"{path}: record {i} has no field {name!r}")
        if not isinstance(row[name], str):
            raise UserError(
                f"{path}: record {i} field {name!r} is {type(row[name]).__name__}, expected a string"
            )


def read_outputs(path: Path) -> list[dict[str, Any]]:
    """A model_outputs.json: a list of {"instruction", "output", ...}, one record per instruction."""
    rows = _read_json_list(Path(path))
    seen: set[str] = set()
    for i, row in enumerate(rows):
        _require_str(path, i, row, ("instruction", "output"))
        if row["instruction"] in seen:
            raise UserError(
                f"{path}: record {i} repeats an instruction; each instruction needs exactly one output"
            )
        seen.add(row["instruction"])
    return rows


def read_reference(path: Path, version: str) -> list[dict[str, Any]]:
    """The reference model's model_outputs.json of `version`; records naming another `generator` (the
    other version's reference, say) are an error."""
    v = get_version(version)
    rows = read_outputs(path)
    if not rows:
        raise UserError(f"{path}: no reference outputs")
    for i, row in enumerate(rows):
        generator = row.get("generator", v.reference)
        if generator != v.reference:
            raise UserError(
                f"{path}: record {i} is an output of {generator!r}; AlpacaEval {v.name} compares against "
                f"{v.reference!r} (its results/{v.reference}/model_outputs.json or {v.hub_file})"
            )
    return rows


def read_annotations(path: Path) -> Annotations:
    """An official annotations.json of either judge; the version is told by its `annotator` field."""
    path = Path(path)
    rows = _read_json_list(path)
    if not rows:
        raise UserError(f"{path}: no annotations")
    items = []
    for i, row in enumerate(rows):
        _require_str(
            path, i, row, ("instruction", "output_1", "output_2", "generator_1", "generator_2", "annotator")
        )
        if "preference" not in row:
            raise UserError(f"{path}: record {i} has no field 'preference'")
        pref = row["preference"]
        if pref is None:
            pref = math.nan
        elif isinstance(pref, bool) or not isinstance(pref, int | float):
            raise UserError(f"{path}: record {i} preference is {pref!r}, expected a number or null")
        items.append(
            Annotation(
                row["instruction"], row["output_1"], row["output_2"], float(pref), row.get("raw_completion")
            )
        )
    for field in ("annotator", "generator_1", "generator_2"):
        values = sorted({r[field] for r in rows})
        if len(values) != 1:
            raise UserError(
                f"{path}: one file must hold one judge and one model pair, but {field} takes {values}"
            )
    annotator = rows[0]["annotator"]
    if annotator not in BY_ANNOTATOR:
        raise UserError(f"{path}: unknown annotator {annotator!r}; expected one of {sorted(BY_ANNOTATOR)}")
    return Annotations(
        BY_ANNOTATOR[annotator].name, rows[0]["generator_2"], rows[0]["generator_1"], tuple(items)
    )


def reference_file(
    task: str, v: Version, data_dir: Path | None, given: str | None, import_usage: str
) -> Path:
    """The reference model's outputs for `task` (AlpacaEval version `v`): `given` (`--task-option
    <task>.reference=PATH`), else in --data-dir the alpaca_eval checkout's
    results/<reference>/model_outputs.json or the hub's file."""
    key = f"{task}.reference"
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise UserError(
                f"--task-option {key}: {path} not found (expected the {v.reference} model_outputs.json "
                f"of AlpacaEval {v.name})"
            )
        return path
    candidates = [Path("results") / v.reference / "model_outputs.json", Path(v.hub_file)]
    if data_dir is not None:
        for rel in candidates:
            if (data_dir / rel).is_file():
                return data_dir / rel
    where = f"in --data-dir {data_dir}" if data_dir else "(no --data-dir given)"
    raise UserError(
        f"{task} needs the AlpacaEval {v.name} reference outputs ({v.reference}): "
        f"{' or '.join(str(c) for c in candidates)} not found {where}; the first is in a checkout of "
        f"{CHECKOUT}, the second in the Hugging Face dataset tatsu-lab/alpaca_eval; or pass the file "
        f"with --task-option {key}=PATH (to score outputs the official judge already judged, use "
        f"`evalkit import --task {task} {import_usage}`)"
    )
