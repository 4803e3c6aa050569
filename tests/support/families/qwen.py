"""LLaVA-OneVision (llava-hf/llava-onevision-qwen2-0.5b-ov-hf), Qwen2-VL (Qwen/Qwen2-VL-2B-Instruct),
Qwen2.5-VL (Qwen/Qwen2.5-VL-3B-Instruct), Qwen3-VL (Qwen/Qwen3-VL-2B-Instruct) and InternVL
(OpenGVLab/InternVL3-1B-hf) shapes: ChatML tokens, each family's chat template and processor class.

Their processors declare a video processor, which needs torchvision; the checkpoints carry its configuration
(nested in processor_config.json, as transformers 5 saves it) and are built and loaded without torchvision
through `evalkit.models.processor_loading`, which leaves the video processor out.
"""

from __future__ import annotations

from pathlib import Path

from evalkit.models.processor_loading import without_video
from support.families import Family
from support.families.common import TEXT, save, seeded, token_ids, tokenizer

_QWEN_TOKENS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|vision_start|>", "<|vision_end|>"]

#: Qwen2-VL-2B-Instruct's (and Qwen2.5-VL's) ChatML template: default system prompt, vision placeholders
QWEN2_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: "
    "{% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: Qwen3-VL-2B-Instruct's: ChatML without a default system prompt (its tool-call branches left out)
QWEN3_VL_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: llava-onevision-qwen2-0.5b-ov-hf's: "<|im_start|>user <image>\n{text}<|im_end|>", images first
ONEVISION_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + ' ' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>' }}{% endfor %}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ '\n' + content['text'] }}"
    "{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ '\n' + content['text'] }}{% endgeneration %}{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

#: InternVL3-1B-hf's: ChatML with InternVL's default system prompt; an image is "<IMG_CONTEXT>\n"
INTERNVL_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\n你是书生·万象，英文名是InternVL，"
    "是由上海人工智能实验室、清华大学及多家合作单位联合开发的"
    "多模态大语言模型。<|im_end|>\n' }}{% endif %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\n' }}"
    "{% elif content['type'] == 'video' %}{{ '<video>\n' }}{% elif content['type'] == 'text' %}"
    "{{ content['text'] }}{% endif %}{% endfor %}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _chatml_tokenizer(template: str, **named: str):
    """The toy tokenizer with ChatML's tokens and the family's named ones (image_token=...): eos
    <|im_end|>, pad <|endoftext|>, no bos (as Qwen2's tokenizer)."""
    tok = tokenizer(_QWEN_TOKENS, chat_template=template, **named)
    tok.eos_token, tok.pad_token, tok.bos_token = "<|im_end|>", "<|endoftext|>", None
    return tok


def _qwen_processor(processor_cls, image_processor, tok, template: str, video: dict):
    """The family's processor class (video processor left out, its configuration kept for saving)."""
    processor = without_video(processor_cls)(
        image_processor=image_processor, tokenizer=tok, chat_template=template
    )
    processor.saved_video_config = video
    return processor


def _qwen_ids(tok) -> dict[str, int]:
    names = {"<|image_pad|>": "image", "<|video_pad|>": "video", "<|vision_start|>": "vision_start"}
    names["<|vision_end|>"] = "vision_end"
    return {f"{v}_token_id": tok.convert_tokens_to_ids(k) for k, v in names.items()}


def _qwen_video(cls_name: str, patch: int, processor_cls: str) -> dict:
    return {
        "video_processor_type": cls_name,
        "patch_size": patch,
        "merge_size": 2,
        "temporal_patch_size": 2,
        "processor_class": processor_cls,
    }


def _build_qwen(path: Path, version: str) -> None:
    import transformers
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    names = {
        "2": ("Qwen2VL", "Qwen2VLForConditionalGeneration", "Qwen2VLConfig"),
        "2.5": ("Qwen2_5_VL", "Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLConfig"),
        "3": ("Qwen3VL", "Qwen3VLForConditionalGeneration", "Qwen3VLConfig"),
    }[version]
    template = QWEN3_VL_TEMPLATE if version == "3" else QWEN2_VL_TEMPLATE
    tok = _chatml_tokenizer(template, image_token="<|image_pad|>", video_token="<|video_pad|>")
    patch = 16 if version == "3" else 14
    factor = patch * 2
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=patch,
        merge_size=2,
        size={"shortest_edge": factor * factor, "longest_edge": factor * factor * 4},
    )
    processor_name = f"{names[0]}Processor"
    processor = _qwen_processor(
        getattr(transformers, processor_name),
        image_processor,
        tok,
        template,
        _qwen_video(f"{'Qwen3VL' if version == '3' else 'Qwen2VL'}VideoProcessor", patch, processor_name),
    )
    ids = token_ids(tok)
    text = dict(TEXT, vocab_size=len(tok), **ids)
    if version == "3":
        text |= {"head_dim": 8, "rope_parameters": {"rope_type": "default", "mrope_section": [2, 1, 1]}}
        text["rope_parameters"]["mrope_interleaved"] = True
        vision = dict(
            depth=2,
            hidden_size=16,
            intermediate_size=32,
            num_heads=4,
            patch_size=16,
            out_hidden_size=16,
            num_position_embeddings=16,
            deepstack_visual_indexes=[1],
        )
    else:
        text["rope_parameters"] = {"rope_type": "default", "mrope_section": [1, 1], "rope_theta": 10000.0}
        vision = dict(depth=2, hidden_size=16, num_heads=4, patch_size=14)
        vision |= {"embed_dim": 16, "mlp_ratio": 2} if version == "2" else {"intermediate_size": 32}
        if version == "2.5":
            vision |= {"out_hidden_size": 16, "window_size": 56, "fullatt_block_indexes": [1]}
    config = getattr(transformers, names[2])(  # the 2B/3B repos tie the LM head to the embeddings
        text_config=text, vision_config=vision, **_qwen_ids(tok), tie_word_embeddings=True
    )
    save(path, seeded(getattr(transformers, names[1]), config), processor)


def build_qwen2_vl(path: Path) -> None:
    _build_qwen(path, "2")


def build_qwen2_5_vl(path: Path) -> None:
    _build_qwen(path, "2.5")


def build_qwen3_vl(path: Path) -> None:
    _build_qwen(path, "3")


def build_llava_onevision(path: Path) -> None:
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionProcessor,
        Qwen2Config,
        SiglipVisionConfig,
    )
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil,
    )

    tok = _chatml_tokenizer(ONEVISION_TEMPLATE, image_token="<image>", video_token="<video>")
    pinpoints = [[32, 32], [32, 64], [64, 32], [64, 64]]
    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": 32, "width": 32}, image_grid_pinpoints=pinpoints, do_pad=True
    )
    video = {"video_processor_type": "LlavaOnevisionVideoProcessor", "size": {"height": 32, "width": 32}}
    video["processor_class"] = "LlavaOnevisionProcessor"
    processor = without_video(LlavaOnevisionProcessor)(
        image_processor=image_processor,
        tokenizer=tok,
        num_image_tokens=4,
        vision_feature_select_strategy="full",
        chat_template=ONEVISION_TEMPLATE,
        vision_aspect_ratio="anyres_max_9",
    )
    processor.saved_video_config = video
    ids = token_ids(tok)
    vision = SiglipVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4, image_size=32
    )
    vision.patch_size = 16
    config = LlavaOnevisionConfig(
        text_config=Qwen2Config(vocab_size=len(tok), **TEXT, **ids),
        vision_config=vision,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        video_token_index=tok.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=pinpoints,
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9",
        **ids,
    )
    save(path, seeded(LlavaOnevisionForConditionalGeneration, config), processor)


def build_internvl(path: Path) -> None:
    from transformers import (
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVisionConfig,
        Qwen2Config,
    )
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    named = {
        "start_image_token": "<img>",
        "end_image_token": "</img>",
        "context_image_token": "<IMG_CONTEXT>",
        "video_token": "<video>",
    }
    tok = _chatml_tokenizer(INTERNVL_TEMPLATE, **named)
    image_processor = GotOcr2ImageProcessorPil(
        size={"height": 32, "width": 32}, crop_to_patches=True, min_patches=1, max_patches=4
    )
    processor = without_video(InternVLProcessor)(
        image_processor=image_processor, tokenizer=tok, image_seq_length=4, chat_template=INTERNVL_TEMPLATE
    )
    processor.saved_video_config = {
        "video_processor_type": "InternVLVideoProcessor",
        "size": {"height": 32, "width": 32},
        "processor_class": "InternVLProcessor",
    }
    ids = token_ids(tok)
    vision = InternVLVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=[32, 32],
        patch_size=[8, 8],
    )
    config = InternVLConfig(
        text_config=Qwen2Config(vocab_size=len(tok), **TEXT, **ids),
        vision_config=vision,
        image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"),
        image_seq_length=4,
        downsample_ratio=0.5,
        **ids,
    )
    save(path, seeded(InternVLForConditionalGeneration, config), processor)


#: Qwen's vision tower less its merger (the projector, which full fine-tuning trains), as the saved weights
#: name it (Qwen2-VL and Qwen2.5-VL keep the hub's "visual.*" keys; Qwen3-VL's are "model.visual.*")
_QWEN_TOWER = ("visual.patch_embed.", "visual.blocks.")
_QWEN3_TOWER = ("model.visual.patch_embed.", "model.visual.blocks.", "model.visual.pos_embed.")
_NO_TORCHVISION = "without torchvision: images only (video processor left out)"
FAMILIES = [
    Family(
        "LLaVA-OneVision",
        build_llava_onevision,
        frozen_prefixes=("vision_tower.",),
        notes=_NO_TORCHVISION,
    ),
    Family("Qwen2-VL", build_qwen2_vl, frozen_prefixes=_QWEN_TOWER, notes=_NO_TORCHVISION),
    Family("Qwen2.5-VL", build_qwen2_5_vl, frozen_prefixes=_QWEN_TOWER, notes=_NO_TORCHVISION),
    Family(
        "Qwen3-VL",
        build_qwen3_vl,
        frozen_prefixes=_QWEN3_TOWER,
        notes=_NO_TORCHVISION,
    ),
    Family("InternVL", build_internvl, frozen_prefixes=("vision_tower.",), notes=_NO_TORCHVISION),
]
