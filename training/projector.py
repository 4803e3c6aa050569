"""The vision-language projector of an image-text-to-text model: the modules between the vision tower and the
language model, which `--projector-lr` trains (as a LoRA `modules_to_save` copy) at its own learning rate.

Families name it differently, so it is found by the module path's ending: `multi_modal_projector` (LLaVA,
LLaVA-NeXT, LLaVA-OneVision, Gemma 3, PaliGemma, Mllama, InternVL), `visual.merger` (Qwen2-VL, Qwen2.5-VL,
Qwen3-VL; Qwen3-VL adds one merger per DeepStack layer, `visual.deepstack_merger_list.N`), `connector`
(Idefics3, SmolVLM), `image_embed.img_projection_up` / `_down` (Phi-4-multimodal: its two projection
layers sit beside the tower, `image_embed.img_processor`, in the image embedding)."""

from __future__ import annotations

import re

#: how each family's projector module path ends (regular expressions, matched after a "." or at the start)
PROJECTOR_NAMES = (
    r"multi_modal_projector",
    r"visual\.merger",
    r"visual\.deepstack_merger_list\.\d+",
    r"connector",
    r"image_embed\.img_projection_(?:up|down)",
)
_PROJECTOR = re.compile(r"(?:^|\.)(?:" + "|".join(PROJECTOR_NAMES) + r")$")


def is_projector(module_path: str) -> bool:
    """Whether `module_path` (a name from `named_modules`) is a projector module."""
    return _PROJECTOR.search(module_path) is not None


def projector_modules(model) -> list[str]:
    """The full paths of the model's projector modules (outermost ones only); [] when it has none."""
    found = [name for name, _ in model.named_modules() if name and is_projector(name)]
    return [n for n in found if not any(n.startswith(f"{outer}.") for outer in found)]


def in_projector(param_name: str) -> bool:
    """Whether the parameter lies inside a projector module, also under peft's wrappers
    (`base_model.model.model.connector.modules_to_save.default.…`)."""
    parts = param_name.split(".")
    return any(is_projector(".".join(parts[:i])) for i in range(1, len(parts)))
