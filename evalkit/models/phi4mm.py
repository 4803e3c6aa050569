"""Phi-4-multimodal as transformers ships it (`Phi4MultimodalForCausalLM`): its vision tower is SigLIP, whose
attention is bidirectional, but transformers declares the tower's attention modules `is_causal = True`.
Eager attention ignores that flag; SDPA honours it where no mask is passed, which is when no crop of the call
is padded. So under SDPA an image's crops were encoded causally alone and bidirectionally beside a padded
image, and a batch changed the answers. `make_vision_attention_bidirectional` clears the flag after loading
(evaluation and training both load through it), which gives every call what eager attention computes."""

from __future__ import annotations

#: transformers' class of Phi-4-multimodal's vision tower attention
VISION_ATTENTION = "Phi4MultimodalVisionAttention"


def make_vision_attention_bidirectional(model) -> int:
    """Mark Phi-4-multimodal's vision attention modules bidirectional; how many (0: another model)."""
    found = [m for m in model.modules() if type(m).__name__ == VISION_ATTENTION]
    for module in found:
        module.is_causal = False
    return len(found)
