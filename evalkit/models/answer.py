"""A generated token sequence as the answer every local backend (hf, vllm) stores: the text up to and
including the first EOS token (which is counted but not shown), cut at the first stop string, with the
fewest completion tokens whose text holds that stop string counted."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def cut_answer(
    tokens: list[int], eos_ids: Iterable[int], stop: tuple[str, ...], tokenizer: Any
) -> tuple[str, int]:
    """(text, completion tokens): cut after the first EOS (counted), then at the first stop string; the
    text is `tokenizer.decode(..., skip_special_tokens=True)`, stripped."""
    eos = set(eos_ids)

    def text_of(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=True)

    n = next((k + 1 for k, t in enumerate(tokens) if t in eos), len(tokens))
    text = text_of(tokens[:n])
    cuts = [text.find(s) for s in stop if s and s in text]
    if not cuts:
        return text.strip(), n
    text = text[: min(cuts)]
    lo, hi = 1, n  # fewest tokens whose text already contains a stop string
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if any(s and s in text_of(tokens[:mid]) for s in stop) else (mid + 1, hi)
    return text.strip(), lo
