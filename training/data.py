"""Training data: preference pairs and SFT examples from local files or cached hub datasets.

    pairs = load_preferences("prefs.jsonl")        # the format is detected from the first record
    sft = load_sft("seed.json", format="steerlm")
    print(pairs.summary())                         # "... (format seed, auto-detected); skipped: tie 3"

Files are JSON lines or a JSON list in UTF-8. Image paths are resolved against the data file's folder (or
`image_root=`) and must exist: a missing image is a `UserError` naming `file:line`, or, with
`skip_missing_images=True`, a counted skip. Every image is decoded once at load; one that cannot be
decoded is a counted skip ("image unreadable", the first few named in `info["unreadable_images"]`; see
`training.data_checks`). A malformed or non-UTF-8 line, JSON nested too deeply, text holding a lone
surrogate or a missing field is a `UserError` naming `file:line`; records the rules leave out are counted
in `Loaded.skipped` (reason -> count), never dropped silently. `Loaded.info` (path, sha256, counts, the
rules applied) is meant for the training log. Prompts lose LLaVA's `<image>` placeholder (the trainer
places the image itself). Conversations with more than one user turn are skipped as "multi-turn
conversation"; records with several images are an error. Every error is one line.

Preference formats (`load_preferences`):
- `generic`: `{"image", "prompt", "chosen", "rejected"}` (+ optional `id`, `scores`; `image` may be absent
  or null for text-only pairs). Strings, or TRL's conversational messages.
- `seed`: the seed study's multi-completion records (spec training.md §1a). One record per prompt:
  `{"id"?, "image", "question" | "prompt", "completions": [{"response", "Helpfulness", "Correctness",
  "Coherence", "Complexity", "Verbosity"}, ...]}`, or one record per completion with the same keys at the
  top level (grouped by image + question; `group_by="image"` groups by image as the notebook did, §1a line
  28). ASSUMED, since the HF column names are UNVERIFIED (§2 line 234): attribute keys match
  case-insensitively and may sit under `scores` / `attributes`; the text key is one of response /
  completion / answer / output / text / value; scores are numbers or numeric strings on 0-4 (§1a lines
  29-32), anything else is an error, null / NaN marks the completion unscored (counted); `question` may be
  a turn dict or its Python repr (§1a line 46); a trailing "\\nPlease answer..." is stripped (§1a line 40).
  Pairing rule, §1a lines 33-36: quality = Helpfulness + Correctness + Coherence (Complexity and Verbosity
  are not summed); chosen = the highest quality, rejected = the lowest, the first in file order on ties;
  a group with a gap of 0 is skipped as "tie", a gap below `min_gap` (default 2) as "quality gap < 2"; with
  `group_by="image"`, a pair whose two questions differ is skipped as "question differs" (line 36).
  `scores` = {"chosen": {attributes..., "quality"}, "rejected": {...}}.
- `seed-pairs`: the seed repo's DPO JSON (§1a lines 45-52): question / chosen / rejected as turn dicts,
  strings or conversations; `Helpfulness_gpt4v` (chosen) / `_candidate` (rejected) columns -> `scores`.
  The precomputed `ref_*` log-probs are not carried.
- `vlfeedback` (§2 line 235): `prompt`, `img_path`, `completions[{annotations{<aspect>{Rating,
  Rationale}}, model, response}]`, ratings strings 1-5. Each completion's mean over its numeric ratings
  (a non-numeric rating is left out of the mean and counted); chosen = the best mean (first on ties);
  rejected = a draw among the others with a strictly lower mean, by `random.Random(f"{seed}:{id}")`
  (order-independent; `seed` is in `info` and in each pair's `scores`). DEVIATION: the binarised mix draws
  among all others (§2 line 241); a draw equal to the best is no preference, so a record with no strictly
  worse other is skipped as "tie".
- `rlhfv` (§2 line 236): `text` is a JSON string with question / chosen / rejected; id = `idx`.
- `rlaifv` (§2 line 237): `question`, `chosen`, `rejected`, `idx`.
- `povid` (§2 line 238: UNVERIFIED, "LLaVA-conversation style with chosen/rejected"): ASSUMED either LLaVA
  `conversations` ending in the chosen answer plus `rejected_conversations` (what POVID's own
  llava/train/train_dpo.py reads, github.com/YiyangZhou/POVID @5d55ce6), or `conversations` with the
  question plus `chosen` / `rejected` fields; a pair whose two conversations ask different questions is
  skipped.
- `mix` (§2 line 241, wangclnlp/vision-feedback-mix-binarized): `conversations` (a list or its string) =
  [human turn, {"from": "gpt", "preference_values": [preferred, dispreferred]}].
- `llava-rlhf` (§2 line 239, keys UNVERIFIED): `conversations`, `output_1`, `output_2`, `preference` (1|2).

Every format takes its image from the first of `image`, `images` (one element), `image_path`, `img_path`;
an HF image dict `{"bytes", "path"}` contributes its `path`.

SFT formats (`load_sft`):
- `generic`: `{"image", "prompt", "response"}` (+ optional `id`, `attributes`).
- `seed-best`: rejection sampling, the best-quality completion per prompt (§1a lines 58-59), first on
  ties (counted in `info["notes"]`). `min_gap` defaults to 0 here: the RS file has ~5,034 samples for 5,084
  prompts (line 59), so it cannot have dropped gap < 2 groups (~44% kept, line 37), although §5 line 377
  says it does; pass `min_gap=2` for that reading.
- `steerlm`: every completion with all five scores, `attributes` = {helpfulness, correctness, coherence,
  complexity, verbosity} (§1a lines 60-63); the trainer writes them into the prompt.
- `llava`: `{"image", "conversations": [human, gpt]}`.

`auto` detects the format from the first record's keys (`Loaded.info["detected"]` says which and why);
seed multi-completion records need an explicit `seed-best` / `steerlm` for SFT. A path that is not a file
but looks like `owner/name` is a Hugging Face dataset, fetched into (or, offline, read from) the Hugging
Face cache (see `training.data_hub`); images its rows name by path are read from `image_root`.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

from evalkit.training.data_checks import check_images
from evalkit.training.data_formats import PREFERENCE_FORMATS, SFT_FORMATS, detect
from evalkit.training.data_hub import load_hub_rows, looks_like_hub_id
from evalkit.training.data_records import (
    Context,
    Loaded,
    PreferencePair,
    Rules,
    SFTExample,
    keys_of,
    one_line,
    read_records,
)
from evalkit.training.data_seed import ATTRS, QUALITY_ATTRS
from evalkit.types import UserError
from evalkit.util.datafiles import sha256_file

log = logging.getLogger(__name__)

__all__ = [
    "ATTRS",
    "PREFERENCE_FORMATS",
    "QUALITY_ATTRS",
    "SFT_FORMATS",
    "Loaded",
    "PreferencePair",
    "SFTExample",
    "load_preferences",
    "load_prompts",
    "load_sft",
]

#: the rule options each format uses (recorded in `info["rules"]`)
_RULES_USED = {
    "seed": ("min_gap", "group_by"),
    "seed-best": ("min_gap", "group_by"),
    "steerlm": ("group_by",),
    "vlfeedback": ("seed",),
}


def _one_line_errors(fn):
    """Errors name user data (keys, paths): each reaches the user as one line."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            text = str(exc)
            if text != one_line(text):
                raise UserError(one_line(text)) from None
            raise

    return wrapped


@_one_line_errors
def load_preferences(
    path: str | Path,
    format: str = "auto",
    *,
    image_root: str | Path | None = None,
    skip_missing_images: bool = False,
    min_gap: float = 2,
    group_by: str = "prompt",
    seed: int = 0,
    split: str = "train",
) -> Loaded[PreferencePair]:
    """Preference pairs from a JSONL / JSON-list file or a cached hub dataset id (see the module doc).

    `min_gap` and `group_by` apply to `seed`, `seed` to `vlfeedback`, `split` to hub ids."""
    rules = Rules(min_gap=min_gap, group_by=group_by, seed=seed)
    return _load("preference", path, format, image_root, skip_missing_images, rules, split)


@_one_line_errors
def load_sft(
    path: str | Path,
    format: str = "auto",
    *,
    image_root: str | Path | None = None,
    skip_missing_images: bool = False,
    min_gap: float = 0,
    group_by: str = "prompt",
    split: str = "train",
    seed_as: str | None = None,
) -> Loaded[SFTExample]:
    """SFT examples (`generic`, `seed-best` = rejection sampling, `steerlm`, `llava`); see the module doc.

    `seed_as` is the format auto-detection picks for seed multi-completion records (else an error asks
    for one)."""
    rules = Rules(min_gap=min_gap, group_by=group_by)
    return _load("sft", path, format, image_root, skip_missing_images, rules, split, seed_as)


@_one_line_errors
def load_prompts(
    path: str | Path, format: str = "auto", *, seed: int = 0, split: str = "train", **kwargs: Any
) -> Loaded:
    """Prompts with their images for online training: preference pairs or SFT examples, whichever the
    file holds (`format` picks; `generic` means either generic schema)."""
    kind = None
    if format in PREFERENCE_FORMATS and format not in SFT_FORMATS:
        kind = "preference"
    elif format in SFT_FORMATS and format not in PREFERENCE_FORMATS:
        kind = "sft"
    else:
        records, _, label, _ = _read(path, split, kwargs.get("image_root"), True)
        if not records:
            raise UserError(f"{label}: no records")
        found = detect(records[0][1])
        kind = "sft" if found is not None and found[0] == "sft" else "preference"
    if kind == "sft":
        return load_sft(path, format, split=split, **kwargs)
    return load_preferences(path, format, seed=seed, split=split, **kwargs)


def _load(
    kind: str,
    path: str | Path,
    fmt: str,
    image_root: str | Path | None,
    skip_missing_images: bool,
    rules: Rules,
    split: str,
    seed_as: str | None = None,
) -> Loaded:
    table = PREFERENCE_FORMATS if kind == "preference" else SFT_FORMATS
    if fmt != "auto" and fmt not in table:
        raise UserError(f"unknown {kind} data format {fmt!r}; formats: auto, {', '.join(table)}")
    if rules.group_by not in ("prompt", "image"):
        raise UserError(f"group_by must be 'prompt' or 'image', got {rules.group_by!r}")
    records, info, label, base_dir = _read(path, split, image_root, skip_missing_images)
    if not records:
        raise UserError(f"{label}: no records")
    auto = fmt == "auto"
    if auto:
        fmt = _detect(kind, label, records[0][1], table, seed_as)
        info["detected"] = (
            f"auto-detected format {fmt!r} from the keys of the first record ({keys_of(records[0][1])})"
        )
        log.info("%s: %s", label, info["detected"])
    if image_root is not None:
        base_dir = Path(image_root).expanduser().resolve()
        if not base_dir.is_dir():
            raise UserError(f"image_root is not a folder: {image_root}")
    ctx = Context(label, base_dir, skip_missing_images)
    table[fmt](records, ctx, rules)
    ctx.items = check_images(ctx.items, ctx.skipped, info)
    skipped = dict(sorted(ctx.skipped.items()))
    info.update(
        format=fmt,
        auto_detected=auto,
        records=len(records),
        items=len(ctx.items),
        skipped=skipped,
        image_root=str(base_dir),
        rules={k: getattr(rules, k) for k in _RULES_USED.get(fmt, ())},
    )
    if ctx.notes:
        info["notes"] = dict(ctx.notes)
    if ctx.renamed_ids:
        info["renamed_duplicate_ids"] = ctx.renamed_ids
    if not ctx.items:
        why = ", ".join(f"{k} {v}" for k, v in skipped.items()) or "none"
        raise UserError(
            f"{label}: no usable {kind} examples in {len(records)} records (format {fmt}; skipped: {why})"
        )
    return Loaded(ctx.items, skipped, fmt, info)


def _read(
    path: str | Path, split: str, image_root: str | Path | None = None, skip_missing_images: bool = False
) -> tuple[list[tuple[int, dict]], dict[str, Any], str, Path]:
    p = Path(path).expanduser()
    if p.is_file():
        resolved = p.resolve()
        info: dict[str, Any] = {"path": str(resolved), "sha256": sha256_file(resolved)}
        return read_records(p), info, str(p), resolved.parent
    if p.exists():
        raise UserError(f"{path}: is a folder; pass a JSON-lines or JSON-list file")
    if looks_like_hub_id(str(path)):
        rows, info = load_hub_rows(str(path), split, image_root, skip_missing_images)
        return rows, info, f"hf:{path}:{split}", Path.cwd()
    raise UserError(f"file not found: {path} (a Hugging Face dataset id is written owner/name)")


def _detect(kind: str, label: str, row: dict, table: dict, seed_as: str | None = None) -> str:
    keys = keys_of(row)
    found = detect(row)
    if found is None:
        raise UserError(
            f"{label}: unknown {kind} data schema; formats: {', '.join(table)} "
            f"(pass format=...); keys found in the first record: {keys}"
        )
    found_kind, name = found
    if found_kind == "seed":
        if kind == "preference":
            return "seed"
        if seed_as is not None:
            return seed_as
        raise UserError(
            f"{label}: seed-study multi-completion records make SFT data two ways: pass "
            f"format='seed-best' (rejection sampling) or format='steerlm'"
        )
    if found_kind != kind:
        other = "load_preferences" if found_kind == "preference" else "load_sft"
        raise UserError(
            f"{label}: the first record looks like {found_kind} data (format {name!r}), not "
            f"{kind} data; use {other}, or pass one of {', '.join(table)}; keys found: {keys}"
        )
    return name
