"""The training loop behind `evalkit train` (every method; what each trains on: `training.methods`).

    from evalkit.training.config import TrainConfig
    from evalkit.training.trainer import train
    result = train(TrainConfig(method="dpo", model="toy", data="pairs.jsonl", output="ckpt", max_steps=30))

- Data: `training.methods.load_data` (summary and skip counts printed first, stored in train_config.json),
  then `training.methods.prepare` with the starting model (SteerLM prompts, rejection sampling, BDHS
  pairs). Batches come from `training.batching.Encoder` (the prompt `evalkit run` renders), losses from
  `training.dpo` / `training.sft` (two rejected answers: `training.avg_dpo`); online and mixed DPO and
  Online-BDHS make their pairs per micro-batch (`training.online`) with the policy as it is at that step.
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
- Trackers (`report_to`): the main process logs each log row and the config (`evalkit.trackers.training`);
  a resumed run continues the same tracker run.
- Shape: `train` is set-up (`_setup`: output folder checked, data, model, reference, optimizer, resume
  state restored), the loop (`_loop`, one optimizer step of `grad_accum` micro-batches each: `_accumulate`),
  then the finish (`_finish`: checkpoint saved, run marked complete). What is read from and written to
  CKPT (resume state, log, checkpoint, completion) is `training.checkpointing`.
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
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.training.batching import encode_or_explain, microbatch_indices
from evalkit.training.checkpointing import (
    finished_run,
    inspect_output,
    mark_complete,
    read_log,
    save_checkpoint,
    save_resume,
    stop_if_diverged,
    write_json_atomic,
    write_log,
)
from evalkit.training.config import TrainConfig
from evalkit.training.distributed import merge_parts
from evalkit.training.model_setup import (
    disable_dropout,
    enable_gradient_checkpointing,
    load_model,
    param_groups,
    resolve_model,
    schedule,
    versions,
    wrap_for_training,
)
from evalkit.training.online import add_counts, online_pairs
from evalkit.types import UserError

__all__ = ["TrainResult", "train"]


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


def train(
    config: TrainConfig | None = None,
    *,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    **kwargs: Any,
) -> TrainResult:
    """Train per `config` (or `TrainConfig(**kwargs)`); `on_step(row)` is called after each logged step."""
    cfg = config if config is not None else TrainConfig(**kwargs)
    cfg.validate()
    cfg.trackers.check_ready()  # a missing tracker library or W&B login: one line, before any work
    out = Path(cfg.output).expanduser()
    existing = inspect_output(out, cfg.resume_key(), cfg.overwrite)  # before any work
    if existing.complete is not None:
        steps, rows, resumed = finished_run(out, cfg.data, existing.complete)
        return TrainResult(out, steps, rows, resumed, already_complete=True)
    run = _setup(cfg, out, existing.resume)
    try:
        _loop(run, on_step)
        result = _finish(run)
    except BaseException:
        run.trackers.close(failed=True)
        raise
    run.trackers.close()
    return result


@dataclass
class _Run:
    """A run set up for the loop: what `_setup` built, and the log rows and last save the loop updates."""

    cfg: TrainConfig
    out: Path
    procs: Any  # training.distributed.Single (or Accelerated)
    processor: Any
    encoder: Any
    items: list[Any]
    online: Any  # training.online.OnlinePairs, or None
    model: Any  # what the loop calls (wrapped for several processes)
    policy: Any  # the model itself: samples online pairs, is saved
    reference: Any
    trainable: list[tuple[str, Any]]
    optimizer: Any
    scheduler: Any
    get_indices: Callable[[int], list[int]]
    total: int
    start: int
    data_id: str | None
    info: dict[str, Any]
    autocast: Callable[[], Any]
    saved_at: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    trackers: Any = None  # evalkit.trackers.Trackers: --report-to, fed by the main process

    @property
    def writes(self) -> bool:
        return self.procs.is_main

    @property
    def log_path(self) -> Path:
        return self.out / "train_log.jsonl"


def _setup(cfg: TrainConfig, out: Path, state) -> _Run:
    """Data, model, reference, optimizer and schedule; the resume state (if any) restored, the log cut back
    to it and train_config.json written (not yet completed)."""
    import torch

    from evalkit.trackers import Trackers
    from evalkit.trackers.training import open_for_training
    from evalkit.training.batching import Encoder
    from evalkit.training.data_checks import check_data_lengths, context_length
    from evalkit.training.distributed import processes
    from evalkit.training.methods import load_data, prepare
    from evalkit.util.progress import make_progress

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
    model, processor = load_model(source, cfg.trust_remote_code)
    disable_dropout(model)
    device = procs.device
    model.to(device)
    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    try:
        encoder = Encoder(processor, max_length=cfg.max_length, protocol=cfg.protocol)
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
    online = online_pairs(cfg, encoder)
    model, reference = _policy_and_reference(cfg, model, encoder, items, device, say)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for _, p in trainable)

    get_indices, per_epoch = microbatch_indices(len(items), cfg.batch_size, cfg.seed)
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * per_epoch / cfg.grad_accum))
    warmup = math.ceil(cfg.warmup_ratio * total)
    optimizer = torch.optim.AdamW(param_groups(trainable, cfg), weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(total, warmup, cfg.schedule))

    start = 0
    if state is not None:
        state.restore(trainable, optimizer, scheduler)
        start = state.step
        say(f"resuming from step {start} ({state.path})")
    model, optimizer = procs.prepare(model, optimizer)
    policy = procs.unwrap(model)  # what samples online pairs and is saved
    rows = read_log(out / "train_log.jsonl", before=start) if start else []
    procs.barrier()  # every process has read the log before the main one rewrites it
    if procs.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_log(out / "train_log.jsonl", rows)

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
    if procs.is_main:
        write_json_atomic(out / "train_config.json", info)
    trackers = (
        open_for_training(cfg.trackers, out, info, start, cfg.tracker_group) if procs.is_main else Trackers()
    )
    say(
        f"training {cfg.method} for {total} steps ({len(items)} examples, {n_trainable:,} trainable "
        f"parameters, {'LoRA r=' + str(cfg.lora_rank) if cfg.lora_rank else 'full fine-tuning'}"
        f"{', reference ' + cfg.reference_kind if cfg.reference_kind else ''}, device {device}"
        f"{f', {procs.world} processes' if procs.world > 1 else ''})"
    )
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
    return _Run(
        cfg,
        out,
        procs,
        processor,
        encoder,
        items,
        online,
        model,
        policy,
        reference,
        trainable,
        optimizer,
        scheduler,
        get_indices,
        total,
        start,
        data_id,
        info,
        autocast,
        saved_at=start,
        rows=rows,
        trackers=trackers,
    )


def _policy_and_reference(cfg: TrainConfig, model, encoder, items: list, device, say):
    """The model made trainable (LoRA or full, gradient checkpointing, train mode) and the DPO reference
    (`frozen`: a copy taken before; `adapter-off`: the policy with its adapters off; `cached`: every pair
    scored now), or None."""
    from evalkit.training.dpo import AdapterOffReference, CachedReference, FrozenReference

    reference = None
    if cfg.reference_kind == "frozen":
        reference = FrozenReference(model)
    model = wrap_for_training(model, cfg)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model, cfg)
    model.train()
    if cfg.reference_kind == "adapter-off":
        reference = AdapterOffReference(model)
    elif cfg.reference_kind == "cached":
        say(f"computing reference log-probs for {len(items)} pairs…")
        reference = CachedReference.compute(model, encoder, items, batch_size=cfg.batch_size, device=device)
    return model, reference


def _loop(run: _Run, on_step: Callable[[dict[str, Any]], None] | None) -> None:
    """Optimizer steps `run.start` .. `run.total`: each logged (CKPT/train_log.jsonl), a resume state saved
    every `save_every` steps."""
    from evalkit.trackers.training import step_values
    from evalkit.util.progress import make_progress

    cfg, procs = run.cfg, run.procs
    progress = make_progress(enabled=cfg.progress and run.writes)
    with progress, run.log_path.open("a") if run.writes else contextlib.nullcontext() as log_file:
        task = progress.add_task(f"train {cfg.method}", total=run.total, completed=run.start)
        for step in range(run.start, run.total):
            t0 = time.perf_counter()
            lr = run.scheduler.get_last_lr()[0]
            run.optimizer.zero_grad(set_to_none=True)
            part = _accumulate(run, step)
            grad_norm = procs.clip([p for _, p in run.trainable], cfg.max_grad_norm)
            sums, counts, tokens, used = merge_parts(procs.gather(part))
            stop_if_diverged(step, sums.get("loss"), float(grad_norm), lr, run.saved_at, run.out)
            if used:
                run.optimizer.step()
            run.scheduler.step()
            seconds = time.perf_counter() - t0
            row = {"step": step, "loss": None, **sums, **counts, "grad_norm": float(grad_norm), "lr": lr}
            row.update({"tokens/s": tokens / seconds if seconds > 0 else None, "seconds": seconds})
            run.rows.append(row)
            if run.writes:
                log_file.write(json.dumps(row) + "\n")
                log_file.flush()
                run.trackers.log(step_values(row), step)
            loss_text = "n/a" if row["loss"] is None else f"{row['loss']:.4f}"
            progress.update(task, advance=1, description=f"train {cfg.method} loss {loss_text}")
            done = step + 1
            if cfg.save_every and done % cfg.save_every == 0 and done < run.total:
                if run.writes:
                    save_resume(
                        run.out,
                        step=done,
                        key=cfg.resume_key(),
                        data_sha256=run.data_id,
                        trainable=run.trainable,
                        optimizer=run.optimizer,
                        scheduler=run.scheduler,
                    )
                run.saved_at = done
            if on_step is not None:
                on_step(row)


def _accumulate(run: _Run, step: int) -> dict[str, Any]:
    """The gradients of optimizer step `step` (its `grad_accum` micro-batches) and their metric sums."""
    from evalkit.training.avg_dpo import preference_forward
    from evalkit.training.config import DPO_METHODS
    from evalkit.training.sft import sft_forward

    cfg, procs, items, device = run.cfg, run.procs, run.items, run.procs.device
    part: dict[str, Any] = {"sums": {}, "counts": {}, "tokens": 0, "used": 0}
    for micro in range(cfg.grad_accum):
        chosen, weight = procs.share([items[i] for i in run.get_indices(step * cfg.grad_accum + micro)])
        if run.online is not None:
            chosen, made = run.online.make(run.policy, chosen, step, micro)
            add_counts(part["counts"], made)
            if not chosen:  # every prompt of this micro-batch was a tie
                if procs.world == 1:
                    continue
                chosen, weight = run.online.placeholder(items[0]), 0.0  # keep the processes in step
        with procs.no_sync(run.model, last=micro == cfg.grad_accum - 1):
            if cfg.method in DPO_METHODS:  # one or two rejected answers (training.avg_dpo)
                with run.autocast():
                    result, batch = preference_forward(
                        cfg, run.model, run.reference, run.encoder, chosen, device, step, micro
                    )
            else:
                batch = encode_or_explain(run.encoder.encode_sft, chosen).to(device)
                with run.autocast():
                    result = sft_forward(run.model, batch)
            procs.backward(result.loss * (weight / cfg.grad_accum))
        if weight:
            part["tokens"] += int(batch.attention_mask.sum())
            part["used"] += 1
            for k, v in result.metrics().items():
                part["sums"][k] = part["sums"].get(k, 0.0) + v
        del result, batch  # free the autograd graph now, not after the next forward pass
    return part


def _finish(run: _Run) -> TrainResult:
    """Save the checkpoint (and the cached reference log-probs) and mark the run complete."""
    run.procs.barrier()
    if not run.writes:
        run.procs.close()
        return TrainResult(run.out, run.total, run.rows, run.start, is_main=False)
    save_checkpoint(run.policy, run.processor, run.cfg, run.out)
    if run.cfg.reference_kind == "cached":
        run.reference.save(run.out / "reference_logps.json")
    if run.online is not None and getattr(run.online.scorer, "usage", None):
        run.info["judge_usage"] = run.online.scorer.usage
    mark_complete(run.out, run.info, run.rows, run.start)
    run.procs.close()
    _say(f"saved {run.out}")
    return TrainResult(run.out, run.total, run.rows, run.start)
