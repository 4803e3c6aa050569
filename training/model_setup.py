"""The model side of `evalkit train`: resolving and loading the starting checkpoint (safetensors only),
LoRA or full fine-tuning set-up, the optimizer's parameter groups and the learning-rate schedule (see
`training.trainer` for what each setting means)."""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evalkit.training.config import TrainConfig
from evalkit.training.lora_targets import lora_targets
from evalkit.training.projector import in_projector, projector_modules
from evalkit.types import UserError

#: module names of vision towers: LLaVA-style, Qwen-VL, Idefics/Mllama/SigLIP, Molmo, Phi-3/4 (their
#: CLIP/SigLIP image encoder; the projection beside it trains)
VISION_TOWER_NAMES = (
    "vision_tower",
    "visual",
    "vision_model",
    "vision_encoder",
    "vision_backbone",
    "img_processor",
)


def resolve_model(model: str) -> str:
    """`toy` → the built-in toy checkpoint (as `evalkit run` resolves it); `hf:X` → X."""
    if model == "toy":
        from evalkit.toy.model import ensure_toy_model

        return str(ensure_toy_model())
    return model.removeprefix("hf:")


def load_model(source: str, trust_remote_code: bool = False):
    """(model, processor or tokenizer) in float32, classified like `evalkit.models.hf.HFBackend`
    (`evalkit.models.model_kind`)."""
    import torch
    import transformers

    from evalkit.models.hf_loading import refuse_pickled_weights, user_errors
    from evalkit.models.model_kind import classify, load_processor_or_tokenizer
    from evalkit.models.phi4mm import make_vision_attention_bidirectional

    kind = classify(source, trust_remote_code)
    transformers.utils.logging.disable_progress_bar()
    refuse_pickled_weights(Path(source).expanduser())
    # never unpickle weights
    load = {"dtype": torch.float32, "use_safetensors": True, "trust_remote_code": trust_remote_code}
    model = user_errors(source, lambda: kind.auto_class().from_pretrained(source, **load))
    make_vision_attention_bidirectional(model)  # Phi-4-multimodal's tower (evalkit.models.phi4mm)
    return model, load_processor_or_tokenizer(source, kind, trust_remote_code)


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for name in ("evalkit", "torch", "transformers", "peft"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def disable_dropout(model) -> None:
    import torch

    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0


def wrap_for_training(model, cfg: TrainConfig):
    """LoRA-wrap or set up full fine-tuning; returns the model to train."""
    if cfg.lora_rank:
        from peft import LoraConfig, get_peft_model

        model.requires_grad_(False)
        projector = projector_modules(model) if cfg.projector_lr is not None else []
        if cfg.projector_lr is not None and not projector:
            raise UserError(
                "--projector-lr: the model has no vision-language projector (no multi_modal_projector, "
                "visual.merger or connector module); leave --projector-lr out"
            )
        lora = LoraConfig(
            r=cfg.lora_rank,
            lora_alpha=cfg.alpha,
            lora_dropout=cfg.lora_dropout,
            # the language model's attention projections (training.lora_targets), by full name
            target_modules=lora_targets(model),
            bias="none",
            # the seed recipe also trains the projector (at its own learning rate); peft keeps a trained
            # copy, so the adapter-off reference still sees the original projector
            modules_to_save=projector or None,
        )
        with warnings.catch_warnings():  # peft calls transformers' deprecated is_gradient_checkpointing
            warnings.simplefilter("ignore", FutureWarning)
            return get_peft_model(model, lora)
    model.requires_grad_(True)
    if not cfg.train_vision:
        freeze_vision_tower(model)
    return model


def vision_towers(model) -> list[tuple[str, Any]]:
    """(name, module) of the model's vision tower(s), found by the attribute names transformers and the
    remote-code families give them, wherever the model nests them (`model.visual`, `model.vision_tower`)."""
    found: list[tuple[str, Any]] = []
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in VISION_TOWER_NAMES and not any(
            name.startswith(f"{outer}.") for outer, _ in found
        ):
            found.append((name, module))
    return found


def freeze_vision_tower(model) -> None:
    """Full fine-tuning without --train-vision: the vision tower's parameters stay frozen, except a
    projector nested inside it (Qwen's `visual.merger`), which trains as LLaVA's projector does. An image
    model whose tower is not found is refused rather than trained whole."""
    towers = vision_towers(model)
    if not towers:
        if getattr(model.config, "vision_config", None) is not None:
            raise UserError(
                f"full fine-tuning: cannot find the vision tower of this {type(model).__name__} (no module "
                f"named {' / '.join(VISION_TOWER_NAMES)}) to keep frozen; pass --train-vision to train it "
                "too, or train LoRA adapters (--lora-rank)"
            )
        return
    for tower_name, tower in towers:
        for name, p in tower.named_parameters():
            if not in_projector(f"{tower_name}.{name}"):
                p.requires_grad_(False)


def enable_gradient_checkpointing(model, cfg: TrainConfig) -> None:
    """Recompute activations in the backward pass (less memory, more compute)."""
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x's name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.lora_rank:
        model.enable_input_require_grads()


def schedule(total: int, warmup: int, kind: str = "linear") -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        left = max(0.0, (total - step) / max(1, total - warmup))
        return left if kind == "linear" else 0.5 * (1.0 - math.cos(math.pi * left))

    return factor


def param_groups(trainable, cfg: TrainConfig) -> list[dict[str, Any]]:
    """One group, or two when the projector has its own learning rate."""
    if cfg.projector_lr is None:
        return [{"params": [p for _, p in trainable], "lr": cfg.learning_rate}]
    is_proj = [in_projector(name) for name, _ in trainable]
    return [
        {
            "params": [p for (_, p), j in zip(trainable, is_proj, strict=True) if not j],
            "lr": cfg.learning_rate,
        },
        {"params": [p for (_, p), j in zip(trainable, is_proj, strict=True) if j], "lr": cfg.projector_lr},
    ]
