"""Tiny offline models beyond the built-in toy LLaVA, shared by the training tests."""

from __future__ import annotations

import torch


def tiny_qwen2_vl():
    """A random tiny Qwen2-VL with the toy word-level tokenizer (spec §5 shapes), built offline."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from evalkit.models.processor_loading import without_video
    from evalkit.toy.model import CHAT_TEMPLATE, build_toy_tokenizer

    specials = ["<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"]
    tok = build_toy_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": specials})
    tok._set_model_specific_special_tokens({"image_token": specials[0], "video_token": specials[1]})
    ids = dict(zip(specials, tok.convert_tokens_to_ids(specials), strict=True))

    template = CHAT_TEMPLATE.replace("{{ '<image>' }}", "{{ '<|vision_start|><|image_pad|><|vision_end|>' }}")
    image_processor = Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16)
    # Qwen2VLProcessor less its video processor, which needs torchvision
    processor = without_video(Qwen2VLProcessor)(
        image_processor=image_processor, tokenizer=tok, chat_template=template
    )
    special = {
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }
    rope = {"rope_type": "default", "mrope_section": [1, 1], "rope_theta": 10000.0}
    text = dict(vocab_size=len(tok), hidden_size=16, num_hidden_layers=2, num_attention_heads=4, **special)
    text |= dict(num_key_value_heads=2, intermediate_size=32, rope_parameters=rope)
    vision = dict(hidden_size=16, num_heads=4, embed_dim=64, depth=2)
    config = Qwen2VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        **special,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return Qwen2VLForConditionalGeneration(config).eval(), processor
