"""Rejection sampling (seed (a)): the policy samples `n` answers per prompt, a scorer rates them, and the
best one per prompt becomes the SFT target.

"Best" is the highest rating among the rated samples, a finished answer (EOS within `max_new_tokens`)
before an unfinished one, the first on ties (counted). A prompt none of whose samples could be rated is
left out and counted. Samples are drawn in fixed chunks of `CHUNK` prompts, each seeded from (seed, chunk),
so the same seed gives the same samples whatever the batch size.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from evalkit.training.data_records import SFTExample

CHUNK = 16


def best_of_n(
    model,
    encoder,
    examples: Sequence[Any],
    scorer,
    *,
    n: int,
    temperature: float,
    max_new_tokens: int,
    seed: int,
    batch_size: int = 8,
    advance: Callable[[int], None] = lambda k: None,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Per prompt: its samples with ratings and the index of the best (None when none was rated)."""
    from evalkit.training.sampling import SampleRequest, sample

    records: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    for c, start in enumerate(range(0, len(examples), CHUNK)):
        chunk = examples[start : start + CHUNK]
        requests = [SampleRequest(ex.prompt, ex.image) for ex in chunk for _ in range(n)]
        samples = sample(
            model,
            encoder,
            requests,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            seed=seed * 1_000_003 + c,
            batch_size=batch_size,
        )
        ratings = scorer.score([ex for ex in chunk for _ in range(n)], [s.text for s in samples])
        for k, ex in enumerate(chunk):
            mine = list(zip(samples[k * n : (k + 1) * n], ratings[k * n : (k + 1) * n], strict=True))
            rated = [(i, s, r) for i, (s, r) in enumerate(mine) if r is not None]
            best = None
            if rated:
                top = max((s.finished, r) for _, s, r in rated)
                best = next(i for i, s, r in rated if (s.finished, r) == top)
                if sum((s.finished, r) == top for _, s, r in rated) > 1:
                    counts["best tied (first kept)"] += 1
            else:
                counts["no rated sample"] += 1
            counts["unrated samples"] += len(mine) - len(rated)
            records.append(
                {
                    "id": ex.id,
                    "prompt": ex.prompt,
                    "image": ex.image,
                    "source": ex.source,
                    "samples": [{"text": s.text, "rating": r, "finished": s.finished} for s, r in mine],
                    "best": best,
                }
            )
        advance(len(chunk))
    return records, dict(counts)


def sft_examples(records: list[dict[str, Any]]) -> list[SFTExample]:
    """The best sample of every prompt that has one, as SFT examples."""
    return [
        SFTExample(
            prompt=r["prompt"],
            response=r["samples"][r["best"]]["text"],
            image=r["image"],
            source=r["source"],
            id=r["id"],
        )
        for r in records
        if r["best"] is not None
    ]
