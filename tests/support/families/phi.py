"""Phi-4-multimodal (microsoft/Phi-4-multimodal-instruct, transformers' native classes), Phi-3.5-vision
(microsoft/Phi-3.5-vision-instruct, remote code) and Phi-3-vision (microsoft/Phi-3-vision-128k-instruct,
the same remote-code shape) shapes.

Phi-4-multimodal: transformers maps it as a causal LM (`Phi4MultimodalForCausalLM`), its processor has an
image processor, an audio feature extractor and the tokenizer (image token <|endoftext10|>, audio token
<|endoftext11|>). Its image processor exists only as a torchvision backend (evalkit loads a torch one in its
place without torchvision: `evalkit.models.torch_images`); the processor settings are written as
transformers saves them.

Phi-3.5-vision and Phi-3-vision: config.json's and processor_config.json's `auto_map` name code shipped in
the folder (support/families/phi3v_code, copied by save_pretrained), laid out as the hub repos' files: the
processor takes ONE prompt whose numbered `<|image_N|>` placeholders the user writes, and the images; the
chat template (the same in both repos) takes string content only; the model places image features at the
negative placeholder ids. evalkit drives them by the numbered-image-placeholder convention
(evalkit.models.numbered_images).
"""

from __future__ import annotations

import json
from pathlib import Path

from support.families import Family
from support.families.common import TEXT, save, seeded, tokenizer

#: microsoft/Phi-3.5-vision-instruct's chat template (tokenizer_config.json): string content only
PHI3V_TEMPLATE = (
    "{% for message in messages %}{{'<|' + message['role'] + '|>' + '\\n' + message['content']"
    " + '<|end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt and messages[-1]['role'] != 'assistant' %}"
    "{{- '<|assistant|>\\n' -}}{% endif %}"
)

#: Phi-4-multimodal's turns (<|user|>...<|end|><|assistant|>), each image part its image token
PHI4MM_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}{{ '<|endoftext10|>' }}"
    "{% elif part['type'] == 'audio' %}{{ '<|endoftext11|>' }}{% elif part['type'] == 'text' %}"
    "{% generation %}{{ part['text'] }}{% endgeneration %}{% endif %}{% endfor %}{% endif %}{{ '<|end|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}"
)

#: Phi-4-multimodal's crop: its image processor counts an image's tokens for 448-pixel crops of 14-pixel
#: patches (256 per crop after 2 x 2 pooling, written as constants), so the tiny model keeps that crop
PHI4_CROP = 448

PHI_SPECIALS = ["<|endoftext|>", "<|assistant|>", "<|end|>", "<|user|>", "<|system|>"]
CLIP = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 32,
    "patch_size": 16,
}


def build_phi3v(path: Path, num_crops: int = 4) -> None:
    """Phi-3.5-vision-instruct's layout (its image processor: `num_crops` 4; Phi-3-vision-128k's: 16)."""
    from support.families.phi3v_code.configuration_phi3_v import Phi3VConfig
    from support.families.phi3v_code.image_processing_phi3_v import Phi3VImageProcessor
    from support.families.phi3v_code.modeling_phi3_v import Phi3VForCausalLM
    from support.families.phi3v_code.processing_phi3_v import Phi3VProcessor

    tok = tokenizer(specials=PHI_SPECIALS, chat_template=PHI3V_TEMPLATE)
    tok.eos_token = tok.pad_token = "<|endoftext|>"
    config = Phi3VConfig(
        vocab_size=len(tok),
        **TEXT,
        img_processor={"name": "clip_vision_model", "image_dim_out": 16, **CLIP},
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    Phi3VConfig.register_for_auto_class()
    Phi3VForCausalLM.register_for_auto_class("AutoModelForCausalLM")
    Phi3VImageProcessor.register_for_auto_class("AutoImageProcessor")
    Phi3VProcessor.register_for_auto_class("AutoProcessor")
    processor = Phi3VProcessor(Phi3VImageProcessor(crop_size=32, num_crops=num_crops, tokens_per_crop=4), tok)
    save(path, seeded(Phi3VForCausalLM, config), processor)


def build_phi3_vision(path: Path) -> None:
    """microsoft/Phi-3-vision-128k-instruct: the same classes, chat template and special tokens as
    Phi-3.5-vision; its image processor pads every image to 16 + 1 crops."""
    build_phi3v(path, num_crops=16)


def build_molmo(path: Path) -> None:
    """allenai/Molmo-7B-D-0924's layout: Qwen2 tokens, Molmo's image tokens, no chat template."""
    from support.families.molmo_code.config_molmo import MolmoConfig
    from support.families.molmo_code.image_preprocessing_molmo import MolmoImageProcessor
    from support.families.molmo_code.modeling_molmo import MolmoForCausalLM
    from support.families.molmo_code.preprocessing_molmo import MolmoProcessor

    tok = tokenizer(specials=["<|endoftext|>", "<im_start>", "<im_end>", "<im_patch>", "<im_col>"])
    tok.chat_template = None
    tok.bos_token = tok.eos_token = tok.pad_token = "<|endoftext|>"
    config = MolmoConfig(
        vocab_size=len(tok),
        **TEXT,
        vision_backbone=CLIP,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    MolmoConfig.register_for_auto_class()
    MolmoForCausalLM.register_for_auto_class("AutoModelForCausalLM")
    MolmoImageProcessor.register_for_auto_class("AutoImageProcessor")
    MolmoProcessor.register_for_auto_class("AutoProcessor")
    image_processor = MolmoImageProcessor(
        base_image_input_size=[32, 32], image_token_length_w=2, image_token_length_h=2
    )
    save(path, seeded(MolmoForCausalLM, config), MolmoProcessor(image_processor, tok))


def build_phi4_multimodal(path: Path) -> None:
    from transformers import Phi4MultimodalConfig, Phi4MultimodalForCausalLM
    from transformers.models.phi4_multimodal.feature_extraction_phi4_multimodal import (
        Phi4MultimodalFeatureExtractor,
    )

    tok = tokenizer(
        specials=PHI_SPECIALS,
        chat_template=PHI4MM_TEMPLATE,
        image_token="<|endoftext10|>",
        audio_token="<|endoftext11|>",
    )
    tok.eos_token = tok.pad_token = "<|endoftext|>"
    image_id, audio_id = tok.convert_tokens_to_ids(["<|endoftext10|>", "<|endoftext11|>"])
    config = Phi4MultimodalConfig(
        vocab_size=len(tok),
        **TEXT,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        vision_config={
            **CLIP,
            "image_size": PHI4_CROP,
            "patch_size": 14,
            "crop_size": PHI4_CROP,
            "image_token_id": image_id,
        },
        audio_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_blocks": 1,
            "num_attention_heads": 4,
            "nemo_conv_channels": 16,
            "depthwise_seperable_out_channel": 16,
            "ext_pw_out_channel": 16,
            "depthwise_multiplier": 1,
            "kernel_size": 3,
            "input_size": 80,
            "time_reduction": 8,
            "audio_token_id": audio_id,
        },
    )
    save(path, seeded(Phi4MultimodalForCausalLM, config), tok)
    # the processor as transformers saves it (its image processor class needs torchvision to be built)
    settings = {
        "processor_class": "Phi4MultimodalProcessor",
        "image_processor": {
            "image_processor_type": "Phi4MultimodalImageProcessor",
            "size": {"height": PHI4_CROP, "width": PHI4_CROP},
            "patch_size": 14,
            "dynamic_hd": 4,
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
        },
        "audio_processor": Phi4MultimodalFeatureExtractor().to_dict(),
    }
    (path / "processor_config.json").write_text(json.dumps(settings, indent=2))


PHI4_PENDING = (
    "not verified: Phi-4-multimodal's image processor exists only for torchvision (its module imports it), "
    "absent where the matrix runs"
)

#: Molmo: see preprocessing_molmo (its process() and generate_from_batch are its only interface)
MOLMO_ERROR = "is driven through its own process()"

FAMILIES = [
    Family(
        "Phi-4-multimodal",
        build_phi4_multimodal,
        frozen_prefixes=("model.embed_tokens_extend.image_embed.img_processor.",),
        notes="native classes; without torchvision its image processor runs in torch; a separate "
        "`vision-lora/` must be merged first",
    ),
    Family(
        "Phi-3.5-vision (remote code)",
        build_phi3v,
        frozen_prefixes=("model.vision_embed_tokens.img_processor.",),
        trust_remote_code=True,
        notes="remote code (`--trust-remote-code`); its processor takes one prompt with numbered image "
        "placeholders: a batch's rows are encoded one by one and collated",
    ),
    Family(
        "Phi-3-vision (remote code)",
        build_phi3_vision,
        frozen_prefixes=("model.vision_embed_tokens.img_processor.",),
        trust_remote_code=True,
        notes="as Phi-3.5-vision (the same remote-code shape and chat template; 16 crops per image)",
    ),
    Family(
        "Molmo (remote code)",
        build_molmo,
        trust_remote_code=True,
        notes="remote code (`--trust-remote-code`); driven only through its own `process()` and "
        "`generate_from_batch`: refused at load; Molmo2 (allenai/Molmo2-*) loads with transformers' own "
        "classes instead",
        unsupported=dict.fromkeys(("evaluate", "batch", "dpo-lora", "dpo-full", "reload"), MOLMO_ERROR),
    ),
]
