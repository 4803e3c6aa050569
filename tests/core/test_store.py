"""The store loses nothing: torn lines are cut, compaction keeps one row per id, foreign runs are refused."""

import json
import os
import stat

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


def test_garbage_in_the_middle_keeps_every_good_row_after_it(tmp_path, capsys):
    path = tmp_path / "t.jsonl"
    good = [json.dumps({"id": f"s{i}", "response": str(i)}) for i in range(6)]
    path.write_text("\n".join([*good[:2], "garbage {", *good[2:4], '{"no": "id"}', *good[4:]]) + "\n")
    log = SampleLog(path)
    log.close()
    assert list(log.rows) == [f"s{i}" for i in range(6)]  # nothing after the garbage is lost
    assert [p.split(": ", 1)[0] for p in log.problems] == [f"{path}:3", f"{path}:6"]
    assert f"{path}:3: not valid JSON" in capsys.readouterr().err  # reported, not silent


def test_an_unterminated_final_row_that_parses_is_kept(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b"}')  # a hand-edited file without its last newline
    log = SampleLog(path)
    log.append({"id": "c"})
    log.close()
    assert path.read_text() == '{"id": "a"}\n{"id": "b"}\n{"id": "c"}\n'


def test_readers_never_change_the_file(tmp_path):
    path = tmp_path / "run" / "samples" / "t.jsonl"
    path.parent.mkdir(parents=True)
    data = b'{"id": "a"}\n[1]\n\x00\x01\n{"id": "b"}\n{"id": "c", "resp'
    path.write_bytes(data)
    problems = []
    rows = RunStore(tmp_path / "run").read_samples("t", problems)
    assert [r["id"] for r in rows] == ["a", "b"] and len(problems) == 3
    assert path.read_bytes() == data
    with pytest.raises(UserError, match=r"t.jsonl:2: a JSON list, not an object, skipped \(and 2 more\)"):
        RunStore(tmp_path / "run").read_samples("t")


@pytest.mark.parametrize("data", [b"[]", b'{"run_id": "x", "tas', b"\xff", b'{"tasks": []}', b"[" * 100000])
def test_a_damaged_run_json_is_a_one_line_user_error(tmp_path, data):
    (tmp_path / "run.json").write_bytes(data)
    with pytest.raises(UserError, match="run.json: .*the run header is damaged"):
        RunStore(tmp_path).read_header()


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_every_file_written_honours_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        store = RunStore(tmp_path / "run")
        store.open({"config_hash": "abc"})
        store.write_metrics({})
        log = store.log("t")
        log.append({"id": "a"})
        log.compact(["a"])
        log.close()
    finally:
        os.umask(old)
    for name in ("run.json", "metrics.json", "samples/t.jsonl"):
        assert stat.S_IMODE((tmp_path / "run" / name).stat().st_mode) == 0o666 & ~mask, name
    assert not list((tmp_path / "run").rglob("*.tmp"))
