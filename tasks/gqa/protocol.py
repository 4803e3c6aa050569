"""GQA's protocol as LLaVA-1.5 scores testdev-balanced (`scripts/v1_5/eval/gqa.sh`): the prompt suffix and the
exact match. No I/O.

LLaVA's loader strips the generated text; `scripts/convert_gqa_for_eval.py` then strips trailing periods
(all of them) and lower-cases it; GQA's `eval.py` counts a question right when that prediction equals its
`answer` string exactly, over the balanced questions (all of testdev-balanced), and reports the accuracy per
structural type (verify, query, choose, logical, compare) and per semantic type (obj, attr, rel, cat,
global) beside it. lmms-eval's `gqa` differs: its exact match lower-cases and deletes every punctuation
character from both the prediction and the answer (so "t-shirt" and "tshirt" agree there, not here) and
does not strip whitespace.
"""

from __future__ import annotations

PROMPT_SUFFIX = "\nAnswer the question using a single word or phrase."
STRUCTURAL = ("verify", "query", "choose", "logical", "compare")
SEMANTIC = ("obj", "attr", "rel", "cat", "global")


def prediction(response: str) -> str:
    """The prediction GQA's evaluator reads: the answer stripped, trailing periods removed, lower-cased."""
    return response.strip().rstrip(".").lower()


def is_correct(response: str, answer: str) -> bool:
    return prediction(response) == answer
