"""Judging overlapped with generation: a worker thread judges a task's rows while the generation loop
answers the following batches, so a judged task takes about max(generation, judging) rather than their sum.

The generation loop hands each batch of stored rows to `JudgeWorker.feed`; the worker takes whatever is
queued (up to `CHUNK_ROWS` rows), judges it with `judge_rows` (the same calls, cache and usage ledger as
judging after generation) and appends the judged rows to the task's log, whose appends are locked. Rows
an earlier, interrupted process answered but did not judge are queued first. Each row is judged once per
process: a judge failure stays a `judge_error` row that the next run judges again, as before.

An exception on either side ends both without a hang: the worker's is raised in the generation loop at
its next batch (or at `join`); a failed generation loop calls `stop`, which lets the chunk in flight
finish (its answers are committed) and drops the rest, judged on resume.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from evalkit.judges.judge import Judge
from evalkit.judges.judging import CHUNK_ROWS, judge_rows, needs_judging
from evalkit.store import SampleLog
from evalkit.task import JudgedTask

#: False judges after generation instead (one phase after the other); only tests and
#: `benchmarks/judge_overlap.py` turn it off, to compare the two
ENABLED = True

_END = None  # queued by `join`: no more rows will come


class JudgeWorker:
    """A thread judging the rows fed to it, appending each judged chunk to `log`."""

    def __init__(self, task: JudgedTask, judge: Judge, log: SampleLog, bars, pending: list[dict[str, Any]]):
        self.task = task
        self.judge = judge
        self.log = log
        self.bars = bars
        self.bar = bars.add_task(f"{task.name} judge", total=len(pending))
        self.total = len(pending)
        self.error: BaseException | None = None
        self._fingerprint = judge.fingerprint()
        self._queue: queue.Queue[list[dict[str, Any]] | None] = queue.Queue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"judge-{task.name}", daemon=True)
        for start in range(0, len(pending), CHUNK_ROWS):  # `stop` waits for one chunk at most
            self._queue.put(pending[start : start + CHUNK_ROWS])
        self._thread.start()

    def feed(self, rows: list[dict[str, Any]]) -> None:
        """Queue freshly stored rows for judging (those whose generation failed are left out, as they
        are asked again); raises the worker's exception if it has failed."""
        self.check()
        rows = [r for r in rows if needs_judging(r, self._fingerprint)]
        if rows:
            self.total += len(rows)
            self.bars.update(self.bar, total=self.total)
            self._queue.put(list(rows))

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def join(self) -> None:
        """Wait until every fed row is judged; raises the worker's exception if it failed."""
        self._queue.put(_END)
        self._thread.join()
        self.check()

    def stop(self) -> None:
        """Stop after the chunk in flight (the generation loop failed or was interrupted); rows not judged
        wait for resume."""
        self._stopping.set()
        self._queue.put(_END)
        self._thread.join()

    def _run(self) -> None:
        try:
            done = False
            while not done and not self._stopping.is_set():
                rows = self._queue.get()
                if rows is _END:
                    break
                # whatever else is queued joins this chunk (judging lagging behind gets larger chunks)
                while len(rows) < CHUNK_ROWS:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is _END:
                        done = True
                        break
                    rows.extend(more)
                judge_rows(
                    self.task,
                    self.judge,
                    rows,
                    on_judged=lambda judged: [self.log.append(r) for r in judged],
                    advance=lambda n: self.bars.advance(self.bar, n),
                )
        except BaseException as exc:  # handed to the generation loop, which raises it
            self.error = exc
