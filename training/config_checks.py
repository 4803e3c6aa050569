"""The checks of a `TrainConfig` (`TrainConfig.validate`, run when one is made): known methods, losses,
references and sources; flags only where their method uses them; every number in range and finite."""

from __future__ import annotations

import math

from evalkit.training.config import (
    DPO_METHODS,
    FLIP_METHODS,
    METHODS,
    ONLINE_METHODS,
    RANKED_METHODS,
    REFERENCES,
    SECOND_SOURCES,
    SFT_METHODS,
    TrainConfig,
)
from evalkit.types import UserError


def check(cfg: TrainConfig) -> None:
    """Raise a one-line `UserError` for the first unknown, inapplicable or out-of-range setting."""
    if cfg.method not in METHODS:
        raise UserError(f"unknown training method {cfg.method!r}; methods: {', '.join(METHODS)}")
    if cfg.schedule not in ("linear", "cosine"):
        raise UserError(f"--schedule must be linear or cosine, got {cfg.schedule!r}")
    if cfg.projector_lr is not None and cfg.lora_rank == 0:
        raise UserError("--projector-lr applies to LoRA; full fine-tuning trains the projector at --lr")
    if cfg.loss not in ("sigmoid", "ipo", "slic"):
        raise UserError(f"--loss must be sigmoid, ipo or slic, got {cfg.loss!r}")
    if cfg.flip_fraction and cfg.method not in FLIP_METHODS:
        raise UserError(
            f"--flip-fraction flips preference pairs read from the data: it applies to "
            f"{' and '.join(FLIP_METHODS)}, not --method {cfg.method}"
        )
    if cfg.reference is not None and cfg.reference not in REFERENCES:
        raise UserError(f"--reference must be one of {', '.join(REFERENCES)}, got {cfg.reference!r}")
    if cfg.reference == "adapter-off" and cfg.lora_rank == 0:
        raise UserError("--reference adapter-off needs LoRA (--lora-rank > 0); use frozen or cached")
    if cfg.method in SFT_METHODS and cfg.reference is not None:
        raise UserError(f"--reference applies to the DPO methods ({', '.join(DPO_METHODS)}) only")
    if cfg.sft_weight and cfg.method in SFT_METHODS:
        raise UserError(f"--sft-weight applies to the DPO methods ({', '.join(DPO_METHODS)}) only")
    if cfg.reward and cfg.judge:
        raise UserError("give --reward or --judge, not both")
    if cfg.method in RANKED_METHODS and not (cfg.reward or cfg.judge) and not cfg.prescored:
        raise UserError(
            f"--method {cfg.method} ranks samples of the policy: pass --reward (a function, e.g. "
            "module:function) or --judge openai:MODEL"
        )
    if (cfg.reward or cfg.judge) and cfg.method not in RANKED_METHODS:
        raise UserError(f"--reward / --judge apply to {', '.join(RANKED_METHODS)} only")
    cfg.protocol  # noqa: B018 - a known --prompt-style and --image-pad, or one line naming them
    if cfg.steer is not None and cfg.method != "steerlm":
        raise UserError("--steer applies to --method steerlm only")
    if cfg.steer is not None:
        from evalkit.models.steerlm import parse_steer

        parse_steer(cfg.steer)
    if cfg.reference == "cached" and cfg.method in ONLINE_METHODS:
        raise UserError(
            f"--reference cached cannot serve --method {cfg.method}: its pairs are sampled during "
            "training; use adapter-off (LoRA) or frozen"
        )
    _check_second_rejected(cfg)
    _check_values(cfg)
    cfg.trackers  # noqa: B018 - known tracker names, or one line naming them


def _check_second_rejected(cfg: TrainConfig) -> None:
    """--second-rejected, --gamma, --bdhs-image: known values on the methods they apply to."""
    if cfg.second_rejected is not None:
        if cfg.second_rejected not in SECOND_SOURCES:
            raise UserError(
                f"--second-rejected must be one of {', '.join(SECOND_SOURCES)}, got {cfg.second_rejected!r}"
            )
        if cfg.method != "dpo":
            raise UserError(
                "--second-rejected adds a rejected answer to the data's pairs: it applies to "
                f"--method dpo, not {cfg.method}"
            )
        if cfg.reference == "cached":
            raise UserError(
                "--reference cached cannot serve --second-rejected; use adapter-off (LoRA) or frozen"
            )
    elif cfg.gamma != 0.5:
        raise UserError("--gamma weighs the two rejected answers: give --second-rejected too")
    if cfg.bdhs_image not in ("mask", "noise"):
        raise UserError(f"--bdhs-image must be mask or noise, got {cfg.bdhs_image!r}")
    if cfg.bdhs_image == "noise" and not cfg.uses_bdhs:
        raise UserError(
            "--bdhs-image noise applies where BDHS writes rejected answers: --method bdhs or "
            "online-bdhs, or --second-rejected bdhs / online-bdhs"
        )


def _check_values(cfg: TrainConfig) -> None:
    """Every number in range and finite (`--lr inf` trained NaN weights and exited 0)."""
    fin = math.isfinite

    def opt(x, rule) -> bool:
        return x is None or rule(x)

    checks = [
        ("batch_size", lambda: cfg.batch_size >= 1, "an integer >= 1"),
        ("grad_accum", lambda: cfg.grad_accum >= 1, "an integer >= 1"),
        ("lora_rank", lambda: cfg.lora_rank >= 0, "an integer >= 0"),
        ("lora_alpha", lambda: opt(cfg.lora_alpha, lambda x: fin(x) and x > 0), "a finite number > 0"),
        ("lora_dropout", lambda: 0 <= cfg.lora_dropout < 1, "in [0, 1)"),
        ("beta", lambda: fin(cfg.beta) and cfg.beta > 0, "a finite number > 0"),
        ("sft_weight", lambda: fin(cfg.sft_weight) and cfg.sft_weight >= 0, "a finite number >= 0"),
        ("slic_delta", lambda: fin(cfg.slic_delta) and cfg.slic_delta > 0, "a finite number > 0"),
        ("flip_fraction", lambda: 0 <= cfg.flip_fraction <= 1, "in [0, 1]"),
        ("epochs", lambda: fin(cfg.epochs) and cfg.epochs > 0, "a finite number > 0"),
        ("max_steps", lambda: opt(cfg.max_steps, lambda x: x >= 1), "an integer >= 1"),
        ("lr", lambda: opt(cfg.lr, lambda x: fin(x) and x > 0), "a finite number > 0"),
        (
            "projector_lr",
            lambda: opt(cfg.projector_lr, lambda x: fin(x) and x > 0),
            "a finite number > 0",
        ),
        ("warmup_ratio", lambda: 0 <= cfg.warmup_ratio < 1, "in [0, 1)"),
        (
            "weight_decay",
            lambda: fin(cfg.weight_decay) and cfg.weight_decay >= 0,
            "a finite number >= 0",
        ),
        (
            "max_grad_norm",
            lambda: fin(cfg.max_grad_norm) and cfg.max_grad_norm > 0,
            "a finite number > 0",
        ),
        ("save_every", lambda: cfg.save_every >= 0, "an integer >= 0"),
        ("max_length", lambda: opt(cfg.max_length, lambda x: x >= 2), "an integer >= 2"),
        ("samples", lambda: cfg.samples >= 2, "an integer >= 2"),
        (
            "temperature",
            lambda: opt(cfg.temperature, lambda x: fin(x) and x >= 0),
            "a finite number >= 0",
        ),
        ("max_new_tokens", lambda: cfg.max_new_tokens >= 1, "an integer >= 1"),
        ("judge_concurrency", lambda: cfg.judge_concurrency >= 1, "an integer >= 1"),
        ("offline_prob", lambda: 0 <= cfg.offline_prob <= 1, "in [0, 1]"),
        ("bdhs_keep", lambda: 0 <= cfg.bdhs_keep <= 1, "in [0, 1]"),
        (
            "bdhs_threshold",
            lambda: fin(cfg.bdhs_threshold) and cfg.bdhs_threshold > 0,
            "a finite number > 0",
        ),
        ("bdhs_tries", lambda: cfg.bdhs_tries >= 1, "an integer >= 1"),
        ("noise_steps", lambda: 1 <= cfg.noise_steps <= 1000, "an integer in [1, 1000]"),
        ("gamma", lambda: 0 <= cfg.gamma <= 1, "in [0, 1]"),
        ("seed", lambda: 0 <= cfg.seed < 2**32, "an integer in [0, 2^32)"),  # torch seeds are 64-bit
    ]
    bad = []
    for name, ok, rule in checks:
        try:
            good = bool(ok())
        except TypeError:
            good = False
        if not good:
            bad.append(f"--{name.replace('_', '-')} {getattr(cfg, name)!r} (must be {rule})")
    if bad:
        raise UserError(f"invalid value for {'; '.join(bad)}")
