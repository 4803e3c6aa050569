"""Importers for each training-data schema; `training.data` picks one (or detects it) and runs it.

Every importer reads `(line, record)` pairs and writes through a `Context` (`add_pair` / `add_sft`,
`Skip` for a counted drop, `ctx.error` for a `file:line` UserError). The schemas are those of the spec
(shared/spec/training.md §2); what the spec marks UNVERIFIED is accepted as described there and noted on
the importer. The seed study's importers live in `training.data_seed`; `training.data` lists every
assumption.
"""

from __future__ import annotations

import json
import random
from typing import Any

from evalkit.training.data_records import (
    ASSISTANT_ROLES,
    Context,
    Rules,
    Skip,
    image_value,
    maybe_parse,
    number,
    prompt_of,
    role_of,
    text_of,
)
from evalkit.training.data_seed import (
    QUALITY_ATTRS,
    RESPONSE_KEYS,
    find_scores,
    seed_best,
    seed_dpo_pairs,
    seed_pairs,
    steerlm,
)

#: the field of a second rejected answer (`--second-rejected data`, `training.avg_dpo`)
SECOND_REJECTED = "second_rejected"

# ---- public preference sets (§2) -----------------------------------------------------------------------


def _triple(prompt_key: str):
    def run(records, ctx: Context, rules: Rules) -> None:
        def one(line: int, row: dict) -> None:
            scores = row.get("scores")
            if scores is not None and not isinstance(scores, dict):
                raise ctx.error(line, "field 'scores' must be an object")
            ctx.add_pair(
                line,
                id=ctx.record_id(line, row),
                image=image_value(row),
                scores=scores,
                prompt=prompt_of(ctx, line, ctx.field(line, row, prompt_key), prompt_key),
                chosen=text_of(ctx, line, ctx.field(line, row, "chosen"), "chosen"),
                rejected=text_of(ctx, line, ctx.field(line, row, "rejected"), "rejected"),
                second_rejected=(
                    text_of(ctx, line, row[SECOND_REJECTED], SECOND_REJECTED)
                    if row.get(SECOND_REJECTED) is not None
                    else None
                ),
            )

        ctx.each(records, one)

    return run


#: `{"image", "prompt", "chosen", "rejected"}` (+ optional `id`, `scores`, `second_rejected`); also TRL's
#: conversational form
generic_pairs = _triple("prompt")
#: RLAIF-V: `question, chosen, rejected, image / image_path, idx` (§2)
rlaifv = _triple("question")


def rlhfv(records, ctx: Context, rules: Rules) -> None:
    """RLHF-V: `text` is a JSON string with question / chosen / rejected (§2)."""

    def one(line: int, row: dict) -> None:
        raw = ctx.field(line, row, "text")
        try:
            data = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError as exc:
            raise ctx.error(line, f"field 'text' is not valid JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise ctx.error(line, "field 'text' must hold a JSON object with question / chosen / rejected")
        ctx.add_pair(
            line,
            id=ctx.record_id(line, row),
            image=image_value(row),
            prompt=prompt_of(ctx, line, ctx.field(line, data, "question"), "text.question"),
            chosen=text_of(ctx, line, ctx.field(line, data, "chosen"), "text.chosen"),
            rejected=text_of(ctx, line, ctx.field(line, data, "rejected"), "text.rejected"),
        )

    ctx.each(records, one)


def _ratings(ctx: Context, k: int, c: Any, line: int) -> dict[str, float]:
    if not isinstance(c, dict) or not isinstance(c.get("annotations"), dict):
        raise ctx.error(line, f"completions[{k}] has no 'annotations' object")
    out = {}
    for aspect, value in c["annotations"].items():
        x = number(value.get("Rating") if isinstance(value, dict) else value)
        if x is None:
            ctx.skip("rating not a number (left out of the mean)")
        else:
            out[aspect.lower()] = x
    return out


def vlfeedback(records, ctx: Context, rules: Rules) -> None:
    """VLFeedback: chosen = the best mean rating (first on ties); rejected = a seeded draw among the
    strictly worse others (`random.Random(f"{seed}:{id}")`); no strictly worse other -> "tie" (§2)."""

    def one(line: int, row: dict) -> None:
        ctx.require(line, row, {"prompt": (str, list, dict), "completions": list})
        rated = []
        for k, c in enumerate(row["completions"]):
            ratings = _ratings(ctx, k, c, line)
            if not ratings:
                ctx.skip("completion without ratings")
                continue
            text = text_of(ctx, line, ctx.field(line, c, "response"), f"completions[{k}].response")
            rated.append((sum(ratings.values()) / len(ratings), k, c, ratings, text))
        if len(rated) < 2:
            raise Skip("fewer than 2 rated completions")
        best = max(rated, key=lambda r: r[0])
        worse = [r for r in rated if r[0] < best[0]]
        if not worse:
            raise Skip("tie")
        rid = ctx.record_id(line, row)
        rejected = random.Random(f"{rules.seed}:{rid}").choice(worse)
        scores = {
            side: {**r[3], "mean": r[0], "index": r[1], "model": r[2].get("model")}
            for side, r in (("chosen", best), ("rejected", rejected))
        }
        scores["seed"] = rules.seed
        ctx.add_pair(
            line,
            id=rid,
            image=image_value(row),
            scores=scores,
            prompt=prompt_of(ctx, line, row["prompt"], "prompt"),
            chosen=best[4],
            rejected=rejected[4],
        )

    ctx.each(records, one)


def _conversation(ctx: Context, line: int, row: dict, key: str) -> list:
    conv = maybe_parse(ctx.field(line, row, key))
    if not isinstance(conv, list) or not all(isinstance(t, dict) for t in conv):
        raise ctx.error(line, f"field {key!r} must be a list of turns")
    return conv


def mix(records, ctx: Context, rules: Rules) -> None:
    """vision-feedback-mix-binarized: the gpt turn's `preference_values` = [preferred, dispreferred]."""

    def one(line: int, row: dict) -> None:
        conv = _conversation(ctx, line, row, "conversations")
        prefs = [t for t in conv if "preference_values" in t]
        if (
            len(prefs) != 1
            or not isinstance(prefs[0]["preference_values"], list)
            or len(prefs[0]["preference_values"]) != 2
        ):
            raise ctx.error(line, "expected one turn with 'preference_values': [preferred, dispreferred]")
        chosen, rejected = prefs[0]["preference_values"]
        history = [t for t in conv if "preference_values" not in t]
        ctx.add_pair(
            line,
            id=ctx.record_id(line, row),
            image=image_value(row),
            prompt=prompt_of(ctx, line, history, "conversations"),
            chosen=text_of(ctx, line, chosen, "preference_values[0]"),
            rejected=text_of(ctx, line, rejected, "preference_values[1]"),
        )

    ctx.each(records, one)


def povid(records, ctx: Context, rules: Rules) -> None:
    """POVID (schema UNVERIFIED, §2): LLaVA `conversations` ending in the chosen answer plus
    `rejected_conversations` (the form POVID's own train_dpo.py reads), or `conversations` holding the
    question plus `chosen` / `rejected` fields."""

    def one(line: int, row: dict) -> None:
        conv = _conversation(ctx, line, row, "conversations")
        prompt = prompt_of(ctx, line, conv, "conversations")
        if "rejected_conversations" in row:
            rconv = _conversation(ctx, line, row, "rejected_conversations")
            if prompt_of(ctx, line, rconv, "rejected_conversations") != prompt:
                raise Skip("prompt differs between chosen and rejected")
            chosen = text_of(ctx, line, conv, "conversations")
            rejected = text_of(ctx, line, rconv, "rejected_conversations")
        else:
            chosen = text_of(ctx, line, ctx.field(line, row, "chosen"), "chosen")
            rejected = text_of(ctx, line, ctx.field(line, row, "rejected"), "rejected")
        ctx.add_pair(
            line,
            id=ctx.record_id(line, row),
            image=image_value(row),
            prompt=prompt,
            chosen=chosen,
            rejected=rejected,
        )

    ctx.each(records, one)


def llava_rlhf(records, ctx: Context, rules: Rules) -> None:
    """LLaVA-Human-Preference-10K (keys UNVERIFIED, §2): conversations, output_1, output_2, preference."""

    def one(line: int, row: dict) -> None:
        pref = str(ctx.field(line, row, "preference")).strip()
        if pref not in ("1", "2"):
            raise ctx.error(line, f"field 'preference' must be 1 or 2, got {row['preference']!r}")
        out = {k: text_of(ctx, line, ctx.field(line, row, k), k) for k in ("output_1", "output_2")}
        chosen, rejected = (
            (out["output_1"], out["output_2"]) if pref == "1" else (out["output_2"], out["output_1"])
        )
        conv = _conversation(ctx, line, row, "conversations")
        ctx.add_pair(
            line,
            id=ctx.record_id(line, row),
            image=image_value(row),
            chosen=chosen,
            rejected=rejected,
            prompt=prompt_of(ctx, line, conv, "conversations"),
        )

    ctx.each(records, one)


# ---- SFT -----------------------------------------------------------------------------------------------


def generic_sft(records, ctx: Context, rules: Rules) -> None:
    """`{"image", "prompt", "response"}` (+ optional `id`, `attributes`)."""

    def one(line: int, row: dict) -> None:
        attributes = row.get("attributes")
        if attributes is not None and not isinstance(attributes, dict):
            raise ctx.error(line, "field 'attributes' must be an object")
        ctx.add_sft(
            line,
            id=ctx.record_id(line, row),
            image=image_value(row),
            attributes=attributes,
            prompt=prompt_of(ctx, line, ctx.field(line, row, "prompt"), "prompt"),
            response=text_of(ctx, line, ctx.field(line, row, "response"), "response"),
        )

    ctx.each(records, one)


def llava_sft(records, ctx: Context, rules: Rules) -> None:
    """LLaVA instruction data: `{"image", "conversations": [human, gpt]}` (single turn)."""

    def one(line: int, row: dict) -> None:
        conv = _conversation(ctx, line, row, "conversations")
        if not any(role_of(t) in ASSISTANT_ROLES for t in conv):
            raise ctx.error(line, "field 'conversations' has no assistant turn")
        ctx.add_sft(
            line,
            id=ctx.record_id(line, row),
            image=image_value(row),
            prompt=prompt_of(ctx, line, conv, "conversations"),
            response=text_of(ctx, line, conv, "conversations"),
        )

    ctx.each(records, one)


PREFERENCE_FORMATS = {
    "generic": generic_pairs,
    "seed": seed_pairs,
    "seed-pairs": seed_dpo_pairs,
    "vlfeedback": vlfeedback,
    "rlhfv": rlhfv,
    "rlaifv": rlaifv,
    "povid": povid,
    "mix": mix,
    "llava-rlhf": llava_rlhf,
}
SFT_FORMATS = {"generic": generic_sft, "seed-best": seed_best, "steerlm": steerlm, "llava": llava_sft}


def detect(row: dict) -> tuple[str, str] | None:
    """(kind, format) for the first record, kind "preference" / "sft" / "seed" (seed multi-completion
    records serve both); None when no schema matches."""
    text = row.get("text")
    if isinstance(text, str) and text.lstrip().startswith("{") and '"chosen"' in text:
        return "preference", "rlhfv"
    comps = row.get("completions")
    if isinstance(comps, list) and comps and isinstance(comps[0], dict):
        if "annotations" in comps[0]:
            return "preference", "vlfeedback"
        if all(a in find_scores(comps[0]) for a in QUALITY_ATTRS):
            return "seed", "seed"
    has_pair = "chosen" in row and "rejected" in row
    if (
        not has_pair
        and all(a in find_scores(row, nested=False) for a in QUALITY_ATTRS)
        and any(k in row for k in RESPONSE_KEYS)
    ):
        return "seed", "seed"
    if "conversations" in row:
        if "preference_values" in str(row["conversations"]):
            return "preference", "mix"
        if "rejected_conversations" in row or has_pair:
            return "preference", "povid"
        if "output_1" in row and "preference" in row:
            return "preference", "llava-rlhf"
        return "sft", "llava"
    if has_pair and "question" in row:
        seedish = any(k.lower().endswith("_gpt4v") or k.startswith("ref_win") for k in row)
        return "preference", "seed-pairs" if seedish or not isinstance(row["chosen"], str) else "rlaifv"
    if has_pair and "prompt" in row:
        return "preference", "generic"
    if "prompt" in row and "response" in row:
        return "sft", "generic"
    return None
