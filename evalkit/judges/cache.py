"""A content-addressed cache of judge answers in SQLite (WAL), so a finished run re-judges nothing.

The key hashes everything that determines a judge's answer: the judge's identity (model, prompt hash,
parser version), the rendered messages, the sampling settings and, for sampled judges, the explicit run
index. Only deterministic calls (temperature 0) or calls with a run index are cached: a sampled answer
without an index is a fresh draw every time.

Each answer is committed when it arrives, so a kill loses at most the calls in flight. The same file
keeps a usage ledger per run and judge (`usage` table): every HTTP request is counted when it is sent,
and an answer's tokens are counted in the transaction that stores it, so a run killed and resumed reports
every request it made. A database locked by another process is waited for (SQLite's busy timeout) and
the write retried a bounded number of times; a full disk, a read-only file or a lock that outlasts the
retries raise `StorageError` naming the cache file and the fix.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from evalkit.util.errors import StorageError, describe_os_error, describe_sqlite_error

SCHEMA = """
CREATE TABLE IF NOT EXISTS judgments (
    key TEXT PRIMARY KEY,
    judge TEXT NOT NULL,
    response TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS usage (
    run TEXT NOT NULL,
    judge TEXT NOT NULL,
    calls INTEGER NOT NULL DEFAULT 0,
    cache_hits INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run, judge)
);
"""
#: the counters of the usage ledger, in table order
COUNTERS = ("calls", "cache_hits", "failures", "prompt_tokens", "completion_tokens")

T = TypeVar("T")


def cache_key(judge_id: str, messages: Any, sampling: Any, run_index: int | None) -> str:
    payload = {"judge": judge_id, "messages": messages, "sampling": sampling, "run": run_index}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class JudgeCache:
    """`busy_timeout_s`: how long one statement waits for another process's write lock; `retries`: how
    many more times a write that still found the database locked is tried (with a growing pause)."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 10.0, retries: int = 5):
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self.retries = retries
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            where = describe_os_error(exc, self.path.parent)
            raise StorageError(f"judge cache: {where}; or set EVALKIT_JUDGE_CACHE to another file") from None
        try:
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, timeout=busy_timeout_s, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise self._storage_error(exc) from None
        try:
            self._write(lambda db: db.execute("PRAGMA journal_mode=WAL"), transaction=False)
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._write(lambda db: db.executescript(SCHEMA), transaction=False)
        except BaseException:
            self._db.close()
            raise

    def _storage_error(self, exc: sqlite3.Error) -> StorageError:
        text = str(exc)
        if "unable to open" in text:
            return StorageError(
                f"judge cache {self.path}: {text} (the folder is missing or not writable: fix its "
                "permissions or point EVALKIT_JUDGE_CACHE elsewhere)"
            )
        return StorageError(
            f"judge cache {describe_sqlite_error(exc, self.path)}; or set EVALKIT_JUDGE_CACHE to another file"
        )

    def _write(self, fn: Callable[[sqlite3.Connection], T], *, transaction: bool = True) -> T:
        """Run `fn` in one write transaction (BEGIN IMMEDIATE: the write lock is taken up front, so SQLite's
        busy handler waits for it), retried while another connection holds the lock."""
        for attempt in range(self.retries + 1):
            with self._lock:
                try:
                    if not transaction:
                        return fn(self._db)
                    self._db.execute("BEGIN IMMEDIATE")
                    try:
                        out = fn(self._db)
                        self._db.execute("COMMIT")
                        return out
                    except BaseException:
                        if self._db.in_transaction:
                            self._db.execute("ROLLBACK")
                        raise
                except sqlite3.OperationalError as exc:
                    busy = "locked" in str(exc) or "busy" in str(exc)
                    if not busy or attempt == self.retries:
                        raise self._storage_error(exc) from None
                except sqlite3.Error as exc:
                    raise self._storage_error(exc) from None
            time.sleep(min(2.0, 0.05 * 2**attempt))
        raise AssertionError("unreachable")

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            try:
                return fn(self._db)
            except sqlite3.Error as exc:
                raise self._storage_error(exc) from None

    def get(self, key: str) -> dict[str, Any] | None:
        return self.get_many([key]).get(key)

    def get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """Cached answers for the keys that have one (one query per 500 keys)."""

        def read(db: sqlite3.Connection) -> dict[str, dict[str, Any]]:
            out: dict[str, dict[str, Any]] = {}
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT key, response FROM judgments WHERE key IN ({marks})"
                out.update((k, json.loads(r)) for k, r in db.execute(query, chunk))
            return out

        return self._read(read)

    def put(
        self,
        key: str,
        judge_id: str,
        response: dict[str, Any],
        usage: tuple[str, str, dict[str, int]] | None = None,
    ) -> None:
        """Store one answer; `usage` = (run, judge, counters) is added to the ledger in the same commit."""
        self.put_many([(key, judge_id, response)], usage)

    def put_many(
        self,
        entries: list[tuple[str, str, dict[str, Any]]],
        usage: tuple[str, str, dict[str, int]] | None = None,
    ) -> None:
        """Store answers (and a ledger increment) in one transaction."""
        now = time.time()
        rows = [(key, judge, json.dumps(resp, ensure_ascii=False), now) for key, judge, resp in entries]

        def write(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT OR REPLACE INTO judgments (key, judge, response, created) VALUES (?, ?, ?, ?)", rows
            )
            if usage is not None:
                _add_usage(db, *usage)

        self._write(write)

    def add_usage(self, run: str, judge: str, counts: dict[str, int]) -> None:
        """Add `counts` (a subset of `COUNTERS`) to the ledger of (run, judge), committed at once."""
        self._write(lambda db: _add_usage(db, run, judge, counts))

    def usage(self, run: str, judge: str) -> dict[str, int]:
        """The ledger of (run, judge): every counter, 0 when nothing was recorded."""
        query = f"SELECT {', '.join(COUNTERS)} FROM usage WHERE run = ? AND judge = ?"
        row = self._read(lambda db: db.execute(query, (run, judge)).fetchone())
        return dict(zip(COUNTERS, row or (0,) * len(COUNTERS), strict=True))

    def reset_usage(self, run: str) -> None:
        """Forget the ledger of `run` (a new run in a folder whose earlier run was deleted)."""
        self._write(lambda db: db.execute("DELETE FROM usage WHERE run = ?", (run,)))

    def __len__(self) -> int:
        return self._read(lambda db: db.execute("SELECT COUNT(*) FROM judgments").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _add_usage(db: sqlite3.Connection, run: str, judge: str, counts: dict[str, int]) -> None:
    unknown = set(counts) - set(COUNTERS)
    if unknown:
        raise ValueError(f"unknown usage counters {sorted(unknown)}")
    cols = list(counts)
    sets = ", ".join(f"{c} = {c} + excluded.{c}" for c in cols)
    db.execute(
        f"INSERT INTO usage (run, judge, {', '.join(cols)}) VALUES (?, ?{', ?' * len(cols)}) "
        f"ON CONFLICT (run, judge) DO UPDATE SET {sets}",
        (run, judge, *(counts[c] for c in cols)),
    )
