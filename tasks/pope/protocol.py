"""POPE's official protocol (LLaVA-1.5 `eval_pope.py` == POPE `evaluate.py`): the prompt suffix, the
answer parser and the confusion-matrix metrics. No I/O.
"""

from __future__ import annotations

import numpy as np

SPLITS = ("random", "popular", "adversarial")
#: the metrics of one split (and of all splits pooled), as `metrics_from_counts` names them
METRICS = ("acc", "precision", "recall", "f1", "yes_ratio")
#: (predicted yes, labelled yes) → index in (tp, fp, tn, fn), the argument order of `metrics_from_counts`
CELL = {(True, True): 0, (True, False): 1, (False, False): 2, (False, True): 3}
PROMPT_SUFFIX = "\nAnswer the question using a single word or phrase."


def parse_answer(text: str) -> str:
    """The official rule, kept byte-for-byte: 'no' iff a word is 'No', 'not' or 'no', else 'yes'."""
    if text.find(".") != -1:
        text = text.split(".")[0]
    text = text.replace(",", "")
    words = text.split(" ")
    return "no" if any(w in ("No", "not", "no") for w in words) else "yes"


def confusion(preds: list[str], labels: list[str]) -> dict[str, int]:
    """TP/FP/TN/FN with "yes" as the positive class."""
    c = {"tp": 0, "fp": 0, "tn": 0, "fn": 0}
    for p, y in zip(preds, labels, strict=True):
        if p == "yes":
            c["tp" if y == "yes" else "fp"] += 1
        else:
            c["tn" if y == "no" else "fn"] += 1
    return c


def metrics_from_counts(tp, fp, tn, fn):
    """Accuracy, precision, recall, F1 and yes-ratio (fractions) from counts; works on numpy arrays."""
    tp, fp, tn, fn = (np.asarray(x, dtype=float) for x in (tp, fp, tn, fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        n = tp + fp + tn + fn
        precision = tp / (tp + fp)
        recall = tp / (tp + fn)
        f1 = 2 * precision * recall / (precision + recall)
        return {
            "acc": (tp + tn) / n,
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "yes_ratio": (tp + fp) / n,
        }
