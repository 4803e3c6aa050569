"""The store loses nothing: torn lines are cut, compaction keeps one row per id, foreign runs are refused."""

import json

import pytest

from evalkit.store import RunStore, SampleLog
from evalkit.types import UserError


def test_torn_last_line_is_cut_and_rows_survive(tmp_path):
    path = tmp_path / "samples" / "t.jsonl"
    log = SampleLog(path)
    log.append({"id": "a", "response": "yes"})
    log.append({"id": "b", "response": "no"})
    log.close()
    with open(path, "a") as f:
        f.write('{"id": "c", "resp')  # killed mid-write
    log = SampleLog(path)
    assert list(log.rows) == ["a", "b"]
    assert path.read_text().count("\n") == 2 and path.read_text().endswith("\n")
    log.append({"id": "c", "response": "yes"})
    log.close()
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "b", "c"]


def test_compact_keeps_the_last_row_per_id_in_task_order(tmp_path):
    log = SampleLog(tmp_path / "t.jsonl")
    log.append({"id": "b", "error": {"type": "timeout", "message": "x"}})
    log.append({"id": "a", "response": "1"})
    log.append({"id": "b", "response": "2"})  # the retry supersedes the failure
    rows = log.compact(["a", "b", "missing"])
    log.close()
    assert [r["id"] for r in rows] == ["a", "b"]
    stored = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert stored == [{"id": "a", "response": "1"}, {"id": "b", "response": "2"}]


def test_open_resumes_same_run_and_refuses_another(tmp_path):
    store = RunStore(tmp_path / "run")
    assert store.open({"config_hash": "abc", "created": "t0"}) is False
    assert store.open({"config_hash": "abc", "created": "t1"}) is True
    assert store.read_header()["created"] == "t0"
    with pytest.raises(UserError, match="holds a different run"):
        store.open({"config_hash": "def"})


def test_reading_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(UserError, match="not a run folder"):
        RunStore(tmp_path).read_header()
