"""The judge layer against a real OpenAI-compatible server on 127.0.0.1: cached re-runs make zero
requests, faults do not change scores, usage and cost match what the server reported, and the SQLite
cache survives a SIGKILL mid-write."""

import re
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from support.openai_server import Fault, last_user_text, message_text

from evalkit.judges.cache import JudgeCache
from evalkit.judges.judge import JudgeSpec, make_judge, prompt_sha256
from evalkit.judges.pricing import cost_usd
from evalkit.models.base import BackendOptions
from evalkit.types import Message

SPEC = JudgeSpec("openai:gpt-4-0613", temperature=0.0, max_tokens=64)


def rating(body):
    """Answers like a judge: a rating derived from the request (the length of the answer judged)."""
    answer = re.search(r"Answer: (.*)", last_user_text(body)).group(1)
    return f"The answer is fine. Rating: [[{len(answer) % 10 + 1}]]"


def items(n=20):
    return [
        (f"q{i}", (Message("system", "You are a judge."), Message("user", f"Answer: {'x' * i}")))
        for i in range(n)
    ]


def judge_for(server, cache, **spec_kw):
    spec = JudgeSpec(**{**SPEC.__dict__, **spec_kw})
    options = BackendOptions(base_url=server.base_url, max_retries=4, timeout_s=2.0)
    judge = make_judge(spec, prompt_sha256("template"), options=options, cache=cache)
    judge.backend.client.backoff_base_s = 0.01  # fast retries in tests
    return judge


def test_rerun_is_served_from_the_cache(tmp_path, openai_server):
    server = openai_server(responder=rating)
    judge = judge_for(server, JudgeCache(tmp_path / "cache.sqlite"))
    first = judge.ask(items())
    assert server.count == 20 and not any(a.cached for a in first)
    again = judge_for(server, JudgeCache(tmp_path / "cache.sqlite")).ask(items())  # reopened
    assert server.count == 20  # zero new requests
    assert [a.text for a in again] == [a.text for a in first] and all(a.cached for a in again)
    assert first[3].text.endswith("[[4]]")  # len("xxx") % 10 + 1


def test_faults_do_not_change_the_answers(tmp_path, openai_server):
    faults = {0: "429", 1: "500", 2: "malformed", 5: Fault("delay", seconds=3.0), 7: "503"}
    clean_server = openai_server(responder=rating)
    clean = judge_for(clean_server, None).ask(items())
    server = openai_server(responder=rating, faults=faults)
    faulty = judge_for(server, None).ask(items())
    assert server.count > 20  # the faults were really retried
    assert [a.text for a in faulty] == [a.text for a in clean] and all(a.error is None for a in faulty)


def test_usage_and_cost_match_the_server(tmp_path, openai_server):
    server = openai_server(responder=rating)
    judge = judge_for(server, JudgeCache(tmp_path / "c.sqlite"))
    judge.ask(items(12))
    prompt = sum(sum(len(message_text(m).split()) for m in b["messages"]) for b in server.requests)
    completion = sum(len(rating(b).split()) for b in server.requests)
    assert (judge.usage.prompt_tokens, judge.usage.completion_tokens) == (prompt, completion)
    assert judge.usage.cost_usd == pytest.approx((prompt * 30 + completion * 60) / 1e6)
    assert judge.usage.calls == 12 and judge.usage.cache_hits == 0
    assert cost_usd("no-such-model", 10, 10) is None  # unknown prices are never reported as 0


def test_sampled_judges_are_cached_only_per_explicit_run(tmp_path, openai_server):
    server = openai_server(responder=rating)
    judge = judge_for(server, JudgeCache(tmp_path / "c.sqlite"), temperature=0.7)
    judge.ask(items(4))
    judge.ask(items(4))
    assert server.count == 8  # no run index: a fresh draw every time
    judge.ask(items(4), run_index=0)
    judge.ask(items(4), run_index=1)
    judge.ask(items(4), run_index=0)
    assert server.count == 16  # run 0 twice is served from the cache once asked


def test_estimate_counts_only_uncached_calls(tmp_path, openai_server):
    server = openai_server(responder=rating)
    judge = judge_for(server, JudgeCache(tmp_path / "c.sqlite"))
    judge.ask(items(5))
    est = judge.estimate(items(8))
    assert est["calls"] == 3
    assert est["est_cost_usd"] == pytest.approx(cost_usd("gpt-4-0613", est["est_prompt_tokens"], 3 * 64))


def test_cache_survives_sigkill_mid_write(tmp_path):
    path = tmp_path / "cache.sqlite"
    writer = textwrap.dedent(f"""
        import sys
        from evalkit.judges.cache import JudgeCache
        cache = JudgeCache({str(path)!r})
        for i in range(100000):
            cache.put(f"k{{i}}", "judge", {{"text": "x" * 2000, "i": i}})
            print(i, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    last = -1
    for line in proc.stdout:
        last = int(line)
        if last >= 300:
            break
    proc.kill()
    proc.wait()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    cache = JudgeCache(path)
    assert all(cache.get(f"k{i}") == {"text": "x" * 2000, "i": i} for i in range(last + 1))
