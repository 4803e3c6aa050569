"""The training loop behind `evalkit train` (methods `sft` and `dpo`; the others are planned).

    from evalkit.training.trainer import TrainConfig, train
    result = train(TrainConfig(method="dpo", model="toy", data="pairs.jsonl", output="ckpt", max_steps=30))

- Data: `load_preferences` (DPO) / `load_sft` (SFT); their summary and skip counts are printed first and
  stored in train_config.json. Batches come from `training.batching.Encoder` (the prompt `evalkit run`
  renders), losses from `training.dpo` / `training.sft`.
- Order: epoch e visits the examples in `torch.randperm` order seeded by (seed, e); micro-batches of
  `batch_size` (the last one of an epoch may be short) flow across epochs, `grad_accum` of them per
  optimizer step. `max_steps` (optimizer steps) overrides `epochs`.
- Optimizer: AdamW over the trainable parameters, linear warmup over ceil(warmup_ratio·steps) steps then
  linear decay, gradient clipping at `max_grad_norm`. Dropout is disabled (policy == reference at step 0).
  bf16 autocast only on a CUDA device that supports it; weights stay float32 (CPU: float32 throughout).
- LoRA (`lora_rank` > 0): peft adapters on the language model's attention projections (q/k/v/o); the
  vision tower and projector stay frozen. Full fine-tuning (`lora_rank` 0) trains the language model and
  projector, the vision tower only with `train_vision`.
- DPO reference: `adapter-off` (default with LoRA), `frozen` copy (default without), or `cached`
  (every pair scored before the first update; saved as CKPT/reference_logps.json).
- Output: CKPT is a standard transformers checkpoint (LoRA merged into the base weights unless
  `merge=False`, which saves the adapter alone) with the processor / tokenizer and chat template of the
  base, so `evalkit run --model CKPT` renders the same prompt; CKPT/train_log.jsonl has one row per
  optimizer step (`step` = updates done before the step, so row 0 is the untrained model);
  CKPT/train_config.json the config, data info and package versions.
- Resume: every `save_every` steps CKPT/resume/state.pt holds the trainable weights, optimizer, scheduler,
  RNG state and step. Re-running the same command continues from it (settings must match, except
  `save_every`); the log is cut back to that step. resume/ is removed when the run completes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.training.config import TrainConfig
from evalkit.types import UserError

LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"


@dataclass
class TrainResult:
    output: Path
    steps: int
    log: list[dict[str, Any]]
    resumed_from: int


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def resolve_model(model: str) -> str:
    """`toy` → the built-in toy checkpoint (as `evalkit run` resolves it); `hf:X` → X."""
    if model == "toy":
        from evalkit.toy.model import ensure_toy_model

        return str(ensure_toy_model())
    return model.removeprefix("hf:")


def load_model(source: str):
    """(model, processor or tokenizer) in float32, classified like `evalkit.models.hf.HFBackend`."""
    import torch
    import transformers
    from transformers.models.auto import modeling_auto

    try:
        config = transformers.AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load model {source!r}: {str(exc).splitlines()[0]}") from None
    if config.model_type in modeling_auto.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        cls, proc = transformers.AutoModelForImageTextToText, transformers.AutoProcessor
    elif config.model_type in modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        cls, proc = transformers.AutoModelForCausalLM, transformers.AutoTokenizer
    else:
        raise UserError(f"model {source!r} ({config.model_type}) is neither image-text-to-text nor causal LM")
    transformers.utils.logging.disable_progress_bar()
    return cls.from_pretrained(source, dtype=torch.float32), proc.from_pretrained(source)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for name in ("evalkit", "torch", "transformers", "peft"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _disable_dropout(model) -> None:
    import torch

    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0


def _prepare(model, cfg: TrainConfig):
    """LoRA-wrap or set up full fine-tuning; returns the model to train."""
    if cfg.lora_rank:
        from peft import LoraConfig, get_peft_model

        model.requires_grad_(False)
        lora = LoraConfig(
            r=cfg.lora_rank,
            lora_alpha=cfg.alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=LORA_TARGETS,
            bias="none",
        )
        with warnings.catch_warnings():  # peft calls transformers' deprecated is_gradient_checkpointing
            warnings.simplefilter("ignore", FutureWarning)
            return get_peft_model(model, lora)
    model.requires_grad_(True)
    if not cfg.train_vision:
        for name, p in model.named_parameters():
            if "vision_tower" in name or "vision_model" in name or name.startswith("visual."):
                p.requires_grad_(False)
    return model


def _schedule(total: int, warmup: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def _microbatch_indices(n: int, batch_size: int, seed: int):
    """index i of the flat micro-batch stream -> example indices (seeded per-epoch permutation)."""
    import torch

    per_epoch = math.ceil(n / batch_size)
    perms: dict[int, list[int]] = {}

    def get(i: int) -> list[int]:
        epoch, j = divmod(i, per_epoch)
        if epoch not in perms:
            g = torch.Generator().manual_seed(seed * 100_003 + epoch)
            perms[epoch] = torch.randperm(n, generator=g).tolist()
        return perms[epoch][j * batch_size : (j + 1) * batch_size]

    return get, per_epoch


def _atomic_save(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _check_output(cfg: TrainConfig, out: Path) -> Path | None:
    """The resume state to continue from, if any; refuses to overwrite a finished checkpoint."""
    state = out / "resume" / "state.pt"
    if cfg.overwrite and out.exists():
        shutil.rmtree(out / "resume", ignore_errors=True)
        return None
    if state.is_file():
        return state
    if out.is_file() or (out.is_dir() and any(out.iterdir())):
        raise UserError(
            f"output {out} already exists and holds no resume state; choose another --output or pass "
            "--overwrite"
        )
    return None


def train(
    config: TrainConfig | None = None,
    *,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    **kwargs: Any,
) -> TrainResult:
    """Train per `config` (or `TrainConfig(**kwargs)`); `on_step(row)` is called after each logged step."""
    import torch

    from evalkit.progress import make_progress
    from evalkit.training.batching import Encoder
    from evalkit.training.data import load_preferences, load_sft
    from evalkit.training.dpo import AdapterOffReference, CachedReference, FrozenReference, dpo_forward
    from evalkit.training.sft import sft_forward

    cfg = config if config is not None else TrainConfig(**kwargs)
    cfg.validate()
    out = Path(cfg.output).expanduser()
    resume_state = _check_output(cfg, out)
    state = None
    if resume_state is not None:  # checked before any work: a mismatch is refused at once
        state = torch.load(resume_state, weights_only=False)
        if state["config"] != cfg.resume_key():
            diff = sorted(k for k in state["config"] if state["config"][k] != cfg.resume_key().get(k))
            raise UserError(
                f"{resume_state} was saved by a run with other settings ({', '.join(diff)}); re-run the "
                "same command to resume, or pass --overwrite to start over"
            )

    if cfg.method == "dpo":
        data = load_preferences(cfg.data, cfg.format, seed=cfg.seed)
    else:
        data = load_sft(cfg.data, cfg.format)
    _say(f"data: {data.summary()}")
    items = data.items

    torch.manual_seed(cfg.seed)
    source = resolve_model(cfg.model)
    model, processor = load_model(source)
    _disable_dropout(model)
    device = _device(cfg.device)
    model.to(device)
    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    try:
        encoder = Encoder(processor, max_length=cfg.max_length)
    except ValueError as exc:
        raise UserError(f"model {cfg.model!r}: {exc}") from None

    reference = None
    if cfg.reference_kind == "frozen":
        reference = FrozenReference(model)
    model = _prepare(model, cfg)
    model.train()
    if cfg.reference_kind == "adapter-off":
        reference = AdapterOffReference(model)
    elif cfg.reference_kind == "cached":
        _say(f"computing reference log-probs for {len(items)} pairs…")
        reference = CachedReference.compute(model, encoder, items, batch_size=cfg.batch_size, device=device)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for _, p in trainable)

    get_indices, per_epoch = _microbatch_indices(len(items), cfg.batch_size, cfg.seed)
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * per_epoch / cfg.grad_accum))
    warmup = math.ceil(cfg.warmup_ratio * total)
    optimizer = torch.optim.AdamW(
        [p for _, p in trainable], lr=cfg.learning_rate, weight_decay=cfg.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(total, warmup))

    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "train_log.jsonl"
    start = 0
    if state is not None:
        params = dict(trainable)
        with torch.no_grad():
            for name, value in state["trainable"].items():
                params[name].copy_(value)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        start = state["step"]
        _say(f"resuming from step {start} ({resume_state})")
    rows: list[dict[str, Any]] = []
    if start and log_path.is_file():
        rows = [json.loads(x) for x in log_path.read_text().splitlines() if x.strip()]
        rows = [r for r in rows if r["step"] < start]
    log_path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    info = {
        "config": cfg.to_dict(),
        "model_source": source,
        "data": data.info,
        "data_summary": data.summary(),
        "examples": len(items),
        "total_steps": total,
        "warmup_steps": warmup,
        "micro_batches_per_epoch": per_epoch,
        "trainable_parameters": n_trainable,
        "device": str(device),
        "autocast": "bfloat16" if use_bf16 else None,
        "versions": _versions(),
        "completed": False,
    }
    (out / "train_config.json").write_text(json.dumps(info, indent=2, default=str))
    _say(
        f"training {cfg.method} for {total} steps ({len(items)} examples, {n_trainable:,} trainable "
        f"parameters, {'LoRA r=' + str(cfg.lora_rank) if cfg.lora_rank else 'full fine-tuning'}"
        f"{', reference ' + cfg.reference_kind if cfg.reference_kind else ''}, device {device})"
    )

    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
    progress = make_progress(enabled=cfg.progress)
    with progress, log_path.open("a") as log_file:
        task = progress.add_task(f"train {cfg.method}", total=total, completed=start)
        for step in range(start, total):
            t0 = time.perf_counter()
            lr = scheduler.get_last_lr()[0]
            optimizer.zero_grad(set_to_none=True)
            sums: dict[str, float] = {}
            tokens = 0
            for micro in range(cfg.grad_accum):
                chosen = [items[i] for i in get_indices(step * cfg.grad_accum + micro)]
                if cfg.method == "dpo":
                    batch = encoder.encode_pairs(chosen).to(device)
                    with autocast():
                        result = dpo_forward(model, reference, batch, beta=cfg.beta, loss_type=cfg.loss)
                else:
                    batch = encoder.encode_sft(chosen).to(device)
                    with autocast():
                        result = sft_forward(model, batch)
                (result.loss / cfg.grad_accum).backward()
                tokens += int(batch.attention_mask.sum())
                for k, v in result.metrics().items():
                    sums[k] = sums.get(k, 0.0) + v / cfg.grad_accum
            grad_norm = torch.nn.utils.clip_grad_norm_([p for _, p in trainable], cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            seconds = time.perf_counter() - t0
            row = {"step": step, **sums, "grad_norm": float(grad_norm), "lr": lr}
            row.update({"tokens/s": tokens / seconds if seconds > 0 else None, "seconds": seconds})
            rows.append(row)
            log_file.write(json.dumps(row) + "\n")
            log_file.flush()
            progress.update(task, advance=1, description=f"train {cfg.method} loss {row['loss']:.4f}")
            done = step + 1
            if cfg.save_every and done % cfg.save_every == 0 and done < total:
                (out / "resume").mkdir(exist_ok=True)
                snapshot = {
                    "step": done,
                    "config": cfg.resume_key(),
                    "trainable": {n: p.detach().cpu().clone() for n, p in trainable},
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": torch.get_rng_state(),
                }
                _atomic_save(snapshot, out / "resume" / "state.pt")
            if on_step is not None:
                on_step(row)

    _save_checkpoint(model, processor, cfg, out)
    if cfg.reference_kind == "cached":
        reference.save(out / "reference_logps.json")
    info.update(completed=True, final=rows[-1] if rows else None, resumed_from=start)
    (out / "train_config.json").write_text(json.dumps(info, indent=2, default=str))
    shutil.rmtree(out / "resume", ignore_errors=True)
    _say(f"saved {out}")
    return TrainResult(out, total, rows, start)


def _save_checkpoint(model, processor, cfg: TrainConfig, out: Path) -> None:
    """The model in transformers format with the base's processor / tokenizer and chat template."""
    if cfg.lora_rank and cfg.merge:
        model = model.merge_and_unload()
    model.eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
