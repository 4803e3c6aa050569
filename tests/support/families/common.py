"""Pieces every family builder shares: the offline tokenizer with a family's special tokens, seeded random
initialisation, and saving a checkpoint folder the way the hub holds one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from evalkit.toy.model import build_toy_tokenizer

#: tiny text-model shapes (training.md §5): hidden 16, 2 layers, 4 heads, 2 KV heads
TEXT = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
}


def tokenizer(specials: list[str] = (), chat_template: str | None = None, **named: str):
    """The toy word-level tokenizer (offline) with the family's extra special tokens added; `named` sets
    named special tokens (e.g. image_token="<image>") as `extra_special_tokens`."""
    tok = build_toy_tokenizer()
    extra = [s for s in [*specials, *named.values()] if s not in tok.get_vocab()]
    if extra:
        tok.add_special_tokens({"additional_special_tokens": extra})
    if named:  # named special tokens (saved by name in tokenizer_config.json, `tok.<name>_id` works)
        tok._set_model_specific_special_tokens(named)
    if chat_template is not None:
        tok.chat_template = chat_template
    return tok


def token_ids(tok) -> dict[str, int]:
    """bos/eos/pad ids for model configs."""
    return {
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }


def seeded(model_cls, config, seed: int = 0):
    """`model_cls(config)` initialised under `seed`, leaving the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_cls(config).eval()


def save(path: Path, model, processor: Any) -> None:
    """The checkpoint folder: config + safetensors weights, generation config, and the processor (or
    tokenizer) with its chat template."""
    gen = model.generation_config
    tok = getattr(processor, "tokenizer", processor)
    gen.bos_token_id, gen.eos_token_id, gen.pad_token_id = (
        tok.bos_token_id,
        tok.eos_token_id,
        tok.pad_token_id,
    )
    model.save_pretrained(path)
    processor.save_pretrained(path)
