"""`TrainConfig`: every setting of one `evalkit train` run (saved as CKPT/train_config.json).

Defaults follow the seed study's recipes (spec training.md §1a): LoRA r=128, α=2r, AdamW without weight
decay, warmup ratio 0.03 then linear decay, β=0.1 on summed log-probs; learning rate 5e-5 for DPO and
4e-4 for SFT when `lr` is not given. `lora_rank=0` means full fine-tuning.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from evalkit.types import UserError

METHODS = ("sft", "dpo")
LATER_METHODS = ("rs", "steerlm", "online-dpo", "mixed-dpo", "bdhs")
REFERENCES = ("frozen", "adapter-off", "cached")
DEFAULT_LR = {"sft": 4e-4, "dpo": 5e-5}

#: settings that may differ between an interrupted run and the command that resumes it
RESUME_FREE = ("save_every", "progress", "overwrite")


@dataclass
class TrainConfig:
    method: str
    model: str
    data: str
    output: str
    format: str = "auto"
    max_steps: int | None = None  # optimizer steps; overrides epochs when given
    epochs: float = 1.0
    lr: float | None = None  # None: DEFAULT_LR[method]
    beta: float = 0.1
    loss: str = "sigmoid"  # DPO: sigmoid | ipo
    batch_size: int = 8  # examples (DPO: pairs) per micro-batch
    grad_accum: int = 1
    lora_rank: int = 128  # 0: full fine-tuning
    lora_alpha: float | None = None  # None: 2 * lora_rank
    lora_dropout: float = 0.0
    train_vision: bool = False  # full fine-tuning: also train the vision tower (LoRA never touches it)
    merge: bool = True  # LoRA: merge the adapter into the base weights when saving
    reference: str | None = None  # DPO: None -> adapter-off with LoRA, frozen without
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    max_length: int | None = None
    save_every: int = 50  # optimizer steps between resume checkpoints (0: never)
    device: str = "auto"
    progress: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.method in LATER_METHODS:
            raise UserError(
                f"training method {self.method!r} is not implemented yet (planned); available now: "
                f"{', '.join(METHODS)}"
            )
        if self.method not in METHODS:
            raise UserError(
                f"unknown training method {self.method!r}; methods: {', '.join(METHODS)} "
                f"(planned: {', '.join(LATER_METHODS)})"
            )
        if self.loss not in ("sigmoid", "ipo"):
            raise UserError(f"--loss must be sigmoid or ipo, got {self.loss!r}")
        if self.reference is not None and self.reference not in REFERENCES:
            raise UserError(f"--reference must be one of {', '.join(REFERENCES)}, got {self.reference!r}")
        if self.reference == "adapter-off" and self.lora_rank == 0:
            raise UserError("--reference adapter-off needs LoRA (--lora-rank > 0); use frozen or cached")
        if self.method == "sft" and self.reference is not None:
            raise UserError("--reference applies to DPO only")
        checks = [
            ("batch_size", self.batch_size >= 1),
            ("grad_accum", self.grad_accum >= 1),
            ("lora_rank", self.lora_rank >= 0),
            ("beta", self.beta > 0),
            ("epochs", self.epochs > 0),
            ("max_steps", self.max_steps is None or self.max_steps >= 1),
            ("lr", self.lr is None or self.lr > 0),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1),
            ("save_every", self.save_every >= 0),
            ("max_length", self.max_length is None or self.max_length >= 2),
        ]
        bad = [name for name, ok in checks if not ok]
        if bad:
            raise UserError(f"invalid value for {', '.join('--' + b.replace('_', '-') for b in bad)}")

    @property
    def learning_rate(self) -> float:
        return DEFAULT_LR[self.method] if self.lr is None else self.lr

    @property
    def reference_kind(self) -> str | None:
        if self.method != "dpo":
            return None
        if self.reference is not None:
            return self.reference
        return "adapter-off" if self.lora_rank else "frozen"

    @property
    def alpha(self) -> float:
        return 2.0 * self.lora_rank if self.lora_alpha is None else self.lora_alpha

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(lr_used=self.learning_rate, reference_used=self.reference_kind, lora_alpha_used=self.alpha)
        return out

    def resume_key(self) -> dict[str, Any]:
        """The settings a resumed run must share with the interrupted one."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in RESUME_FREE}
