"""The seed study's data (spec training.md §1a): multi-completion records with five Gemini attribute
scores per completion, and the three ways the study used them: DPO pairs (best vs worst, quality gap >= 2),
rejection sampling (the best completion) and SteerLM (every completion with its scores). Also the seed
repo's already-paired DPO JSON. The accepted schema and the exact rules are listed in `training.data`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.training.data_records import (
    Context,
    Rules,
    Skip,
    image_value,
    keys_of,
    number,
    prompt_of,
    text_of,
)

#: the seed study's five Gemini attributes, 0-4 each (spec §1a lines 29-32)
ATTRS = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
#: quality = Helpfulness + Correctness + Coherence; Complexity / Verbosity are not in the sum (§1a line 34)
QUALITY_ATTRS = ATTRS[:3]
#: where a seed completion keeps its text
RESPONSE_KEYS = ("response", "completion", "answer", "output", "text", "value")
#: the notebook strips a trailing "\nPlease answer..." from the question (§1a line 40; the SteerLM suffix
#: of line 62 starts the same way)
_PLEASE = re.compile(r"\n\s*Please answer.*\Z", re.S)


@dataclass
class _Candidate:
    line: int
    text: str
    scores: dict | None  # None: a needed score is absent / null / NaN
    question: str


@dataclass
class _Group:
    id: str
    line: int
    image: Any
    candidates: list[_Candidate]


def find_scores(d: dict, nested: bool = True) -> dict[str, Any]:
    pools = [d] + ([d[k] for k in ("scores", "attributes") if isinstance(d.get(k), dict)] if nested else [])
    found: dict[str, Any] = {}
    for pool in pools:
        for key, value in pool.items():
            if isinstance(key, str) and key.lower() in ATTRS:
                found.setdefault(key.lower(), value)
    return found


def _scores(ctx: Context, line: int, raw: dict[str, Any], need: tuple[str, ...]) -> dict | None:
    """Parse the attribute scores present; None if one in `need` is missing or null (counted by the
    caller); a non-number or a value outside 0-4 is an error."""
    out: dict[str, int | float] = {}
    for attr, value in raw.items():
        x = number(value)
        if x is None:
            if value is None or (isinstance(value, str) and not value.strip()) or isinstance(value, float):
                continue  # null / empty / NaN: unscored
            raise ctx.error(line, f"score {attr.capitalize()}={value!r} is not a number")
        if not 0 <= x <= 4:
            raise ctx.error(line, f"score {attr.capitalize()}={value!r} is outside the 0-4 scale")
        out[attr] = int(x) if x.is_integer() else x
    return out if all(a in out for a in need) else None


def _quality(c: _Candidate) -> float:
    return sum(c.scores[a] for a in QUALITY_ATTRS)


def _seed_question(ctx: Context, line: int, row: dict) -> str:
    key = "question" if "question" in row else "prompt"
    if key not in row:
        raise ctx.error(line, f"missing field 'question' (or 'prompt'); keys: {keys_of(row)}")
    return _PLEASE.sub("", prompt_of(ctx, line, ctx.field(line, row, key), key)).strip()


def _response(ctx: Context, line: int, d: dict, where: str) -> str:
    for key in RESPONSE_KEYS:
        if key in d:
            return text_of(ctx, line, d[key], f"{where}{key}")
    raise ctx.error(line, f"{where or 'record'} has no response field (one of {', '.join(RESPONSE_KEYS)})")


def _seed_groups(ctx: Context, records: list[tuple[int, dict]], need: tuple[str, ...], rules: Rules):
    """One group per prompt: a record with a `completions` list, or consecutive-or-not one-completion
    rows sharing (image, question) (`group_by="image"`: sharing the image, as the notebook grouped)."""
    groups: list[_Group] = []
    flat: dict[str, _Group] = {}

    def one(line: int, row: dict) -> None:
        question = _seed_question(ctx, line, row)
        comps = row.get("completions")
        if comps is not None:
            if not isinstance(comps, list):
                raise ctx.error(line, "field 'completions' must be a list")
            group = _Group(ctx.record_id(line, row), line, image_value(row), [])
            for k, c in enumerate(comps):
                if not isinstance(c, dict):
                    raise ctx.error(line, f"completions[{k}] must be an object")
                text = _response(ctx, line, c, f"completions[{k}].")
                group.candidates.append(
                    _Candidate(line, text, _scores(ctx, line, find_scores(c), need), question)
                )
            groups.append(group)
            return
        image = image_value(row)
        key = json.dumps([image, question] if rules.group_by == "prompt" or image is None else [image])
        if key not in flat:
            flat[key] = _Group(f"{Path(ctx.label).stem}-{line}", line, image, [])
            groups.append(flat[key])
        scores = _scores(ctx, line, find_scores(row, nested=False), need)
        flat[key].candidates.append(_Candidate(line, _response(ctx, line, row, ""), scores, question))

    ctx.each(records, one)
    return groups


def _scored(ctx: Context, group: _Group) -> list[_Candidate]:
    scored = [c for c in group.candidates if c.scores is not None]
    ctx.skip("completion without scores", len(group.candidates) - len(scored))
    return scored


def seed_pairs(records, ctx: Context, rules: Rules) -> None:
    """Best vs worst per prompt by quality = H + Cor + Coh, drop |gap| < min_gap (§1a lines 33-36)."""
    for group in _seed_groups(ctx, records, QUALITY_ATTRS, rules):
        try:
            scored = _scored(ctx, group)
            if len(scored) < 2:
                raise Skip("fewer than 2 scored completions")
            best, worst = max(scored, key=_quality), min(scored, key=_quality)  # first on ties
            gap = _quality(best) - _quality(worst)
            if gap == 0:
                raise Skip("tie")
            if gap < rules.min_gap:
                raise Skip(f"quality gap < {rules.min_gap:g}")
            if best.question != worst.question:
                raise Skip("question differs")
            scores = {
                "chosen": {**best.scores, "quality": _quality(best)},
                "rejected": {**worst.scores, "quality": _quality(worst)},
            }
            ctx.add_pair(
                best.line,
                id=group.id,
                prompt=best.question,
                chosen=best.text,
                rejected=worst.text,
                image=group.image,
                scores=scores,
            )
        except Skip as s:
            ctx.skip(s.reason)


def seed_best(records, ctx: Context, rules: Rules) -> None:
    """Rejection sampling: the completion with the best quality per prompt (§1a lines 58-59)."""
    for group in _seed_groups(ctx, records, QUALITY_ATTRS, rules):
        try:
            scored = _scored(ctx, group)
            if not scored:
                raise Skip("no scored completion")
            best = max(scored, key=_quality)
            if rules.min_gap > 0:
                if len(scored) < 2:
                    raise Skip("fewer than 2 scored completions")
                if _quality(best) - min(map(_quality, scored)) < rules.min_gap:
                    raise Skip(f"quality gap < {rules.min_gap:g}")
            if sum(_quality(c) == _quality(best) for c in scored) > 1:
                ctx.notes["best tied (first in file order kept)"] += 1
            ctx.add_sft(best.line, id=group.id, prompt=best.question, response=best.text, image=group.image)
        except Skip as s:
            ctx.skip(s.reason)


def steerlm(records, ctx: Context, rules: Rules) -> None:
    """SteerLM: every completion with its own five scores as `attributes` (§1a lines 60-63)."""
    for group in _seed_groups(ctx, records, ATTRS, rules):
        _scored(ctx, group)  # counts the unscored ones
        for k, c in enumerate(group.candidates):
            if c.scores is None:
                continue
            try:
                ctx.add_sft(
                    c.line,
                    id=f"{group.id}/{k}",
                    prompt=c.question,
                    response=c.text,
                    image=group.image,
                    attributes={a: c.scores[a] for a in ATTRS},
                )
            except Skip as s:
                ctx.skip(s.reason)


def seed_dpo_pairs(records, ctx: Context, rules: Rules) -> None:
    """The seed repo's DPO JSON: question / chosen / rejected turns (§1a lines 45-52); the CSV-style
    `Helpfulness_gpt4v` (chosen) / `Helpfulness_candidate` (rejected) columns become `scores` if present."""

    def one(line: int, row: dict) -> None:
        scores = {}
        for suffix, side in (("_gpt4v", "chosen"), ("_candidate", "rejected")):
            raw = {k[: -len(suffix)].lower(): v for k, v in row.items() if k.lower().endswith(suffix)}
            parsed = _scores(ctx, line, {k: v for k, v in raw.items() if k in ATTRS}, ())
            if parsed:
                scores[side] = parsed
        ctx.add_pair(
            line,
            id=ctx.record_id(line, row),
            image=image_value(row),
            scores=scores or None,
            prompt=_seed_question(ctx, line, row),
            chosen=text_of(ctx, line, ctx.field(line, row, "chosen"), "chosen"),
            rejected=text_of(ctx, line, ctx.field(line, row, "rejected"), "rejected"),
        )

    ctx.each(records, one)
