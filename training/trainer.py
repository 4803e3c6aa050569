"""The training loop behind `evalkit train` (every method; what each trains on: `training.methods`).

    from evalkit.training.trainer import TrainConfig, train
    result = train(TrainConfig(method="dpo", model="toy", data="pairs.jsonl", output="ckpt", max_steps=30))

- Data: `training.methods.load_data` (summary and skip counts printed first, stored in train_config.json),
  then `training.methods.prepare` with the starting model (SteerLM prompts, rejection sampling, BDHS
  pairs). Batches come from `training.batching.Encoder` (the prompt `evalkit run` renders), losses from
  `training.dpo` / `training.sft`; online and mixed DPO make their pairs per micro-batch
  (`training.online`) with the policy as it is at that step.
- Order: epoch e visits the examples in `torch.randperm` order seeded by (seed, e); micro-batches of
  `batch_size` (the last one of an epoch may be short) flow across epochs, `grad_accum` of them per
  optimizer step. `max_steps` (optimizer steps) overrides `epochs`.
- Optimizer: AdamW over the trainable parameters, linear warmup over ceil(warmup_ratio·steps) steps then
  linear (or cosine) decay, gradient clipping at `max_grad_norm`. Dropout is disabled (policy == reference
  at step 0). bf16 autocast only on a CUDA device that supports it; weights stay float32 (CPU: float32
  throughout). `gradient_checkpointing` trades compute for activation memory.
- LoRA (`lora_rank` > 0): peft adapters on the language model's attention projections (q/k/v/o); the
  vision tower stays frozen, the projector too unless `projector_lr` is given (the seed recipe trains it
  at 2e-5; peft's `modules_to_save` keeps the original for the reference). Full fine-tuning (`lora_rank`
  0) trains the language model and projector, the vision tower only with `train_vision`.
- Several processes (`accelerate launch` / `torchrun`): `training.distributed`.
- DPO reference: `adapter-off` (default with LoRA), `frozen` copy (default without), or `cached`
  (every pair scored before the first update; saved as CKPT/reference_logps.json; not for online pairs).
- Output: CKPT is a standard transformers checkpoint (LoRA merged into the base weights unless
  `merge=False`, which saves the adapter alone) with the processor / tokenizer and chat template of the
  base, so `evalkit run --model CKPT` renders the same prompt (a SteerLM checkpoint adds its targets,
  CKPT/steerlm.json); CKPT/train_log.jsonl has one row per optimizer step (`step` = updates done before
  the step, so row 0 is the untrained model); CKPT/train_config.json the config, data info and versions.
- Resume: every `save_every` steps CKPT/resume/state.safetensors holds the trainable weights, optimizer,
  scheduler, RNG state, step and data checksum (`training.checkpointing`: safetensors + JSON, never a
  pickle; an old state.pt is refused, not loaded). Re-running the same command continues from it
  (settings and data must match, except `save_every`); the log is cut back to that step. resume/ is
  removed when the run completes. A run that stopped before its first save starts again, reusing what
  `prepare` stored in CKPT/prepared/. Re-running a finished run's command says the checkpoint is complete
  and does nothing (other settings into a finished folder are refused).
- Safety: hyper-parameters are checked before anything is loaded (`TrainConfig.validate`); the data before
  step 0 (`training.data_checks`: unreadable images skipped and counted, overlong prompts skipped, answers
  over the model's context refused unless `max_length` cuts them); a non-finite loss or gradient norm stops
  the run before its update (`TrainingDiverged`, exit 1), and weights are checked finite before every save.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.training.checkpointing import (
    TrainingDiverged,
    check_finite_weights,
    inspect_output,
    is_completed,
    read_log,
    save_resume,
    stop_if_diverged,
    write_json_atomic,
)
from evalkit.training.config import TrainConfig
from evalkit.training.model_setup import (
    LORA_TARGETS,
    PROJECTOR_NAMES,
    disable_dropout,
    load_model,
    param_groups,
    resolve_model,
    schedule,
    versions,
    wrap_for_training,
)
from evalkit.types import UserError

__all__ = [
    "LORA_TARGETS",
    "PROJECTOR_NAMES",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "is_completed",
    "load_model",
    "resolve_model",
    "train",
]


@dataclass
class TrainResult:
    output: Path
    steps: int
    log: list[dict[str, Any]]
    resumed_from: int
    is_main: bool = True  # False in the other processes of a multi-process run (they write nothing)
    already_complete: bool = False  # OUT held this run finished: nothing was trained or written


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
    from evalkit.training.config import DPO_METHODS
    from evalkit.training.data_checks import check_data_lengths, context_length
    from evalkit.training.distributed import processes
    from evalkit.training.dpo import AdapterOffReference, CachedReference, FrozenReference, dpo_forward
    from evalkit.training.methods import load_data, prepare
    from evalkit.training.sft import sft_forward

    cfg = config if config is not None else TrainConfig(**kwargs)
    cfg.validate()
    out = Path(cfg.output).expanduser()
    existing = inspect_output(out, cfg.resume_key(), cfg.overwrite)  # before any work
    if existing.complete is not None:
        return _already_complete(cfg, out, existing.complete)
    state = existing.resume

    procs = processes(cfg.device)
    say = _say if procs.is_main else (lambda message: None)
    data = load_data(cfg)
    data_id = data.info.get("sha256") or data.info.get("fingerprint")
    if state is not None and state.data_sha256 != data_id:
        raise UserError(
            f"{state.path} was saved while training on other data than {cfg.data} (its checksum "
            "changed); restore the data to resume, or pass --overwrite to start over"
        )
    say(f"data: {data.summary()}")
    for named in data.info.get("unreadable_images", [])[:3]:
        say(f"data: skipped {named}")

    torch.manual_seed(cfg.seed)
    source = resolve_model(cfg.model)
    model, processor = load_model(source)
    disable_dropout(model)
    device = procs.device
    model.to(device)
    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    try:
        encoder = Encoder(processor, max_length=cfg.max_length)
    except ValueError as exc:
        raise UserError(f"model {cfg.model!r}: {exc}") from None
    check_data_lengths(cfg, data, encoder, context_length(model), say)
    if not procs.is_main:  # the main process prepares first; the others reuse CKPT/prepared/
        procs.barrier()
    prep = prepare(
        cfg, data, model, encoder, out, _say, make_progress(enabled=cfg.progress and procs.is_main)
    )
    if procs.is_main:
        procs.barrier()
    items = prep.items
    online = _online_pairs(cfg, encoder)

    reference = None
    if cfg.reference_kind == "frozen":
        reference = FrozenReference(model)
    model = wrap_for_training(model, cfg)
    if cfg.gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x's name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if cfg.lora_rank:
            model.enable_input_require_grads()
    model.train()
    if cfg.reference_kind == "adapter-off":
        reference = AdapterOffReference(model)
    elif cfg.reference_kind == "cached":
        say(f"computing reference log-probs for {len(items)} pairs…")
        reference = CachedReference.compute(model, encoder, items, batch_size=cfg.batch_size, device=device)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for _, p in trainable)

    get_indices, per_epoch = _microbatch_indices(len(items), cfg.batch_size, cfg.seed)
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * per_epoch / cfg.grad_accum))
    warmup = math.ceil(cfg.warmup_ratio * total)
    optimizer = torch.optim.AdamW(param_groups(trainable, cfg), weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(total, warmup, cfg.schedule))

    log_path = out / "train_log.jsonl"
    start = saved_at = 0
    if state is not None:
        state.restore(trainable, optimizer, scheduler)
        start = saved_at = state.step
        say(f"resuming from step {start} ({state.path})")
    model, optimizer = procs.prepare(model, optimizer)
    policy = procs.unwrap(model)  # what samples online pairs and is saved
    rows: list[dict[str, Any]] = read_log(log_path, before=start) if start else []
    procs.barrier()  # every process has read the log before the main one rewrites it
    writes = procs.is_main
    if writes:
        out.mkdir(parents=True, exist_ok=True)
        tmp = log_path.with_name(log_path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        os.replace(tmp, log_path)

    info = {
        "config": cfg.to_dict(),
        "model_source": source,
        "data": data.info,
        "data_summary": data.summary(),
        **prep.info,
        "examples": len(items),
        "total_steps": total,
        "warmup_steps": warmup,
        "micro_batches_per_epoch": per_epoch,
        "trainable_parameters": n_trainable,
        "device": str(device),
        "processes": procs.world,
        "autocast": "bfloat16" if use_bf16 else None,
        "versions": versions(),
        "completed": False,
    }
    if writes:
        write_json_atomic(out / "train_config.json", info)
    say(
        f"training {cfg.method} for {total} steps ({len(items)} examples, {n_trainable:,} trainable "
        f"parameters, {'LoRA r=' + str(cfg.lora_rank) if cfg.lora_rank else 'full fine-tuning'}"
        f"{', reference ' + cfg.reference_kind if cfg.reference_kind else ''}, device {device}"
        f"{f', {procs.world} processes' if procs.world > 1 else ''})"
    )

    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
    progress = make_progress(enabled=cfg.progress and writes)
    with progress, log_path.open("a") if writes else contextlib.nullcontext() as log_file:
        task = progress.add_task(f"train {cfg.method}", total=total, completed=start)
        for step in range(start, total):
            t0 = time.perf_counter()
            lr = scheduler.get_last_lr()[0]
            optimizer.zero_grad(set_to_none=True)
            part = {"sums": {}, "counts": {}, "tokens": 0, "used": 0}
            for micro in range(cfg.grad_accum):
                chosen, weight = procs.share([items[i] for i in get_indices(step * cfg.grad_accum + micro)])
                if online is not None:
                    chosen, made = online.make(policy, chosen, step, micro)
                    _add_counts(part["counts"], made)
                    if not chosen:  # every prompt of this micro-batch was a tie
                        if procs.world == 1:
                            continue
                        chosen, weight = online.placeholder(items[0]), 0.0  # keep the processes in step
                with procs.no_sync(model, last=micro == cfg.grad_accum - 1):
                    if cfg.method in DPO_METHODS:
                        batch = _encode(encoder.encode_pairs, chosen).to(device)
                        with autocast():
                            result = dpo_forward(
                                model,
                                reference,
                                batch,
                                beta=cfg.beta,
                                loss_type=cfg.loss,
                                sft_weight=cfg.sft_weight,
                            )
                    else:
                        batch = _encode(encoder.encode_sft, chosen).to(device)
                        with autocast():
                            result = sft_forward(model, batch)
                    procs.backward(result.loss * (weight / cfg.grad_accum))
                if weight:
                    part["tokens"] += int(batch.attention_mask.sum())
                    part["used"] += 1
                    for k, v in result.metrics().items():
                        part["sums"][k] = part["sums"].get(k, 0.0) + v
                del result, batch  # free the autograd graph now, not after the next forward pass
            grad_norm = procs.clip([p for _, p in trainable], cfg.max_grad_norm)
            sums, counts, tokens, used = _merge(procs.gather(part))
            stop_if_diverged(step, sums.get("loss"), float(grad_norm), lr, saved_at, out)
            if used:
                optimizer.step()
            scheduler.step()
            seconds = time.perf_counter() - t0
            row = {"step": step, "loss": None, **sums, **counts, "grad_norm": float(grad_norm), "lr": lr}
            row.update({"tokens/s": tokens / seconds if seconds > 0 else None, "seconds": seconds})
            rows.append(row)
            if writes:
                log_file.write(json.dumps(row) + "\n")
                log_file.flush()
            loss_text = "n/a" if row["loss"] is None else f"{row['loss']:.4f}"
            progress.update(task, advance=1, description=f"train {cfg.method} loss {loss_text}")
            done = step + 1
            if cfg.save_every and done % cfg.save_every == 0 and done < total:
                if writes:
                    save_resume(
                        out,
                        step=done,
                        key=cfg.resume_key(),
                        data_sha256=data_id,
                        trainable=trainable,
                        optimizer=optimizer,
                        scheduler=scheduler,
                    )
                saved_at = done
            if on_step is not None:
                on_step(row)

    procs.barrier()
    if not writes:
        procs.close()
        return TrainResult(out, total, rows, start, is_main=False)
    _save_checkpoint(policy, processor, cfg, out)
    if cfg.reference_kind == "cached":
        reference.save(out / "reference_logps.json")
    if online is not None and getattr(online.scorer, "usage", None):
        info["judge_usage"] = online.scorer.usage
    info.update(completed=True, final=rows[-1] if rows else None, resumed_from=start)
    write_json_atomic(out / "train_config.json", info)
    shutil.rmtree(out / "resume", ignore_errors=True)
    procs.close()
    _say(f"saved {out}")
    return TrainResult(out, total, rows, start)


def _already_complete(cfg: TrainConfig, out: Path, info: dict[str, Any]) -> TrainResult:
    """OUT holds this run finished: say so and do nothing (unless the data file has changed since)."""
    from evalkit.datafiles import sha256_file

    data = Path(cfg.data).expanduser()
    trained_on = (info.get("data") or {}).get("sha256") if isinstance(info.get("data"), dict) else None
    if trained_on and data.is_file() and sha256_file(data) != trained_on:
        raise UserError(
            f"output {out} holds a checkpoint trained on an earlier version of {cfg.data} (its checksum "
            "changed); choose another --output, or pass --overwrite to train it again"
        )
    rows = read_log(out / "train_log.jsonl", before=2**62)
    steps = info.get("total_steps") if isinstance(info.get("total_steps"), int) else len(rows)
    _say(f"{out}: the checkpoint is complete ({steps} steps); nothing to do (--overwrite trains it again)")
    resumed = info.get("resumed_from") if isinstance(info.get("resumed_from"), int) else 0
    return TrainResult(out, steps, rows, resumed, already_complete=True)


def _encode(encode, examples: list):
    """`encode(examples)`; a failure (an image the processor rejects, a prompt over `max_length`) names
    the example it came from, found by encoding them one at a time."""
    try:
        return encode(examples)
    except (ValueError, OSError, TypeError) as exc:
        for ex in examples:
            try:
                encode([ex])
            except (ValueError, OSError, TypeError) as one:
                reason = " ".join(str(one).split()) or type(one).__name__
                raise UserError(f"{ex.source}: cannot encode the example: {reason}") from None
        raise UserError(f"cannot encode a batch: {' '.join(str(exc).split())}") from None


def _online_pairs(cfg: TrainConfig, encoder):
    """online-dpo / mixed-dpo: the maker of each micro-batch's pairs; None for the other methods."""
    if cfg.method not in ("online-dpo", "mixed-dpo"):
        return None
    from evalkit.training.online import OnlinePairs
    from evalkit.training.rewards import scorer_for

    scorer = scorer_for(cfg)
    offline_prob = cfg.offline_prob if cfg.method == "mixed-dpo" else None
    return OnlinePairs(scorer, encoder, cfg.sample_temperature, cfg.max_new_tokens, cfg.seed, offline_prob)


def _merge(parts: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, float], int, int]:
    """A step's metrics over every process's micro-batches: (means, counts, tokens, micro-batches)."""
    used = sum(p["used"] for p in parts)
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for p in parts:
        for k, v in p["sums"].items():
            sums[k] = sums.get(k, 0.0) + v
        _add_counts(counts, p["counts"])
    return {k: v / used for k, v in sums.items()}, counts, sum(p["tokens"] for p in parts), used


def _add_counts(counts: dict[str, float], made: dict[str, float]) -> None:
    """Pair counts add up over a step's micro-batches; mean rewards are weighted by their pairs."""
    n_old, n_new = counts.get("online/pairs", 0.0), made.get("online/pairs", 0.0)
    for k, v in made.items():
        if k.startswith("online/reward_"):
            total = n_old + n_new
            counts[k] = (counts.get(k, 0.0) * n_old + v * n_new) / total if total else 0.0
    for k, v in made.items():
        if not k.startswith("online/reward_"):
            counts[k] = counts.get(k, 0.0) + v


def _save_checkpoint(model, processor, cfg: TrainConfig, out: Path) -> None:
    """The model in transformers format with the base's processor / tokenizer and chat template."""
    if cfg.lora_rank and cfg.merge:
        model = model.merge_and_unload()
    check_finite_weights(model.named_parameters(), f"the checkpoint {out}")
    model.eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    if cfg.method == "steerlm":
        from evalkit.steerlm import parse_steer, write_steer_file

        write_steer_file(out, parse_steer(cfg.steer))
