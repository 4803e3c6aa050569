"""The prompt renderer shared by evaluation (`evalkit.models.hf.HFBackend`) and training
(`training.batching`, `training.data_checks`): a conversation becomes the prompt text the checkpoint's own
chat template writes, and the encoding of that text adds BOS exactly as the processor itself would, so a
model is trained on the very prompts it is evaluated with."""

from __future__ import annotations

from typing import Any

from evalkit.types import Message


def chat_template_of(processor: Any, tokenizer: Any) -> str | None:
    """The chat template prompts are rendered with: the processor's, else the tokenizer's."""
    return getattr(processor, "chat_template", None) or tokenizer.chat_template


def render_prompt(messages: tuple[Message, ...], processor: Any, tokenizer: Any, chat_template: str) -> str:
    """The prompt text for `messages` with the checkpoint's chat template and the generation prompt, as
    the model is asked at evaluation: each message's images become `{"type": "image"}` parts before its
    text (only their number matters here). `processor` is None for a text-only causal LM."""
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


def prompt_add_special_tokens(prompt: str, processor: Any, tokenizer: Any) -> bool:
    """`add_special_tokens` for encoding a rendered prompt. With a processor: as the processor's own
    apply_chat_template, add BOS unless the template already wrote it (LLaVA-1.5's template does not, and
    the official model was evaluated with BOS). A text-only tokenizer's template writes its own specials."""
    if processor is None:
        return False
    bos = tokenizer.bos_token
    return not (bos is not None and prompt.startswith(bos))
