"""Idefics3 (HuggingFaceM4/Idefics3-8B-Llama3), SmolVLM (HuggingFaceTB/SmolVLM-Instruct) and SmolVLM2
(HuggingFaceTB/SmolVLM2-256M-Video-Instruct) shapes.

SmolVLM-Instruct is an Idefics3 checkpoint (model_type idefics3, `Idefics3Processor`) with SmolLM's tokens;
SmolVLM2 has its own classes: `SmolVLMForConditionalGeneration` and `SmolVLMProcessor`, which holds a video
processor (torchvision) and imports num2words. All three split an image into tiles of `max_image_size` plus
a global view, so the test's differently sized images give prompts of different lengths."""

from __future__ import annotations

import json
from pathlib import Path

from support.families import Family
from support.families.common import TEXT, save, seeded, token_ids, tokenizer

#: the chat template of SmolVLM-Instruct and SmolVLM2 ("<|im_start|>User:<image>{text}<end_of_utterance>\n
#: Assistant:"); Idefics3-8B-Llama3's is the same after "<|begin_of_text|>" instead of "<|im_start|>"
_TEMPLATE = (
    "{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}"
    "{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
IDEFICS3_TEMPLATE = "<|begin_of_text|>" + _TEMPLATE
SMOLVLM_TEMPLATE = "<|im_start|>" + _TEMPLATE

#: the image tokens both processors use: tiles are introduced by <fake_token_around_image><row_i_col_j>
IMAGE_TOKENS = [
    "<fake_token_around_image>",
    "<image>",
    "<end_of_utterance>",
    "<global-img>",
    *[f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)],
]

#: a SigLIP-like tower over 32-pixel tiles of 8-pixel patches; with scale_factor 2 (pixel shuffle) each tile
#: is 16 patches -> 4 image tokens
VISION = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 32,
    "patch_size": 8,
}
SCALE_FACTOR = 2
IMAGE_SEQ_LEN = (VISION["image_size"] // VISION["patch_size"]) ** 2 // SCALE_FACTOR**2
#: images are resized to a longest edge of 128, then up to multiples of 32 and split into 32-pixel tiles (plus
#: the global view): the test's 4:3, 1:1 and 30:52 images give 4 x 3, 4 x 4 and 3 x 4 tiles
IMAGE_SIZES = {"size": {"longest_edge": 128}, "max_image_size": {"longest_edge": 32}}


def _build_idefics3_classes(path: Path, template: str, bos: str) -> None:
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor, LlamaConfig
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    tok = tokenizer([bos, *IMAGE_TOKENS], chat_template=template)
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=True, image_mean=[0.5] * 3, image_std=[0.5] * 3, **IMAGE_SIZES
    )
    processor = Idefics3Processor(image_processor, tok, image_seq_len=IMAGE_SEQ_LEN, chat_template=template)
    ids = token_ids(tok)
    config = Idefics3Config(
        text_config=LlamaConfig(vocab_size=len(tok), **TEXT, **ids),
        vision_config=VISION,
        scale_factor=SCALE_FACTOR,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        **ids,
    )
    save(path, seeded(Idefics3ForConditionalGeneration, config), processor)


def build_idefics3(path: Path) -> None:
    _build_idefics3_classes(path, IDEFICS3_TEMPLATE, "<|begin_of_text|>")


def build_smolvlm(path: Path) -> None:
    _build_idefics3_classes(path, SMOLVLM_TEMPLATE, "<|im_start|>")


def build_smolvlm2(path: Path) -> None:
    """SmolVLM2's classes. The processor is written file by file as the hub repo holds it (processor_config,
    preprocessor_config with the video sampling, tokenizer, chat template): building `SmolVLMProcessor`
    needs its video processor, and that needs torchvision, which the checkpoint's users may lack."""
    from transformers import LlamaConfig, SmolVLMConfig, SmolVLMForConditionalGeneration
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    tok = tokenizer(["<|im_start|>", *IMAGE_TOKENS, "<video>"], chat_template=SMOLVLM_TEMPLATE)
    ids = token_ids(tok)
    config = SmolVLMConfig(
        text_config=LlamaConfig(vocab_size=len(tok), **TEXT, **ids),
        vision_config=VISION,
        scale_factor=SCALE_FACTOR,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        **ids,
    )
    save(path, seeded(SmolVLMForConditionalGeneration, config), tok)
    image_processor = SmolVLMImageProcessorPil(
        do_image_splitting=True, image_mean=[0.5] * 3, image_std=[0.5] * 3, **IMAGE_SIZES
    )
    image_processor.save_pretrained(path)
    pre = json.loads((path / "preprocessor_config.json").read_text())
    pre |= {
        "image_processor_type": "SmolVLMImageProcessor",
        "processor_class": "SmolVLMProcessor",
        "video_sampling": {"fps": 1, "max_frames": 4, "video_size": {"longest_edge": 32}},
    }
    (path / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))
    processor = {"image_seq_len": IMAGE_SEQ_LEN, "processor_class": "SmolVLMProcessor"}
    (path / "processor_config.json").write_text(json.dumps(processor, indent=2))
    (path / "chat_template.jinja").write_text(SMOLVLM_TEMPLATE)


FROZEN = ("model.vision_model.",)
FAMILIES = [
    Family("Idefics3", build_idefics3, frozen_prefixes=FROZEN),
    Family(
        "SmolVLM",
        build_smolvlm,
        frozen_prefixes=FROZEN,
        notes="SmolVLM-Instruct (Idefics3 classes)",
    ),
    Family(
        "SmolVLM2",
        build_smolvlm2,
        frozen_prefixes=FROZEN,
        requires=("num2words",),
        notes="needs `pip install 'evalkit[smolvlm]'` (num2words)",
    ),
]
