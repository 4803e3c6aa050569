"""Checks that run on training data before step 0, so that nothing in the data can stop training half-way.

- Images (`check_images`, run by every loader in `training.data`): each distinct image is decoded once, as
  evaluation decodes it (`evalkit.util.images.load_image`), on a few threads. An image that cannot be decoded
  (corrupt, truncated, not an image, over PIL's decompression-bomb limit) is a damaged file among many: its
  examples are skipped and counted as "image unreadable", and the first few are named `file:line` in
  `info["unreadable_images"]`. A missing image is different (usually a wrong image folder): the loaders
  refuse it at `file:line` (see `training.data`).
- Lengths (`check_lengths`, run by the trainer once the tokenizer is known): the limit is `--max-length`,
  else the model's context (`max_position_embeddings`). A prompt (image tokens included) that leaves no
  room for an answer under it is skipped and counted (prompts are never cut: cutting image tokens breaks
  the image). An answer over the limit is cut when `--max-length` is given (counted in the notes, as
  before); without it the run is refused naming `file:line`, since training on an answer longer than the
  model's context would need memory the machine does not have (a 10 MB answer asked for 5.4 GB).
  Image tokens are counted from the first example with an image (exact for processors that give every
  image the same number of tokens, as LLaVA-1.5's does; the encoder still refuses an overlong prompt of
  another size during training, naming its example).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from evalkit.training.batching import CHARS_PER_TOKEN_CAP
from evalkit.types import UserError

#: how many bad examples are named in `info` (all of them are counted)
NAMED = 5


def check_images(items: list, skipped: Counter, info: dict[str, Any], threads: int = 4) -> list:
    """`items` without those whose image cannot be decoded (counted in `skipped`, named in `info`)."""
    from evalkit.util.images import load_image

    paths = sorted({it.image for it in items if it.image is not None})
    if not paths:
        return items

    def problem(path: str) -> str | None:
        try:
            load_image(path)
        except Exception as exc:  # ImageLoadError, PIL's DecompressionBombError, MemoryError, ...
            return " ".join(str(exc).split()) or type(exc).__name__
        return None

    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(paths)))) as pool:
        bad = {p: why for p, why in zip(paths, pool.map(problem, paths), strict=True) if why is not None}
    if not bad:
        return items
    kept = [it for it in items if it.image not in bad]
    dropped = [it for it in items if it.image in bad]
    skipped["image unreadable"] += len(dropped)
    info["unreadable_images"] = [f"{it.source}: {bad[it.image]}" for it in dropped[:NAMED]]
    return kept


def context_length(model) -> int | None:
    """The model's context in tokens (its text config's `max_position_embeddings`), or None."""
    config = getattr(model, "config", None)
    for c in (getattr(config, "text_config", None), config):
        n = getattr(c, "max_position_embeddings", None)
        if isinstance(n, int) and n > 0:
            return n
    return None


def check_lengths(items: list, encoder, *, max_length: int | None, context: int | None, answers: bool):
    """(kept items, {skip reason: count}, {note: count}, [named problems]) for the length limit; refuses an
    answer that does not fit without `max_length` (module doc). `answers=False`: only prompts are checked
    (methods whose answers are sampled, not read from the data)."""
    limit = max_length or context
    if limit is None or not items:
        return items, {}, {}, []
    tokenizer = encoder.tokenizer
    image_tokens = _image_tokens(items, encoder)
    rendered = [encoder.render(it.prompt, 1 if it.image is not None else 0) for it in items]
    prompt_lens = [
        len(ids) + (image_tokens if it.image is not None else 0)
        for ids, it in zip(_token_ids(tokenizer, rendered, special=True, encoder=encoder), items, strict=True)
    ]
    kept, skipped, notes, named = [], Counter(), Counter(), []
    reason = (
        f"prompt too long for --max-length {max_length}"
        if max_length
        else (f"prompt too long for the model's context ({limit} tokens)")
    )
    fields = ("chosen", "rejected") if items and hasattr(items[0], "chosen") else ("response",)
    if all(getattr(it, "second_rejected", None) is not None for it in items):  # --second-rejected data
        fields += ("second_rejected",)
    answer_lens = {f: _answer_lengths(tokenizer, [getattr(it, f) for it in items], limit) for f in fields}
    for k, (it, p) in enumerate(zip(items, prompt_lens, strict=True)):
        if p >= limit:
            skipped[reason] += 1
            if len(named) < NAMED:
                named.append(f"{it.source}: prompt of {p} tokens (image tokens included), limit {limit}")
            continue
        if answers:
            longest = max(answer_lens[f][k] for f in fields) + 1  # + EOS
            if p + longest > limit:
                if not max_length:
                    capped = any(len(getattr(it, f)) > limit * CHARS_PER_TOKEN_CAP for f in fields)
                    raise UserError(
                        f"{it.source}: an answer of {'at least ' if capped else ''}{longest} tokens after a "
                        f"prompt of {p} does not fit the model's context of {limit} tokens; pass "
                        f"--max-length (at most {limit}) to cut long answers, or remove the example"
                    )
                notes[f"answers cut to --max-length {max_length}"] += 1
        kept.append(it)
    return kept, dict(skipped), dict(notes), named


def _image_tokens(items: list, encoder) -> int:
    """Tokens one image adds to a prompt beyond its placeholder in the rendered text."""
    first = next((it for it in items if it.image is not None), None)
    if first is None:
        return 0
    saved, encoder.max_length = encoder.max_length, None  # measure, do not refuse
    try:
        full = len(encoder.encode_prompt(first.prompt, first.image).ids)
    except Exception as exc:  # the processor rejects this image or prompt
        raise UserError(f"{first.source}: cannot encode the example: {' '.join(str(exc).split())}") from None
    finally:
        encoder.max_length = saved
    [text] = _token_ids(encoder.tokenizer, [encoder.render(first.prompt, 1)], special=True, encoder=encoder)
    return max(0, full - len(text))


def _token_ids(tokenizer, texts: list[str], *, special: bool, encoder) -> list[list[int]]:
    from evalkit.models.prompt import prompt_add_special_tokens

    if not texts:
        return []
    style = encoder.protocol.prompt_style
    add = special and prompt_add_special_tokens(texts[0], encoder.processor, tokenizer, style)
    with _quiet():
        return tokenizer(texts, add_special_tokens=add)["input_ids"]


def _answer_lengths(tokenizer, texts: list[str], limit: int) -> list[int]:
    """Token counts; a text of over `limit` · CHARS_PER_TOKEN_CAP characters is counted from a prefix
    that long (its count is then a lower bound, still over the limit in any real tokenizer)."""
    cap = limit * CHARS_PER_TOKEN_CAP
    with _quiet():
        ids = tokenizer([t[:cap] for t in texts], add_special_tokens=False)["input_ids"]
    return [len(x) for x in ids]


@contextlib.contextmanager
def _quiet():
    """Without transformers' "sequence longer than the model's maximum" warning: counting is the point."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)


def check_data_lengths(cfg, data, encoder, context: int | None, say) -> None:
    """Apply `check_lengths` to a trainer's loaded data in place (items, skip counts, notes in `info`)."""
    answers = cfg.method not in ("online-dpo",) and not (cfg.method == "rs" and not cfg.prescored)
    kept, skipped, notes, named = check_lengths(
        data.items, encoder, max_length=cfg.max_length, context=context, answers=answers
    )
    if not skipped and not notes:
        return
    data.items[:] = kept
    for reason, n in skipped.items():
        data.skipped[reason] = data.skipped.get(reason, 0) + n
    data.info["skipped"] = data.skipped
    data.info["items"] = len(kept)
    if notes:
        data.info.setdefault("notes", {}).update(notes)
    if named:
        data.info["too_long"] = named
    said = ", ".join(f"{k}: {v}" for k, v in {**skipped, **notes}.items())
    first = f"; first: {named[0]}" if named else ""
    say(f"data: {len(kept)} examples after the length check ({said}){first}")
    if not kept:
        raise UserError(f"{cfg.data}: no example fits the length limit ({said})")
