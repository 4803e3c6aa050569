"""Fail fast on an endpoint a run cannot use: one cheap request to each OpenAI-compatible endpoint the run
will call (an `openai:` model's `--base-url`, the judge's `--judge-base-url`) before any model is loaded,
so a refused key or a dead server is one line with the server's own message, not a failure rate after a
minute of retries. Judged tasks whose judge will not be asked (e.g. objhal's words mode) are not probed.
"""

from __future__ import annotations

from typing import Any

from evalkit.judge_settings import JudgeSettings, check_endpoint_settings, placeholder_row
from evalkit.models.base import Backend, BackendOptions, public_url
from evalkit.task import JudgedTask, LoadedData, Task
from evalkit.types import UserError

#: samples looked at to tell whether a judged task will ask its judge at all
SAMPLES_CHECKED = 8
#: the longest a probe waits for an answer (less when the endpoint's own timeout is shorter)
PROBE_TIMEOUT_S = 30.0


def asks_judge(task: JudgedTask, data: LoadedData, n_runs: int) -> bool:
    """Whether the run will call `task`'s judge: its first samples, answered at full length, need a call."""
    return any(task.judge_calls(placeholder_row(task, s), [], n_runs) for s in data.samples[:SAMPLES_CHECKED])


def endpoints_used(
    model: str | Backend,
    tasks: list[Task],
    loaded: dict[str, LoadedData],
    options: BackendOptions | None,
    judges: JudgeSettings,
) -> list[tuple[str, str, BackendOptions]]:
    """(flag, model name, options) of each distinct OpenAI-compatible endpoint the run will call."""
    out: list[tuple[str, str, BackendOptions]] = []
    if isinstance(model, str) and model.startswith("openai:"):
        opts = options or BackendOptions()
        check_endpoint_settings(opts.concurrency, opts.timeout_s, opts.max_retries)
        out.append(("--base-url", model.split(":", 1)[1], opts))
    for task in tasks:
        if not isinstance(task, JudgedTask):
            continue
        spec = task.judge_spec
        name = judges.model or (spec.model if ":" in spec.model else f"openai:{spec.model}")
        if not name.startswith("openai:") or not asks_judge(
            task, loaded[task.name], judges.runs or spec.n_runs
        ):
            continue
        out.append(("--judge-base-url", name.split(":", 1)[1], judges.options()))
    seen: set[Any] = set()
    unique = []
    for flag, name, opts in out:
        key = (opts.base_url, opts.api_key_env)
        if key not in seen:
            seen.add(key)
            unique.append((flag, name, opts))
    return unique


def probe_endpoints(
    model: str | Backend,
    tasks: list[Task],
    loaded: dict[str, LoadedData],
    options: BackendOptions | None,
    judges: JudgeSettings,
) -> None:
    """Raise `UserError` (exit 2) naming the endpoint (credentials stripped) and the server's message
    when an endpoint the run will call refuses the key or cannot be reached."""
    from evalkit.models.openai_backend import DEFAULT_BASE_URL, OpenAIBackend

    for flag, name, opts in endpoints_used(model, tasks, loaded, options, judges):
        backend = OpenAIBackend(name, opts)  # an invalid URL is a UserError here
        problem = backend.probe(min(opts.timeout_s, PROBE_TIMEOUT_S))
        if problem is None:
            continue
        where = public_url(opts.base_url or DEFAULT_BASE_URL)
        key_flag = "--api-key-env" if flag == "--base-url" else "--judge-api-key-env"
        if problem.startswith("unreachable"):
            fix = f"check {flag} and that the server is running"
        elif problem.startswith(("HTTP 401", "HTTP 403")):
            fix = f"check the API key in ${opts.api_key_env} ({key_flag})"
        else:
            fix = f"check {flag} and the model name {name!r}"
        raise UserError(f"{flag} {where}: {problem} ({fix})")
