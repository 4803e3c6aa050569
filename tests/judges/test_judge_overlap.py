"""Judging overlapped with generation (`evalkit.runner.overlap`): the toy model answers toy MM-Vet (one
turn) and MT-Bench (two turns) while a real OpenAI-compatible server on 127.0.0.1 judges them. Overlapped
and sequential runs store the same rows and metrics; a run killed with some rows judged and some only
answered resumes to the clean run's metrics, answering nothing twice and asking the judge only what its
cache lacks; a failure on either side ends the run with its error, without a hang. The benchmark script
(`benchmarks/judge_overlap.py`) runs in a tiny mode."""

import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.openai_server import last_user_text

from evalkit.judges.settings import JudgeSettings
from evalkit.models.base import load_backend
from evalkit.registry import parse_task_list
from evalkit.runner import evaluate, overlap
from evalkit.types import UserError


def digest(body) -> int:
    return int(hashlib.sha256(last_user_text(body).encode()).hexdigest(), 16)


def grade(body):
    """A grade both MM-Vet (a number in 0..1) and MT-Bench (`[[x]]`) parse, from the grading message."""
    if "[[rating]]" in json.dumps(body):
        return f"Rating: [[{digest(body) % 10 + 1}]]"
    return f"{digest(body) % 11 / 10:.1f}"


def same(a, b) -> bool:
    """Equal as stored (NaN, the interval of a one-sample metric, equals itself)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def stored_rows(run_dir, task):
    """The task's rows without their timings (the only field that differs between two runs)."""
    lines = (run_dir / "samples" / f"{task}.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "latency_s"} for line in lines]


def counting_toy(server):
    """The toy model, noting how many judge requests the server had seen at each generation call."""
    backend = load_backend("toy")
    seen = []
    generate = backend.generate

    def noted(requests):
        seen.append(server.count)
        return generate(requests)

    backend.generate = noted
    return backend, seen


@pytest.mark.parametrize(("task", "limit"), [("mmvet", 8), ("mt_bench", 3)])
def test_overlapped_and_sequential_runs_store_the_same_rows(
    task, limit, tmp_path, openai_server, monkeypatch
):
    server = openai_server(responder=grade, sleep_s=0.05)
    backend, seen = counting_toy(server)

    def run(name):
        settings = JudgeSettings(base_url=server.base_url, concurrency=2, cache_path=tmp_path / f"{name}.db")
        return evaluate(
            backend, [task], data="toy", limit=limit, batch_size=1, output=tmp_path / name,
            judges=settings, progress=False,
        )  # fmt: skip

    overlapped = run("overlapped")
    n_judge = server.count
    assert n_judge >= limit and seen[-1] > 0  # judge requests were sent before the last sample was asked
    monkeypatch.setattr(overlap, "ENABLED", False)
    seen.clear()
    sequential = run("sequential")
    assert seen[-1] == n_judge  # no judge request until every sample was answered
    assert server.count == 2 * n_judge  # the same calls, each made once per run

    rows = stored_rows(overlapped.run_dir, task)
    assert rows == stored_rows(sequential.run_dir, task)
    assert len(rows) == limit and all(r["error"] is None and r["judge"]["calls"] for r in rows)
    assert same(overlapped.metrics, sequential.metrics)
    usage = [
        json.loads((r.run_dir / "run.json").read_text())["judges"][task]["usage"]
        for r in (overlapped, sequential)
    ]
    assert usage[0]["calls"] == usage[1]["calls"] == n_judge


N = 10
ARGS = ["run", "--model", "toy", "--tasks", "mmvet", "--data", "toy", "--limit", str(N), "--batch-size", "1"]
ARGS += ["--judge-concurrency", "1", "--json"]


def command(run_dir, url):
    return [sys.executable, "-m", "evalkit", *ARGS, "--output", str(run_dir), "--judge-base-url", url]


def env_with(cache):
    return {
        **os.environ,
        "EVALKIT_JUDGE_CACHE": str(cache),
        "OPENAI_API_KEY": "unused",
        "OMP_NUM_THREADS": "1",
    }


def answered_and_judged(path):
    """Ids with an answer and ids with a judgment in a sample log (a torn last line is skipped)."""
    answered, judged = set(), set()
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            answered.add(row["id"])
            if row.get("judge"):
                judged.add(row["id"])
    return answered, judged


@pytest.mark.slow
def test_kill_between_answering_and_judging_resumes_judging_each_sample_once(tmp_path, openai_server):
    clean_server = openai_server(responder=grade)
    clean = subprocess.run(
        command(tmp_path / "clean", clean_server.base_url),
        capture_output=True, text=True, timeout=300, env=env_with(tmp_path / "clean.db"),
    )  # fmt: skip
    assert clean.returncode == 0, clean.stderr

    # judging lags behind the toy model: one slow request at a time, rows judged in chunks of what is
    # answered meanwhile (each answer committed to the cache as it arrives)
    server = openai_server(responder=grade, sleep_s=0.3)
    run_dir, cache = tmp_path / "killed", tmp_path / "judge.db"
    log = run_dir / "samples" / "mmvet.jsonl"
    proc = subprocess.Popen(command(run_dir, server.base_url), stdout=subprocess.DEVNULL, env=env_with(cache))
    deadline = time.time() + 120
    answered, judged = set(), set()
    while proc.poll() is None and time.time() < deadline:
        answered, judged = answered_and_judged(log)
        if judged and len(answered) > len(judged) and server.count >= 3:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    answered, judged = answered_and_judged(log)
    assert 1 <= len(judged) < len(answered) <= N, (judged, answered)
    killed_at = server.count
    db = sqlite3.connect(cache)
    n_cached = db.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]
    db.close()
    assert n_cached >= len(judged)

    final = subprocess.run(
        command(run_dir, server.base_url), capture_output=True, text=True, timeout=300, env=env_with(cache)
    )
    assert final.returncode == 0, final.stderr
    assert same(json.loads(final.stdout)["metrics"], json.loads(clean.stdout)["metrics"])
    header = json.loads((run_dir / "run.json").read_text())
    assert header["timings"]["mmvet"]["generated"] == N - len(answered)  # nothing answered twice
    # the resumed process asked the judge exactly what the cache lacked: each sample judged once
    assert server.count - killed_at == N - n_cached
    assert len({last_user_text(r.body) for r in server.log}) == N
    assert header["judges"]["mmvet"]["usage"]["calls"] == server.count
    rows = stored_rows(run_dir, "mmvet")
    assert len(rows) == N and all(r["error"] is None and len(r["judge"]["calls"]) == 1 for r in rows)


MMVet = type(parse_task_list("mmvet")[0])


class BrittleMMVet(MMVet):
    """MM-Vet whose judge record refuses an answer that is no grade at all: a hard judging failure."""

    def judge_record(self, row, done, n_runs):
        if any(d["output"] == "boom" for d in done):
            raise UserError("the mmvet judge answered 'boom', not a grade: check --judge-base-url")
        return super().judge_record(row, done, n_runs)


def finishes(fn, timeout_s=120):
    """What `fn` raised (None when it returned), asserting it ended within `timeout_s`."""
    outcome = []

    def target():
        try:
            fn()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 (handed to the test)
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s)
    assert not thread.is_alive(), "the run hung"
    return outcome[0]


def test_a_judge_failing_hard_fails_the_run_with_its_error(tmp_path, openai_server):
    n = [0]

    def reply(body):
        n[0] += 1
        return "boom" if n[0] == 3 else grade(body)

    server = openai_server(responder=reply, sleep_s=0.05)
    settings = JudgeSettings(base_url=server.base_url, concurrency=1, cache_path=tmp_path / "c.db")
    error = finishes(
        lambda: evaluate(
            "toy",
            [BrittleMMVet()],
            data="toy",
            limit=8,
            batch_size=1,
            output=tmp_path / "run",
            judges=settings,
            progress=False,
        )  # fmt: skip
    )
    assert isinstance(error, UserError) and str(error) == (
        "the mmvet judge answered 'boom', not a grade: check --judge-base-url"
    )
    answered, judged = answered_and_judged(tmp_path / "run" / "samples" / "mmvet.jsonl")
    assert len(judged) <= 2 and len(answered) >= 3  # the chunks judged before the failure are kept


def test_a_failing_model_stops_the_judging_thread(tmp_path, openai_server):
    server = openai_server(responder=grade, sleep_s=0.05)
    backend = load_backend("toy")
    generate, calls = backend.generate, []

    def failing(requests):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("device lost")
        return generate(requests)

    backend.generate = failing
    settings = JudgeSettings(base_url=server.base_url, concurrency=1, cache_path=tmp_path / "c.db")
    error = finishes(
        lambda: evaluate(
            backend,
            ["mmvet"],
            data="toy",
            limit=8,
            batch_size=1,
            output=tmp_path / "run",
            judges=settings,
            progress=False,
        )  # fmt: skip
    )
    assert isinstance(error, RuntimeError) and str(error) == "device lost"
    assert not [t for t in threading.enumerate() if t.name.startswith("judge-")]
    answered, judged = answered_and_judged(tmp_path / "run" / "samples" / "mmvet.jsonl")
    assert len(answered) == 3 and judged <= answered


def test_the_benchmark_script_prints_both_timings_and_their_ratio():
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "judge_overlap.py"
    args = ["--samples", "4", "--batch-size", "2", "--sleep", "0.01", "--concurrency", "2", "--repeats", "1"]
    out = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    found = dict(re.findall(r"^(sequential|overlapped) \(.*\): (\d+\.\d+) s$", out.stdout, re.M))
    assert set(found) == {"sequential", "overlapped"}, out.stdout
    (ratio,) = re.findall(r"^ratio sequential / overlapped: (\d+\.\d+)x$", out.stdout, re.M)
    assert float(ratio) == pytest.approx(float(found["sequential"]) / float(found["overlapped"]), rel=0.1)
