"""Fail fast on an endpoint a run cannot use: one cheap request to each OpenAI-compatible endpoint the run
will call, so a refused key or a dead server is one line with the server's own message, not a failure rate
after a minute of retries. An `openai:` model's `--base-url` is probed before any data is read; the
judge's `--judge-base-url` after the data (which says whether a judged task asks its judge at all, e.g. not
in objhal's words mode or mmbench without a matcher) and before any model is loaded.
"""

from __future__ import annotations

from typing import Any

from evalkit.judges.settings import JudgeSettings, check_endpoint_settings, placeholder_row
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


def model_endpoint(
    model: str | Backend, options: BackendOptions | None
) -> list[tuple[str, str, BackendOptions]]:
    """(flag, model name, options) of an `openai:` model's endpoint; [] for any other model."""
    if not (isinstance(model, str) and model.startswith("openai:")):
        return []
    opts = options or BackendOptions()
    check_endpoint_settings(opts.concurrency, opts.timeout_s, opts.max_retries)
    return [("--base-url", model.split(":", 1)[1], opts)]


def judge_endpoints(
    tasks: list[Task], loaded: dict[str, LoadedData], judges: JudgeSettings
) -> list[tuple[str, str, BackendOptions]]:
    """(flag, judge model name, options) of each distinct OpenAI-compatible judge endpoint the run will
    call: judged tasks whose judge is `openai:` and will be asked at all."""
    out: list[tuple[str, str, BackendOptions]] = []
    seen: set[Any] = set()
    for task in tasks:
        if not isinstance(task, JudgedTask):
            continue
        spec = task.judge_spec
        name = judges.model or (spec.model if ":" in spec.model else f"openai:{spec.model}")
        if not name.startswith("openai:") or not asks_judge(
            task, loaded[task.name], judges.runs or spec.n_runs
        ):
            continue
        opts = judges.options()
        if (opts.base_url, opts.api_key_env) not in seen:
            seen.add((opts.base_url, opts.api_key_env))
            out.append(("--judge-base-url", name.split(":", 1)[1], opts))
    return out


def probe_model(model: str | Backend, options: BackendOptions | None) -> None:
    """`probe` the endpoint of an `openai:` model (before any data is read)."""
    probe(model_endpoint(model, options))


def probe_judges(tasks: list[Task], loaded: dict[str, LoadedData], judges: JudgeSettings) -> None:
    """`probe` the judge endpoints the run will call (the loaded data says whether a task asks its judge)."""
    probe(judge_endpoints(tasks, loaded, judges))


def probe(endpoints: list[tuple[str, str, BackendOptions]]) -> None:
    """Raise `UserError` (exit 2) naming the endpoint (credentials stripped) and the server's message
    when an endpoint refuses the key or cannot be reached."""
    from evalkit.models.openai_backend import OpenAIBackend
    from evalkit.models.openai_client import DEFAULT_BASE_URL

    for flag, name, opts in endpoints:
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
