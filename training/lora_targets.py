"""The default LoRA targets: the attention projections of the model's LANGUAGE model, for every family.

A name pattern cannot say this for every family (the language model sits under `language_model`, under
`text_model` for Idefics3 / SmolVLM, is the model itself for a text-only LM; Phi-3 fuses q, k and v into one
`qkv_proj`), so the targets are found by structure: the language model (transformers' `get_decoder()`, else
the attribute names families use for it), its stack of decoder layers, and in each layer the linear layers
of its attention modules (self- and cross-attention: q/k/v/o, fused qkv, ...). The vision tower and the
projector are never targeted: they are not inside the language model's decoder layers.
"""

from __future__ import annotations

import re

from evalkit.types import UserError

#: where families keep their language model when `get_decoder()` does not find it
_LANGUAGE_MODEL_NAMES = ("language_model", "text_model", "model.language_model", "model.text_model", "model")
#: the attribute holding the stack of decoder layers
_LAYER_STACKS = ("layers", "h", "blocks")
#: linear layers of an attention computation by their own name, for layers without an attention module
_ATTENTION_LINEAR = re.compile(
    r"(q|k|v|o|qkv|out)_proj|query|key|value|query_key_value|c_attn|att_proj|attn_out"
)


def language_model(model):
    """The model's language model (decoder): a module that holds the stack of decoder layers."""
    candidates = []
    get_decoder = getattr(model, "get_decoder", None)
    if callable(get_decoder):
        try:
            candidates.append(get_decoder())
        except (AttributeError, NotImplementedError, ValueError):
            pass
    for dotted in _LANGUAGE_MODEL_NAMES:
        module = model
        for part in dotted.split("."):
            module = getattr(module, part, None)
        candidates.append(module)
    for module in [*candidates, model]:
        if module is not None and _layer_stack(module) is not None:
            return module
    raise UserError(
        f"LoRA: cannot find the language model of {type(model).__name__} (no get_decoder() and no decoder "
        "layers under language_model / text_model / model); train it with --lora-rank 0"
    )


def lora_targets(model) -> list[str]:
    """Full names (as `model.named_modules()` gives them) of the language model's attention linear layers."""
    import torch

    decoder = language_model(model)
    stack = _layer_stack(decoder)
    linear = (torch.nn.Linear, *_conv1d())
    names = {id(m): n for n, m in model.named_modules()}
    targets: list[str] = []
    for layer in stack:
        attention = [m for m in layer.modules() if m is not layer and type(m).__name__.endswith("Attention")]
        if attention:
            found = [names[id(c)] for a in attention for c in a.children() if isinstance(c, linear)]
        else:
            found = [
                names[id(m)]
                for n, m in layer.named_modules()
                if isinstance(m, linear) and _ATTENTION_LINEAR.fullmatch(n.rsplit(".", 1)[-1])
            ]
        targets.extend(found)
    if not targets:
        raise UserError(
            f"LoRA: found no attention projections in the language model of {type(model).__name__}; train it "
            "with --lora-rank 0"
        )
    return sorted(set(targets))


def _layer_stack(module):
    import torch

    for name in _LAYER_STACKS:
        stack = getattr(module, name, None)
        if isinstance(stack, torch.nn.ModuleList) and len(stack):
            return stack
    return None


def _conv1d() -> tuple[type, ...]:
    try:  # GPT-2-style layers keep their projections as Conv1D
        from transformers.pytorch_utils import Conv1D
    except ImportError:
        return ()
    return (Conv1D,)
