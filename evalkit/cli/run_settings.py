"""The settings of one `evalkit run`, from one definition: the `run` command's signature.

`run_flags` reads the flags (name, config key, type, default) from that signature, so `evalkit run CONFIG`
(a YAML or JSON file whose keys are the flag names), the command line and the Python `evalkit.evaluate`
accept exactly the same settings and cannot drift apart. `settings_from` layers them: the flags' defaults <
the config file < what was given (typed flags, or a notebook's keywords); `start_run` runs them."""

from __future__ import annotations

import difflib
import inspect
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.types import UserError

#: parameters of `run` that are not settings (the click context, the config file itself)
NOT_SETTINGS = ("ctx", "config_file")
#: the settings without which nothing runs
REQUIRED = ("model", "tasks")
#: comma-separated flags that a config file or `evalkit.evaluate` may also give as a list
COMMA_LISTS = ("tasks", "report_to")


@dataclass(frozen=True)
class Flag:
    name: str  # the parameter name (`as_json`)
    key: str  # the config-file key and keyword: the flag's long name with underscores (`json`)
    kind: Any  # the type without None (`int`, `str`, `Path`, `list[str]`, `bool`)
    optional: bool
    default: Any


def run_flags(command) -> dict[str, Flag]:
    """`command`'s (the `run` function's) flags by config key, in signature order."""
    hints = typing.get_type_hints(command, include_extras=True)
    flags: dict[str, Flag] = {}
    for name, param in inspect.signature(command).parameters.items():
        if name in NOT_SETTINGS:
            continue
        annotation, option = hints[name], None
        if typing.get_origin(annotation) is typing.Annotated:
            annotation, *extras = typing.get_args(annotation)
            option = extras[0] if extras else None
        args = typing.get_args(annotation)
        optional = type(None) in args
        kind = next(a for a in args if a is not type(None)) if optional else annotation
        # in the Annotated form typer reads a string `default` of the Option as its first declaration
        declared = [getattr(option, "default", None), *(getattr(option, "param_decls", None) or ())]
        decls = [d for d in declared if isinstance(d, str) and d.startswith("--")]
        key = decls[0][2:].replace("-", "_") if decls else name
        flags[key] = Flag(name, key, kind, optional, param.default)
    return flags


def unknown_key(key: str, known: list[str], where: str) -> UserError:
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}?" if close else f"known: {', '.join(known)}"
    return UserError(f"unknown setting {key!r} {where}; {hint}")


def read_run_config(path: str | Path, flags: dict[str, Flag]) -> dict[str, Any]:
    """A run config file's settings by parameter name: keys are the flag names (`batch_size` or
    `batch-size`), values checked against the flag's type, relative paths made relative to its folder."""
    from evalkit.training.config_file import read_config_file_raw

    path = Path(path).expanduser()
    raw = read_config_file_raw(path)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        flag = flags.get(name)
        if flag is None:
            raise unknown_key(str(key), list(flags), f"in config file {path}")
        if flag.name in values:
            raise UserError(f"setting {name!r} is given twice in config file {path}")
        values[flag.name] = _coerce(flag, value, path)
    return values


def _coerce(flag: Flag, value: Any, path: Path) -> Any:
    base = path.resolve().parent
    if value is None and flag.optional:
        return None
    if flag.kind is bool and isinstance(value, bool):
        return value
    if flag.kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if flag.kind is float and isinstance(value, int | float | str) and not isinstance(value, bool):
        try:  # YAML 1.1 reads 5e-5 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if flag.kind is str and flag.name in COMMA_LISTS and isinstance(value, list):  # tasks: [pope, amber]
        if all(isinstance(v, str) for v in value):
            return ",".join(value)
    if flag.kind is str and isinstance(value, str):
        return _model_path(value, base) if flag.name == "model" else value
    if flag.kind is Path and isinstance(value, str):
        p = Path(value).expanduser()
        return p if p.is_absolute() else base / p
    if flag.kind == list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        if isinstance(value, dict):  # task_option: {mt_bench.reference: ref.jsonl}
            return [f"{k}={v}" for k, v in value.items()]
    return _bad(flag, value, path)


def _bad(flag: Flag, value: Any, path: Path):
    want = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a path"}
    what = want.get(flag.kind, "a list of strings or a mapping")
    what += " or null" if flag.optional else ""
    raise UserError(f"config file {path}: {flag.key} must be {what}, got {value!r}")


def check_type(flag: Flag, value: Any, where: str) -> Any:
    """A keyword's value (`evalkit.evaluate`) checked against its flag's type: the value, a list for a
    single `task_option` string or a mapping of them, or a one-line `UserError`."""
    if value is None and flag.optional:
        return value
    plain = not isinstance(value, bool)
    fits = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and plain,
        float: isinstance(value, int | float) and plain,
        str: isinstance(value, str),
        Path: isinstance(value, str | os.PathLike),
    }.get(flag.kind)
    if fits:
        return value
    if flag.kind is str and flag.name in COMMA_LISTS and isinstance(value, list | tuple):
        if all(isinstance(v, str) for v in value):
            return ",".join(value)
    if fits is None:  # list[str]: task_option
        if isinstance(value, str):
            return [value]
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return list(value)
        if isinstance(value, dict):
            return [f"{k}={v}" for k, v in value.items()]
    want = {bool: "True or False", int: "an integer", float: "a number", str: "a string", Path: "a path"}
    what = want.get(flag.kind, "a list of 'TASK.KEY=VALUE' strings or a mapping")
    raise UserError(f"{where}: {flag.key} must be {what}{' or None' if flag.optional else ''}, got {value!r}")


def _model_path(value: str, base: Path) -> str:
    """`model` from a config file: a path relative to the file's folder, unless it is 'toy', an `openai:`
    name or a hub id (a `vllm:` prefix is kept and its checkpoint resolved the same way)."""
    from evalkit.training.config_file import relative_to_file

    if value == "toy" or value.startswith("openai:"):
        return value
    if value.startswith("vllm:"):
        return "vllm:" + relative_to_file(value[5:], base, "model")
    return relative_to_file(value, base, "model")


def settings_from(command, config_file: str | Path | None, given: dict[str, Any]) -> dict[str, Any]:
    """Every setting of `command` by parameter name: its default < the config file < `given`."""
    flags = run_flags(command)
    settings = {f.name: f.default for f in flags.values()}
    if config_file is not None:
        settings.update(read_run_config(config_file, flags))
    settings.update(given)
    missing = [k for k in REQUIRED if settings.get(k) in (None, "", [])]
    if missing:
        names, them = ", ".join("--" + k for k in missing), "them" if len(missing) > 1 else "it"
        raise UserError(f"missing {names}: give {them} on the command line or as a key of the config file")
    return settings


def judge_settings(s: dict[str, Any]):
    """`--judge` and its endpoint flags (checked) as `JudgeSettings`, from a command's settings by
    parameter name; `--judge-runs` and `--judge-budget-usd` where the command has them."""
    from evalkit.judges.settings import JudgeSettings, check_endpoint_settings

    judge_limits = (s["judge_concurrency"], s["judge_timeout"], s["judge_max_retries"])
    check_endpoint_settings(*judge_limits, prefix="--judge-")
    return JudgeSettings(
        model=s["judge"],
        base_url=s["judge_base_url"],
        api_key_env=s["judge_api_key_env"],
        concurrency=s["judge_concurrency"],
        timeout_s=s["judge_timeout"],
        max_retries=s["judge_max_retries"],
        runs=s.get("judge_runs"),
        budget_usd=s.get("judge_budget_usd"),
    )


def backend_options(s: dict[str, Any]):
    """The model flags as `BackendOptions`, from a command's settings by parameter name (`--steer` and
    `--sampling` where the command has them)."""
    from evalkit.models.base import BackendOptions

    return BackendOptions(
        dtype=s["dtype"],
        device=s["device"],
        base_url=s["base_url"],
        api_key_env=s["api_key_env"],
        concurrency=s["concurrency"],
        timeout_s=s["timeout"],
        max_retries=s["max_retries"],
        trust_remote_code=s["trust_remote_code"],
        steer=s.get("steer"),
        prompt_style=s["prompt_style"],
        image_pad=s["image_pad"],
        sampling=s.get("sampling", BackendOptions.sampling),
        tensor_parallel_size=s["tensor_parallel_size"],
        gpu_memory_utilization=s["gpu_memory_utilization"],
        max_model_len=s["max_model_len"],
    )


def torch_threads(threads: int | None) -> int:
    """`--threads`, else the default for this process (`util.environment.default_threads`)."""
    if threads is not None:
        return threads
    from evalkit.util.environment import default_threads

    return default_threads()


def start_run(settings: dict[str, Any], progress: bool):
    """Run `evalkit run`'s settings (by parameter name): the `RunResult`, or with `dry_run` the judge-call
    plan (task → estimate). Raises `RunFailed` as `evaluate` does."""
    from evalkit.judges.settings import check_endpoint_settings
    from evalkit.runner import evaluate, plan_judging

    s = settings
    check_endpoint_settings(s["concurrency"], s["timeout"], s["max_retries"])
    judges = judge_settings(s)
    task_options = parse_task_options(s["task_option"] or [])
    data = {k: s[k] for k in ("data", "data_dir", "image_dir", "limit", "seed")}
    if s["dry_run"]:
        return plan_judging(s["tasks"], judges, output=s["output"], task_options=task_options, **data)
    return evaluate(
        s["model"],
        s["tasks"],
        batch_size=s["batch_size"],
        output=s["output"],
        max_failure_rate=s["max_failure_rate"],
        backend_options=backend_options(s),
        judges=judges,
        task_options=task_options,
        progress=progress,
        threads=torch_threads(s["threads"]),
        shard=s["shard"],
        report_to=s["report_to"],
        tracker_project=s["tracker_project"],
        run_name=s["run_name"],
        **data,
    )


def parse_task_options(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or "." not in key or not value:
            raise UserError(
                f"--task-option {item!r}: expected TASK.KEY=VALUE, e.g. mt_bench.reference=ref.jsonl"
            )
        if key in out:
            raise UserError(f"--task-option {key} is given twice")
        out[key] = value
    return out
