"""The shared world of `benchmarks/dpo_step.py`: the settings both trainers use, the tiny LLaVA (random
weights, seed 0) and the toy-world preference pairs, saved once to a folder both sides load from."""

from __future__ import annotations

import json
import random
from pathlib import Path

PROMPT = "name one object in the image."
LR = 1e-5
BETA = 0.1


# text-model shapes of the `--size medium` LLaVA (the vision tower and tokenizer stay the toy's)
MEDIUM_TEXT = {
    "hidden_size": 512,
    "intermediate_size": 1536,
    "num_hidden_layers": 8,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
}


def build_model(size: str):
    """(model, processor): the toy LLaVA (`toy`), or the same with a larger language model (`medium`)."""
    import torch
    from transformers import LlavaForConditionalGeneration

    from evalkit.toy.model import build_toy_config, build_toy_model, build_toy_processor

    if size == "toy":
        return build_toy_model(seed=0)
    processor = build_toy_processor()
    config = build_toy_config(processor.tokenizer)
    for key, value in MEDIUM_TEXT.items():
        setattr(config.text_config, key, value)
    config.text_config.head_dim = config.text_config.hidden_size // config.text_config.num_attention_heads
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlavaForConditionalGeneration(config)
    gen = model.generation_config
    gen.pad_token_id, gen.bos_token_id, gen.eos_token_id = (
        config.pad_token_id,
        config.bos_token_id,
        config.eos_token_id,
    )
    return model.eval(), processor


def write_world(root: Path, n_pairs: int, size: str) -> int:
    """Save the base model (random, seed 0) and `n_pairs` toy-world pairs; returns the parameter count."""
    from evalkit.toy.world import STYLE, render, sample_scenes

    model, processor = build_model(size)
    model.save_pretrained(root / "base")
    processor.save_pretrained(root / "base")
    rng = random.Random(0)
    rows = []
    for scene in sample_scenes(n_pairs, seed=7):
        render(scene).save(root / f"{scene.image_id}.png")
        absent = rng.choice(sorted(set(STYLE) - set(scene.objects)))
        rows.append(
            {
                "id": scene.image_id,
                "image": f"{scene.image_id}.png",
                "prompt": PROMPT,
                "chosen": f"a {scene.objects[0]}.",
                "rejected": f"a {absent}.",
            }
        )
    (root / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return sum(p.numel() for p in model.parameters())
