"""The judges of one run: the user's judge flags, one `Judge` per judged task, their cost estimate.

`--dry-run` and `--judge-budget-usd` share one estimate: the first-round judge calls of every sample
(re-asks after unparseable answers are not foreseeable), minus what the judge cache already holds.
Samples with a stored answer (when resuming a run) are estimated with that answer; the others with an
answer as long as the task lets the model write (4 characters a token), so the estimate is an upper bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.judges.cache import JudgeCache
from evalkit.judges.judge import CALLS_DEFINITION, Judge
from evalkit.judges.judging import needs_judging, task_judge
from evalkit.models.base import BackendOptions, public_url_or_none
from evalkit.store import RunStore
from evalkit.task import JudgedTask, LoadedData, Task
from evalkit.types import Sample, UserError
from evalkit.util.environment import judge_cache_path


@dataclass(frozen=True)
class JudgeSettings:
    """What the user says about judges: `--judge`, its endpoint and concurrency, runs, budget, cache."""

    model: str | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 16
    timeout_s: float = 120.0
    max_retries: int = 6
    runs: int | None = None
    budget_usd: float | None = None
    #: SQLite judge cache (default: `environment.judge_cache_path()`)
    cache_path: Path | None = None

    def options(self) -> BackendOptions:
        check_endpoint_settings(self.concurrency, self.timeout_s, self.max_retries, prefix="--judge-")
        return BackendOptions(
            base_url=self.base_url,
            api_key_env=self.api_key_env,
            concurrency=self.concurrency,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
        )


def check_endpoint_settings(
    concurrency: int, timeout_s: float, max_retries: int, *, prefix: str = "--"
) -> None:
    """One-line errors for endpoint settings that cannot work (a judge or an `openai:` model)."""
    if concurrency < 1:
        raise UserError(
            f"{prefix}concurrency must be at least 1 (requests in flight at once), got {concurrency}"
        )
    if not (math.isfinite(timeout_s) and timeout_s > 0):
        raise UserError(f"{prefix}timeout must be a positive number of seconds, got {timeout_s:g}")
    if max_retries < 0:
        raise UserError(f"{prefix}max-retries must be 0 or more, got {max_retries}")


class JudgeSet:
    def __init__(self, judges: dict[str, Judge], settings: JudgeSettings, cache: JudgeCache | None):
        self.judges = judges
        self.settings = settings
        self.cache = cache
        self._ledger_new: dict[str, bool] = {}

    @classmethod
    def for_tasks(cls, tasks: list[Task], settings: JudgeSettings) -> JudgeSet:
        judged = [t for t in tasks if isinstance(t, JudgedTask)]
        if settings.budget_usd is not None and settings.budget_usd < 0:
            raise UserError("--judge-budget-usd must not be negative")
        if not judged:
            return cls({}, settings, None)
        cache = JudgeCache(settings.cache_path or judge_cache_path())
        judges: dict[str, Judge] = {}
        try:
            options = settings.options()
            for t in judged:
                judges[t.name] = task_judge(
                    t, override=settings.model, options=options, n_runs=settings.runs, cache=cache
                )
        except BaseException:
            for j in judges.values():
                j.backend.close()
            cache.close()
            raise
        return cls(judges, settings, cache)

    def fingerprints(self) -> dict[str, dict[str, Any]]:
        return {name: j.fingerprint() for name, j in self.judges.items()}

    def command(self) -> dict[str, Any]:
        """The judge flags as run.json's `command` records them."""
        if not self.judges:
            return {}
        s = self.settings
        return {
            "judge": s.model,
            "judge_base_url": public_url_or_none(s.base_url),
            "judge_concurrency": s.concurrency,
            "judge_timeout_s": s.timeout_s,
            "judge_max_retries": s.max_retries,
            "judge_runs": s.runs,
            "judge_budget_usd": s.budget_usd,
        }

    def attach(self, run_dir: Path) -> None:
        """Count every judge call of the run in `run_dir` durably (the judge cache's usage ledger), so
        run.json reports the calls of interrupted processes too. A run folder without run.json starts
        a new ledger."""
        if self.cache is None:
            return
        run = str(Path(run_dir).resolve())
        if not (Path(run_dir) / "run.json").exists():
            self.cache.reset_usage(run)
        for task, judge in self.judges.items():
            judge.ledger = (run, f"{task}|{judge.id}")
            # a resumed run without a ledger (its folder moved, the cache deleted) keeps run.json's record
            self._ledger_new[task] = not any(self.cache.usage(*judge.ledger).values())

    def report(self, task: str, previous: dict[str, Any] | None = None) -> dict[str, Any]:
        """run.json's record of one task's judge: fingerprint, endpoint and what judging cost. With a
        ledger (`attach`) the cost is the ledger's, every process of the run included; without one the
        process's own usage is summed with the `previous` record of the same run."""
        j = self.judges[task]
        same_run = previous is not None and previous.get("fingerprint") == j.fingerprint()
        usage = j.ledger_usage()
        if usage is None:
            usage = j.usage.to_dict()
            if same_run:
                usage = add_usage(previous["usage"], usage)
        elif same_run and self._ledger_new.get(task):
            usage = add_usage(previous["usage"], usage)
        usage["calls_counted"] = CALLS_DEFINITION
        return {"fingerprint": j.fingerprint(), "backend": j.backend.fingerprint(), "usage": usage}

    def estimate(
        self, tasks: list[Task], loaded: dict[str, LoadedData], run_dir: Path | None = None
    ) -> dict[str, dict[str, Any]]:
        """Per judged task: judge calls still to make, cached calls, estimated tokens and cost."""
        stored = RunStore(run_dir) if run_dir is not None and RunStore(run_dir).exists() else None
        out = {}
        for task in tasks:
            judge = self.judges.get(task.name)
            if judge is None:
                continue
            assert isinstance(task, JudgedTask)
            rows = {}
            if stored is not None and stored.samples_path(task.name).exists():
                rows = {r["id"]: r for r in stored.read_samples(task.name)}
            calls = []
            for sample in loaded[task.name].samples:
                row = rows.get(sample.id)
                if row is not None and not needs_judging(row, judge.fingerprint()):
                    continue
                if row is None or row.get("response") is None:
                    row = placeholder_row(task, sample)
                calls.extend(task.judge_calls(row, [], judge.spec.n_runs))
            out[task.name] = {"judge": judge.spec.model, **judge.estimate_calls(calls)}
        return out

    def check_budget(self, tasks: list[Task], loaded: dict[str, LoadedData], run_dir: Path) -> None:
        """Refuse to start a run whose estimated judge cost exceeds `--judge-budget-usd`."""
        budget = self.settings.budget_usd
        if budget is None or not self.judges:
            return
        est = self.estimate(tasks, loaded, run_dir)
        unknown = [f"{t} ({e['judge']})" for t, e in est.items() if e["est_cost_usd"] is None and e["calls"]]
        if unknown:
            raise UserError(
                f"--judge-budget-usd: no price is known for the judge of {', '.join(unknown)}, so the cost "
                "cannot be checked; drop the budget flag to run anyway"
            )
        total = sum(e["est_cost_usd"] or 0.0 for e in est.values())
        if total > budget:
            detail = ", ".join(f"{t}: {e['calls']} calls ≈ ${e['est_cost_usd']:.2f}" for t, e in est.items())
            raise UserError(
                f"estimated judge cost ${total:.2f} exceeds --judge-budget-usd {budget:g} ({detail}); "
                "see `--dry-run`"
            )

    def close(self) -> None:
        for j in self.judges.values():
            j.backend.close()
        if self.cache is not None:
            self.cache.close()


def add_usage(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two `JudgeUsage.to_dict()` records summed; an unknown cost stays unknown."""
    out = {k: a[k] + b[k] for k in ("calls", "cache_hits", "failures", "prompt_tokens", "completion_tokens")}
    out["cost_usd"] = (
        None if a["cost_usd"] is None or b["cost_usd"] is None else a["cost_usd"] + b["cost_usd"]
    )
    models = dict(a["by_model"])
    for name, n in b["by_model"].items():
        models[name] = models.get(name, 0) + n
    out["by_model"] = models
    return out


def placeholder_row(task: JudgedTask, sample: Sample) -> dict[str, Any]:
    """A row for a sample not answered yet, with the longest answer the task lets the model write."""
    request = task.request(sample)
    answer = ("x " * (2 * request.generation.max_new_tokens)).strip()  # words, ≈ 4 characters a token
    row: dict[str, Any] = {
        "id": sample.id,
        "prompt": next((m.text for m in reversed(request.messages) if m.role == "user"), ""),
        "images": [img for m in request.messages for img in m.images],
        "response": answer,
        "target": sample.target,
        "cluster": sample.cluster,
        "meta": sample.meta,
        "error": None,
    }
    if task.n_turns(sample) > 1:
        row["responses"] = [answer] * task.n_turns(sample)
    return row
