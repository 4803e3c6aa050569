"""Judge faults against a real OpenAI-compatible server on 127.0.0.1 and a real SQLite cache: 5xx, 429,
timeouts, malformed bodies and dropped connections never change an answer, every HTTP request is counted
(retries included), each answer is committed as it arrives, a second connection holding the write lock is
waited for, and a cache that cannot be written stops the judge with one line naming the file."""

import re
import sqlite3
import threading
import time

import pytest
from support.openai_server import FakeOpenAIServer, Fault, last_user_text

from evalkit.judges.cache import JudgeCache
from evalkit.judges.judge import JudgeSpec, make_judge, prompt_sha256
from evalkit.judges.settings import JudgeSettings
from evalkit.models.base import BackendOptions
from evalkit.types import Message
from evalkit.util.errors import StorageError

SPEC = JudgeSpec("openai:gpt-4-0613", temperature=0.0, max_tokens=16)


def rating(body):
    """A judge's answer derived from the request alone: the length of the judged answer, mod 10."""
    answer = re.search(r"Answer: (x*)", last_user_text(body)).group(1)
    return f"Rating: [[{len(answer) % 10}]]"


def items(n):
    return [(f"q{i}", (Message("user", f"Answer: {'x' * i}"),)) for i in range(n)]


def judge_for(server, cache, *, concurrency=4, timeout_s=2.0, max_retries=4):
    options = BackendOptions(
        base_url=server.base_url, concurrency=concurrency, timeout_s=timeout_s, max_retries=max_retries
    )
    judge = make_judge(SPEC, prompt_sha256("t"), options=options, cache=cache)
    judge.backend.client.backoff_base_s = 0.01  # fast retries in tests
    return judge


def stored(path):
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]
    finally:
        db.close()


def test_every_fault_kind_is_retried_counted_and_never_misscores(tmp_path, openai_server):
    faults = {
        0: "500",
        1: "503",
        2: "429",
        3: "malformed",
        4: "bad_schema",
        5: "close",
        6: Fault("delay", seconds=2.0),  # longer than the 0.5 s timeout
        9: "500",
    }
    server = openai_server(responder=rating, faults=faults)
    judge = judge_for(server, JudgeCache(tmp_path / "c.sqlite"), timeout_s=0.5)
    answers = judge.ask(items(12))
    assert [a.text for a in answers] == [f"Rating: [[{i % 10}]]" for i in range(12)]  # by hand
    assert all(a.error is None for a in answers)
    # every HTTP request the server saw is a counted call: 12 answers + 8 faulted attempts
    assert server.count == 12 + len(faults)
    assert judge.usage.calls == server.count and judge.usage.failures == 0
    assert stored(tmp_path / "c.sqlite") == 12


def test_a_call_that_fails_for_good_is_an_error_never_an_answer(tmp_path, openai_server):
    def always_500_for_q3(index, body):
        return "500" if last_user_text(body) == "Answer: xxx" else None

    server = openai_server(responder=rating, faults=always_500_for_q3)
    judge = judge_for(server, JudgeCache(tmp_path / "c.sqlite"), max_retries=2)
    answers = judge.ask(items(5))
    assert answers[3].text is None and "HTTP 500" in answers[3].error.message
    assert "after 3 attempts" in answers[3].error.message
    assert [a.text for i, a in enumerate(answers) if i != 3] == [f"Rating: [[{i}]]" for i in (0, 1, 2, 4)]
    assert judge.usage.calls == server.count == 4 + 3 and judge.usage.failures == 1
    assert stored(tmp_path / "c.sqlite") == 4  # a failure is never cached


def test_the_judge_timeout_and_retries_settings_are_honoured(tmp_path, openai_server):
    """`--judge-timeout 0.4 --judge-max-retries 1` against a judge that never answers in time: two
    attempts of about 0.4 s each, not 7 attempts of 120 s."""
    settings = JudgeSettings(timeout_s=0.4, max_retries=1)
    server = openai_server(responder=rating, sleep_s=5.0)
    options = settings.options()
    options.base_url = server.base_url
    judge = make_judge(SPEC, prompt_sha256("t"), options=options, cache=None)
    judge.backend.client.backoff_base_s = 0.01
    t0 = time.perf_counter()
    (answer,) = judge.ask(items(1))
    elapsed = time.perf_counter() - t0
    assert server.count == 2 and judge.usage.calls == 2
    assert answer.error.type == "timeout" and "0.4s" in answer.error.message
    assert 0.7 < elapsed < 3.0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("concurrency", 0, "--judge-concurrency must be at least 1"),
        ("timeout_s", 0.0, "--judge-timeout must be a positive"),
        ("timeout_s", float("nan"), "--judge-timeout must be a positive"),
        ("max_retries", -1, "--judge-max-retries must be 0 or more"),
    ],
)
def test_unusable_judge_settings_are_one_line_errors(field, value, message):
    from evalkit.types import UserError

    with pytest.raises(UserError, match=message):
        JudgeSettings(**{field: value}).options()


def test_each_answer_is_committed_when_it_arrives(tmp_path, openai_server):
    """With one request in flight, when request k reaches the server at least k - 1 earlier answers are
    already in the cache file (read through a second connection): a kill loses at most what is in flight."""
    path = tmp_path / "c.sqlite"
    seen = []

    def count_then_rate(body):
        seen.append(stored(path))
        return rating(body)

    server = openai_server(responder=count_then_rate)
    judge = judge_for(server, JudgeCache(path), concurrency=1)
    judge.ask(items(10))
    assert len(seen) == 10
    assert all(committed >= k - 1 for k, committed in enumerate(seen)), seen
    assert stored(path) == 10


def test_a_write_lock_held_by_another_connection_is_waited_for(tmp_path, openai_server):
    path = tmp_path / "c.sqlite"
    cache = JudgeCache(path, busy_timeout_s=0.2, retries=5)  # waits up to ~2.6 s in all
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process's write transaction
    release = threading.Timer(0.8, lambda: other.execute("COMMIT"))
    release.start()
    server = openai_server(responder=rating)
    judge = judge_for(server, cache)
    answers = judge.ask(items(6))
    assert server.count == 6
    release.join()
    other.close()
    assert all(a.error is None for a in answers)
    assert stored(path) == 6  # nothing paid was lost to the lock


def test_a_lock_that_is_never_released_is_one_storage_error(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = JudgeCache(path, busy_timeout_s=0.1, retries=2)
    cache.put("old", "judge", {"text": "kept"})
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with FakeOpenAIServer(responder=rating) as server:
            judge = judge_for(server, cache, concurrency=1)
            t0 = time.perf_counter()
            with pytest.raises(StorageError) as info:
                judge.ask(items(3))
            assert time.perf_counter() - t0 < 10
    finally:
        other.execute("ROLLBACK")
        other.close()
    message = str(info.value)
    assert str(path) in message and "locked" in message and "\n" not in message
    assert JudgeCache(path).get("old") == {"text": "kept"}


def test_a_full_cache_is_one_storage_error_and_keeps_what_it_stored(tmp_path, openai_server):
    """SQLite's own "database or disk is full" (the page limit stands in for a full disk)."""
    path = tmp_path / "c.sqlite"
    cache = JudgeCache(path)
    pages = cache._db.execute("PRAGMA page_count").fetchone()[0]
    cache._db.execute(f"PRAGMA max_page_count = {pages + 2}")
    server = openai_server(responder=lambda body: rating(body) + " " + "y" * 3000)
    judge = judge_for(server, cache, concurrency=1)
    with pytest.raises(StorageError) as info:
        judge.ask(items(20))
    message = str(info.value)
    assert str(path) in message and "disk is full" in message
    kept = stored(path)
    assert 0 < kept < 20
    again = JudgeCache(path)
    assert len(again) == kept


def test_a_read_only_cache_folder_is_one_storage_error(tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes to read-only folders")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(StorageError, match="judge cache .*ro/c.sqlite"):
            JudgeCache(folder / "c.sqlite")
    finally:
        folder.chmod(0o700)


def test_a_cache_path_under_a_file_is_one_storage_error(tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(StorageError, match=r"judge cache: .*afile: File exists .*EVALKIT_JUDGE_CACHE"):
        JudgeCache(tmp_path / "afile" / "c.sqlite")


def test_a_read_only_cache_is_one_storage_error_naming_the_fix(tmp_path, openai_server):
    """SQLite's own "attempt to write a readonly database" (query_only stands in for a read-only file,
    which root could still write). In a run the call is counted in the cache before it is sent, so
    nothing is paid for that cannot be stored."""
    path = tmp_path / "c.sqlite"
    cache = JudgeCache(path)
    cache.put("old", "judge", {"text": "kept"})
    cache._db.execute("PRAGMA query_only = 1")
    server = openai_server(responder=rating)
    judge = judge_for(server, cache)
    judge.ledger = ("run", "judge")  # as `JudgeSet.attach` sets it for a run
    with pytest.raises(StorageError) as info:
        judge.ask(items(2))
    assert server.count == 0
    message = str(info.value)
    assert str(path) in message and "readonly" in message and "fix its permissions" in message
    assert JudgeCache(path).get("old") == {"text": "kept"}
