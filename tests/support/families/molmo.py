"""Molmo2 (allenai/Molmo2-4B, allenai/Molmo2-8B, allenai/Molmo2-O-7B) as transformers ships it natively
(`Molmo2ForConditionalGeneration`, `Molmo2Processor`): Qwen3's ChatML turns, every image placed before the
first turn (`<|image|>`, or "Image N<|image|>" for several), which the processor expands into a low- and a
high-resolution view of `<im_patch>` tokens with `<im_col>` row ends. The hub repos also carry an
`auto_map` to their own copies of these classes; transformers uses its own where it has them, so it is left
out here (no code ships with this checkpoint).

Molmo2's image processor exists only as a torchvision backend; without torchvision evalkit loads it through
`evalkit.models.molmo2_images` (the same processor, its resize and normalisation done in torch).
"""

from __future__ import annotations

from pathlib import Path

from support.families import Family
from support.families.common import TEXT, save, seeded, tokenizer

#: the hub checkpoints' template, in structure: the images first (one: `<|image|>`; several: "Image N"
#: before each), then ChatML user turns; an assistant turn is closed by the next user turn
MOLMO2_TEMPLATE = (
    "{% set n = namespace(images=0) %}{% for message in messages %}{% if message['content'] is not string %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}{% set n.images = n.images + 1 %}"
    "{% endif %}{% endfor %}{% endif %}{% endfor %}"
    "{% if n.images == 1 %}{{ '<|image|>' }}{% elif n.images > 1 %}{% for i in range(n.images) %}"
    "{{ 'Image ' ~ (i + 1) ~ '<|image|>' }}{% endfor %}{% endif %}"
    "{% for message in messages %}{% if message['content'] is string %}{% set text = message['content'] %}"
    "{% else %}{% set t = namespace(text='') %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{% set t.text = t.text ~ ('' if not t.text else ' ') ~ part['text'] %}"
    "{% endif %}{% endfor %}{% set text = t.text %}{% endif %}"
    "{% if message['role'] == 'user' %}{% if not loop.first %}{{ '<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>user\n' + text + '<|im_end|>\n' }}"
    "{% else %}{{ '<|im_start|>assistant\n' }}{% generation %}{{ text }}{% endgeneration %}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

#: Molmo2's image tokens, in the order its processor reads them
IMAGE_TOKENS = [
    "<im_patch>",
    "<im_col>",
    "<im_start>",
    "<low_res_im_start>",
    "<frame_start>",
    "<im_end>",
    "<frame_end>",
    "<im_low>",
]
#: the processor settings of allenai/Molmo2-4B's processor_config.json
PROCESSOR_SETTINGS = {
    "image_use_col_tokens": True,
    "use_single_crop_col_tokens": False,
    "use_single_crop_start_token": True,
    "use_frame_special_tokens": False,
    "video_use_col_tokens": False,
}
CROP, PATCH = 16, 4  # a 16-pixel crop of 4x4 patches (the hub's: 378 of 14x14)


def build_molmo2(path: Path) -> None:
    from transformers import Molmo2Config, Molmo2ForConditionalGeneration, Molmo2Processor
    from transformers.models.molmo2.image_processing_molmo2 import Molmo2ImageProcessor

    from evalkit.models.processor_loading import without_video

    chatml = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]
    tok = tokenizer(chatml + IMAGE_TOKENS, chat_template=MOLMO2_TEMPLATE, image_token="<|image|>")
    tok._set_model_specific_special_tokens(
        special_tokens={"image_token": "<|image|>", "video_token": "<|video|>"}
    )
    tok.add_special_tokens({"additional_special_tokens": ["<|video|>"]}, replace_extra_special_tokens=False)
    tok.eos_token = tok.pad_token = tok.bos_token = "<|endoftext|>"
    ids = dict(zip(IMAGE_TOKENS, tok.convert_tokens_to_ids(IMAGE_TOKENS), strict=True))
    config = Molmo2Config(
        text_config={**TEXT, "head_dim": 4, "vocab_size": len(tok), "additional_vocab_size": 0},
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "head_dim": 4,
            "image_size": [CROP, CROP],
            "patch_size": PATCH,
        },
        adapter_config={
            "vision_feature_layer": [-1, -2],
            "hidden_size": 16,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "head_dim": 4,
            "intermediate_size": 32,
            "text_hidden_size": TEXT["hidden_size"],
        },
        image_start_token_id=ids["<im_start>"],
        low_res_image_start_token_id=ids["<low_res_im_start>"],
        image_end_token_id=ids["<im_end>"],
        image_patch_id=ids["<im_patch>"],
        frame_start_token_id=ids["<frame_start>"],
        frame_end_token_id=ids["<frame_end>"],
    )
    image_processor = Molmo2ImageProcessor(
        size={"height": CROP, "width": CROP}, patch_size=PATCH, max_crops=4, overlap_margins=[1, 1]
    )
    processor = without_video(Molmo2Processor)(
        image_processor=image_processor, tokenizer=tok, chat_template=MOLMO2_TEMPLATE, **PROCESSOR_SETTINGS
    )
    processor.saved_video_config = {  # written nested in processor_config.json, as transformers 5 saves it
        "video_processor_type": "Molmo2VideoProcessor",
        "size": {"height": CROP, "width": CROP},
        "patch_size": PATCH,
        "pooling_size": [3, 3],
        "max_fps": 2,
        "processor_class": "Molmo2Processor",
    }
    save(path, seeded(Molmo2ForConditionalGeneration, config), processor)


FAMILIES = [
    Family(
        "Molmo2",
        build_molmo2,
        # saved under the hub's weight names (transformers converts them at load and back at save)
        frozen_prefixes=("model.vision_backbone.image_vit.",),
        lora_weights=("self_attn.att_proj.weight", "self_attn.attn_out.weight"),
        notes="transformers' own classes (allenai/Molmo2-*); without torchvision: images only, its image "
        "processor run in torch",
    ),
]
