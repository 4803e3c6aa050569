"""The generation loop of one task in a run (`evalkit.runner.evaluate` plans the run and calls it per task):
answer in batches the samples without a good stored row, later turns of multi-turn samples batched across
the samples still going, each row appended to the task's log as it comes. The judge, if the task has one,
judges every answered row it has not judged yet, on a thread fed batch by batch while generation goes on
(`evalkit.runner.overlap`). A stored row whose generation failed is asked again; a judge failure keeps
the answer. A run split across processes answers only its part of the samples
(`evalkit.runner.parallel`); under a launcher, rank 0 judges after every rank has answered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from evalkit.judges.judge import Judge
from evalkit.judges.judging import judge_rows, needs_judging
from evalkit.models.base import Backend
from evalkit.runner import overlap
from evalkit.runner.parallel import Group, Part, rank_files, rank_samples_path
from evalkit.scoring import make_row, summarize
from evalkit.store import RunStore, SampleLog, read_rows
from evalkit.task import JudgedTask, LoadedData, Task
from evalkit.types import Request, Response, Sample

WHOLE = Part()


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
    part: Part = WHOLE,
) -> tuple[dict[str, Any], int]:
    """Answer the samples of `part` (all of them by default) without a good stored row (missing, failed,
    or asked with another prompt), then have the judge (if the task has one) judge every answered row it
    has not judged yet. Returns the summary over the part's rows and the number of samples answered."""
    samples = part.select(data.samples)
    log = store.log(task.name)
    try:
        fold_rank_files(log, samples)  # left by a data-parallel launch that was killed
        todo = to_answer(task, samples, log.rows, seed)
        if judge is not None and overlap.ENABLED:
            n_new = answer_and_judge(task, samples, todo, backend, log, batch_size, seed, bars, judge)
        else:
            n_new = answer(task, samples, todo, backend, log, batch_size, seed, bars)
            judge_pending(task, samples, judge, log, bars)
        rows = log.compact(s.id for s in samples)
    finally:
        log.close()
    return summarize(task, rows, n_expected=len(samples)), n_new


def answer_and_judge(
    task: Task,
    samples: list[Sample],
    todo: list[tuple[Sample, Request]],
    backend: Backend,
    log: SampleLog,
    batch_size: int,
    seed: int,
    bars,
    judge: Judge,
) -> int:
    """`answer`, with a `JudgeWorker` judging each batch's rows while the next batches are answered; the
    rows stored earlier and not judged yet (their samples not answered again) are judged first."""
    assert isinstance(task, JudgedTask)
    fingerprint = judge.fingerprint()
    again = {sample.id for sample, _ in todo}
    pending = [
        log.rows[s.id]
        for s in samples
        if s.id in log.rows and s.id not in again and needs_judging(log.rows[s.id], fingerprint)
    ]
    worker = overlap.JudgeWorker(task, judge, log, bars, pending)
    try:
        n_new = answer(task, samples, todo, backend, log, batch_size, seed, bars, on_answered=worker.feed)
        worker.join()
    except BaseException:  # the worker's own error included (it has ended then); Ctrl-C while joining too
        worker.stop()
        raise
    return n_new


def run_task_parallel(
    task: Task,
    data: LoadedData,
    backend: Backend,
    store: RunStore,
    batch_size: int,
    seed: int,
    bars,
    judge: Judge | None,
    group: Group,
) -> tuple[dict[str, Any], int]:
    """`run_task` on one rank of a data-parallel launch (see `evalkit.runner.parallel`): this rank answers
    its part into its own rank file; then rank 0 alone folds every rank file into the task's file, judges
    and compacts. Every rank returns the summary over all samples and the number answered by all ranks."""
    path = store.samples_path(task.name)

    def answer_part() -> int:
        log = SampleLog(rank_samples_path(path, group.rank))
        try:
            known = previous_rows(path, exclude=log.path)
            known.update(log.rows)
            mine = Part(group.rank, group.world, batch_size).select(data.samples)
            todo = to_answer(task, mine, known, seed)
            return answer(task, mine, todo, backend, log, batch_size, seed, bars)
        finally:
            log.close()

    n_new = sum(group.gather(group.step(answer_part)))

    def fold() -> dict[str, Any] | None:
        if group.rank != 0:
            return None
        log = store.log(task.name)
        try:
            fold_rank_files(log, data.samples)
            judge_pending(task, data.samples, judge, log, bars)
            rows = log.compact(s.id for s in data.samples)
        finally:
            log.close()
        return summarize(task, rows, n_expected=len(data.samples))

    return group.share(group.step(fold)), n_new


def fold_rank_files(log: SampleLog, samples: list[Sample]) -> None:
    """Move the rows of every rank file into the task's file `log`, then remove the rank files: a rank
    file's rows are newer than the task file's (a fold always removes them), and go before any judging
    adds newer rows still."""
    folded = rank_files(log.path)
    if not folded:
        return
    for rank_file in folded:
        for row in read_rows(rank_file)[0].values():
            log.append(row)
    log.compact(s.id for s in samples)  # atomic: every answer is in the task file now
    for rank_file in folded:
        rank_file.unlink()


def previous_rows(path: Path, exclude: Path) -> dict[str, dict[str, Any]]:
    """Rows stored by earlier launches, read only: the task's file, then every rank file but `exclude`
    (the newer rows win). Damaged lines are left to the file's owner to report."""
    rows: dict[str, dict[str, Any]] = {}
    for source in [path, *rank_files(path)]:
        if source != exclude and source.exists():
            rows.update(read_rows(source)[0])
    return rows


def to_answer(
    task: Task, samples: list[Sample], known: dict[str, dict[str, Any]], seed: int
) -> list[tuple[Sample, Request]]:
    """The `samples` without a good row in `known` (missing, failed, or asked with another prompt), each
    with its request."""
    todo = []
    for sample in samples:
        request = task.request(sample, seed)
        row = known.get(sample.id)
        if row is None or row.get("prompt_hash") != request.prompt_hash() or needs_answer(row):
            todo.append((sample, request))
    return todo


def answer(
    task: Task,
    samples: list[Sample],
    todo: list[tuple[Sample, Request]],
    backend: Backend,
    log: SampleLog,
    batch_size: int,
    seed: int,
    bars,
    on_answered: Callable[[list[dict[str, Any]]], None] | None = None,
) -> int:
    """Answer, in batches, the `todo` part of `samples` (see `to_answer`), appending each row to `log` and
    handing each batch's rows, once stored, to `on_answered`; returns how many were answered."""
    bar = bars.add_task(task.name, total=len(samples), completed=len(samples) - len(todo))
    for batch_items in batches(todo, batch_size):
        batch, requests = zip(*batch_items, strict=True)
        responses = generate(backend, list(requests))
        later = later_turns(task, list(batch), responses, backend, seed)
        rows = [
            make_row(task, sample, request, response, later_turns=turns)
            for sample, request, response, turns in zip(batch, requests, responses, later, strict=True)
        ]
        for row in rows:
            log.append(row)
        bars.advance(bar, len(batch))
        if on_answered is not None:
            on_answered(rows)
    return len(todo)


def judge_pending(task: Task, samples: list[Sample], judge: Judge | None, log: SampleLog, bars) -> None:
    """Have `judge` (when the task has one) judge every answered row of `samples` it has not judged yet."""
    if judge is None:
        return
    assert isinstance(task, JudgedTask)
    fingerprint = judge.fingerprint()
    pending = [
        log.rows[s.id] for s in samples if s.id in log.rows and needs_judging(log.rows[s.id], fingerprint)
    ]
    jbar = bars.add_task(f"{task.name} judge", total=len(pending))
    judge_rows(
        task,
        judge,
        pending,
        on_judged=lambda rows: [log.append(r) for r in rows],
        advance=lambda n: bars.advance(jbar, n),
    )


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
