"""A judged `evalkit run` (the toy model on toy MM-Vet, judged by a real OpenAI-compatible server on
127.0.0.1) killed with SIGKILL three times while judging, then finished: every request the server saw is
counted in run.json, no paid answer is asked again except those in flight at a kill, no judged row is
lost, and the metrics equal an uninterrupted run's. The judge URL carries a user, a password and an
`?api-key=` query: they are used for the requests and never written to run.json."""

import base64
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from support.openai_server import FakeOpenAIServer, last_user_text

N = 10
CONCURRENCY = 2
KILLS = 3
ARGS = ["run", "--model", "toy", "--tasks", "mmvet", "--data", "toy", "--limit", str(N)]
ARGS += ["--judge-concurrency", str(CONCURRENCY), "--json"]


def grade(body):
    """The judge's grade, a function of the grading message alone."""
    h = int(hashlib.sha256(last_user_text(body).encode()).hexdigest(), 16)
    return f"{h % 11 / 10:.1f}"


def command(run_dir, judge_url):
    return [sys.executable, "-m", "evalkit", *ARGS, "--output", str(run_dir), "--judge-base-url", judge_url]


def env_with(cache):
    return {**os.environ, "EVALKIT_JUDGE_CACHE": str(cache), "OPENAI_API_KEY": "unused"}


@pytest.mark.slow
def test_sigkill_while_judging_then_resume(tmp_path):
    with FakeOpenAIServer(responder=grade) as clean_server:
        clean = subprocess.run(
            command(tmp_path / "clean", clean_server.base_url),
            capture_output=True, text=True, timeout=300, env=env_with(tmp_path / "clean.sqlite"),
        )  # fmt: skip
    assert clean.returncode == 0, clean.stderr
    clean_metrics = json.loads(clean.stdout)["metrics"]
    assert clean_server.count == N  # one judge call per item, no re-ask (every grade parses)

    cache = tmp_path / "judge.sqlite"
    run_dir = tmp_path / "killed"
    with FakeOpenAIServer(responder=grade, sleep_s=0.15) as server:
        secret_url = (
            server.base_url.replace("http://", "http://alice:s3cret-pw@") + "?api-key=KEY-abcdef123456"
        )
        killed_at = []
        for k in range(KILLS):
            start = server.count
            proc = subprocess.Popen(
                command(run_dir, secret_url),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env_with(cache),
            )  # fmt: skip
            deadline = time.time() + 120
            while server.count < start + 2 and proc.poll() is None and time.time() < deadline:
                time.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            killed_at.append(server.count)
            assert server.count < N + k * CONCURRENCY, "each process must be killed while judging"
        final = subprocess.run(
            command(run_dir, secret_url), capture_output=True, text=True, timeout=300, env=env_with(cache)
        )
        assert final.returncode == 0, final.stderr
        log = server.log

    assert json.loads(final.stdout)["metrics"] == clean_metrics

    # every request the server saw is a counted call; the cache served the rest
    header = json.loads((run_dir / "run.json").read_text())
    usage = header["judges"]["mmvet"]["usage"]
    assert usage["calls"] == len(log)
    assert "retries included" in usage["calls_counted"]
    prompts = [last_user_text(r.body) for r in log]
    assert len(set(prompts)) == N
    # a prompt is asked again only if its answer was in flight when a process was killed
    assert len(prompts) - N <= KILLS * CONCURRENCY
    db = sqlite3.connect(cache)
    assert db.execute("SELECT COUNT(*) FROM judgments").fetchone()[0] == N
    db.close()
    answered_before_final = len(set(prompts[: killed_at[-1]]))
    assert usage["cache_hits"] >= answered_before_final - CONCURRENCY  # reused, not asked again

    rows = [json.loads(line) for line in (run_dir / "samples" / "mmvet.jsonl").read_text().splitlines()]
    assert len(rows) == N and len({r["id"] for r in rows}) == N
    assert all(r["error"] is None and r["judge"]["outputs"] for r in rows)
    for row in rows:  # each grade is the server's answer to that row's grading message
        (call,) = row["judge"]["calls"]
        assert call["output"] in {grade({"messages": [{"role": "user", "content": p}]}) for p in prompts}

    # the credentials reached the server, never the run folder
    basic = "Basic " + base64.b64encode(b"alice:s3cret-pw").decode()
    assert all(r.headers.get("authorization") == basic and "api-key=KEY-abcdef123456" in r.path for r in log)
    for path in run_dir.rglob("*"):
        if path.is_file():
            text = path.read_bytes()
            assert b"s3cret-pw" not in text and b"KEY-abcdef123456" not in text, path
    assert header["command"]["judge_base_url"] == server.base_url
