"""Loading a transformers checkpoint for `evalkit.models.hf.HFBackend` (and the trainer's model setup):
resolving the model argument (local folder or hub id), refusing pickled weights, LoRA adapters (found by
their adapter_config.json, merged with peft), SteerLM targets, device and dtype, and the weight digests
that make a backend's fingerprint. Every loading problem is a one-line `UserError`."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from evalkit.types import UserError
from evalkit.util import datafiles
from evalkit.util.environment import cache_root

log = logging.getLogger(__name__)

_DTYPES = ("auto", "float32", "bfloat16", "float16")
_DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
_HUB_ID_RE = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
_WEIGHT_GLOBS = ("*.safetensors", "*.bin", "*.pt", "*.pth")
#: pickled weight files: unpickling runs whatever code the file holds, so they are refused, never loaded
_PICKLED_GLOBS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")
#: pickles a trainer leaves next to its weights; not weights, never read
_NOT_WEIGHTS = {"training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state.pth"}


def resolve_source(given: str) -> tuple[str, Path | None]:
    """(what to pass to from_pretrained, local folder or None for a hub id); UserError when neither."""
    expected = "expected a checkpoint folder (config.json + weights) or a hub id like org/name"
    path = Path(given).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"model folder {given!r} has no config.json; {expected}")
        return str(path.resolve()), path.resolve()
    if path.exists():
        raise UserError(f"model {given!r} is a file, not a folder; {expected}")
    if given.startswith(("/", ".", "~")) or not _HUB_ID_RE.fullmatch(given):
        raise UserError(f"model path {given!r} does not exist; {expected}")
    return given, None


def refuse_pickled_weights(folder: Path | None) -> None:
    """A checkpoint folder whose weights are pickles (`pytorch_model.bin`, ...) and not safetensors is
    refused with one line naming the file and how to convert it: unpickling runs code hidden in it."""
    if folder is None or not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickled = sorted(p for g in _PICKLED_GLOBS for p in folder.glob(g) if p.name not in _NOT_WEIGHTS)
    if pickled:
        raise UserError(
            f"{pickled[0]}: pickled PyTorch weights, which evalkit never loads (unpickling can run code "
            "hidden in the file); convert the checkpoint to safetensors on a machine you trust: load it with "
            "transformers' from_pretrained and save it with save_pretrained(DIR, safe_serialization=True) "
            "(transformers >= 5 always writes safetensors), then pass DIR"
        )


def resolve_adapter(given: str) -> tuple[Path | None, str]:
    """(adapter folder, its base model as recorded by peft) when `given` is a folder with
    adapter_config.json, else (None, "")."""
    path = Path(given).expanduser()
    if not (path / "adapter_config.json").is_file():
        return None, ""
    try:
        config = json.loads((path / "adapter_config.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"LoRA adapter {given!r}: unreadable adapter_config.json ({exc})") from None
    base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    if not isinstance(base, str) or not base:
        raise UserError(f"LoRA adapter {given!r}: adapter_config.json names no base_model_name_or_path")
    return path.resolve(), base


def merge_adapter(model, adapter_dir: Path):
    """The base `model` with the peft adapter in `adapter_dir` applied and merged into its weights."""
    try:
        from peft import PeftModel
    except ImportError:
        raise UserError(
            f"model {str(adapter_dir)!r} is a LoRA adapter, which needs peft: pip install 'evalkit[train]'"
        ) from None
    import warnings

    with warnings.catch_warnings():  # peft calls transformers' deprecated is_gradient_checkpointing
        warnings.simplefilter("ignore", FutureWarning)
        return user_errors(
            str(adapter_dir), lambda: PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
        )


#: transformers' wording where a processor needs a package that transformers does not declare
#: (SmolVLMProcessor: num2words, evalkit's `smolvlm` extra)
_PACKAGE_REQUIRED = re.compile(r"Package `([A-Za-z0-9_.-]+)` is required")


def user_errors(source: str, load):
    """Run a from_pretrained call, turning the usual loading failures into one-line UserErrors; a missing
    package names the pip command that installs it (`evalkit.util.dependencies`)."""
    try:
        return load()
    except (OSError, ValueError, KeyError, RuntimeError, ImportError) as exc:
        missing = _missing_package(exc)
        if missing is not None:
            raise UserError(f"cannot load model {source!r}: {missing}") from exc
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(
            f"cannot load model {source!r}: {first} (expected a local checkpoint folder, or a hub id that is "
            "cached or reachable; use --trust-remote-code only for checkpoints you trust)"
        ) from exc


def _missing_package(exc: Exception):
    """The one-line `MissingDependency` for an ImportError that names an absent package, else None."""
    from evalkit.util.dependencies import missing_dependency

    if not isinstance(exc, ImportError):
        return None
    found = _PACKAGE_REQUIRED.search(str(exc))
    name = exc.name if isinstance(exc, ModuleNotFoundError) else found.group(1) if found else None
    return missing_dependency(ModuleNotFoundError(name=name)) if name else None


def steer_targets(given: str, folder: Path | None, override: str | None) -> dict[str, Any] | None:
    """A SteerLM checkpoint's targets (its steerlm.json), changed by `--steer`; None for other models."""
    from evalkit.models.steerlm import parse_steer, read_steer_file

    saved = read_steer_file(folder)
    if override is None:
        return saved
    if saved is None:
        raise UserError(f"--steer applies to SteerLM checkpoints; {given!r} has no steerlm.json")
    return parse_steer(override, base=saved)


def resolve_device(device: str, torch) -> Any:
    if not _DEVICE_RE.fullmatch(device):
        raise UserError(f"--device {device!r} is not one of auto, cpu, cuda, cuda:N, mps")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
    if device == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps: MPS is not available on this machine (use --device cpu)")
    return torch.device(device)


def resolve_dtype(dtype: str, device, torch) -> Any:
    """`auto`: float32 on CPU, the checkpoint's own dtype elsewhere."""
    if dtype not in _DTYPES:
        raise UserError(f"--dtype {dtype!r} is not one of {', '.join(_DTYPES)}")
    if dtype == "auto":
        return torch.float32 if device.type == "cpu" else "auto"
    return getattr(torch, dtype)


def hub_snapshot_dir(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:
        return None
    return Path(found).parent if isinstance(found, str) else None


# ---- hashing ----------------------------------------------------------------------------------------


def sha256_file(path: Path) -> str | None:
    """The file's sha256 (`evalkit.util.datafiles.sha256_file`), None when there is no such file."""
    return datafiles.sha256_file(path) if path.is_file() else None


def _digest_cache_path() -> Path:
    return cache_root() / "weights-sha256.json"


def weights_sha256(folder: Path) -> str | None:
    """sha256 over the weight files (name + per-file sha256); each file is hashed once."""
    # Per-file digests are kept in $EVALKIT_CACHE/weights-sha256.json keyed by (path, size, mtime).
    files = next((sorted(folder.glob(g)) for g in _WEIGHT_GLOBS if any(folder.glob(g))), [])
    if not files:
        return None
    cache_path = _digest_cache_path()
    try:
        cache: dict[str, str] = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    total, changed = hashlib.sha256(), False
    for f in files:
        real = f.resolve()  # hub snapshots hold symlinks to blobs
        st = real.stat()
        key = f"{real}|{st.st_size}|{st.st_mtime_ns}"
        if key not in cache:
            cache[key], changed = sha256_file(real) or "", True
        total.update(f"{f.name}:{cache[key]}\n".encode())
    if changed:
        try:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(cache, indent=0, sort_keys=True))
            os.replace(tmp, cache_path)
        except OSError:
            log.warning("could not write %s", cache_path, exc_info=True)
    return total.hexdigest()


def checkpoint_fingerprint(source: str, local_dir: Path | None) -> dict[str, Any]:
    """What identifies a checkpoint's weights, for every local backend (hf, vllm): its folder (or hub id),
    the hub snapshot's revision, and the sha256 of its config and of its weight files."""
    folder, revision = local_dir, None
    if folder is None:
        folder = hub_snapshot_dir(source)
    if folder is not None and folder.parent.name == "snapshots":
        revision = folder.name
    return {
        "path": str(folder) if local_dir else source,
        "revision": revision,
        "config_sha256": sha256_file(folder / "config.json") if folder else None,
        "weights_sha256": weights_sha256(folder) if folder else None,
    }
