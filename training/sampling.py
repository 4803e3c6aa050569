"""Sampling answers from the model being trained (online DPO, rejection sampling, BDHS).

The sampler renders each prompt exactly as evaluation does (`Encoder.encode_prompt`: the same chat
template, special tokens and image tokens), because samples drawn from a differently rendered prompt come
from a different distribution than the one the policy is judged on. An optional `prefix` (answer text
already given) is appended as `tokenizer(prefix, add_special_tokens=False)`, as an answer is encoded for
training, and the model continues after it.

Every request draws from its own `torch.Generator` (CPU), seeded from `(seed, request index)` or from the
request's own `seed`, so a sample does not depend on the batch size, on the other requests of its batch,
or on the device; a run is reproducible from its seed.

Decoding is a plain loop over the KV cache: prompts left-padded, pixel values (and other processor
extras) only on the first forward, per-token extras placed with the prompt and continued over a prefix as
`training.batching` continues them over an answer; Mllama's `cross_attention_mask` also on every decoding
step (its last column, as Mllama's own generate extends it). Position ids come from the padding mask
(`cumsum - 1`; PaliGemma's from 1), as generate and `training.batching` compute them, and are passed
explicitly, so masking image positions never shifts them. Models that compute multimodal RoPE positions
themselves (Qwen2-VL kin) compute them in the prefill from the attention mask (which is why `image_keep`
is refused for them: masked image tokens would move every later position); decode steps then get the text
position plus the `rope_deltas` the prefill stored, as their own `generate` does.

`image_keep` (BDHS, training.md §1b): each image-token position of the prompt (the model's image token,
or a negative placeholder id of a numbered-placeholder processor, Phi-3-vision's) is kept with probability
`image_keep` (m_i = 1 iff ρ_i ≥ ρ_th with ρ_i ~ U(0,1), keep = 1 − ρ_th). A dropped position gets
attention-mask 0: no later token attends to it, while every position id stays that of the unmasked
prompt. `image_keep=0` blocks the image entirely.

Stopping: a row stops at EOS (the encoder's or the generation config's; EOS is not part of the sample) or,
with `stop_at_sentence_end`, as soon as its decoded continuation contains '.', '!' or '?' followed by
whitespace or by the end of the text (so "3.5" stops after "3."), and the text is cut after that mark
(`token_ids` end with the token that completed it). The mask draw uses its own generator, so `image_keep`
never changes which tokens a request's sampling draws pick.

`noise` (BDHS_noise): the request's pixel values are diffusion-noised (`training.image_noise`) before the
prefill, with ε seeded by the request's noise seed; the image tokens stay attendable.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evalkit.training.batching import Encoder, place_per_token, refuse_mixed_cross_attention
from evalkit.training.dpo import _computes_own_positions
from evalkit.util.tensors import cat_padded

_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


@dataclass(frozen=True)
class SampleRequest:
    prompt: str
    image: Any = None  # a path, a PIL image, a list of them, or None (as Encoder examples)
    prefix: str = ""  # answer text already given; the model continues after it
    image_keep: float | None = None  # fraction of image-token positions the model may attend to; None: all
    seed: int | None = None  # this request's own seed; None: derived from (sample's seed, request index)
    mask_seed: int | None = None  # seed of the image-mask draw (share it to share a mask); None: from seed
    noise: tuple[int, int] | None = (
        None  # (steps, seed): diffusion-noise the pixel values (training.image_noise)
    )


@dataclass
class Sample:
    text: str  # the continuation only (prefix excluded), decoded without special tokens
    token_ids: list[int]  # generated tokens, EOS excluded
    finished: bool  # ended by EOS or by the stop rule, not by max_new_tokens
    image_positions: int  # image-token positions in the prompt
    image_kept: int  # how many of them the model could attend to
    kept_positions: list[int] = field(default_factory=list)  # indices (in the prompt) of kept image tokens


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any parts (stable across runs and platforms, unlike `hash`)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def image_token_id(model) -> int | None:
    """The model's image placeholder id (`image_token_id` / `image_token_index`), through a peft wrapper."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for config in (getattr(base, "config", None), getattr(model, "config", None)):
        for key in ("image_token_id", "image_token_index"):
            value = getattr(config, key, None)
            if isinstance(value, int):
                return value
    return None


def keep_mask(n: int, keep: float | None, generator) -> list[bool]:
    """Which of `n` image positions stay visible: ρ_i ~ U(0,1), kept iff ρ_i ≥ 1 − keep."""
    import torch

    if keep is None or n == 0:
        return [True] * n
    if not 0.0 <= keep <= 1.0:
        raise ValueError(f"image_keep must be in [0, 1], got {keep}")
    rho = torch.rand(n, generator=generator, dtype=torch.float64)
    return (rho >= 1.0 - keep).tolist()


def sample(
    model,
    encoder: Encoder,
    requests: Sequence[SampleRequest],
    *,
    max_new_tokens: int = 128,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    stop_at_sentence_end: bool = False,
    batch_size: int = 8,
) -> list[Sample]:
    """One sample per request, in order. `temperature=0` is greedy decoding."""
    import torch

    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1 (got {temperature}, {top_p})")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out: list[Sample] = []
            for start in range(0, len(requests), max(1, batch_size)):
                chunk = list(enumerate(requests[start : start + batch_size], start))
                out += _sample_batch(
                    model, encoder, chunk, max_new_tokens, temperature, top_p, seed, stop_at_sentence_end
                )
            return out
    finally:
        model.train(was_training)


@dataclass
class _Row:
    ids: list[int]  # prompt + prefix
    extras: dict[str, Any]
    keep: list[bool]  # per prompt position: attendable (False only on dropped image positions)
    image_positions: list[int]
    generator: Any
    prefix_ids: list[int]
    tokens: list[int] = field(default_factory=list)
    done: bool = False
    finished: bool = False
    text: str | None = None


def _prepare_row(model, encoder: Encoder, index: int, req: SampleRequest, seed: int, image_id) -> _Row:
    import torch

    prompt = encoder.encode_prompt(req.prompt, req.image)
    extras = prompt.extras
    if req.noise is not None and req.image is not None:
        from evalkit.training.image_noise import noise_pixels

        if "pixel_values" not in extras:
            raise ValueError(
                "image noise needs the processor's pixel_values; this model's processor gives none"
            )
        extras = {**extras, "pixel_values": noise_pixels(extras["pixel_values"], *req.noise)}
    prefix_ids = encoder.tokenizer(req.prefix, add_special_tokens=False)["input_ids"] if req.prefix else []
    own_seed = derive_seed(seed, index) if req.seed is None else req.seed
    generator = torch.Generator().manual_seed(own_seed)
    # image positions: the model's image token, or negative ids (numbered-placeholder processors such as
    # Phi-3-vision's mark the N-th image's positions -N; no real token id is negative)
    positions = [i for i, t in enumerate(prompt.ids) if t < 0 or (image_id is not None and t == image_id)]
    if req.image_keep is not None and req.image_keep < 1 and positions and _computes_own_positions(model):
        raise ValueError(
            "image_keep is not supported for models that compute their own multimodal RoPE positions "
            "(Qwen2-VL kin): they derive positions from the attention mask, so masking image tokens "
            "would move every later position"
        )
    mask_seed = derive_seed("mask", own_seed) if req.mask_seed is None else req.mask_seed
    mask_gen = torch.Generator().manual_seed(mask_seed)  # its own stream: masking leaves the sampling draws
    kept = keep_mask(len(positions), req.image_keep, mask_gen)
    keep = [True] * (len(prompt.ids) + len(prefix_ids))
    for pos, k in zip(positions, kept, strict=True):
        keep[pos] = k
    return _Row(prompt.ids + prefix_ids, extras, keep, positions, generator, prefix_ids)


def _sample_batch(model, encoder, chunk, max_new_tokens, temperature, top_p, seed, stop_at_sentence_end):
    import torch

    device = next(model.parameters()).device
    dtype = getattr(model, "dtype", None)
    own_positions = _computes_own_positions(model)
    image_id = image_token_id(model)
    rows = [_prepare_row(model, encoder, i, req, seed, image_id) for i, req in chunk]
    refuse_mixed_cross_attention([row.extras for row in rows])
    eos = {encoder.eos_token_id}
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    eos |= set(gen_eos) if isinstance(gen_eos, list | tuple) else {gen_eos} - {None}

    n, width = len(rows), max(len(r.ids) for r in rows)
    input_ids = torch.full((n, width), encoder.pad_token_id, dtype=torch.long)
    padding = torch.zeros((n, width), dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    token_extras: dict[str, list[tuple[int, int, Any]]] = {}  # key -> [(row, first column, values)]
    image_extras: dict[str, list[Any]] = {}
    for r, row in enumerate(rows):
        start = width - len(row.ids)
        input_ids[r, start:] = torch.tensor(row.ids, dtype=torch.long)
        padding[r, start:] = 1
        attention[r, start:] = torch.tensor(row.keep, dtype=torch.long)
        n_prompt = len(row.ids) - len(row.prefix_ids)
        for key, value in row.extras.items():
            if tuple(value.shape[:2]) == (1, n_prompt):  # per token (token_type_ids, ...)
                values = encoder.continue_per_token(key, value[0], len(row.prefix_ids))
                token_extras.setdefault(key, []).append((r, start, values))
            else:
                image_extras.setdefault(key, []).append(value)
    extras = {
        **{k: place_per_token(v, n, width) for k, v in token_extras.items()},
        **{k: cat_padded(v) for k, v in image_extras.items()},
    }
    extras = {
        k: v.to(device=device, dtype=dtype) if dtype is not None and v.is_floating_point() else v.to(device)
        for k, v in extras.items()
    }
    input_ids, padding, attention = input_ids.to(device), padding.to(device), attention.to(device)
    positions = (padding.cumsum(-1) - 1).clamp(min=0) + encoder.position_offset * padding

    inputs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention, **extras}
    if not own_positions:
        inputs["position_ids"] = positions
    past, cache_name = None, _cache_name(model)
    next_pos = positions[:, -1:] + 1
    for _step in range(max_new_tokens):
        outputs = model(**inputs, **{cache_name: past}, use_cache=True, logits_to_keep=1)
        past = getattr(outputs, "cache", None)  # reading the old name warns where `cache` exists
        if past is None:
            past = outputs.past_key_values
        logits = outputs.logits[:, -1, :].float()
        chosen = _choose(logits, rows, temperature, top_p)
        for r, row in enumerate(rows):
            if row.done:
                continue
            token = chosen[r]
            if token in eos:
                row.done = row.finished = True
                continue
            row.tokens.append(token)
            if stop_at_sentence_end:
                text = _continuation_text(encoder, row)
                match = _SENTENCE_END.search(text)
                if match:
                    row.text, row.done, row.finished = text[: match.end()], True, True
        if all(row.done for row in rows):
            break
        new = torch.tensor(chosen, dtype=torch.long, device=device).unsqueeze(-1)
        attention = torch.cat([attention, torch.ones_like(new)], dim=-1)
        inputs = {"input_ids": new, "attention_mask": attention, "position_ids": next_pos}
        if "cross_attention_mask" in extras:  # Mllama: the new token attends to the images as the last did
            inputs["cross_attention_mask"] = extras["cross_attention_mask"][:, -1:]
        if own_positions:  # 3D positions: the text position shifted by the deltas the prefill stored
            inputs["position_ids"] = (
                (next_pos + _rope_deltas(model).to(device)).unsqueeze(0).expand(3, -1, -1)
            )
        next_pos = next_pos + 1
    samples = []
    for row in rows:
        text = row.text if row.text is not None else _continuation_text(encoder, row)
        kept = [p for p in row.image_positions if row.keep[p]]
        samples.append(
            Sample(text, list(row.tokens), row.finished, len(row.image_positions), len(kept), kept)
        )
    return samples


def _cache_name(model) -> str:
    """The KV cache's keyword in this model's `forward`: `cache` where transformers has renamed it (the old
    `past_key_values` is deprecated for removal in 5.40), else `past_key_values` (transformers before the
    rename, and remote code written for it, e.g. Phi-3-vision)."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _rope_deltas(model):
    """`rope_deltas` that a Qwen2-VL-like model stored during the prefill (as its own generate uses them)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for m in (base, getattr(base, "model", None)):
        deltas = getattr(m, "rope_deltas", None)
        if deltas is not None:
            return deltas
    raise RuntimeError("the model computes its own positions but stored no rope_deltas after the prefill")


def _choose(logits, rows: list[_Row], temperature: float, top_p: float) -> list[int]:
    """Next token per row: argmax when greedy, else inverse-CDF over the nucleus with the row's own
    uniform draw (drawn for finished rows too, which changes nothing they return)."""
    import torch

    if temperature == 0:
        return logits.argmax(-1).tolist()
    probs = torch.softmax(logits / temperature, dim=-1)
    sorted_p, order = probs.sort(dim=-1, descending=True, stable=True)
    cum = sorted_p.cumsum(-1)
    if top_p < 1:  # keep the smallest prefix whose mass reaches top_p (always the top token)
        sorted_p = sorted_p.masked_fill((cum - sorted_p) >= top_p, 0.0)
        cum = sorted_p.cumsum(-1)
    u = torch.cat([torch.rand(1, generator=row.generator, dtype=torch.float64) for row in rows])
    target = (u.to(cum.device, cum.dtype) * cum[:, -1]).unsqueeze(-1)
    index = torch.searchsorted(cum, target, right=True).clamp(max=cum.shape[-1] - 1)
    return order.gather(-1, index).squeeze(-1).tolist()


def _continuation_text(encoder: Encoder, row: _Row) -> str:
    """The decoded continuation: decode(prefix + tokens) minus decode(prefix), so word joins (leading
    spaces of sentencepiece tokens, punctuation spacing) come out as they would in the whole answer."""
    tok = encoder.tokenizer
    if not row.prefix_ids:
        return tok.decode(row.tokens, skip_special_tokens=True)
    head = tok.decode(row.prefix_ids, skip_special_tokens=True)
    whole = tok.decode(row.prefix_ids + row.tokens, skip_special_tokens=True)
    return whole[len(head) :] if whole.startswith(head) else tok.decode(row.tokens, skip_special_tokens=True)
