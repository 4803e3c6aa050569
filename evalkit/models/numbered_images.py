"""The "numbered image placeholders" processor convention, the second way evalkit drives an image model's
processor (the first is transformers' own: `processor(text=[prompts], images=[[...], ...], **settings)`
with a chat template that renders `{"type": "image"}` parts).

Phi-3-vision and Phi-3.5-vision (remote code) and processors built like them take ONE prompt and the list
of its images, `processor(prompt, images, return_tensors="pt")`, with no `**kwargs`; the prompt names each
image by a placeholder the caller writes, `<|image_N|>`, numbered from 1 in the order the images are
given, and the chat template renders string content only. As the model cards show, a message's images are
written as `<|image_N|>\\n` each, before its text, numbered across the whole conversation
(`evalkit.models.prompt.render_numbered`); the processor expands each placeholder to the image's tokens.

Such a processor encodes one prompt at a time, so a batch is each row encoded on its own and collated
(`encode_each`): input ids and attention mask left-padded, per-token outputs left-padded likewise, and
per-image outputs (`pixel_values` [images, crops, 3, H, W], `image_sizes`) concatenated in row order with
trailing dims (the crop count) zero-padded to the largest: the order in which the model meets the image
placeholders of a batch (Phi-3-vision places image features at the placeholder positions in row-major
order, and reads each image's real crop count from `image_sizes`).

A processor is taken for this convention from its call signature alone (`takes_numbered_placeholders`);
`evalkit.models.model_kind.check_conventions` then checks at load that its chat template keeps the
placeholders and that the processor expands them (`check_numbered`), so a processor that fits neither
convention is refused with one line.
"""

from __future__ import annotations

import inspect
from typing import Any

from evalkit.util.tensors import cat_padded, largest_shape

#: the placeholder of the N-th image (N from 1) and what a message writes for each of its images
PLACEHOLDER = "<|image_{}|>"
PLACEHOLDER_LINE = PLACEHOLDER + "\n"


def takes_numbered_placeholders(processor: Any) -> bool:
    """Whether `processor` is called the single-prompt way: `__call__(text, images, ...)` with `text` and
    `images` its first two parameters and no `**kwargs` (transformers' own processors all take
    `**kwargs`, which carry `add_special_tokens`, `padding` and the image settings)."""
    if processor is None or not hasattr(processor, "image_processor"):
        return False
    params = list(inspect.signature(type(processor).__call__).parameters.values())[1:]
    names = [p.name for p in params[:2]]
    return names == ["text", "images"] and not any(p.kind is p.VAR_KEYWORD for p in params)


def check_numbered(processor: Any, render) -> str | None:
    """Why `processor` cannot be driven the numbered-placeholder way (None when it can): `render(n)` must
    write a prompt holding `<|image_1|>` for one image (the chat template keeps string content), and the
    processor must encode that prompt with one image into ids other than the text's own tokens (it expands
    the placeholder) and return pixel values."""
    from PIL import Image

    name = type(processor).__name__
    try:
        prompt = render(1)
    except Exception as exc:  # the template's own error
        return f"its chat template cannot render string content ({_first_line(exc)})"
    if PLACEHOLDER.format(1) not in prompt:
        return f"its chat template drops the image placeholder {PLACEHOLDER.format(1)!r}"
    try:
        enc = processor(prompt, [Image.new("RGB", (32, 32), (127, 127, 127))], return_tensors="pt")
    except Exception as exc:
        return f"{name}(prompt, images) fails on a prompt with {PLACEHOLDER.format(1)} ({_first_line(exc)})"
    text_ids = processor.tokenizer(prompt)["input_ids"]
    if "pixel_values" not in enc or enc["input_ids"][0].tolist() == list(text_ids):
        return f"{name} does not expand the image placeholder {PLACEHOLDER.format(1)} into image inputs"
    return None


def encode_each(processor: Any, texts: list[str], images: list[list[Any]], pad_token_id: int) -> dict:
    """One batch from `processor(text, images or None)` per row, collated as the module docstring says."""
    import torch

    encs = [
        processor(t, list(imgs) or None, return_tensors="pt") for t, imgs in zip(texts, images, strict=True)
    ]
    widths = [int(e["input_ids"].shape[1]) for e in encs]
    width = max(widths)
    out: dict[str, Any] = {}
    for key in dict.fromkeys(k for e in encs for k in e):
        values = [
            (e[key], w) for e, w in zip(encs, widths, strict=True) if isinstance(e.get(key), torch.Tensor)
        ]
        if not values:
            continue
        per_token = all(v.dim() >= 2 and tuple(v.shape[:2]) == (1, w) for v, w in values)
        if per_token and len(values) == len(encs):
            fill = pad_token_id if key == "input_ids" else 0
            rows = torch.full(
                (len(values), width, *largest_shape(v.shape[2:] for v, _ in values)),
                fill,
                dtype=values[0][0].dtype,
            )
            for r, (v, w) in enumerate(values):
                rows[(r, slice(width - w, width), *(slice(0, s) for s in v.shape[2:]))] = v[0]
            out[key] = rows
        else:
            out[key] = cat_padded([v for v, _ in values])
    return out


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
