"""PaliGemma's prefix-LM conventions, shared by evaluation (`evalkit.models.hf`) and training
(`training.batching`) so that a model is scored on the very inputs its own `generate` builds.

PaliGemma attends bidirectionally over its prefix (image and prompt: `token_type_ids` 0) and causally over
its suffix (the answer: `token_type_ids` 1, as its processor marks a `suffix=` and its `generate` marks each
new token); its positions count from 1 (`prepare_inputs_for_generation` adds 1 to the mask-derived ids).
Its processor refuses a prompt without an image.
"""

from __future__ import annotations

from typing import Any

#: `token_type_ids` of answer (suffix) tokens
ANSWER_TOKEN_TYPE = 1
#: added to the mask-derived position ids (`attention_mask.cumsum(-1) - 1`)
POSITION_OFFSET = 1
NEEDS_IMAGE = "PaliGemma answers about an image: its processor refuses a prompt without one"
#: PaliGemma's hub checkpoints ship no chat template, and evalkit never invents one
NO_TEMPLATE = (
    "PaliGemma checkpoints ship none; its template writes each image as <image>, then the prompt text "
    "(README, Supported models)"
)


def is_paligemma(processor: Any) -> bool:
    """True for PaliGemma's processor (or a subclass of it)."""
    return processor is not None and any(c.__name__ == "PaliGemmaProcessor" for c in type(processor).__mro__)
