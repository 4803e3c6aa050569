"""Gemma 3 (google/gemma-3-4b-it), Mllama (meta-llama/Llama-3.2-11B-Vision-Instruct) and PaliGemma
(google/paligemma2-3b-mix-224) shapes.

PaliGemma's hub checkpoints ship no chat template; the one built here is the minimal template the README
tells users to add (the images, then the prompt text; the processor itself writes BOS after the images and
the closing newline), so the matrix checks PaliGemma as a user runs it after that step.
"""

from __future__ import annotations

from pathlib import Path

import torch

from support.families import Family
from support.families.common import TEXT, save, seeded, token_ids, tokenizer

#: google/gemma-3-4b-it's template, in effect: BOS, a system message folded into the first user turn,
#: alternating `<start_of_turn>user|model` turns ending in `<end_of_turn>`, images as `<start_of_image>`
GEMMA3_TEMPLATE = (
    "{{ bos_token }}{% set ns = namespace(prefix='', first=0) %}"
    "{% if messages[0]['role'] == 'system' %}{% set ns.first = 1 %}"
    "{% if messages[0]['content'] is string %}{% set ns.prefix = messages[0]['content'] + '\n\n' %}"
    "{% else %}{% set ns.prefix = messages[0]['content'][0]['text'] + '\n\n' %}{% endif %}{% endif %}"
    "{% for message in messages[ns.first:] %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\n' }}"
    "{% if loop.first %}{{ ns.prefix }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] | trim }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}{{ '<start_of_image>' }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] | trim }}{% endif %}{% endfor %}{% endif %}"
    "{{ '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)

#: meta-llama/Llama-3.2-11B-Vision-Instruct's template, in effect: BOS; a system header (knowledge and
#: today's date) only when no message has an image; `<|start_header_id|>role<|end_header_id|>` turns
#: ending in `<|eot_id|>`, images as `<|image|>`
MLLAMA_TEMPLATE = (
    "{{ bos_token }}{% set ns = namespace(images=false) %}{% for message in messages %}"
    "{% if message['content'] is not string %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}{% set ns.images = true %}{% endif %}{% endfor %}{% endif %}{% endfor %}"
    "{% if not ns.images or messages[0]['role'] == 'system' %}"
    "{{ '<|start_header_id|>system<|end_header_id|>\n\n' }}"
    "{% if not ns.images %}{{ 'Cutting Knowledge Date: December 2023\n' }}"
    "{{ 'Today Date: 26 Jul 2024\n\n' }}{% endif %}"
    "{% if messages[0]['role'] == 'system' %}{% if messages[0]['content'] is string %}"
    "{{ messages[0]['content'] | trim }}{% else %}{{ messages[0]['content'][0]['text'] | trim }}{% endif %}"
    "{% endif %}{{ '<|eot_id|>' }}{% endif %}"
    "{% for message in messages %}{% if message['role'] != 'system' %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{% if message['content'] is string %}{{ message['content'] | trim }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}{{ '<|image|>' }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] | trim }}{% endif %}{% endfor %}{% endif %}"
    "{{ '<|eot_id|>' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

#: the template a PaliGemma user adds (README, "Supported models"): one user turn, its images, its text
PALIGEMMA_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'user' %}"
    "{{ raise_exception('PaliGemma takes a single user turn') }}{% endif %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}{{ '<image>' }}{% endif %}"
    "{% endfor %}"
    "{% for item in message['content'] %}{% if item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endfor %}"
)

SIGLIP = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 32,
    "patch_size": 8,
}


def _named_specials(tok, bos: str, eos: str, pad: str) -> None:
    """The family's own BOS / EOS / PAD tokens (already added as special tokens) instead of the toy's."""
    tok.bos_token, tok.eos_token, tok.pad_token = bos, eos, pad


def _generation_eos(path: Path, eos_ids: list[int]) -> None:
    """The hub's generation_config.json lists every turn-ending token as EOS."""
    from transformers import GenerationConfig

    gen = GenerationConfig.from_pretrained(path)
    gen.eos_token_id = eos_ids
    gen.save_pretrained(path)


def build_gemma3(path: Path) -> None:
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3Processor,
        Gemma3TextConfig,
        SiglipVisionConfig,
    )
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    tok = tokenizer(
        ["<bos>", "<eos>", "<pad>", "<start_of_turn>", "<end_of_turn>"],
        chat_template=GEMMA3_TEMPLATE,
        boi_token="<start_of_image>",
        eoi_token="<end_of_image>",
        image_token="<image_soft_token>",
    )
    _named_specials(tok, "<bos>", "<eos>", "<pad>")
    image_processor = Gemma3ImageProcessorPil(size={"height": 32, "width": 32})
    processor = Gemma3Processor(
        image_processor=image_processor, tokenizer=tok, image_seq_length=4, chat_template=GEMMA3_TEMPLATE
    )
    ids = token_ids(tok)
    text = Gemma3TextConfig(
        vocab_size=len(tok), **{**TEXT, "head_dim": 4}, sliding_window=8, query_pre_attn_scalar=4, **ids
    )
    config = Gemma3Config(
        text_config=text,
        vision_config=SiglipVisionConfig(**SIGLIP),
        mm_tokens_per_image=4,
        boi_token_index=tok.convert_tokens_to_ids("<start_of_image>"),
        eoi_token_index=tok.convert_tokens_to_ids("<end_of_image>"),
        image_token_index=tok.convert_tokens_to_ids("<image_soft_token>"),
    )
    save(path, seeded(Gemma3ForConditionalGeneration, config), processor)
    _generation_eos(path, [tok.eos_token_id, tok.convert_tokens_to_ids("<end_of_turn>")])


def build_mllama(path: Path) -> None:
    from transformers import (
        MllamaConfig,
        MllamaForConditionalGeneration,
        MllamaProcessor,
        MllamaTextConfig,
        MllamaVisionConfig,
    )
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>"]
    specials += ["<|eot_id|>", "<|eom_id|>", "<|python_tag|>", "<|finetune_right_pad_id|>"]
    tok = tokenizer(specials, chat_template=MLLAMA_TEMPLATE, image_token="<|image|>")
    _named_specials(tok, "<|begin_of_text|>", "<|eot_id|>", "<|finetune_right_pad_id|>")
    image_processor = MllamaImageProcessorPil(size={"height": 32, "width": 32}, max_image_tiles=4)
    processor = MllamaProcessor(image_processor=image_processor, tokenizer=tok, chat_template=MLLAMA_TEMPLATE)
    ids = token_ids(tok)
    vision = MllamaVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_global_layers=1,
        attention_heads=4,
        image_size=32,
        patch_size=16,
        max_num_tiles=4,
        intermediate_layers_indices=[0],
        vision_output_dim=32,  # hidden_size x (1 + intermediate layers)
    )
    text = MllamaTextConfig(
        vocab_size=len(tok),
        **{**TEXT, "num_hidden_layers": 3},
        cross_attention_layers=[1],
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
        **ids,
    )
    config = MllamaConfig(
        vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<|image|>")
    )
    model = seeded(MllamaForConditionalGeneration, config)
    with torch.no_grad():  # transformers initialises the cross-attention gates to 0 (images ignored)
        for name, p in model.named_parameters():
            if name.endswith(("cross_attn_attn_gate", "cross_attn_mlp_gate")):
                p.fill_(1.0)
    save(path, model, processor)
    eos = ["<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"]
    _generation_eos(path, [tok.convert_tokens_to_ids(t) for t in eos])


def build_paligemma(path: Path) -> None:
    from transformers import (
        Gemma2Config,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipVisionConfig,
    )
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    tok = tokenizer(["<bos>", "<eos>", "<pad>"], chat_template=PALIGEMMA_TEMPLATE, image_token="<image>")
    _named_specials(tok, "<bos>", "<eos>", "<pad>")
    image_processor = SiglipImageProcessorPil(size={"height": 32, "width": 32})
    image_processor.image_seq_length = 16  # (32 / 8) ** 2 patches
    processor = PaliGemmaProcessor(
        image_processor=image_processor, tokenizer=tok, chat_template=PALIGEMMA_TEMPLATE
    )
    ids = token_ids(tok)
    text = Gemma2Config(
        vocab_size=len(tok), **{**TEXT, "head_dim": 4}, sliding_window=8, query_pre_attn_scalar=4, **ids
    )
    config = PaliGemmaConfig(
        vision_config=SiglipVisionConfig(**SIGLIP, projection_dim=16),
        text_config=text,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        projection_dim=16,
        hidden_size=16,
        vocab_size=len(tok),
    )
    save(path, seeded(PaliGemmaForConditionalGeneration, config), processor)


FAMILIES = [
    Family("Gemma 3", build_gemma3, frozen_prefixes=("vision_tower.",)),
    Family("Mllama", build_mllama, frozen_prefixes=("vision_model.",)),
    Family(
        "PaliGemma",
        build_paligemma,
        frozen_prefixes=("vision_tower.",),
        notes="add a chat template (below); every prompt needs an image",
    ),
]
