"""The generation loop of one task in a run (`evalkit.runner.evaluate` plans the run and calls it per task):
answer in batches the samples without a good stored row, later turns of multi-turn samples batched across
the samples still going, each row appended to the task's log as it comes; then the judge, if the task has
one, judges every answered row it has not judged yet. A stored row whose generation failed is asked again;
a judge failure keeps the answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from evalkit.judges.judge import Judge
from evalkit.judges.judging import judge_rows, needs_judging
from evalkit.models.base import Backend
from evalkit.scoring import make_row, summarize
from evalkit.store import RunStore
from evalkit.task import JudgedTask, LoadedData, Task
from evalkit.types import Request, Response, Sample


def batches(items: list, size: int) -> Iterator[list]:
    """`items` in consecutive chunks of `size` (the last one shorter)."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def run_task(
    task: Task,
    data: LoadedData,
    backend: Backend,
    store: RunStore,
    batch_size: int,
    seed: int,
    bars,
    judge: Judge | None = None,
) -> tuple[dict[str, Any], int]:
    """Answer the samples without a good stored row (missing, failed, or asked with another prompt),
    then have the judge (if the task has one) judge every answered row it has not judged yet."""
    log = store.log(task.name)
    try:
        todo = []
        for sample in data.samples:
            request = task.request(sample, seed)
            row = log.rows.get(sample.id)
            if row is None or row.get("prompt_hash") != request.prompt_hash() or needs_answer(row):
                todo.append((sample, request))
        bar = bars.add_task(task.name, total=len(data.samples), completed=len(data.samples) - len(todo))
        for batch_items in batches(todo, batch_size):
            batch, requests = zip(*batch_items, strict=True)
            responses = generate(backend, list(requests))
            later = later_turns(task, list(batch), responses, backend, seed)
            for sample, request, response, turns in zip(batch, requests, responses, later, strict=True):
                log.append(make_row(task, sample, request, response, later_turns=turns))
            bars.advance(bar, len(batch))
        if judge is not None:
            assert isinstance(task, JudgedTask)
            fingerprint = judge.fingerprint()
            pending = [
                log.rows[s.id]
                for s in data.samples
                if s.id in log.rows and needs_judging(log.rows[s.id], fingerprint)
            ]
            jbar = bars.add_task(f"{task.name} judge", total=len(pending))
            judge_rows(
                task,
                judge,
                pending,
                on_judged=lambda rows: [log.append(r) for r in rows],
                advance=lambda n: bars.advance(jbar, n),
            )
        rows = log.compact(s.id for s in data.samples)
    finally:
        log.close()
    return summarize(task, rows, n_expected=len(data.samples)), len(todo)


def needs_answer(row: dict[str, Any]) -> bool:
    """A stored row is answered again when generation failed; a judge failure keeps the answer."""
    error = row.get("error")
    return error is not None and error["type"] != "judge_error"


def generate(backend: Backend, requests: list[Request]) -> list[Response]:
    responses = backend.generate(requests)
    if len(responses) != len(requests):
        raise RuntimeError(f"backend {backend.name} returned {len(responses)} responses for {len(requests)}")
    for response, request in zip(responses, requests, strict=True):
        if response.id != request.id:
            raise RuntimeError(f"backend answered {response.id!r} where {request.id!r} was expected")
    return responses


def later_turns(
    task: Task, batch: list[Sample], first: list[Response], backend: Backend, seed: int
) -> list[list[Response]]:
    """Turns 2, 3, ... of multi-turn samples, each turn batched across the samples still going."""
    turns: list[list[Response]] = [[] for _ in batch]
    n_turns = [task.n_turns(s) for s in batch]
    for turn in range(2, max(n_turns, default=1) + 1):
        going = [
            i for i, s in enumerate(batch) if n_turns[i] >= turn and all(r.ok for r in [first[i], *turns[i]])
        ]
        if not going:
            break
        requests = [
            task.turn_request(batch[i], turn, [r.text for r in [first[i], *turns[i]]], seed) for i in going
        ]
        for i, response in zip(going, generate(backend, requests), strict=True):
            turns[i].append(response)
    return turns
