"""The training files built from the rated samples, by the first study's rules (training.md §1a).

Per prompt, over its rated samples (a sample whose generation failed or whose rating is unparsed or
failed has no quality):
- `dpo.jsonl`: chosen = the highest quality, rejected = the lowest; the group is dropped, and counted by
  reason, with fewer than 2 rated samples, when all rated samples have the same quality, when the gap is
  below `min_gap`, or when the two texts are identical. Ties for best or worst go to the lowest sample
  index. Generic preference records `{"id", "image", "prompt", "chosen", "rejected", "scores"}`.
- `rejection_sampling.jsonl`: the best sample (same tie rule), as generic SFT records
  `{"id", "image", "prompt", "response"}`: train on it with `evalkit train --method sft`.
- `steerlm.jsonl`: every rated sample with its own five scores as `attributes` (`--method steerlm`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

SKIP_FEW = "fewer than 2 rated samples"
SKIP_EQUAL = "all rated samples have the same quality"
SKIP_SAME_TEXT = "chosen and rejected texts are identical"
SKIP_NONE_RATED = "no rated sample"


def skip_gap(min_gap: float) -> str:
    return f"quality gap below {min_gap:g}"


def build(
    prompt_ids: list[str], rows: dict[str, dict[str, Any]], samples: int, min_gap: float
) -> tuple[list[dict], list[dict], list[dict], dict[str, dict[str, int]]]:
    """(dpo, rejection sampling, steerlm records, skipped groups by file and reason) from the stored rows
    (`{prompt_id}/{k}` -> row), prompts in the given order."""
    dpo, rs, steer = [], [], []
    skipped: dict[str, Counter] = {"dpo": Counter(), "rejection_sampling": Counter()}
    for pid in prompt_ids:
        group = [rows[f"{pid}/{k}"] for k in range(samples) if f"{pid}/{k}" in rows]
        rated = [r for r in group if r.get("ratings") is not None]
        for r in rated:
            steer.append(
                _record(r, f"{pid}/{r['sample_index']}", response=r["response"], attributes=r["ratings"])
            )
        if not rated:
            skipped["rejection_sampling"][SKIP_NONE_RATED] += 1
        else:
            best = _first(rated, max(r["quality"] for r in rated))
            rs.append(_record(best, pid, response=best["response"]))
        if len(rated) < 2:
            skipped["dpo"][SKIP_FEW] += 1
            continue
        top, bottom = max(r["quality"] for r in rated), min(r["quality"] for r in rated)
        if top == bottom:
            skipped["dpo"][SKIP_EQUAL] += 1
            continue
        if top - bottom < min_gap:
            skipped["dpo"][skip_gap(min_gap)] += 1
            continue
        chosen, rejected = _first(rated, top), _first(rated, bottom)
        if chosen["response"].strip() == rejected["response"].strip():
            skipped["dpo"][SKIP_SAME_TEXT] += 1
            continue
        dpo.append(
            _record(
                chosen,
                pid,
                chosen=chosen["response"],
                rejected=rejected["response"],
                scores={"chosen": chosen["ratings"], "rejected": rejected["ratings"]},
                samples={"chosen": chosen["sample_index"], "rejected": rejected["sample_index"]},
            )
        )
    return dpo, rs, steer, {k: dict(v) for k, v in skipped.items()}


def _first(rated: list[dict[str, Any]], quality: int) -> dict[str, Any]:
    """The rated sample of that quality with the lowest sample index."""
    return min((r for r in rated if r["quality"] == quality), key=lambda r: r["sample_index"])


def _record(row: dict[str, Any], rid: str, **fields: Any) -> dict[str, Any]:
    return {"id": rid, "image": row["image"], "prompt": row["question"], **fields}
