"""The prompt renderer shared by evaluation (`evalkit.models.hf.HFBackend`) and training
(`training.batching`, `training.data_checks`): a conversation becomes the prompt text the checkpoint's own
chat template writes, and the encoding of that text adds BOS exactly as the processor itself would, so a
model is trained on the very prompts it is evaluated with.

Under a LLaVA prompt style (`evalkit.models.protocol`) the text is instead what LLaVA's
`Conversation.get_prompt()` writes for `SeparatorStyle.TWO` (haotian-liu/LLaVA `llava/conversation.py`):

    SYSTEM + " " + "USER: " + "<image>\\n" + question + " " + "ASSISTANT: " + answer + "</s>"
        + ... + "USER: " + question + " " + "ASSISTANT:"

and its encoding is LLaVA's `tokenizer_image_token`: the text is split at each `<image>`, every piece is
tokenized on its own with the tokenizer's special tokens, a leading BOS is kept once, and each `<image>`
becomes the run of image tokens the processor expands it to (`llava_input_ids`).

A processor of the numbered-placeholder convention (`evalkit.models.numbered_images`: Phi-3/3.5-vision)
gets string content instead of image parts: each image `<|image_N|>\\n` before its message's text, N
counting the images across the conversation, then the checkpoint's chat template (`render_numbered`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evalkit.models.numbered_images import PLACEHOLDER_LINE, takes_numbered_placeholders
from evalkit.types import Message

LLAVA_IMAGE = "<image>"


@dataclass(frozen=True)
class LlavaConversation:
    """One of LLaVA's `SeparatorStyle.TWO` conversation templates."""

    name: str
    system: str
    roles: tuple[str, str] = ("USER", "ASSISTANT")
    seps: tuple[str, str] = (" ", "</s>")


#: `--prompt-style` → LLaVA's template (`conv_vicuna_v1`, `conv_llava_v1`)
LLAVA_CONVERSATIONS = {
    "llava_v1.5": LlavaConversation(
        "vicuna_v1",
        "A chat between a curious user and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the user's questions.",
    ),
    "llava_v1": LlavaConversation(
        "llava_v1",
        "A chat between a curious human and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the human's questions.",
    ),
}


def chat_template_of(processor: Any, tokenizer: Any) -> str | None:
    """The chat template prompts are rendered with: the processor's, else the tokenizer's."""
    return getattr(processor, "chat_template", None) or tokenizer.chat_template


def render_prompt(
    messages: tuple[Message, ...],
    processor: Any,
    tokenizer: Any,
    chat_template: str | None,
    style: str = "chat-template",
) -> str:
    """The prompt text for `messages` with the checkpoint's chat template and the generation prompt, as
    the model is asked at evaluation: each message's images become `{"type": "image"}` parts before its
    text (only their number matters here). `processor` is None for a text-only causal LM. A LLaVA `style`
    renders with LLaVA's conversation template instead (`render_llava`), a numbered-placeholder processor
    with numbered placeholders in string content (`render_numbered`)."""
    if style != "chat-template":
        return render_llava(messages, LLAVA_CONVERSATIONS[style])
    if takes_numbered_placeholders(processor):
        return render_numbered(messages, tokenizer, chat_template)
    if processor is None:
        conv = [{"role": m.role, "content": m.text} for m in messages]
        return tokenizer.apply_chat_template(
            conv, add_generation_prompt=True, tokenize=False, chat_template=chat_template
        )
    conv = []
    for m in messages:
        parts: list[dict[str, str]] = [{"type": "image"} for _ in m.images]
        if m.text or not parts:
            parts.append({"type": "text", "text": m.text})
        conv.append({"role": m.role, "content": parts})
    return processor.apply_chat_template(
        conv, add_generation_prompt=True, tokenize=False, chat_template=chat_template
    )


def render_numbered(messages: tuple[Message, ...], tokenizer: Any, chat_template: str | None) -> str:
    """The checkpoint's chat template over string contents: each message's images as `<|image_N|>\\n`
    before its text, N numbering the images across the conversation from 1 (the order in which they are
    handed to the processor), as Phi-3/3.5-vision's model cards write them."""
    conv, seen = [], 0
    for m in messages:
        placeholders = "".join(PLACEHOLDER_LINE.format(seen + k + 1) for k in range(len(m.images)))
        seen += len(m.images)
        conv.append({"role": m.role, "content": placeholders + m.text})
    return tokenizer.apply_chat_template(
        conv, add_generation_prompt=True, tokenize=False, chat_template=chat_template
    )


def render_llava(messages: tuple[Message, ...], conv: LlavaConversation) -> str:
    """LLaVA's `get_prompt()` (SeparatorStyle.TWO) for user/assistant turns ending with a user turn, plus
    the empty assistant turn that asks for the answer. A message's images are written as `<image>\\n` each
    before its text, as `model_vqa.py` writes `DEFAULT_IMAGE_TOKEN + '\\n' + question`; a leading system
    message replaces the template's system prompt."""
    system, turns = conv.system, list(messages)
    if turns and turns[0].role == "system":
        system, turns = turns[0].text, turns[1:]
    if not turns or turns[-1].role != "user":
        raise ValueError(f"{conv.name}: the conversation must end with a user turn")
    ret = system + conv.seps[0]
    for i, m in enumerate(turns):
        expected = ("user", "assistant")[i % 2]
        if m.role != expected:
            raise ValueError(f"{conv.name}: turns must alternate user/assistant; turn {i + 1} is {m.role!r}")
        if m.images and m.role != "user":
            raise ValueError(f"{conv.name}: only user turns can hold images")
        text = (LLAVA_IMAGE + "\n") * len(m.images) + m.text
        ret += conv.roles[i % 2] + (": " + text + conv.seps[i % 2] if text else ":")
    return ret + conv.roles[1] + ":"


def prompt_add_special_tokens(
    prompt: str, processor: Any, tokenizer: Any, style: str = "chat-template"
) -> bool:
    """`add_special_tokens` for encoding a rendered prompt. With a processor: as the processor's own
    apply_chat_template, add BOS unless the template already wrote it (LLaVA-1.5's template does not, and
    the official model was evaluated with BOS). A text-only tokenizer's template writes its own specials.
    A LLaVA style tokenizes as LLaVA does: with the tokenizer's special tokens."""
    if style != "chat-template":
        return True
    if processor is None:
        return False
    bos = tokenizer.bos_token
    return not (bos is not None and prompt.startswith(bos))


def image_token_runs(ids: list[int], token_id: int) -> list[int]:
    """The lengths of the runs of `token_id` in `ids`, in order (one run per image it was expanded for)."""
    runs: list[int] = []
    previous = None
    for t in ids:
        if t == token_id:
            if previous == token_id:
                runs[-1] += 1
            else:
                runs.append(1)
        previous = t
    return runs


def llava_input_ids(prompt: str, tokenizer: Any, image_token_id: int, runs: list[int]) -> list[int]:
    """LLaVA's `tokenizer_image_token(prompt)` with its one image placeholder per `<image>` expanded to
    the processor's run of image tokens (`runs`, one length per image, from the processor's encoding)."""
    chunks = [tokenizer(chunk)["input_ids"] for chunk in prompt.split(LLAVA_IMAGE)]
    if len(runs) != len(chunks) - 1:
        raise ValueError(
            f"the prompt has {len(chunks) - 1} '<image>' but the processor expanded {len(runs)} runs of "
            "image tokens"
        )
    bos = tokenizer.bos_token_id
    offset = 1 if bos is not None and chunks[0][:1] == [bos] else 0
    ids = [bos] if offset else []
    for k, chunk in enumerate(chunks):
        if k:
            ids += [image_token_id] * runs[k - 1]
        ids += chunk[offset:]
    return ids


def llava_encoding(enc: Any, prompts: list[str], tokenizer: Any, image_token_id: int) -> dict[str, Any]:
    """The processor's left-padded batch `enc` of `prompts` with each row's ids re-tokenized the LLaVA way
    (`llava_input_ids`, the processor's image-token runs kept), left-padded again; the other processor
    outputs (pixel values, image sizes) are the processor's own."""
    import torch

    per_token = [k for k, v in enc.items() if k not in ("input_ids", "attention_mask") and _per_token(v, enc)]
    if per_token:
        raise ValueError(f"LLaVA prompt styles cannot re-tokenize a processor output per token: {per_token}")
    rows = []
    masks = enc["attention_mask"].tolist()
    for prompt, ids, mask in zip(prompts, enc["input_ids"].tolist(), masks, strict=True):
        runs = image_token_runs([t for t, m in zip(ids, mask, strict=True) if m], image_token_id)
        rows.append(llava_input_ids(prompt, tokenizer, image_token_id, runs))
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        if row:
            input_ids[r, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            attention[r, width - len(row) :] = 1
    return {**dict(enc.items()), "input_ids": input_ids, "attention_mask": attention}


def _per_token(value: Any, enc: Any) -> bool:
    return hasattr(value, "shape") and tuple(value.shape) == tuple(enc["input_ids"].shape)
