"""A `TrainConfig` from a settings file and the command line: `evalkit train CONFIG`'s YAML or JSON file,
its keys TrainConfig's fields, its relative paths relative to the file's folder, flags on top."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from evalkit.training.config import TrainConfig
from evalkit.types import UserError

REQUIRED = ("method", "model", "data", "output")
_PATH_KEYS = ("model", "data", "output", "image_dir")


def config_from(
    file: str | Path | None, overrides: dict[str, Any], *, defaults: dict[str, Any] | None = None
) -> TrainConfig:
    """A `TrainConfig` from TrainConfig's defaults < `defaults` < the settings file < `overrides`.

    `file` is a YAML (or, by its `.json` suffix, JSON) mapping whose keys are TrainConfig's fields
    (`max-steps` spelt with a dash works too); its relative paths (data, output, model when it is a path)
    are relative to the file's folder. `overrides` are the values given on the command line."""
    values: dict[str, Any] = dict(defaults or {})
    if file is not None:
        values.update(read_config_file(file))
    values.update(overrides)
    missing = [k for k in REQUIRED if values.get(k) is None]
    if missing:
        names = ", ".join("--" + k for k in missing)
        them = "them" if len(missing) > 1 else "it"
        raise UserError(f"missing {names}: give {them} on the command line or as a key of the config file")
    values["output"] = str(values["output"])
    return TrainConfig(**values)


def read_config_file_raw(file: str | Path) -> dict[str, Any]:
    """The mapping in a YAML (or, by its .json suffix, JSON) file, unchecked."""
    path = Path(file).expanduser()
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            raw = json.loads(text) if text.strip() else None
        except json.JSONDecodeError as exc:
            raise UserError(f"config file {path} is not valid JSON: {exc}") from None
    else:
        try:
            import yaml
        except ImportError:
            raise UserError(
                f"reading the YAML config {path} needs PyYAML: pip install pyyaml (or write it as JSON)"
            ) from None
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            detail = " ".join(str(exc).split())
            raise UserError(f"config file {path} is not valid YAML: {detail}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(
            f"config file {path} must hold a mapping of settings (key: value), got a {type(raw).__name__}"
        )
    return raw


def read_config_file(file: str | Path) -> dict[str, Any]:
    """The checked settings of a YAML / JSON config file, paths made relative to its folder."""
    path = Path(file).expanduser()
    raw = read_config_file_raw(path)
    types = {f.name: f.type for f in fields(TrainConfig)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in types:
            raise UserError(f"unknown key {key!r} in config file {path}; valid keys: {', '.join(types)}")
        if name in values:
            raise UserError(f"key {name!r} is given twice in config file {path}")
        values[name] = _coerce(name, value, str(types[name]), path)
    base = path.resolve().parent
    for name in _PATH_KEYS:
        if isinstance(values.get(name), str):
            values[name] = relative_to_file(values[name], base, name)
    return values


def _coerce(name: str, value: Any, annotation: str, path: Path) -> Any:
    kind, optional = annotation.split("|")[0].strip(), "None" in annotation
    if value is None:
        if optional:
            return None
    elif kind == "bool":
        if isinstance(value, bool):
            return value
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 5e-5 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif kind == "str":
        if isinstance(value, str):
            return value
    want = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string"}[kind]
    want += " or null" if optional else ""
    raise UserError(f"config file {path}: {name} must be {want}, got {value!r}")


def relative_to_file(value: str, base: Path, name: str) -> str:
    """`value` from a config file (or an align plan) as a path relative to `base`, the file's folder, unless
    it names a hub id or 'toy'."""
    if name == "model" and (value == "toy" or value.startswith("hf:")):
        return value
    p = Path(value).expanduser()
    if p.is_absolute():
        return str(p)
    candidate = base / p
    explicit = value.startswith(("./", "../", ".\\", "..\\")) or value in (".", "..")
    if name != "output" and not explicit and not candidate.exists():
        from evalkit.training.data_hub import looks_like_hub_id

        hub_like = looks_like_hub_id(value) or (name == "model" and "/" not in value and not p.suffix)
        if hub_like:  # a hub model / dataset id, as the flag would read it
            return value
    return str(candidate)
