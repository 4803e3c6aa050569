"""Full fine-tuning keeps the vision tower frozen (unless --train-vision) for every image family, wherever
transformers nests the tower (Qwen's `model.visual`, LLaVA's `model.vision_tower`); a projector inside the
tower (Qwen's merger) trains like LLaVA's; an image model whose tower cannot be found is refused."""

from __future__ import annotations

import pytest
import torch
from support.families import FAMILIES
from transformers import AutoModelForImageTextToText

from evalkit.training.config import TrainConfig
from evalkit.training.model_setup import wrap_for_training
from evalkit.types import UserError

pytestmark = pytest.mark.usefixtures("one_thread")

#: family -> (prefix of its vision tower's parameters, parts inside it that are the projector)
TOWERS = {
    "LLaVA-1.5": ("model.vision_tower.", ()),
    "LLaVA-NeXT": ("model.vision_tower.", ()),
    "LLaVA-OneVision": ("model.vision_tower.", ()),
    "Qwen2-VL": ("model.visual.", ("model.visual.merger.",)),
    "Qwen2.5-VL": ("model.visual.", ("model.visual.merger.",)),
    "Qwen3-VL": ("model.visual.", ("model.visual.merger.", "model.visual.deepstack_merger_list.")),
    "InternVL": ("model.vision_tower.", ()),
    "Molmo2": ("model.vision_tower.", ()),
}


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(method="dpo", model="x", data="x", output="y", lora_rank=0, **kw)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    def get(name: str):
        path = tmp_path_factory.mktemp(name.replace(".", "_"))
        FAMILIES[name].build(path)
        return AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32)

    return get


@pytest.mark.parametrize("name", sorted(TOWERS))
def test_full_fine_tuning_freezes_exactly_the_vision_tower(models, name):
    tower, projector = TOWERS[name]
    model = wrap_for_training(models(name), _cfg())
    params = dict(model.named_parameters())
    frozen = {n for n, p in params.items() if not p.requires_grad}
    expected = {n for n in params if n.startswith(tower) and not n.startswith(projector or ("-",))}
    assert expected and frozen == expected
    assert any(n.startswith("model.language_model.") for n in params if n not in frozen)


@pytest.mark.parametrize("name", ["Qwen2-VL", "LLaVA-1.5"])
def test_train_vision_trains_the_tower_too(models, name):
    model = wrap_for_training(models(name), _cfg(train_vision=True))
    assert all(p.requires_grad for p in model.parameters())


def test_an_image_model_without_a_known_tower_is_refused(models):
    model = models("LLaVA-1.5")
    model.model.image_encoder = model.model.vision_tower  # a tower under a name evalkit does not know
    del model.model.vision_tower
    with pytest.raises(UserError) as info:
        wrap_for_training(model, _cfg())
    assert "\n" not in str(info.value) and "--train-vision" in str(info.value)
    wrap_for_training(model, _cfg(train_vision=True))  # asked to train it: nothing to find
