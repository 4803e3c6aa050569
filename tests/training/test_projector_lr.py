"""`--projector-lr` finds the vision-language projector of every image family (training.projector): the
projector's parameter group holds exactly the projector's parameters, and under LoRA peft's trained copy of
the projector (`modules_to_save`) steps at the projector's learning rate while the adapters step at --lr.
Each family's model is built from its transformers config classes (tiny, random, no checkpoint files); the
projector paths below are the families' own module names, written out here, not found by the code."""

from __future__ import annotations

import pytest
import torch

from evalkit.training.config import TrainConfig
from evalkit.training.model_setup import param_groups, wrap_for_training
from evalkit.types import UserError

pytestmark = pytest.mark.usefixtures("one_thread")

TEXT = {
    "vocab_size": 64,
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 0,
}
CLIP = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4}
SIGLIP = {**CLIP, "image_size": 32, "patch_size": 8}
QWEN_VISION = {"depth": 2, "hidden_size": 16, "num_heads": 4, "patch_size": 8, "temporal_patch_size": 2}
QWEN_NEW = {**QWEN_VISION, "intermediate_size": 32, "out_hidden_size": 16}
QWEN_IDS = {"image_token_id": 5, "video_token_id": 6}


def _config(family: str):
    import transformers as t

    if family == "LLaVA":
        vision = t.CLIPVisionConfig(**CLIP, image_size=32, patch_size=16)
        return t.LlavaConfig(text_config=t.LlamaConfig(**TEXT), vision_config=vision, image_token_index=5)
    if family == "LLaVA-OneVision":
        vision = t.SiglipVisionConfig(**SIGLIP)
        return t.LlavaOnevisionConfig(
            text_config=t.Qwen2Config(**TEXT), vision_config=vision, image_token_index=5, video_token_index=6
        )
    if family == "Qwen2-VL":
        return t.Qwen2VLConfig(text_config=TEXT, vision_config={**QWEN_VISION, "embed_dim": 16}, **QWEN_IDS)
    if family == "Qwen2.5-VL":
        vision = {**QWEN_NEW, "fullatt_block_indexes": [1], "window_size": 16}
        return t.Qwen2_5_VLConfig(text_config=TEXT, vision_config=vision, **QWEN_IDS)
    if family == "Qwen3-VL":
        vision = {**QWEN_NEW, "num_position_embeddings": 16, "deepstack_visual_indexes": [0, 1]}
        return t.Qwen3VLConfig(text_config={**TEXT, "head_dim": 4}, vision_config=vision, **QWEN_IDS)
    if family == "InternVL":
        return t.InternVLConfig(text_config=t.Qwen2Config(**TEXT), vision_config=SIGLIP, image_token_id=5)
    if family == "Idefics3":
        return t.Idefics3Config(text_config=t.LlamaConfig(**TEXT), vision_config=SIGLIP, image_token_id=5)
    if family == "SmolVLM":
        return t.SmolVLMConfig(text_config=t.LlamaConfig(**TEXT), vision_config=SIGLIP, image_token_id=5)
    if family == "Mllama":
        vision = {
            **SIGLIP,
            "num_global_layers": 1,
            "attention_heads": 4,
            "vision_output_dim": 32,
            "intermediate_layers_indices": [0],
            "max_num_tiles": 2,
            "supported_aspect_ratios": [[1, 1], [1, 2]],
        }
        text = {**TEXT, "cross_attention_layers": [1]}
        return t.MllamaConfig(text_config=text, vision_config=vision, image_token_index=5)
    if family == "Gemma 3":
        text = {**TEXT, "head_dim": 4}
        ids = {"image_token_index": 5, "boi_token_index": 6, "eoi_token_index": 7}
        return t.Gemma3Config(text_config=text, vision_config=SIGLIP, mm_tokens_per_image=4, **ids)
    if family == "PaliGemma":
        return t.PaliGemmaConfig(
            text_config={**TEXT, "model_type": "gemma", "head_dim": 4},
            vision_config={**SIGLIP, "model_type": "siglip_vision_model"},
            projection_dim=16,
            hidden_size=16,
            vocab_size=64,
            image_token_index=5,
        )
    raise AssertionError(family)


#: family -> the paths of its projector modules in transformers' model (AutoModelForImageTextToText)
PROJECTORS = {
    "LLaVA": ("model.multi_modal_projector",),
    "LLaVA-OneVision": ("model.multi_modal_projector",),
    "Qwen2-VL": ("model.visual.merger",),
    "Qwen2.5-VL": ("model.visual.merger",),
    # Qwen3-VL's DeepStack feeds two more vision layers to the language model, each through its own merger
    "Qwen3-VL": (
        "model.visual.merger",
        "model.visual.deepstack_merger_list.0",
        "model.visual.deepstack_merger_list.1",
    ),
    "InternVL": ("model.multi_modal_projector",),
    "Idefics3": ("model.connector",),
    "SmolVLM": ("model.connector",),
    "Mllama": ("model.multi_modal_projector",),
    "Gemma 3": ("model.multi_modal_projector",),
    "PaliGemma": ("model.multi_modal_projector",),
}

LR, PROJECTOR_LR = 1e-3, 3e-2


def _model(family: str):
    import transformers

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return transformers.AutoModelForImageTextToText.from_config(_config(family)).eval()


def _cfg(**kw) -> TrainConfig:
    settings = {"lora_rank": 4, "projector_lr": PROJECTOR_LR, "lr": LR, "lora_dropout": 0.0, **kw}
    return TrainConfig(method="dpo", model="unused", data="unused", output="unused", **settings)


def _ids(params) -> set[int]:
    return {id(p) for p in params}


@pytest.mark.parametrize("family", list(PROJECTORS))
def test_projector_group_holds_exactly_the_projector(family):
    model = _model(family)
    trainable = list(model.named_parameters())
    rest, projector = param_groups(trainable, _cfg())
    expected = _ids(p for path in PROJECTORS[family] for p in model.get_submodule(path).parameters())
    assert expected, f"{family}: the declared projector has no parameters"
    assert _ids(projector["params"]) == expected
    assert _ids(rest["params"]) == _ids(p for _, p in trainable) - expected
    assert (rest["lr"], projector["lr"]) == (LR, PROJECTOR_LR)


@pytest.mark.parametrize("family", list(PROJECTORS))
def test_lora_trains_a_copy_of_the_projector_at_the_projector_lr(family):
    model = _model(family)
    originals = {path: model.get_submodule(path) for path in PROJECTORS[family]}
    before = {path: [p.detach().clone() for p in m.parameters()] for path, m in originals.items()}
    peft_model = wrap_for_training(model, _cfg())
    trainable = [(n, p) for n, p in peft_model.named_parameters() if p.requires_grad]
    copies = {
        path: peft_model.get_submodule(f"base_model.model.{path}").modules_to_save["default"]
        for path in PROJECTORS[family]
    }
    copy_params = _ids(p for m in copies.values() for p in m.parameters())
    groups = param_groups(trainable, _cfg())
    assert _ids(groups[1]["params"]) == copy_params
    assert all("lora_" in n for n, p in trainable if id(p) not in copy_params)
    # one AdamW step from unit gradients moves every parameter by its group's lr (Adam's first step is
    # lr * g / |g|): the projector's copy by PROJECTOR_LR, the adapters by LR, the original not at all
    for _, p in trainable:
        p.grad = torch.ones_like(p)
    start = {n: p.detach().clone() for n, p in trainable}
    torch.optim.AdamW(groups, weight_decay=0.0).step()
    for n, p in trainable:
        lr = PROJECTOR_LR if id(p) in copy_params else LR
        assert torch.allclose(start[n] - p.detach(), torch.full_like(p, lr), rtol=1e-4), n
    for path, m in originals.items():
        assert all(torch.equal(a, b) for a, b in zip(before[path], m.parameters(), strict=True)), path


def test_a_model_without_a_projector_is_a_one_line_error():
    import transformers

    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**TEXT))
    with pytest.raises(UserError) as info:
        wrap_for_training(model, _cfg())
    assert "\n" not in str(info.value) and "no vision-language projector" in str(info.value)
