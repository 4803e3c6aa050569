"""Judged preference pairs, the first study's (Li et al. 2024) way: a checkpoint samples k answers per prompt,
a judge rates each on the five HelpSteer attributes, chosen = best quality, rejected = worst.

    write_judged_pairs(prompts, checkpoint, "toy-judge", out_dir, JudgeRules(seed=0))

Prompt records are `{"id", "question", "image" (path or null), "reference" (optional)}`. Each prompt is
asked `samples` times of the checkpoint at `temperature` (request seeds derived from the rules' seed, the
prompt id and the sample index, so a re-run draws the same answers), each answer is rated through the judge
layer with the attribute prompt (`attribute_prompt`: the question, the reference answer when there is one,
the response, then the five-line answer format), and

- `samples.jsonl`: every sample with its judge text and ratings (None when unparsed);
- `dpo.jsonl`: per prompt with at least two rated samples, the sample of highest quality (Helpfulness +
  Correctness + Coherence) as chosen and the lowest as rejected (the first of tied ones in sample order),
  the group dropped when the gap is below `min_gap` (2, the study's rule); generic preference format
  `{"id", "image", "prompt", "chosen", "rejected", "scores"}` (scores: each side's ratings and quality);
- `stats.json`: counts — samples, ratings unparsed, groups, pairs, and every dropped group by reason.

The rating parser takes the last line of each attribute (`Name: N`, N an integer 0-4); a missing or
out-of-range value leaves the sample unrated (counted, never read as 0).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ATTRIBUTES = ("Helpfulness", "Correctness", "Coherence", "Complexity", "Verbosity")
QUALITY = ("Helpfulness", "Correctness", "Coherence")

INSTRUCTIONS = (
    "Please act as an impartial judge and rate the response of an AI assistant to the user question below "
    "on five attributes, each on a 5-point Likert scale from 0 to 4: Helpfulness (overall helpfulness of "
    "the response to the question), Correctness (inclusion of all pertinent facts without errors), "
    "Coherence (consistency and clarity of expression), Complexity (intellectual depth required to write "
    "the response), Verbosity (amount of detail relative to what the question asks). Where a reference "
    "answer is given, judge correctness against it. Reason briefly first."
)
ANSWER_FORMAT = (
    "After your reasoning, end your answer with exactly these five lines, N an integer from 0 to 4:\n"
    + "\n".join(f"{a}: N" for a in ATTRIBUTES)
)


def attribute_prompt(question: str, response: str, reference: str | None = None) -> str:
    """The attribute prompt's one user message (sections in the order the toy judge reads)."""
    ref = f"[Reference answer]\n{reference}\n\n" if reference is not None else ""
    return (
        f"{INSTRUCTIONS}\n\n[Question]\n{question}\n\n{ref}"
        f"[The Start of Response]\n{response}\n[The End of Response]\n\n{ANSWER_FORMAT}"
    )


def parse_ratings(text: str | None) -> dict[str, int] | None:
    """The five attributes from a judge's answer (last occurrence of each line), or None when any is
    missing or outside 0-4."""
    if not text:
        return None
    out = {}
    for name in ATTRIBUTES:
        found = re.findall(rf"^\s*{name}\s*:\s*(-?\d+)\s*$", text, re.MULTILINE | re.IGNORECASE)
        if not found or not 0 <= int(found[-1]) <= 4:
            return None
        out[name] = int(found[-1])
    return out


def quality(ratings: dict[str, int]) -> int:
    return sum(ratings[a] for a in QUALITY)


@dataclass(frozen=True)
class JudgeRules:
    samples: int = 4
    temperature: float = 0.7
    max_new_tokens: int = 32
    min_gap: int = 2
    seed: int = 0


def _sample_seed(seed: int, prompt_id: str, j: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{prompt_id}:{j}".encode()).digest()[:4], "big")


def build_pairs(
    prompts: list[dict[str, Any]], rows: list[dict[str, Any]], min_gap: int
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Best-vs-worst pairs from rated samples (`rows`: prompt_id, text, ratings), skips counted by reason."""
    by_prompt: dict[str, list[dict[str, Any]]] = {p["id"]: [] for p in prompts}
    for r in rows:
        if r["ratings"] is not None:
            by_prompt[r["prompt_id"]].append(r)
    pairs, skipped = [], Counter()
    for p in prompts:
        rated = by_prompt[p["id"]]
        if len(rated) < 2:
            skipped["fewer than 2 rated samples"] += 1
            continue
        scores = [quality(r["ratings"]) for r in rated]
        best = max(range(len(rated)), key=lambda i: (scores[i], -i))
        worst = min(range(len(rated)), key=lambda i: (scores[i], i))
        if scores[best] - scores[worst] < min_gap:
            skipped[f"quality gap below {min_gap}"] += 1
            continue
        pairs.append(
            {
                "id": p["id"],
                "image": p.get("image"),
                "prompt": p["question"],
                "chosen": rated[best]["text"],
                "rejected": rated[worst]["text"],
                "scores": {
                    "chosen": {**rated[best]["ratings"], "quality": scores[best]},
                    "rejected": {**rated[worst]["ratings"], "quality": scores[worst]},
                },
            }
        )
    return pairs, skipped


def write_judged_pairs(
    prompts: list[dict[str, Any]], checkpoint: str, judge_model: str, out: Path, rules: JudgeRules
) -> dict[str, Any]:
    """Sample, rate and pair (see the module docstring) into `out`; skipped when `out/dpo.jsonl` exists.
    Returns the stats."""
    from evalkit.judges.judge import Judge, JudgeSpec, prompt_sha256
    from evalkit.models.base import load_backend
    from evalkit.types import GenerationConfig, Message, Request

    out = Path(out)
    if (out / "dpo.jsonl").is_file():
        return json.loads((out / "stats.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    gen = GenerationConfig(max_new_tokens=rules.max_new_tokens, temperature=rules.temperature)
    requests = [
        Request(
            f"{p['id']}#{j}",
            (Message("user", p["question"], (p["image"],) if p.get("image") else ()),),
            gen,
            seed=_sample_seed(rules.seed, p["id"], j),
        )
        for p in prompts
        for j in range(rules.samples)
    ]
    policy = load_backend(checkpoint)
    answers = []
    for k in range(0, len(requests), 64):
        answers += policy.generate(requests[k : k + 64])
    policy.close()
    judge = Judge(
        JudgeSpec(judge_model, max_tokens=512),
        load_backend(judge_model),
        prompt_sha256(INSTRUCTIONS, ANSWER_FORMAT),
    )
    texts = {p["id"]: p for p in prompts}
    items, rows = [], []
    for req, ans in zip(requests, answers, strict=True):
        pid = req.id.rsplit("#", 1)[0]
        p = texts[pid]
        row = {"prompt_id": pid, "sample": req.id, "text": ans.text if ans.ok else None, "error": None}
        if not ans.ok:
            row["error"] = ans.error.to_dict()
        else:
            prompt = attribute_prompt(p["question"], ans.text, p.get("reference"))
            items.append((req.id, (Message("user", prompt),)))
        rows.append(row)
    rated = {a.id: a for a in judge.ask(items)}
    for row in rows:
        a = rated.get(row["sample"])
        row["judge"] = a.text if a is not None else None
        row["ratings"] = parse_ratings(row["judge"])
    pairs, skipped = build_pairs(prompts, [r for r in rows if r["text"] is not None], rules.min_gap)
    stats = {
        "rules": asdict(rules),
        "judge": judge.fingerprint(),
        "prompts": len(prompts),
        "samples": len(rows),
        "generation_errors": sum(r["error"] is not None for r in rows),
        "unparsed": sum(r["text"] is not None and r["ratings"] is None for r in rows),
        "pairs": len(pairs),
        "skipped": dict(skipped),
    }
    (out / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "stats.json").write_text(json.dumps(stats, indent=1) + "\n")
    tmp = out / "dpo.jsonl.tmp"
    tmp.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    os.replace(tmp, out / "dpo.jsonl")
    return stats
