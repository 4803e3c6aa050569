"""A content-addressed cache of judge answers in SQLite (WAL), so a finished run re-judges nothing.

The key hashes everything that determines a judge's answer: the judge's identity (model, prompt hash,
parser version), the rendered messages, the sampling settings and, for sampled judges, the explicit run
index. Only deterministic calls (temperature 0) or calls with a run index are cached: a sampled answer
without an index is a fresh draw every time. Each answer is committed on its own, so a crash loses at
most the call in flight; WAL keeps readers and a writer from blocking each other.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS judgments (
    key TEXT PRIMARY KEY,
    judge TEXT NOT NULL,
    response TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def cache_key(judge_id: str, messages: Any, sampling: Any, run_index: int | None) -> str:
    payload = {"judge": judge_id, "messages": messages, "sampling": sampling, "run": run_index}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class JudgeCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(SCHEMA)

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT response FROM judgments WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """Cached answers for the keys that have one (one query per 500 keys)."""
        out: dict[str, dict[str, Any]] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT key, response FROM judgments WHERE key IN ({marks})"
                out.update((k, json.loads(r)) for k, r in self._db.execute(query, chunk))
        return out

    def put(self, key: str, judge_id: str, response: dict[str, Any]) -> None:
        self.put_many([(key, judge_id, response)])

    def put_many(self, entries: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Store answers in one transaction (a batch of judge calls commits once)."""
        now = time.time()
        rows = [(key, judge, json.dumps(resp, ensure_ascii=False), now) for key, judge, resp in entries]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO judgments (key, judge, response, created) VALUES (?, ?, ?, ?)", rows
            )
            self._db.execute("COMMIT")

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
