"""Phi-4-multimodal's training setup, checked on the matrix's checkpoint at the model level: full
fine-tuning freezes exactly its vision tower (`model.embed_tokens_extend.image_embed.img_processor`), its
projector (`image_embed.img_projection_up` / `_down`) is found for `--projector-lr`, and one full
fine-tuning step on image inputs laid out by hand (one 448-pixel crop: the global view plus one sub-image)
leaves the tower unchanged and trains the projector and the language model; a training batch of images
with different crop counts scores each row as alone. The LoRA targets are checked in
test_lora_targets.py, the model kind in test_model_kind.py, the whole DPO step in test_families.py."""

from __future__ import annotations

import pytest
import torch
from support.families import FAMILIES
from support.families.phi import PHI4_CROP

from evalkit.training.config import TrainConfig
from evalkit.training.model_setup import wrap_for_training
from evalkit.training.projector import projector_modules

pytestmark = pytest.mark.usefixtures("one_thread")

TOWER = "model.embed_tokens_extend.image_embed.img_processor."
PROJECTOR = [f"model.embed_tokens_extend.image_embed.img_projection_{p}" for p in ("down", "up")]


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(method="dpo", model="x", data="x", output="y", **kw)


@pytest.fixture
def model(tmp_path):
    from transformers import Phi4MultimodalForCausalLM

    FAMILIES["Phi-4-multimodal"].build(tmp_path)
    return Phi4MultimodalForCausalLM.from_pretrained(tmp_path, dtype=torch.float32)


def test_full_fine_tuning_freezes_exactly_its_vision_tower(model):
    wrapped = wrap_for_training(model, _cfg(lora_rank=0))
    params = dict(wrapped.named_parameters())
    frozen = {n for n, p in params.items() if not p.requires_grad}
    assert frozen == {n for n in params if n.startswith(TOWER)} and frozen
    assert all(params[f"{p}.weight"].requires_grad for p in PROJECTOR)


def test_its_projector_is_found_and_trained_beside_lora(model):
    assert sorted(projector_modules(model)) == sorted(PROJECTOR)
    wrapped = wrap_for_training(model, _cfg(lora_rank=4, projector_lr=1e-4))
    trainable = {n for n, p in wrapped.named_parameters() if p.requires_grad}
    copies = {n for n in trainable if ".modules_to_save." in n}
    wrapped_modules = {n.split(".modules_to_save.")[0].removeprefix("base_model.model.") for n in copies}
    assert wrapped_modules == set(PROJECTOR)
    assert trainable - copies and all(".lora_" in n for n in trainable - copies)


def _image_inputs(model, seed: int) -> dict[str, torch.Tensor]:
    """One image of one 448-pixel crop, laid out as Phi-4-multimodal's processor lays it out: crops [global,
    sub-image] of 3 x 448 x 448, image size 448 x 448, a 32 x 32 patch mask per crop. Its tokens: 448 / 14
    = 32 patches a side, pooled 2 x 2 to 16; global view 16 rows of (16 + 1 separator) = 272, the same for
    the sub-image, and one separator between them: 545 image tokens."""
    gen = torch.Generator().manual_seed(seed)
    image_id = model.config.vision_config.image_token_id
    ids = [5, 6] + [image_id] * 545 + [7, 8, 9]
    return {
        "input_ids": torch.tensor([ids]),
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
        "image_pixel_values": torch.rand(1, 2, 3, PHI4_CROP, PHI4_CROP, generator=gen) * 2 - 1,
        "image_sizes": torch.tensor([[PHI4_CROP, PHI4_CROP]]),
        "image_attention_mask": torch.ones(1, 2, PHI4_CROP // 14, PHI4_CROP // 14),
    }


def test_one_full_fine_tuning_step_on_images(model):
    wrapped = wrap_for_training(model, _cfg(lora_rank=0))
    inputs = _image_inputs(model, seed=0)
    with torch.no_grad():  # the image reaches the logits (else the step below would prove nothing)
        other = wrapped(**_image_inputs(model, seed=1)).logits
    before = {n: p.detach().clone() for n, p in wrapped.named_parameters()}
    logits = wrapped(**inputs).logits
    assert not torch.allclose(logits, other)
    targets = inputs["input_ids"][0, 1:]
    torch.nn.functional.cross_entropy(logits[0, :-1], targets).backward()
    torch.optim.SGD([p for p in wrapped.parameters() if p.requires_grad], lr=1.0).step()
    after = dict(wrapped.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n].detach())}
    assert not {n for n in changed if n.startswith(TOWER)}
    assert {f"{p}.weight" for p in PROJECTOR} <= changed
    assert any(n.startswith("model.layers.") for n in changed)


class _Pair:
    def __init__(self, prompt, image, chosen, rejected):
        self.prompt, self.image, self.chosen, self.rejected = prompt, image, chosen, rejected


def test_training_batch_of_images_with_different_crop_counts(tmp_path):
    """A 40 x 30 image (one crop) beside a 500 x 300 one (two): the batch pads the first image's crops (zero
    pixels and mask), which its image sizes leave unread; each row scores as it does alone."""
    from PIL import Image

    from evalkit.training.batching import Encoder
    from evalkit.training.dpo import sequence_logps
    from evalkit.training.model_setup import load_model

    FAMILIES["Phi-4-multimodal"].build(tmp_path)
    model, processor = load_model(str(tmp_path))
    model.eval()
    images = [Image.new("RGB", (40, 30), "red"), Image.new("RGB", (500, 300), (0, 128, 255))]
    pairs = [
        _Pair("is it red?", images[0], "a red circle.", "no"),
        _Pair("what colour?", images[1], "blue.", "a green square."),
    ]
    encoder = Encoder(processor)
    batch = encoder.encode_pairs(pairs)
    assert tuple(batch.extras["image_pixel_values"].shape[:2]) == (4, 3)  # rows: chosen x 2, rejected x 2
    with torch.no_grad():
        together = sequence_logps(model, batch).logps.tolist()
        alone = [sequence_logps(model, encoder.encode_pairs([p])).logps.tolist() for p in pairs]
    assert together == pytest.approx([alone[0][0], alone[1][0], alone[0][1], alone[1][1]], abs=1e-5)
