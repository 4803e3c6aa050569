"""The judge phase of a run: ask a task's judge about every answered row, store what it said.

Rows are judged in chunks. For each chunk the task names the calls every row still needs; they go to the
judge together (the cache answers what it can, the backend the rest, concurrently), and the loop repeats
while the task asks for more (MM-Vet re-asks after an unparseable grade). A judged row keeps the judge's
fingerprint, every call's rendered-prompt hash and raw output, the task's judge record and the parsed
scores. A row whose judge could not be reached (after the backend's retries) is stored with a
`judge_error` and its answer kept, so a resumed run judges it again without regenerating it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from evalkit.judges.cache import JudgeCache
from evalkit.judges.judge import Judge, JudgeCall, make_judge
from evalkit.models.base import BackendOptions
from evalkit.task import JudgedTask
from evalkit.types import ErrorInfo, UserError

#: rows judged between two writes of the sample log
CHUNK_ROWS = 256
#: what the generation phase writes; a judged row is these fields plus `judge` and the score fields
BASE_FIELDS = (
    "id",
    "prompt",
    "images",
    "prompt_hash",
    "response",
    "responses",
    "target",
    "cluster",
    "meta",
    "error",
    "prompt_tokens",
    "completion_tokens",
    "latency_s",
)


def task_judge(
    task: JudgedTask,
    *,
    override: str | None = None,
    options: BackendOptions | None = None,
    n_runs: int | None = None,
    cache: JudgeCache | None = None,
) -> Judge:
    """The task's official judge, or the `--judge` model with the task's prompts, settings and parser."""
    spec = task.judge_spec
    if n_runs is not None:
        if n_runs < 1:
            raise UserError("--judge-runs must be at least 1")
        spec = replace(spec, n_runs=n_runs)
    model = override or (spec.model if ":" in spec.model else f"openai:{spec.model}")
    return make_judge(spec, task.judge_prompt_hash(), override=model, options=options, cache=cache)


def needs_judging(row: dict[str, Any], fingerprint: dict[str, Any]) -> bool:
    """An answered row not yet judged by this judge (or whose judge failed last time)."""
    error = row.get("error")
    if error is not None:
        return error["type"] == "judge_error"
    judge = row.get("judge")
    return judge is None or judge.get("fingerprint") != fingerprint


def judge_rows(
    task: JudgedTask,
    judge: Judge,
    rows: list[dict[str, Any]],
    on_judged: Callable[[list[dict[str, Any]]], None],
    advance: Callable[[int], None] = lambda n: None,
) -> None:
    """Judge `rows` (answered, generation fields only) and hand each finished chunk to `on_judged`."""
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = [{k: r[k] for k in BASE_FIELDS if k in r} for r in rows[start : start + CHUNK_ROWS]]
        on_judged(
            [
                _finish(task, judge, row, done, err)
                for row, (done, err) in zip(chunk, _ask(task, judge, chunk), strict=True)
            ]
        )
        advance(len(chunk))


def _ask(
    task: JudgedTask, judge: Judge, rows: list[dict[str, Any]]
) -> list[tuple[list[dict[str, Any]], ErrorInfo | None]]:
    n_runs = judge.spec.n_runs
    done: list[list[dict[str, Any]]] = [[] for _ in rows]
    errors: list[ErrorInfo | None] = [None] * len(rows)
    active = list(range(len(rows)))
    while active:
        owners: list[int] = []
        calls: list[JudgeCall] = []
        for i in active:
            for call in task.judge_calls(rows[i], done[i], n_runs):
                owners.append(i)
                calls.append(call)
        if not calls:
            break
        _check_slots(task, owners, calls, done)
        answered: set[int] = set()
        for i, call, answer in zip(owners, calls, judge.ask_calls(calls), strict=True):
            if answer.error is not None:
                errors[i] = errors[i] or ErrorInfo(
                    "judge_error", f"{judge.spec.model}: {answer.error.message}"
                )
                continue
            done[i].append(
                {
                    "slot": call.slot,
                    "run": call.run_index,
                    "prompt_hash": answer.prompt_hash,
                    "output": answer.output,
                    "cached": answer.cached,
                }
            )
            answered.add(i)
        active = [i for i in sorted(answered) if errors[i] is None]
    return list(zip(done, errors, strict=True))


def _check_slots(
    task: JudgedTask, owners: Iterable[int], calls: list[JudgeCall], done: list[list[dict]]
) -> None:
    seen = {(i, d["slot"]) for i, rows_done in enumerate(done) for d in rows_done}
    for i, call in zip(owners, calls, strict=True):
        if (i, call.slot) in seen:
            raise RuntimeError(f"{task.name}.judge_calls asked slot {call.slot!r} twice for one row")
        seen.add((i, call.slot))


def _finish(
    task: JudgedTask, judge: Judge, row: dict[str, Any], done: list[dict[str, Any]], error: ErrorInfo | None
) -> dict[str, Any]:
    record = {"fingerprint": judge.fingerprint(), "calls": done}
    if error is not None:
        return {**row, "error": error.to_dict(), "judge": record}
    record.update(task.judge_record(row, done, judge.spec.n_runs))
    judged = {**row, "error": None, "judge": record}
    judged.update(task.score_row(judged))
    return judged
