"""Endpoints are probed before a run loads any model: a refused key or a dead server is one line with the
server's own message and the URL without its credentials, exit 2, within seconds; `--dry-run` probes
nothing; a server without GET /models is probed with a 1-token request."""

import socket
import subprocess
import sys
import time

import pytest
from support.openai_server import FakeOpenAIServer

from evalkit.models.base import BackendOptions
from evalkit.models.openai_backend import OpenAIBackend

EVALKIT = [sys.executable, "-m", "evalkit"]


def evalkit(*args, env=None):
    t0 = time.perf_counter()
    proc = subprocess.run([*EVALKIT, *args], capture_output=True, text=True, timeout=120, env=env)
    return proc, time.perf_counter() - t0


def closed_port():
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_error_line(proc):
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    return " ".join(proc.stderr.split())


def test_a_refused_key_for_an_openai_model_exits_2_with_the_servers_message(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEY", "wrong-key-123")
    with FakeOpenAIServer(api_key="right-key") as server:
        proc, seconds = evalkit(
            "run", "--model", "openai:m", "--base-url", server.base_url, "--api-key-env", "MY_KEY",
            "--tasks", "pope", "--data", "toy", "--limit", "2", "--output", str(tmp_path / "run"),
        )  # fmt: skip
        assert server.count == 0  # no chat request was made
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert f"--base-url {server.base_url}: HTTP 401: invalid api key" in line
    assert "$MY_KEY" in line and "wrong-key-123" not in line
    assert not (tmp_path / "run").exists()  # nothing was started
    assert seconds < 30


def test_an_unreachable_judge_exits_2_before_the_model_is_loaded(tmp_path):
    port = closed_port()
    url = f"http://alice:s3cret-pw@127.0.0.1:{port}/v1?api-key=KEY-abcdef123456"
    proc, seconds = evalkit(
        "run", "--model", "toy", "--tasks", "mmvet", "--data", "toy", "--limit", "2",
        "--judge-base-url", url, "--output", str(tmp_path / "run"),
    )  # fmt: skip
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert f"--judge-base-url http://127.0.0.1:{port}/v1: unreachable" in line
    assert "s3cret-pw" not in proc.stderr and "KEY-abcdef123456" not in proc.stderr and "alice" not in line
    assert not (tmp_path / "run").exists()
    assert seconds < 30


def test_dry_run_probes_nothing(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    proc, _ = evalkit(
        "run", "--model", "toy", "--tasks", "mmvet", "--data", "toy", "--limit", "2",
        "--judge-base-url", url, "--dry-run", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("flag", ["--concurrency", "--judge-concurrency"])
def test_zero_concurrency_is_one_line(flag):
    proc, _ = evalkit("run", "--model", "toy", "--tasks", "pope", "--data", "toy", flag, "0")
    assert proc.returncode == 2
    assert f"{flag} must be at least 1" in one_error_line(proc)


def probe(server_or_url, key=None, monkeypatch=None, timeout_s=5.0):
    base = server_or_url if isinstance(server_or_url, str) else server_or_url.base_url
    if monkeypatch is not None:
        monkeypatch.setenv("PROBE_KEY", key or "")
    backend = OpenAIBackend("m", BackendOptions(base_url=base, api_key_env="PROBE_KEY"))
    return backend.probe(timeout_s)


def test_a_server_without_models_is_probed_with_one_token(monkeypatch, openai_server):
    server = openai_server(api_key="k", serve_models=False)
    assert probe(server, "bad", monkeypatch) == "HTTP 401: invalid api key"
    assert probe(server, "k", monkeypatch) is None
    assert [b["max_tokens"] for b in server.requests] == [1, 1]


def test_a_server_that_never_answers_is_unreachable_after_the_timeout():
    with socket.socket() as listener:  # accepts connections (the backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        t0 = time.perf_counter()
        assert probe(url, timeout_s=0.5) == "unreachable: no answer within 0.5s"
        assert time.perf_counter() - t0 < 3
