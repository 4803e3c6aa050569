"""What `evalkit train` writes to CKPT and reads back, with nothing unpickled and nothing non-finite saved.

- Resume state: CKPT/resume/state.safetensors, one file replaced atomically, so a kill leaves the old state
  or the new one, never a mix. Its tensors: the trainable weights (`param/<name>`), the optimizer's tensor
  state (`optim/<index>/<key>`) and the CPU RNG state (`rng/cpu`); its metadata `evalkit` is JSON: format,
  step, a hash of each setting that must match to resume (values are not stored: a URL may hold a key),
  the data checksum, the optimizer's parameter groups and scalar state, and the scheduler's state dict.
  safetensors and JSON carry data only, so a planted state file can fail to load but never runs code.
- CKPT/resume/state.pt is the pickle format of earlier versions. It is never loaded (unpickling runs
  whatever the file holds): a folder holding one is refused with a line saying to delete resume/.
- The run's record: CKPT/train_log.jsonl (`read_log`, `write_log`: cut back to the resumed step),
  CKPT/train_config.json (`mark_complete` after the checkpoint itself, `save_checkpoint`, is written), and
  what a finished folder answers when the same command runs again (`finished_run`).
- `TrainingDiverged` stops a run whose loss or gradient norm is not finite, and whose weights are not
  finite before any save (resume state or checkpoint), so a broken checkpoint is never written.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.types import UserError
from evalkit.util.errors import CommandFailed

RESUME_FORMAT = "evalkit-resume/1"
STATE_FILE = "state.safetensors"
OLD_STATE_FILE = "state.pt"


class TrainingDiverged(CommandFailed):
    """The loss, the gradient norm or the weights stopped being finite: one line, exit 1 (a failed run,
    not a usage error); nothing non-finite was saved."""


def state_path(out: Path) -> Path:
    return out / "resume" / STATE_FILE


def has_resume_state(out: Path) -> bool:
    """OUT holds a resume state this version writes (the old pickle file does not count)."""
    return state_path(out).is_file()


def refuse_old_state(out: Path) -> None:
    """A resume/state.pt (the old pickle format, or a file planted there) is refused, never loaded."""
    old = out / "resume" / OLD_STATE_FILE
    if old.exists() and not has_resume_state(out):
        raise UserError(
            f"{old} is a resume state in the old pickle format, which evalkit never loads (unpickling can "
            f"run code hidden in the file); delete {out / 'resume'} to start this run afresh, or pass "
            "--overwrite"
        )


def non_finite(named_tensors) -> list[str]:
    """Names of the tensors holding a NaN or an infinity."""
    import torch

    bad = []
    for name, t in named_tensors:
        if t.is_floating_point() and not bool(torch.isfinite(t.detach()).all()):
            bad.append(name)
    return bad


def check_finite_weights(named_tensors, what: str) -> None:
    """Raise `TrainingDiverged` before saving `what` when any weight is not finite."""
    named = list(named_tensors)
    bad = non_finite(named)
    if bad:
        raise TrainingDiverged(
            f"{len(bad)} of {len(named)} weight tensors are not finite (first: {bad[0]}); {what} was not "
            "saved; lower --lr (or --beta) and re-run with --overwrite"
        )


def digests(key: dict[str, Any]) -> dict[str, str]:
    """Each setting's value as a short hash, for the resume state to compare without storing it."""
    return {
        k: hashlib.sha256(json.dumps(v, sort_keys=True, default=str).encode()).hexdigest()[:16]
        for k, v in key.items()
    }


def stop_if_diverged(step: int, loss: float | None, grad_norm: float, lr: float, saved_at: int, out: Path):
    """Stop before the update of `step` when its loss or gradient norm is not finite."""
    if (loss is None or math.isfinite(loss)) and math.isfinite(grad_norm):
        return
    kept = f"the resume state of step {saved_at} in {out / 'resume'} is kept" if saved_at else "nothing saved"
    raise TrainingDiverged(
        f"training diverged at step {step}: loss {loss}, gradient norm {grad_norm} (learning rate {lr:g}); "
        f"stopped before updating the weights, no checkpoint written, {kept}; lower --lr or --beta, or "
        "check the data, then re-run with --overwrite"
    )


def save_resume(
    out: Path, *, step: int, key: dict[str, Any], data_sha256: str | None, trainable, optimizer, scheduler
) -> Path:
    """Write CKPT/resume/state.safetensors atomically (refused when a weight is not finite)."""
    import torch
    from safetensors.torch import save_file

    trainable = list(trainable)
    check_finite_weights(trainable, f"the resume state at step {step}")
    tensors: dict[str, Any] = {f"param/{n}": p.detach().cpu().contiguous().clone() for n, p in trainable}
    opt = optimizer.state_dict()
    opt_scalars: dict[str, dict[str, Any]] = {}
    for index, entry in opt["state"].items():
        for k, v in entry.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim/{index}/{k}"] = v.detach().cpu().contiguous().clone()
            else:
                opt_scalars.setdefault(str(index), {})[k] = v
    tensors["rng/cpu"] = torch.get_rng_state()
    meta = {
        "format": RESUME_FORMAT,
        "step": step,
        "config": digests(key),  # compared, never shown: no setting's value is written (URLs may hold keys)
        "data_sha256": data_sha256,
        "optimizer": {"param_groups": opt["param_groups"], "scalars": opt_scalars},
        "scheduler": scheduler.state_dict(),
    }
    folder = out / "resume"
    folder.mkdir(parents=True, exist_ok=True)
    path, tmp = folder / STATE_FILE, folder / (STATE_FILE + ".tmp")
    save_file(tensors, str(tmp), metadata={"evalkit": json.dumps(meta, allow_nan=False)})
    os.replace(tmp, path)
    return path


class ResumeState:
    """A resume state read back: `step`, `config`, `data_sha256` and the tensors to restore."""

    def __init__(self, path: Path) -> None:
        from safetensors import safe_open

        self.path = path
        try:
            with safe_open(str(path), framework="pt") as f:
                raw = (f.metadata() or {}).get("evalkit")
                self.tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (no iteration)
            meta = json.loads(raw) if raw else None
        except OSError:
            raise
        except Exception as exc:  # safetensors raises its own error types for a damaged file
            detail = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise self._damaged(f"unreadable ({detail})") from None
        if not isinstance(meta, dict) or meta.get("format") != RESUME_FORMAT:
            raise self._damaged("not an evalkit resume state")
        self.meta = meta
        step = meta.get("step")
        if not isinstance(step, int) or step < 1 or not isinstance(meta.get("config"), dict):
            raise self._damaged("its step or settings are missing")
        self.step: int = step
        self.config: dict[str, Any] = meta["config"]
        self.data_sha256: str | None = meta.get("data_sha256")

    def _damaged(self, why: str) -> UserError:
        return UserError(
            f"{self.path}: {why}; delete {self.path.parent} to start this run afresh, or pass --overwrite"
        )

    def restore(self, trainable, optimizer, scheduler) -> None:
        """Copy the weights, optimizer, scheduler and RNG state into the freshly built run."""
        import torch

        trainable = list(trainable)
        params = {f"param/{n}": p for n, p in trainable}
        saved = {k for k in self.tensors if k.startswith("param/")}
        if saved != set(params):
            missing = sorted(set(params) - saved) + sorted(saved - set(params))
            raise self._damaged(f"its weights do not match the model's trainable ones ({missing[0][6:]})")
        for k, p in params.items():
            if tuple(self.tensors[k].shape) != tuple(p.shape):
                raise self._damaged(f"{k[6:]} has shape {tuple(self.tensors[k].shape)}, not {tuple(p.shape)}")
        if non_finite((k, self.tensors[k]) for k in params):
            raise self._damaged("it holds non-finite weights")
        try:
            opt_meta = self.meta["optimizer"]
            state: dict[int, dict[str, Any]] = {}
            for k, v in self.tensors.items():
                if k.startswith("optim/"):
                    _, index, name = k.split("/", 2)
                    state.setdefault(int(index), {})[name] = v
            for index, scalars in opt_meta.get("scalars", {}).items():
                state.setdefault(int(index), {}).update(scalars)
            groups = opt_meta["param_groups"]
            for g in groups:
                if "betas" in g:
                    g["betas"] = tuple(g["betas"])
            with torch.no_grad():
                for k, p in params.items():
                    p.copy_(self.tensors[k])
            optimizer.load_state_dict({"state": state, "param_groups": groups})
            scheduler.load_state_dict(self.meta["scheduler"])
            torch.set_rng_state(self.tensors["rng/cpu"])
        except (KeyError, ValueError, TypeError, RuntimeError, AttributeError) as exc:
            raise self._damaged(f"its optimizer or scheduler state does not fit this run ({exc})") from None


# ---- what an output folder already holds -------------------------------------------------------------


def read_train_config(out: Path) -> dict[str, Any] | None:
    """CKPT/train_config.json, or None when it is missing or unreadable."""
    try:
        info = json.loads((out / "train_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return info if isinstance(info, dict) else None


def is_completed(out: Path) -> bool:
    """OUT holds a checkpoint whose training finished (its train_config.json says so)."""
    info = read_train_config(out)
    return bool(info and info.get("completed") is True)


def differing(saved: Any, current: dict[str, Any]) -> list[str]:
    """The settings of `current` that `saved` (a run's recorded settings) gives another value; a setting
    the record lacks (written by an earlier version) is not counted."""
    if not isinstance(saved, dict):
        return sorted(current)
    return sorted(k for k, v in current.items() if k in saved and saved[k] != v)


@dataclass
class Existing:
    """What `inspect_output` found: a resume state to continue from, or a finished run's
    train_config.json (same settings), or neither (start afresh)."""

    resume: ResumeState | None = None
    complete: dict[str, Any] | None = None


def inspect_output(out: Path, key: dict[str, Any], overwrite: bool) -> Existing:
    """Decide, before any work, what to do with OUT for a run with settings `key` (`resume_key()`)."""
    if overwrite and out.exists():
        shutil.rmtree(out / "resume", ignore_errors=True)
        shutil.rmtree(out / "prepared", ignore_errors=True)
        return Existing()
    info = read_train_config(out)
    if info is not None and info.get("completed") is True:  # written after the checkpoint itself
        diff = differing(info.get("config"), key)
        if diff:
            raise UserError(
                f"output {out} holds a finished checkpoint trained with other settings ({', '.join(diff)}); "
                "choose another --output, or pass --overwrite to train it again"
            )
        return Existing(complete=info)  # a resume/ left by a kill just before its removal is not read
    refuse_old_state(out)
    if has_resume_state(out):
        state = ResumeState(state_path(out))
        diff = differing(state.config, digests(key))
        if diff:
            raise UserError(
                f"{state.path} was saved by a run with other settings ({', '.join(diff)}); re-run the "
                "same command to resume, or pass --overwrite to start over"
            )
        return Existing(resume=state)
    if out.is_file() or (out.is_dir() and any(out.iterdir()) and not _unfinished(out, info)):
        raise UserError(
            f"output {out} already exists and holds no evalkit training run; choose another --output or "
            "pass --overwrite"
        )
    return Existing()


def _unfinished(out: Path, info: dict[str, Any] | None) -> bool:
    """OUT holds a run of ours that stopped before its first resume save."""
    if info is not None:
        return info.get("completed") is False
    ours = {"prepared", "resume", "train_log.jsonl"}  # written before train_config.json, or left by a kill
    return all(p.name in ours or p.name.endswith(".tmp") for p in out.iterdir())


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename: a kill leaves the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def read_log(path: Path, before: int) -> list[dict[str, Any]]:
    """The rows of CKPT/train_log.jsonl for steps before `before`; a line cut by a kill is dropped."""
    rows = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return rows
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] < before:
            rows.append(row)
    return rows


def write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    """CKPT/train_log.jsonl holding exactly `rows` (atomically: the log a resumed run continues)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, path)


def save_checkpoint(model, processor, cfg, out: Path) -> None:
    """The model in transformers format with the base's processor / tokenizer and chat template (LoRA merged
    unless `cfg.merge` is False; a SteerLM checkpoint adds its targets, a non-default generation protocol
    its generation_protocol.json, which evaluation of the checkpoint then uses)."""
    if cfg.lora_rank and cfg.merge:
        model = model.merge_and_unload()
    check_finite_weights(model.named_parameters(), f"the checkpoint {out}")
    model.eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    if cfg.method == "steerlm":
        from evalkit.models.steerlm import parse_steer, write_steer_file

        write_steer_file(out, parse_steer(cfg.steer))
    from evalkit.models.protocol import write_protocol_file

    write_protocol_file(out, cfg.protocol)


def mark_complete(out: Path, info: dict[str, Any], rows: list[dict[str, Any]], resumed_from: int) -> None:
    """Record the run as finished in CKPT/train_config.json (after the checkpoint is saved); drop resume/."""
    info.update(completed=True, final=rows[-1] if rows else None, resumed_from=resumed_from)
    write_json_atomic(out / "train_config.json", info)
    shutil.rmtree(out / "resume", ignore_errors=True)


def finished_run(out: Path, data_file: str, info: dict[str, Any]) -> tuple[int, list[dict[str, Any]], int]:
    """OUT holds this run finished (`info`: its train_config.json): say so and return (steps, log rows,
    resumed_from); refused when the data file changed since."""
    import sys

    from evalkit.util.datafiles import sha256_file

    data = Path(data_file).expanduser()
    trained_on = (info.get("data") or {}).get("sha256") if isinstance(info.get("data"), dict) else None
    if trained_on and data.is_file() and sha256_file(data) != trained_on:
        raise UserError(
            f"output {out} holds a checkpoint trained on an earlier version of {data_file} (its checksum "
            "changed); choose another --output, or pass --overwrite to train it again"
        )
    rows = read_log(out / "train_log.jsonl", before=2**62)
    steps = info.get("total_steps") if isinstance(info.get("total_steps"), int) else len(rows)
    print(
        f"{out}: the checkpoint is complete ({steps} steps); nothing to do (--overwrite trains it again)",
        file=sys.stderr,
        flush=True,
    )
    resumed = info.get("resumed_from") if isinstance(info.get("resumed_from"), int) else 0
    return steps, rows, resumed
