"""Default LoRA targets: for every family, `evalkit train`'s LoRA wraps exactly the attention projections of
the language model (q/k/v/o, Phi's fused qkv_proj, Mllama's cross-attention), never the vision tower or the
projector. Families of the matrix (tests/support/families) are built as checkpoints; the others are built
cheaply from their config classes. Expectations are written out per family, by name."""

from __future__ import annotations

import re
import warnings

import pytest
import torch
from support.families import FAMILIES

from evalkit.models.model_kind import classify
from evalkit.training.config import TrainConfig
from evalkit.training.lora_targets import lora_targets
from evalkit.training.model_setup import load_model, wrap_for_training

pytestmark = pytest.mark.usefixtures("one_thread")
pytest.importorskip("peft")

TXT = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 64,
    "pad_token_id": 0,
}
V = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4}
QKVO = r"\.(q|k|v|o)_proj"
MROPE = {"rope_type": "default", "mrope_section": [1, 1, 0], "rope_theta": 10000.0}
QWEN_VISION = {
    "hidden_size": 16,
    "num_heads": 4,
    "patch_size": 4,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
}


def _from_config(name: str):
    """Tiny random models of families whose checkpoints the matrix may not build (yet)."""
    import transformers as t

    cases = {
        "Idefics3": lambda: t.Idefics3ForConditionalGeneration(
            t.Idefics3Config(
                text_config={"model_type": "llama", **TXT},
                vision_config={**V, "patch_size": 4, "image_size": 16},
            )
        ),
        "Gemma 3": lambda: t.Gemma3ForConditionalGeneration(
            t.Gemma3Config(
                text_config={**TXT, "head_dim": 4},
                vision_config={**V, "patch_size": 4, "image_size": 16},
                mm_tokens_per_image=4,
            )
        ),
        "Mllama": lambda: t.MllamaForConditionalGeneration(
            t.MllamaConfig(
                text_config={**TXT, "cross_attention_layers": [1]},
                vision_config={
                    "hidden_size": 16,
                    "intermediate_size": 32,
                    "num_hidden_layers": 2,
                    "num_global_layers": 1,
                    "attention_heads": 4,
                    "image_size": 16,
                    "patch_size": 4,
                    "vision_output_dim": 32,
                    "intermediate_layers_indices": [0],
                },
            )
        ),
        "PaliGemma": lambda: t.PaliGemmaForConditionalGeneration(
            t.PaliGemmaConfig(
                text_config={"model_type": "gemma", **TXT, "head_dim": 4},
                vision_config={**V, "patch_size": 4, "image_size": 16, "projection_dim": 16},
            )
        ),
        "Qwen2-VL": lambda: t.Qwen2VLForConditionalGeneration(
            t.Qwen2VLConfig(
                text_config={**TXT, "rope_parameters": MROPE},
                vision_config={**QWEN_VISION, "depth": 1, "embed_dim": 16},
            )
        ),
        "Qwen2.5-VL": lambda: t.Qwen2_5_VLForConditionalGeneration(
            t.Qwen2_5_VLConfig(
                text_config={**TXT, "rope_parameters": MROPE},
                vision_config={
                    **QWEN_VISION,
                    "depth": 1,
                    "out_hidden_size": 16,
                    "intermediate_size": 32,
                    "fullatt_block_indexes": [0],
                },
            )
        ),
        "Qwen3-VL": lambda: t.Qwen3VLForConditionalGeneration(
            t.Qwen3VLConfig(
                text_config={**TXT, "head_dim": 4, "rope_parameters": MROPE},
                vision_config={
                    **QWEN_VISION,
                    "depth": 1,
                    "out_hidden_size": 16,
                    "intermediate_size": 32,
                    "deepstack_visual_indexes": [0],
                    "num_position_embeddings": 16,
                },
            )
        ),
        "LLaVA-OneVision": lambda: t.LlavaOnevisionForConditionalGeneration(
            t.LlavaOnevisionConfig(
                text_config={"model_type": "qwen2", **TXT},
                vision_config={"model_type": "siglip_vision_model", **V, "patch_size": 4, "image_size": 16},
            )
        ),
        "InternVL": lambda: t.InternVLForConditionalGeneration(
            t.InternVLConfig(
                text_config={"model_type": "qwen2", **TXT},
                vision_config={**V, "patch_size": [4, 4], "image_size": [16, 16]},
            )
        ),
        "Phi-4-multimodal": lambda: t.Phi4MultimodalForCausalLM(
            t.Phi4MultimodalConfig(
                **TXT,
                bos_token_id=1,
                eos_token_id=2,
                vision_config={**V, "patch_size": 4, "image_size": 16, "crop_size": 16},
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
                    "input_size": 8,
                    "time_reduction": 8,
                },
            )
        ),
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return cases[name]()


#: family -> (the full names the targets must match, how many: layers x projections)
EXPECTED = {
    "Idefics3": (r"model\.text_model\.layers\.[01]\.self_attn" + QKVO, 8),
    "Gemma 3": (r"model\.language_model\.layers\.[01]\.self_attn" + QKVO, 8),
    # cross-attention layers' projections read the image states, but belong to the LM (the matrix's
    # checkpoint and the config-built one differ in their layer count: every attention projection counts)
    "Mllama": (r"model\.language_model\.layers\.\d+\.(self|cross)_attn" + QKVO, None),
    "PaliGemma": (r"model\.language_model\.layers\.[01]\.self_attn" + QKVO, 8),
    "Qwen2-VL": (r"model\.language_model\.layers\.[01]\.self_attn" + QKVO, 8),
    "Qwen2.5-VL": (r"model\.language_model\.layers\.[01]\.self_attn" + QKVO, 8),
    "Qwen3-VL": (r"model\.language_model\.layers\.[01]\.self_attn" + QKVO, 8),
    "LLaVA-OneVision": (r"model\.language_model\.layers\.[01]\.self_attn" + QKVO, 8),
    "InternVL": (r"model\.language_model\.layers\.[01]\.self_attn" + QKVO, 8),
    "Phi-4-multimodal": (r"model\.layers\.[01]\.self_attn\.(qkv|o)_proj", 4),
    "LLaVA-1.5": (r"model\.language_model\.layers\.[01]\.self_attn" + QKVO, 8),
    "LLaVA-NeXT": (r"model\.language_model\.layers\.[01]\.self_attn" + QKVO, 8),
    "Llama 3 (text)": (r"model\.layers\.[01]\.self_attn" + QKVO, 8),
    "Qwen2 (text)": (r"model\.layers\.[01]\.self_attn" + QKVO, 8),
    "Phi-3 (text)": (r"model\.layers\.[01]\.self_attn\.(qkv|o)_proj", 4),
    # its CLIP tower (vision_embed_tokens.img_processor) has q/k/v/out_proj too: never targeted
    "Phi-3.5-vision (remote code)": (r"model\.layers\.[01]\.self_attn\.(qkv|o)_proj", 4),
    "Molmo (remote code)": (r"model\.layers\.[01]\.self_attn" + QKVO, 8),
}
#: a matrix family not listed above: its language model's attention projections, under the usual names
GENERIC = r"(model\.)?(language_model\.|text_model\.)?(model\.)?layers\.\d+\.(self|cross)_attn"
GENERIC += r"\.(q|k|v|o|qkv)_proj"


def _check(name: str, model) -> None:
    pattern, count = EXPECTED.get(name, (GENERIC, None))
    targets = lora_targets(model)
    assert all(re.fullmatch(pattern, t) for t in targets), [
        t for t in targets if not re.fullmatch(pattern, t)
    ]
    linear = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert len(targets) == (count or len([n for n in linear if re.fullmatch(pattern, n)]))
    assert not [t for t in targets if re.search(r"vision|visual|projector|merger|connector|audio", t)]

    cfg = TrainConfig(method="dpo", model="m", data="d", output="o", lora_rank=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapped = wrap_for_training(model, cfg)
    lora = {n.removeprefix("base_model.model.") for n, m in wrapped.named_modules() if hasattr(m, "lora_A")}
    assert lora == set(targets)
    trainable = {n for n, p in wrapped.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n for n in trainable)


#: built from config classes whether or not the matrix builds them too (cheap, and independent of the
#: packages a family's processor needs)
FROM_CONFIG = (
    "Idefics3", "Gemma 3", "Mllama", "PaliGemma", "Qwen2-VL", "Qwen2.5-VL", "Qwen3-VL", "LLaVA-OneVision",
    "InternVL", "Phi-4-multimodal",
)  # fmt: skip


@pytest.mark.parametrize("name", FROM_CONFIG)
def test_lora_targets_of_families_built_from_config(name):
    _check(name, _from_config(name))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_lora_targets_of_matrix_families(family, tmp_path):
    f = FAMILIES[family]
    for module in f.requires:
        pytest.importorskip(module)
    f.build(tmp_path)
    if "dpo-lora" in f.unsupported:  # evalkit refuses to train it: its weights are checked all the same
        kind = classify(str(tmp_path), f.trust_remote_code)
        model = kind.auto_class().from_pretrained(tmp_path, trust_remote_code=f.trust_remote_code)
    else:
        model, _ = load_model(str(tmp_path), trust_remote_code=f.trust_remote_code)
    _check(family, model)


def test_no_language_model_is_a_one_line_error():
    from evalkit.types import UserError

    with pytest.raises(UserError, match="cannot find the language model.*--lora-rank 0"):
        lora_targets(torch.nn.Sequential(torch.nn.Linear(2, 2)))
