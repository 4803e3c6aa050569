"""Turning training examples into model inputs with exactly the prompt evaluation sends.

The prompt is rendered and encoded by the functions `evalkit run` itself uses (`evalkit.models.prompt.
render_prompt` / `prompt_add_special_tokens`): one user turn (its images first, then the text) and the
generation prompt, BOS as the backend adds it (a numbered-placeholder processor, Phi-3/3.5-vision's, is
called with the one prompt and its images, as evaluation calls it per row); under a named generation
protocol (`--prompt-style`, `--image-pad`, `evalkit.models.protocol`) the same LLaVA rendering,
tokenization and square padding. The answer follows as the tokens the model has to generate:
`tokenizer(answer, add_special_tokens=False)` then EOS (the tokenizer's, or `eos_token_id`), which is
where generation stops at evaluation. `answer_mask` marks exactly those tokens; nothing else is scored.

Layout of a batch (the layout of TRL's vision preference collator): prompts left-padded to the longest
prompt, answers right-padded to the longest answer, so every row reads `[pad…, prompt, answer, pad…]` and
all answers start in the same column. Position ids come from the attention mask (`cumsum - 1`), so
padding on either side changes nothing but float rounding (tests/training/test_dpo.py checks an example
alone vs padded in a batch). Because answers start late, `sequence_logps` asks the model for only the
logits it scores (`logits_to_keep`), never for the image and prompt positions.

Truncation: only the answer is ever cut (keeping its start; a cut answer loses its EOS and its row is
flagged in `truncated`; an answer far longer than `max_length` is tokenized from a prefix). A prompt whose
text and image tokens leave no room for one answer token under `max_length` is an error, never silently cut:
cutting image tokens desynchronises them from `pixel_values` (TRL #5881, LLaMA-Factory #6911).

Processor outputs other than ids and mask are carried in `extras`. Per-token tensors (their first two
dims those of the prompt's input_ids: `token_type_ids`, Mllama's `cross_attention_mask` [1, seq, images,
tiles]) continue over the answer as the model's own `generate` continues them for new tokens: the prompt's
last value repeated (transformers' generic update; Mllama's mask, so answer tokens attend to the images),
except PaliGemma's `token_type_ids`, 1 over the answer (its causal suffix; `evalkit.models.paligemma`);
padding is zero, and trailing dims are zero-padded to a common shape. Per-image or per-prompt tensors
(`pixel_values`, `image_sizes`, `image_grid_thw`, Mllama's `aspect_ratio_ids`, …) are concatenated along
dim 0 in row order (trailing dims zero-padded likewise), which is the order the model meets the image
tokens in. The processor's `labels` (PaliGemma's processor always returns them) are dropped: answers are
scored from `answer_mask`, and as a model input they would clash with `logits_to_keep`. PaliGemma's
positions count from 1, as its `generate` counts them. Mllama runs its cross-attention layers for the
whole batch or not at all, so a batch mixing examples with and without images is refused for it (a
text-only row would attend to padding images); PaliGemma's examples need an image. A preference pair's
prompt is processed once and used for both of its rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evalkit.models import paligemma
from evalkit.models.numbered_images import takes_numbered_placeholders
from evalkit.models.prompt import (
    chat_template_of,
    image_token_runs,
    llava_input_ids,
    prompt_add_special_tokens,
    render_prompt,
)
from evalkit.models.protocol import Protocol, image_token_id, prepare_image
from evalkit.types import Message, UserError
from evalkit.util.images import load_image
from evalkit.util.tensors import cat_padded

IGNORE_INDEX = -100
_IDS_KEYS = ("input_ids", "attention_mask")
#: processor outputs that are no model input of a scored batch (see the module docstring)
_DROPPED_KEYS = (*_IDS_KEYS, "labels")


@dataclass
class Batch:
    """Padded rows `[pad…, prompt (with image tokens), answer (+EOS), pad…]`."""

    input_ids: Any  # LongTensor [N, T]
    attention_mask: Any  # LongTensor [N, T]
    position_ids: Any  # LongTensor [N, T], attention_mask.cumsum(-1) - 1 (0 on left padding; PaliGemma: + 1)
    answer_mask: Any  # BoolTensor [N, T]: the answer tokens (and EOS) whose log-probs are scored
    extras: dict[str, Any] = field(default_factory=dict)  # pixel_values, image_sizes, token_type_ids, ...
    ids: list[str | None] = field(default_factory=list)  # per row
    prompt_lengths: list[int] = field(default_factory=list)  # per row, image tokens included
    truncated: list[bool] = field(default_factory=list)  # per row: the answer was cut at max_length

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def labels(self):
        """`input_ids` on answer tokens, IGNORE_INDEX elsewhere (each token at its own position; a causal
        LM scores token t from the logits at t - 1, which is how transformers' own loss reads labels)."""
        return self.input_ids.masked_fill(~self.answer_mask, IGNORE_INDEX)

    @property
    def answer_lengths(self):
        return self.answer_mask.sum(-1)

    def model_inputs(self) -> dict[str, Any]:
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "position_ids": self.position_ids,
            **self.extras,
        }

    def to(self, device: Any = None, dtype: Any = None):
        """A copy on `device`; floating extras (pixel values) also cast to `dtype` when given."""

        def move(v):
            if dtype is not None and v.is_floating_point():
                return v.to(device=device, dtype=dtype)
            return v.to(device)

        return replace(
            self,
            input_ids=self.input_ids.to(device),
            attention_mask=self.attention_mask.to(device),
            position_ids=self.position_ids.to(device),
            answer_mask=self.answer_mask.to(device),
            extras={k: move(v) for k, v in self.extras.items()},
        )


@dataclass
class PairBatch(Batch):
    """B preference pairs as 2B rows: chosen answers of pairs 0..B-1, then their rejected answers."""

    n_pairs: int = 0

    @property
    def pair_ids(self) -> list[str | None]:
        return self.ids[: self.n_pairs]


@dataclass
class _Prompt:
    ids: list[int]
    extras: dict[str, Any]  # processor outputs for this prompt, batch dim 1


class Encoder:
    """Encodes examples for one checkpoint: `Encoder(processor)` for an image-text-to-text model,
    `Encoder(tokenizer)` for a text-only causal LM (images are then an error).

    Examples are anything with `.prompt` and `.image` (a path, a PIL image, a list of them, or None) and
    `.chosen` / `.rejected` (pairs) or `.response` (SFT); `.id` is used when present.
    """

    def __init__(
        self,
        processor_or_tokenizer: Any,
        *,
        max_length: int | None = None,
        chat_template: str | None = None,
        eos_token_id: int | None = None,
        protocol: Protocol | None = None,
    ) -> None:
        if hasattr(processor_or_tokenizer, "tokenizer") and hasattr(
            processor_or_tokenizer, "image_processor"
        ):
            self.processor, self.tokenizer = processor_or_tokenizer, processor_or_tokenizer.tokenizer
        else:
            self.processor, self.tokenizer = None, processor_or_tokenizer
        self.protocol = protocol or Protocol()
        self.chat_template = chat_template or chat_template_of(self.processor, self.tokenizer)
        self.image_token_id = None
        if self.processor is not None and self.protocol.prompt_style != "chat-template":
            self.image_token_id = image_token_id(self.processor, self.tokenizer)
            if self.image_token_id is None:
                raise ValueError(f"--prompt-style {self.protocol.prompt_style} needs a processor image token")
        if not self.chat_template and self.protocol.prompt_style == "chat-template":
            hint = f"; {paligemma.NO_TEMPLATE}" if paligemma.is_paligemma(self.processor) else ""
            raise ValueError(
                "the checkpoint has no chat template; evaluation renders prompts only with it (add "
                f"chat_template.jinja to the checkpoint){hint}"
            )
        self.max_length = max_length
        self.eos_token_id = self.tokenizer.eos_token_id if eos_token_id is None else eos_token_id
        if self.eos_token_id is None:
            raise ValueError("the tokenizer has no EOS token; pass eos_token_id")
        pad = self.tokenizer.pad_token_id
        self.pad_token_id = self.eos_token_id if pad is None else pad  # padding is masked out anyway
        prefix_lm = paligemma.is_paligemma(self.processor)
        self.answer_token_type = paligemma.ANSWER_TOKEN_TYPE if prefix_lm else None
        self.position_offset = paligemma.POSITION_OFFSET if prefix_lm else 0

    # ---- public -----------------------------------------------------------------------------------

    def render(self, prompt: str, n_images: int) -> str:
        """The prompt text exactly as `evalkit run` renders a one-turn request with `n_images` images."""
        message = Message("user", prompt, tuple(f"<image {i}>" for i in range(n_images)))
        style = self.protocol.prompt_style
        return render_prompt((message,), self.processor, self.tokenizer, self.chat_template, style)

    def answer_ids(self, answer: str) -> list[int]:
        """The tokens the model must generate for `answer`: its tokens, then EOS. Under `max_length` a very
        long answer is tokenized from a prefix (`capped_ids`), so a 10 MB answer costs no gigabytes."""
        if self.max_length is not None:
            ids = capped_ids(self.tokenizer, answer, self.max_length)
            if ids is not None:  # longer than any cut keeps; the cut drops the EOS anyway
                return ids
        return [*self.tokenizer(answer, add_special_tokens=False)["input_ids"], self.eos_token_id]

    def encode_prompt(self, prompt: str, image: Any = None) -> _Prompt:
        images = [prepare_image(img, self.protocol, self.processor) for img in _load_images(image)]
        text = self.render(prompt, len(images))
        style = self.protocol.prompt_style
        add_special = prompt_add_special_tokens(text, self.processor, self.tokenizer, style)
        if self.processor is None:
            if images:
                raise ValueError("the checkpoint is a text-only model but the example has images")
            enc = self.tokenizer([text], return_tensors="pt", add_special_tokens=add_special)
        else:
            if not images and paligemma.is_paligemma(self.processor):
                raise ValueError(paligemma.NEEDS_IMAGE)
            elif takes_numbered_placeholders(self.processor):  # one prompt and its images (Phi-3-vision)
                enc = self.processor(text, images or None, return_tensors="pt")
            else:
                enc = self.processor(
                    text=[text], images=images or None, return_tensors="pt", add_special_tokens=add_special
                )
        ids = enc["input_ids"][0].tolist()
        if self.image_token_id is not None:  # LLaVA's tokenizer_image_token, the processor's image runs
            runs = image_token_runs(ids, self.image_token_id)
            ids = llava_input_ids(text, self.tokenizer, self.image_token_id, runs)
        if self.max_length is not None and len(ids) >= self.max_length:
            raise ValueError(
                f"prompt of {len(ids)} tokens (image tokens included) leaves no room for an answer under "
                f"max_length={self.max_length}; image and prompt tokens are never truncated"
            )
        extras = {k: v for k, v in enc.items() if k not in _DROPPED_KEYS and hasattr(v, "shape")}
        per_token = [v for v in extras.values() if v.shape == enc["input_ids"].shape]
        if self.image_token_id is not None and per_token:
            raise ValueError("LLaVA prompt styles cannot re-tokenize a processor output per token")
        return _Prompt(ids, extras)

    def encode_sft(self, examples: Sequence[Any]) -> Batch:
        rows = [
            (self.encode_prompt(ex.prompt, ex.image), ex.response, getattr(ex, "id", None)) for ex in examples
        ]
        return self._collate(rows)

    def encode_pairs(self, pairs: Sequence[Any]) -> PairBatch:
        """One batch of 2B rows (chosen then rejected) so one forward pass scores both answers."""
        prompts = [self.encode_prompt(p.prompt, p.image) for p in pairs]
        ids = [getattr(p, "id", None) for p in pairs]
        rows = [(q, p.chosen, i) for q, p, i in zip(prompts, pairs, ids, strict=True)]
        rows += [(q, p.rejected, i) for q, p, i in zip(prompts, pairs, ids, strict=True)]
        batch = self._collate(rows)
        return PairBatch(**{f: getattr(batch, f) for f in batch.__dataclass_fields__}, n_pairs=len(pairs))

    # ---- collation --------------------------------------------------------------------------------

    def _collate(self, rows: list[tuple[_Prompt, str, str | None]]) -> Batch:
        import torch

        if not rows:
            raise ValueError("no examples to encode")
        answers, truncated = [], []
        for prompt, answer, _ in rows:
            ids = self.answer_ids(answer)
            room = None if self.max_length is None else self.max_length - len(prompt.ids)
            truncated.append(room is not None and len(ids) > room)
            answers.append(ids[:room])
        refuse_mixed_cross_attention([p.extras for p, _, _ in rows])
        p_len = max(len(p.ids) for p, _, _ in rows)
        a_len = max(len(a) for a in answers)
        n, t = len(rows), p_len + a_len
        input_ids = torch.full((n, t), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((n, t), dtype=torch.long)
        answer_mask = torch.zeros((n, t), dtype=torch.bool)
        token_extras: dict[str, list[tuple[int, int, Any]]] = {}  # key -> [(row, first column, values)]
        image_extras: dict[str, list[Any]] = {}
        for r, ((prompt, _, _), answer) in enumerate(zip(rows, answers, strict=True)):
            start, end = p_len - len(prompt.ids), p_len + len(answer)
            input_ids[r, start:end] = torch.tensor(prompt.ids + answer, dtype=torch.long)
            attention[r, start:end] = 1
            answer_mask[r, p_len:end] = True
            for key, value in prompt.extras.items():
                if tuple(value.shape[:2]) == (1, len(prompt.ids)):  # per token (token_type_ids, ...)
                    values = self.continue_per_token(key, value[0], len(answer))
                    token_extras.setdefault(key, []).append((r, start, values))
                else:
                    image_extras.setdefault(key, []).append(value)
        extras = {
            **{k: place_per_token(v, n, t) for k, v in token_extras.items()},
            **{k: cat_padded(v) for k, v in image_extras.items()},
        }
        return Batch(
            input_ids=input_ids,
            attention_mask=attention,
            position_ids=(attention.cumsum(-1) - 1).clamp(min=0) + self.position_offset * attention,
            answer_mask=answer_mask,
            extras=extras,
            ids=[i for _, _, i in rows],
            prompt_lengths=[len(p.ids) for p, _, _ in rows],
            truncated=truncated,
        )

    def continue_per_token(self, key: str, prompt_values: Any, n_answer: int):
        """A per-token input of the prompt ([prompt, ...]) continued over `n_answer` answer tokens as the
        model's `generate` continues it (see the module docstring)."""
        import torch

        if key == "token_type_ids" and self.answer_token_type is not None:
            answer = torch.full((n_answer, *prompt_values.shape[1:]), self.answer_token_type)
        else:
            answer = prompt_values[-1:].expand(n_answer, *prompt_values.shape[1:])
        return torch.cat([prompt_values, answer.to(prompt_values.dtype)])


#: characters per token assumed when tokenizing only a prefix of a very long text
CHARS_PER_TOKEN_CAP = 64


def capped_ids(tokenizer, text: str, limit: int) -> list[int] | None:
    """The tokens of a prefix of `text` when that prefix already holds well over `limit` tokens (at least
    2·limit + 16, so its first `limit` tokens lie far from where the prefix was cut and equal those of the
    whole text); None when `text` is short enough to tokenize whole, or the prefix holds too few tokens."""
    cap = limit * CHARS_PER_TOKEN_CAP
    if len(text) <= cap:
        return None
    ids = tokenizer(text[:cap], add_special_tokens=False)["input_ids"]
    return ids if len(ids) >= 2 * limit + 16 else None


def _load_images(image: Any) -> list[Any]:
    if image is None:
        return []
    items = list(image) if isinstance(image, list | tuple) else [image]
    return [load_image(x) if isinstance(x, str | Path) else x for x in items]


def refuse_mixed_cross_attention(extras: list[dict[str, Any]]) -> None:
    """Mllama runs its cross-attention layers for a whole batch or not at all: a text-only row in a batch
    with images would attend to padding images, so such a batch is refused rather than scored wrongly."""
    has = {"cross_attention_mask" in e for e in extras}
    if has == {True, False}:
        raise ValueError(
            "Mllama cannot put examples with and without images in one batch (its cross-attention layers "
            "run for the whole batch): keep text-only examples in their own data set, or use batch size 1"
        )


def place_per_token(rows: list[tuple[int, int, Any]], n: int, t: int):
    """[n, t, ...] zeros holding each row's values from its first column on (trailing dims zero-padded to
    the largest, e.g. Mllama's images and tiles)."""
    import torch

    trailing = [max(s) for s in zip(*(v.shape[1:] for _, _, v in rows), strict=True)]
    out = torch.zeros((n, t, *trailing), dtype=rows[0][2].dtype)
    for r, start, values in rows:
        out[(r, slice(start, start + len(values)), *(slice(0, s) for s in values.shape[1:]))] = values
    return out


def microbatch_indices(n: int, batch_size: int, seed: int):
    """index i of the flat micro-batch stream -> example indices (seeded per-epoch permutation)."""
    import torch

    per_epoch = math.ceil(n / batch_size)
    perms: dict[int, list[int]] = {}

    def get(i: int) -> list[int]:
        epoch, j = divmod(i, per_epoch)
        if epoch not in perms:
            g = torch.Generator().manual_seed(seed * 100_003 + epoch)
            perms[epoch] = torch.randperm(n, generator=g).tolist()
        return perms[epoch][j * batch_size : (j + 1) * batch_size]

    return get, per_epoch


def encode_or_explain(encode, examples: list):
    """`encode(examples)`; a failure (an image the processor rejects, a prompt over `max_length`) names
    the example it came from, found by encoding them one at a time."""
    try:
        return encode(examples)
    except (ValueError, OSError, TypeError) as exc:
        for ex in examples:
            try:
                encode([ex])
            except (ValueError, OSError, TypeError) as one:
                reason = " ".join(str(one).split()) or type(one).__name__
                raise UserError(f"{ex.source}: cannot encode the example: {reason}") from None
        raise UserError(f"cannot encode a batch: {' '.join(str(exc).split())}") from None
