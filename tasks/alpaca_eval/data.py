"""AlpacaEval's official files: the judge prompts bundled in `assets/` (verbatim, SOURCE note in
assets/README.md) and the readers that check a model_outputs.json, a reference model's outputs, an
official annotations.json and the length-controlled win rate's files (the published GLM weights, the hub's
instruction_difficulty.csv and df_gamed.csv).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.tasks.alpaca_eval.protocol import BY_ANNOTATOR, Version, get_version
from evalkit.types import UserError
from evalkit.util.datafiles import read_json, read_text

PROMPT_DIR = Path(__file__).parent / "assets"
N_INSTRUCTIONS = 805
#: the GLM's formula terms, the header of the published weights file
COLUMNS = ("np.tanh(std_delta_len)", "instruction_difficulty", "not_gamed_baseline.astype(float)")
GAMED_FILE = "df_gamed.csv"
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


# ------------------------------------------------------------- length-controlled win rate (GLM) files


@dataclass(frozen=True)
class GlmWeights:
    """One model's fitted `length_controlled_v1` coefficients, relative to the gpt4_1106_preview baseline."""

    length: float  # np.tanh(std_delta_len)
    difficulty: float  # instruction_difficulty
    not_gamed: float  # not_gamed_baseline.astype(float)


def _rows(path: Path) -> list[list[str]]:
    return [r for r in csv.reader(io.StringIO(read_text(path), newline="")) if r]


def _number(path: Path, lineno: int, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UserError(f"{path}:{lineno}: {text!r} is not a number") from None


def read_glm_weights(path: Path) -> dict[str, GlmWeights]:
    """The published weights CSV: a header naming the three formula terms, then one row per model."""
    path = Path(path)
    rows = _rows(path)
    if not rows or any(c not in rows[0] for c in COLUMNS):
        raise UserError(
            f"{path}: not an AlpacaEval GLM weights file (its header must name {', '.join(COLUMNS)})"
        )
    idx = [rows[0].index(c) for c in COLUMNS]
    out = {}
    for lineno, row in enumerate(rows[1:], 2):
        if len(row) != len(rows[0]):
            raise UserError(f"{path}:{lineno}: {len(row)} fields, the header has {len(rows[0])}")
        out[row[0]] = GlmWeights(*(_number(path, lineno, row[i]) for i in idx))
    return out


def read_instruction_difficulty(path: Path, expected_rows: int | None = N_INSTRUCTIONS) -> np.ndarray:
    """The hub's instruction_difficulty.csv: a header, then `index,difficulty` per instruction."""
    path = Path(path)
    rows = _rows(path)
    if len(rows) < 2 or any(len(r) != 2 for r in rows):
        raise UserError(f"{path}: expected two columns (instruction index, difficulty) with a header row")
    values = np.array([_number(path, i, r[1]) for i, r in enumerate(rows[1:], 2)])
    if expected_rows is not None and values.size != expected_rows:
        raise UserError(f"{path}: {values.size} difficulties, expected one per instruction ({expected_rows})")
    return values


@dataclass(frozen=True)
class Gamed:
    """The rows of `df_gamed.csv`, in file order (their order fixes the cross-validation folds)."""

    index: np.ndarray  # instruction index
    preference: np.ndarray  # in [0, 1] (NaN: no valid judgement)
    std_delta_len: np.ndarray
    difficulty: np.ndarray
    not_gamed: np.ndarray  # 0.0 for the gamed baselines' rows

    def difficulty_of(self, index: int) -> float:
        """The difficulty of an instruction: that of its first row (as `drop_duplicates("index")`)."""
        hits = np.flatnonzero(self.index == index)
        if hits.size == 0:
            raise UserError(f"{GAMED_FILE} has no row for instruction {index}")
        return float(self.difficulty[hits[0]])


def _bool(path: Path, lineno: int, text: str) -> float:
    if text in ("True", "true", "1", "1.0"):
        return 1.0
    if text in ("False", "false", "0", "0.0"):
        return 0.0
    raise UserError(f"{path}:{lineno}: not_gamed_baseline {text!r} is not a boolean")


def read_gamed(path: Path) -> Gamed:
    """`df_gamed.csv` (columns index, preference, std_delta_len, instruction_difficulty,
    not_gamed_baseline, and others that are ignored)."""
    path = Path(path)
    rows = _rows(path)
    need = ("index", "preference", "std_delta_len", "instruction_difficulty", "not_gamed_baseline")
    if not rows or any(c not in rows[0] for c in need):
        raise UserError(f"{path}: not AlpacaEval's {GAMED_FILE} (its header must name {', '.join(need)})")
    col = {c: rows[0].index(c) for c in need}
    body = list(enumerate(rows[1:], 2))
    if not body:
        raise UserError(f"{path}: no rows")

    def numbers(name: str, empty_is_nan: bool = False) -> np.ndarray:
        return np.array(
            [
                math.nan if empty_is_nan and r[col[name]] == "" else _number(path, i, r[col[name]])
                for i, r in body
            ]
        )

    gamed = Gamed(
        index=numbers("index").astype(int),
        preference=numbers("preference", empty_is_nan=True),
        std_delta_len=numbers("std_delta_len"),
        difficulty=numbers("instruction_difficulty"),
        not_gamed=np.array([_bool(path, i, r[col["not_gamed_baseline"]]) for i, r in body]),
    )
    p = gamed.preference[~np.isnan(gamed.preference)]
    if np.any((p < 0) | (p > 1)):
        raise UserError(f"{path}: preferences must lie in [0, 1] (the GLM's scale)")
    return gamed
