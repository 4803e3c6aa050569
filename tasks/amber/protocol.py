"""AMBER's official rules (junyangwang0410/AMBER `inference.py`): the evaluation types, noun matching, answer
parsing and the counter arithmetic behind every reported number (no I/O: `data` reads the files).

Generative matching, per response (`match_generative`): keep the extracted nouns that are in the
hallucination vocabulary (every key and value of relation.json), repeats included; each is then

1. skipped if it is a global safe word (safe_words.txt) — it still counts in CHAIR's denominator;
2. safe if it equals a truth object or one of their associations (relation.json values): the first such
   word marks its truth object covered;
3. otherwise: if it equals a `hallu` object or association, the first such word marks that hallu object
   covered; then the first hallu word with similarity > threshold also marks its object covered (both
   steps run, neither ends the noun's checks); then the first truth word with similarity > threshold
   marks its truth object covered and makes the noun safe;
4. a noun that is none of these is a hallucination.

Per response the counters are: hallucinated nouns / nouns (CHAIR), covered / truth objects (Cover),
covered / hallu objects (Cog), and whether it has no hallucinated noun (Hal). Discriminative answers count
only when exactly "Yes" or "No" (case-sensitive string equality); "No" is the positive class.

Numbers follow the script to the digit: every counter starts from metrics.txt (numerators 0,
denominators 0.001, so e.g. 3 hallucinated of 16 nouns is 18.7, not 18.8); each metric is rounded to one
decimal with Python's `round`; F1 is computed from the *rounded* precision and recall with 1e-4 added to
the denominator (1e-3 for existence).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from evalkit.types import UserError

#: metrics.txt: every numerator starts at 0, every denominator at 0.001
DENOMINATOR_INIT = 0.001
F1_EPS = 1e-4
F1_EPS_EXISTENCE = 1e-3
DEFAULT_SIMILARITY = 0.8
EVALUATION_TYPES = ("a", "g", "d", "de", "da", "dr")
#: annotation type → (dimension, sub-dimension); the official `else` branch makes any other type relation
TYPE_GROUP = {
    "discriminative-hallucination": ("existence", None),
    "discriminative-attribute-state": ("attribute", "state"),
    "discriminative-attribute-number": ("attribute", "number"),
    "discriminative-attribute-action": ("attribute", "action"),
}
DIMENSION_OF_EVAL = {"de": "existence", "da": "attribute", "dr": "relation"}


def group_of(ann_type: str) -> tuple[str, str | None]:
    if ann_type == "generative":
        return ("generative", None)
    return TYPE_GROUP.get(ann_type, ("relation", None))


def selected(ann_type: str, evaluation_type: str) -> bool:
    """Whether an item belongs to the items of `--evaluation_type` (the official query_*.json split)."""
    dim = group_of(ann_type)[0]
    if evaluation_type == "a":
        return True
    if evaluation_type == "g":
        return dim == "generative"
    if evaluation_type == "d":
        return dim != "generative"
    return dim == DIMENSION_OF_EVAL[evaluation_type]


# --- generative -------------------------------------------------------------------------------------------


def _expand(objects: Sequence[str], association: dict[str, Sequence[str]]) -> tuple[list[str], list[int]]:
    """The words that stand for `objects` — every object's associations in object order, then the
    objects themselves — and the index of the object each word stands for."""
    words: list[str] = []
    owner: list[int] = []
    for i, obj in enumerate(objects):
        words += association[obj]
        owner += [i] * len(association[obj])
    return words + list(objects), owner + list(range(len(objects)))


def match_generative(
    nouns: Sequence[str],
    truth: Sequence[str],
    hallu: Sequence[str],
    association: dict[str, Sequence[str]],
    vocabulary: frozenset[str] | set[str],
    safe_words: Sequence[str],
    similarity: Callable[[str, str], float],
    threshold: float = DEFAULT_SIMILARITY,
) -> dict[str, Any]:
    """One response's nouns scored against its truth and hallu objects (rules in the module docstring)."""
    kept = [n for n in nouns if n in vocabulary]
    safe_w, safe_owner = _expand(truth, association)
    ha_w, ha_owner = _expand(hallu, association)
    covered = [False] * len(truth)
    cog = [False] * len(hallu)
    hallucinated = []
    for noun in kept:
        if noun in safe_words:
            continue
        if noun in safe_w:
            covered[safe_owner[safe_w.index(noun)]] = True
            continue
        if noun in ha_w:
            cog[ha_owner[ha_w.index(noun)]] = True
        j = next((j for j, w in enumerate(ha_w) if similarity(noun, w) > threshold), None)
        if j is not None:
            cog[ha_owner[j]] = True
        j = next((j for j, w in enumerate(safe_w) if similarity(noun, w) > threshold), None)
        if j is not None:
            covered[safe_owner[j]] = True
            continue
        hallucinated.append(noun)
    return {
        "nouns": kept,
        "hallucinated": hallucinated,
        "covered": [t for t, c in zip(truth, covered, strict=True) if c],
        "cog": [h for h, c in zip(hallu, cog, strict=True) if c],
        "n_nouns": len(kept),
        "n_hallucinated": len(hallucinated),
        "n_covered": sum(covered),
        "n_truth": len(truth),
        "n_cog": sum(cog),
        "n_hallu": len(hallu),
    }


# --- discriminative ---------------------------------------------------------------------------------------

ANSWER_RULES = ("exact", "normalize")
_LEADING = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)


def official_answer(response: str) -> str | None:
    """'Yes' / 'No' when the response is exactly that string, else None (counts as neither)."""
    return response if response in ("Yes", "No") else None


def normalized_answer(response: str) -> str | None:
    """The opt-in lenient rule (`amber.answers=normalize`): a response whose first word is yes or no, in
    any case and with any punctuation after it ("yes.", "No, there is not"), counts as that answer."""
    m = _LEADING.match(response)
    return None if m is None else m.group(1).capitalize()


# --- counters and official formulas -----------------------------------------------------------------------

GEN_COUNTERS = ("chair_score", "chair_num", "cover_score", "cover_num", "cog_score", "cog_num", "non_hallu")
GROUPS = ("state", "number", "action", "existence", "relation")
QA_COUNTERS = ("correct_num", "correct_score", "no_num", "no_score", "ans_no_num", "ans_no_score")
N_COUNTERS = len(GEN_COUNTERS) + 1 + len(GROUPS) * len(QA_COUNTERS)  # + the generative row count


def counter_index(group: str, counter: str) -> int:
    return len(GEN_COUNTERS) + 1 + GROUPS.index(group) * len(QA_COUNTERS) + QA_COUNTERS.index(counter)


def row_counters(row: dict[str, Any]) -> np.ndarray:
    """A scored row's contribution to the official counters (layout: `GEN_COUNTERS`, the number of
    generative rows, then `QA_COUNTERS` for each of `GROUPS`)."""
    v = np.zeros(N_COUNTERS)
    if row["kind"] == "generative":
        v[:8] = [
            row["n_hallucinated"],
            row["n_nouns"],
            row["n_covered"],
            row["n_truth"],
            row["n_cog"],
            row["n_hallu"],
            row["n_hallucinated"] == 0,
            1,
        ]
        return v
    dim, sub = group_of(row["meta"]["type"])
    group = sub or dim
    truth, answer = row["target"], row["answer"]
    counts = {
        "correct_num": 1,
        "correct_score": (truth == "yes" and answer == "Yes") or (truth == "no" and answer == "No"),
        "no_num": truth == "no",
        "no_score": truth == "no" and answer == "No",
        "ans_no_num": answer == "No",
        "ans_no_score": answer == "No" and truth == "no",
    }
    for name, value in counts.items():
        v[counter_index(group, name)] = float(value)
    return v


def ratio(score, num, exact: bool = True):
    """The script's percentage. For bootstrap arrays (`exact=False`) a resample without any unit of the
    denominator gives NaN rather than the script's 0, so it is left out of the interval."""
    if exact:
        return score / (num + DENOMINATOR_INIT) * 100
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(num > 0, score / (num + DENOMINATOR_INIT) * 100, np.nan)


def rounded(x, exact: bool):
    """Python's `round(x, 1)` for a scalar (the point value), numpy's for bootstrap arrays."""
    return round(float(x), 1) if exact else np.round(x, 1)


def generative_metrics(c: np.ndarray, exact: bool = True) -> dict[str, Any]:
    """CHAIR, Cover, Hal, Cog from summed counters `c` (`(..., N_COUNTERS)`), rounded as the script."""
    c = np.moveaxis(np.asarray(c, dtype=float), -1, 0)
    return {
        "chair": rounded(ratio(c[0], c[1], exact), exact),
        "cover": rounded(ratio(c[2], c[3], exact), exact),
        "hal": rounded(100 - ratio(c[6], c[7], exact), exact),
        "cog": rounded(ratio(c[4], c[5], exact), exact),
    }


def qa_metrics(c: np.ndarray, groups: Sequence[str], eps: float = F1_EPS, exact: bool = True) -> dict:
    """Accuracy, precision, recall and F1 ("No" positive) over the summed counters of `groups`."""
    c = np.asarray(c, dtype=float)
    total = {k: sum(c[..., counter_index(g, k)] for g in groups) for k in QA_COUNTERS}
    acc = rounded(ratio(total["correct_score"], total["correct_num"], exact), exact)
    p = rounded(ratio(total["ans_no_score"], total["ans_no_num"], exact), exact)
    r = rounded(ratio(total["no_score"], total["no_num"], exact), exact)
    f1 = rounded(2 * (p / 100) * (r / 100) / ((p / 100) + (r / 100) + eps) * 100, exact)
    return {"acc": acc, "precision": p, "recall": r, "f1": f1}


def amber_score(chair, f1, exact: bool = True):
    """(100 − CHAIR + F1) / 2 from the rounded CHAIR and F1 (AMBER paper §3), rounded to one decimal."""
    return rounded((100 - chair + f1) / 2, exact)


# --- options ----------------------------------------------------------------------------------------------


def typed_options(opts: dict[str, Any]) -> dict[str, Any]:
    """`Amber.read_options` values with `similarity_score` as a number."""
    try:
        return {**opts, "similarity_score": float(opts["similarity_score"])}
    except ValueError:
        raise UserError(f"amber.similarity_score={opts['similarity_score']}: not a number") from None
