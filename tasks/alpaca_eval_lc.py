"""AlpacaEval 2.0 length-controlled (LC) win rate (`metrics/glm_winrate.py`, GLM `length_controlled_v1`).

The official GLM models the judge's preference for the model over the reference on instruction i as
    sigmoid(theta_len * tanh(std_delta_len_i) + theta_inst * difficulty_i + theta_ng * 1)
where std_delta_len_i = (len(reference_i) - len(model_i)) in characters over its standard deviation across the
instructions. The LC win rate is that prediction with no length difference, averaged over instructions:
    LC = 100 * mean_i sigmoid(theta_inst * difficulty_i + theta_ng),   lc_standard_error = 100 * sem_i(...).

For a model whose fitted thetas are published (`metrics/weights/weighted_alpaca_eval_gpt4_turbo/
length_controlled_v1/baseline_gpt4_1106_preview.csv`), that is the official closed form `predict_winrate`
with delta-theta = theta[model] - theta[baseline]. It needs the per-instruction difficulties, which exist
only on the Hugging Face hub (dataset tatsu-lab/alpaca_eval, `instruction_difficulty.csv`), unless
delta-theta_inst is 0 (the baseline against itself: LC = 50 exactly).

A new model needs the GLM refitted: L1 logistic regression on soft labels,
`LogisticRegressionCV(cv=GroupKFold(5), solver="liblinear")`, on its 805 judgements plus the rows of the
hub-only `df_gamed.csv` (sample weight 0.2 / 2). That refit is not implemented here: its digits depend on
liblinear's solver and stopping rule, which numpy alone would not reproduce.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evalkit.types import UserError

if TYPE_CHECKING:
    from evalkit.tasks.alpaca_eval_protocol import Annotations

WEIGHTS_FILE = "baseline_gpt4_1106_preview.csv"
BASELINE = "gpt4_1106_preview"
N_INSTRUCTIONS = 805
HUB = "the Hugging Face dataset tatsu-lab/alpaca_eval (not in git)"
COLUMNS = ("np.tanh(std_delta_len)", "instruction_difficulty", "not_gamed_baseline.astype(float)")
#: Where the published GLM weights sit in a checkout of the alpaca_eval repository.
WEIGHTS_REPO_PATH = "src/alpaca_eval/metrics/weights/weighted_alpaca_eval_gpt4_turbo/length_controlled_v1"
DIFFICULTY_FILE = "instruction_difficulty.csv"
#: Why a run (as opposed to an import of a published model) has no LC win rate.
REFIT_NOTE = (
    "not computed: the length-controlled win rate of newly judged answers needs the GLM refitted on these "
    "judgements (with df_gamed.csv and instruction_difficulty.csv from " + HUB + "), which is not "
    "implemented (see evalkit.tasks.alpaca_eval_lc); the official alpaca_eval package can compute it from "
    "the run's answers"
)


@dataclass(frozen=True)
class GlmWeights:
    """One model's fitted `length_controlled_v1` coefficients, relative to the gpt4_1106_preview baseline."""

    length: float  # np.tanh(std_delta_len)
    difficulty: float  # instruction_difficulty
    not_gamed: float  # not_gamed_baseline.astype(float)


def _rows(path: Path) -> list[list[str]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return [r for r in csv.reader(f) if r]
    except FileNotFoundError:
        raise UserError(f"file not found: {path}") from None


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


def _logistic(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))


def lc_from_weights(
    model: GlmWeights, baseline: GlmWeights, difficulty: np.ndarray | None
) -> tuple[float, float]:
    """(LC win rate, LC standard error) in percent by the closed form; `difficulty` may be None only when
    the two models' difficulty coefficients are equal (then every instruction gets the same prediction)."""
    d_inst = model.difficulty - baseline.difficulty
    d_ng = model.not_gamed - baseline.not_gamed
    if d_inst == 0.0:
        n = difficulty.size if difficulty is not None else N_INSTRUCTIONS
        return float(_logistic(np.array(d_ng))) * 100, 0.0 if n > 1 else math.nan
    if difficulty is None:
        raise UserError(
            f"the length-controlled win rate needs instruction_difficulty.csv from {HUB}; pass its path"
        )
    p = _logistic(d_ng + d_inst * np.asarray(difficulty, dtype=float))
    sem = float(p.std(ddof=1) / np.sqrt(p.size)) * 100 if p.size > 1 else math.nan
    return float(p.mean()) * 100, sem


def length_controlled_win_rate(
    model: str,
    weights_csv: Path,
    instruction_difficulty_csv: Path | None = None,
    baseline: str = BASELINE,
) -> tuple[float, float]:
    """LC win rate and its standard error (percent) of a model in the published weights file."""
    weights = read_glm_weights(Path(weights_csv))
    for name in (model, baseline):
        if name not in weights:
            raise UserError(
                f"{weights_csv} has no GLM weights for {name!r}: a model outside the published leaderboard "
                "needs the GLM refitted (see fit_length_controlled)"
            )
    difficulty = None
    if instruction_difficulty_csv is not None:
        difficulty = read_instruction_difficulty(Path(instruction_difficulty_csv))
    return lc_from_weights(weights[model], weights[baseline], difficulty)


def fit_length_controlled(
    annotations: Annotations,
    df_gamed_csv: Path | None = None,
    instruction_difficulty_csv: Path | None = None,
) -> tuple[float, float]:
    """Refit the LC GLM for a new model. Not available: it needs two hub-only files and liblinear's exact
    solver (see the module docstring); this raises a `UserError` that says so."""
    missing = [
        f"{name} ({what})"
        for name, path, what in (
            ("df_gamed.csv", df_gamed_csv, "judgements of the verbose and concise gamed baselines"),
            ("instruction_difficulty.csv", instruction_difficulty_csv, "one difficulty per instruction"),
        )
        if path is None or not Path(path).is_file()
    ]
    if missing:
        raise UserError(f"refitting the length-controlled GLM needs {' and '.join(missing)} from {HUB}")
    raise UserError(
        "refitting the length-controlled GLM is not implemented: the official fit is scikit-learn's "
        "LogisticRegressionCV(penalty='l1', solver='liblinear', cv=GroupKFold(5)) and its digits depend on "
        "that solver; use alpaca_eval's get_length_controlled_winrate, or a model with published GLM weights"
    )


def _find(data_dir: Path | None, *relative: str) -> Path | None:
    if data_dir is None:
        return None
    return next((data_dir / r for r in relative if (data_dir / r).is_file()), None)


def for_import(
    model: str, data_dir: Path | None, n_items: int
) -> tuple[dict[str, Any] | None, list[float | None], dict[str, Any], list[Path]]:
    """The LC record of an imported 2.0 model with published weights: (GLM record for the rows or None,
    difficulty per instruction, note for run.json, files read)."""
    where = f"--data-dir ({data_dir})" if data_dir else "a --data-dir folder"
    weights_path = _find(data_dir, WEIGHTS_FILE, f"{WEIGHTS_REPO_PATH}/{WEIGHTS_FILE}")
    difficulty_path = _find(data_dir, DIFFICULTY_FILE)
    needs = (
        f"the length-controlled win rate needs, in {where}, {DIFFICULTY_FILE} (from {HUB}) "
        f"and the published GLM weights {WEIGHTS_FILE} (alpaca_eval repository, {WEIGHTS_REPO_PATH}/)"
    )
    if weights_path is None:
        return None, [], {"computed": False, "note": f"not computed: {needs}; {WEIGHTS_FILE} not found"}, []
    weights = read_glm_weights(weights_path)
    if model not in weights or BASELINE not in weights:
        missing = model if model not in weights else BASELINE
        note = (
            f"not computed: {weights_path.name} has no published GLM weights for {missing!r}; a model "
            "outside the published leaderboard needs the GLM refitted, which is not implemented"
        )
        return None, [], {"computed": False, "note": note}, [weights_path]
    m, b = weights[model], weights[BASELINE]
    files = [weights_path]
    difficulty: list[float | None] = [None] * n_items
    if difficulty_path is not None:
        difficulty = [float(d) for d in read_instruction_difficulty(difficulty_path, n_items)]
        files.append(difficulty_path)
    elif m.difficulty != b.difficulty:
        note = f"not computed: {needs}; {DIFFICULTY_FILE} not found"
        return None, [], {"computed": False, "note": note}, files
    record = {
        "model": model,
        "baseline": BASELINE,
        "model_weights": dict(m.__dict__),
        "baseline_weights": dict(b.__dict__),
    }
    note = (
        f"computed from the published GLM weights of {model!r} ({weights_path.name}), not refitted from "
        "these judgements"
    )
    return record, difficulty, {"computed": True, "note": note}, files
