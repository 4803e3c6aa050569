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

A new model needs the GLM refitted (`fit_length_controlled`), as `get_length_controlled_winrate` does:
L1-penalised logistic regression without intercept on soft labels, on the model's judgements plus the
rows of the hub-only `df_gamed.csv` (judgements of a verbose and a concise "gamed" baseline; sample weight
1 for the model's rows, 0.2 / 2 for the gamed ones). Soft labels are fitted by duplicating each row (label 1
weighted p, label 0 weighted 1 - p); C is chosen by `LogisticRegressionCV` with `GroupKFold(5)` over those
duplicated pairs and the weighted log-loss, solver liblinear, random_state 123. The fit uses scikit-learn
itself (the optional extra `evalkit[lc]`), since its digits depend on liblinear's solver and stopping rule.

The weights, difficulty and df_gamed.csv files are read and checked by `data.py`; this module computes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.tasks.alpaca_eval.data import (
    GAMED_FILE,
    N_INSTRUCTIONS,
    Gamed,
    GlmWeights,
    read_gamed,
    read_glm_weights,
    read_instruction_difficulty,
)
from evalkit.types import UserError

DRAW_PREFERENCE = 1.5
WEIGHTS_FILE = "baseline_gpt4_1106_preview.csv"
BASELINE = "gpt4_1106_preview"
HUB = "the Hugging Face dataset tatsu-lab/alpaca_eval (not in git)"
#: Where the published GLM weights sit in a checkout of the alpaca_eval repository.
WEIGHTS_REPO_PATH = "src/alpaca_eval/metrics/weights/weighted_alpaca_eval_gpt4_turbo/length_controlled_v1"
DIFFICULTY_FILE = "instruction_difficulty.csv"
#: Why a run (as opposed to an import of a published model) has no LC win rate.
V1_LC_NOTE = {"computed": False, "note": "AlpacaEval 1.0 has no length-controlled win rate"}
REFIT_NOTE = (
    "not computed: the length-controlled win rate of newly judged answers needs the GLM refitted on these "
    "judgements together with df_gamed.csv from " + HUB + "; put it in --data-dir or pass "
    "--task-option alpaca_eval.df_gamed=PATH (and install evalkit[lc])"
)


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


#: sample weight of a gamed-baseline row: regularize_to_baseline_lambda 0.2, split over the two baselines
GAMED_WEIGHT = 0.2 / 2
CV_FOLDS = 5
RANDOM_STATE = 123


@dataclass(frozen=True)
class LcFit:
    value: float  # LC win rate, percent
    standard_error: float  # percent
    weights: GlmWeights
    C: float


def _logistic_cv():
    """scikit-learn's LogisticRegressionCV as the official fit configures it, on this version's API."""
    try:
        import inspect

        import sklearn
        from sklearn.linear_model import LogisticRegressionCV
        from sklearn.model_selection import GroupKFold
    except ImportError:
        raise UserError(
            "the length-controlled win rate refit needs scikit-learn: pip install 'evalkit[lc]'"
        ) from None
    params = inspect.signature(LogisticRegressionCV).parameters
    kwargs: dict[str, Any] = {
        "random_state": RANDOM_STATE,
        "dual": False,
        "solver": "liblinear",
        "fit_intercept": False,
    }
    if params["penalty"].default == "deprecated":  # scikit-learn >= 1.8 names the L1 penalty this way
        kwargs["l1_ratios"] = (1.0,)
    else:
        kwargs["penalty"] = "l1"
    if "use_legacy_attributes" in params:
        kwargs["use_legacy_attributes"] = False
    return sklearn, LogisticRegressionCV, GroupKFold, kwargs


def _weighted_log_loss(y_true, y_pred, true_prob, true_sample_weight):
    """The official CV score: log-loss of the soft label (recovered from the duplicated row), weighted."""
    p = np.where(y_true == 1, true_prob, 1 - true_prob)
    q = np.clip(y_pred, 1e-15, 1 - 1e-15)
    return -np.mean((p * np.log(q) + (1 - p) * np.log(1 - q)) * true_sample_weight)


def std_delta_len(reference_lengths: Sequence[int], model_lengths: Sequence[int]) -> np.ndarray:
    """(len(reference) - len(model)) in characters over its sample standard deviation (pandas' std)."""
    delta = np.asarray(reference_lengths, dtype=float) - np.asarray(model_lengths, dtype=float)
    if delta.size < 2 or delta.std(ddof=1) == 0:
        raise UserError("the length-controlled refit needs at least two answers of different lengths")
    return delta / delta.std(ddof=1)


def fit_length_controlled(
    preferences: Sequence[float],
    indices: Sequence[int],
    reference_lengths: Sequence[int],
    model_lengths: Sequence[int],
    gamed: Gamed,
) -> LcFit:
    """Refit the GLM on one model's judgements (preference 1..2 per instruction, NaN when invalid; a
    legacy 0 is a draw) and predict its win rate with no length difference."""
    from sklearn.metrics import make_scorer

    sklearn, LogisticRegressionCV, GroupKFold, kwargs = _logistic_cv()
    pref = np.asarray(preferences, dtype=float)
    pref = np.where(pref == 0, DRAW_PREFERENCE, pref) - 1
    difficulty = np.array([gamed.difficulty_of(int(i)) for i in indices])
    length = np.tanh(std_delta_len(reference_lengths, model_lengths))
    model_x = np.c_[length, difficulty, np.ones_like(difficulty)]
    gamed_x = np.c_[np.tanh(gamed.std_delta_len), gamed.difficulty, gamed.not_gamed]
    x = np.r_[gamed_x, model_x]  # gamed rows first, as the official concatenation
    y = np.r_[gamed.preference, pref]
    weight = np.where(np.r_[gamed.not_gamed, np.ones(len(pref))] == 1.0, 1.0, GAMED_WEIGHT)
    keep = ~np.isnan(y)
    x, y, weight = x[keep], y[keep], weight[keep]
    n = len(y)
    x2, label = np.r_[x, x], np.r_[np.ones(n), np.zeros(n)]
    true_prob, true_weight = np.r_[y, 1 - y], np.r_[weight, weight]
    with sklearn.config_context(enable_metadata_routing=True):
        scorer = make_scorer(
            _weighted_log_loss, response_method="predict_proba", greater_is_better=False
        ).set_score_request(true_sample_weight=True, true_prob=True)
        model = LogisticRegressionCV(cv=GroupKFold(n_splits=CV_FOLDS), scoring=scorer, **kwargs)
        model.set_fit_request(sample_weight=True)
        model.fit(
            x2,
            label,
            sample_weight=true_prob * true_weight,
            groups=np.r_[np.arange(n), np.arange(n)],
            true_sample_weight=true_weight,
            true_prob=true_prob,
        )
    theta = GlmWeights(*(float(t) for t in model.coef_[0]))
    predicted = _logistic(theta.difficulty * difficulty + theta.not_gamed)
    se = float(predicted.std(ddof=1) / math.sqrt(predicted.size)) * 100
    return LcFit(float(predicted.mean()) * 100, se, theta, float(np.ravel(model.C_)[0]))


def gamed_file(task: str, data_dir: Path | None, given: str | None) -> Path | None:
    """The hub-only df_gamed.csv for the LC refit: `given` (`--task-option alpaca_eval.df_gamed=PATH`),
    else in --data-dir; None when neither gives one."""
    key = f"{task}.df_gamed"
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise UserError(f"--task-option {key}: {path} not found")
        return path
    found = data_dir / GAMED_FILE if data_dir is not None else None
    return found if found is not None and found.is_file() else None


def refit_record(path: Path) -> dict[str, Any]:
    """What a row keeps to refit the GLM at scoring time (also by `rescore`): the gamed file and its hash."""
    path = Path(path).expanduser().resolve()
    read_gamed(path)  # fail on a bad file before any answer is generated
    from evalkit.util.datafiles import sha256_file

    return {"df_gamed": str(path), "sha256": sha256_file(path)}


def refit_rows(rows: Sequence[dict[str, Any]]) -> tuple[LcFit | None, str]:
    """Refit the GLM on scored rows whose meta carry a `refit_record`: (fit, note); fit is None (with the
    reason in the note) when the gamed file is gone or changed since the run."""
    from evalkit.util.datafiles import sha256_file

    record = rows[0]["meta"]["lc_refit"]
    path = Path(record["df_gamed"])
    if not path.is_file() or sha256_file(path) != record["sha256"]:
        return None, f"not computed: {path} is missing or differs from the file the run recorded"
    fit = fit_length_controlled(
        [math.nan if r["preference"] is None else r["preference"] for r in rows],
        [r["meta"]["index"] for r in rows],
        [len(r["target"]) for r in rows],
        [len(r["response"]) for r in rows],
        read_gamed(path),
    )
    w = fit.weights
    note = (
        f"refitted on these judgements and {path.name} (C={fit.C:.6g}; thetas: length {w.length:.6g}, "
        f"difficulty {w.difficulty:.6g}, not_gamed {w.not_gamed:.6g})"
    )
    return fit, note


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
