"""Fixtures every test folder shares: the temp cache, one torch thread, a tmpfs, the local OpenAI-compatible
server and fast retries."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support.openai_server import FakeOpenAIServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks"


@pytest.fixture
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"official benchmark files not found at {SHARED}")
    return SHARED


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    """Every test writes toy data and models into one session-wide temp cache, never into ~/.cache, and
    reads no Hugging Face hub cache but its own."""
    root = tmp_path_factory.getbasetemp() / "evalkit-cache"
    monkeypatch.setenv("EVALKIT_CACHE", str(root))
    # an empty Hugging Face hub cache of the session's own, so that no test reads the machine's real cache
    # (a task with a hub copy would load it instead of failing as the test expects); hub tests set theirs
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path_factory.getbasetemp() / "hf-hub-cache"))
    # judge answers are per test: test servers get OS-chosen ports, and a port reused by a later test
    # would otherwise find an earlier test's answers for "the same" endpoint
    monkeypatch.setenv("EVALKIT_JUDGE_CACHE", str(tmp_path_factory.mktemp("judge") / "judge_cache.sqlite"))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny matrices: one torch thread is faster and steadier on a shared 2-core machine
    (`pytestmark = pytest.mark.usefixtures("one_thread")` in a module)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tmpfs(tmp_path):
    """A 16 KiB tmpfs (room for run.json and a few dozen rows), or a skip where it cannot be mounted."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mnt)]).returncode != 0:
        pytest.skip("mount -t tmpfs is not allowed here")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def openai_server():
    """Start local OpenAI-compatible servers (support/openai_server.py):
    `server = openai_server(responder=..., faults=...)` takes FakeOpenAIServer's arguments;
    every server started is stopped when the test ends."""
    started: list[FakeOpenAIServer] = []

    def start(*args, **kwargs) -> FakeOpenAIServer:
        server = FakeOpenAIServer(*args, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def fast_retries(monkeypatch):
    """The OpenAI-compatible client's retry back-off cut to 10 ms, so fault tests retry in milliseconds
    (`pytestmark = pytest.mark.usefixtures("fast_retries")` in a module)."""
    from evalkit.models import openai_client

    monkeypatch.setattr(openai_client.OpenAIClient, "_backoff_s", lambda self, attempt, retry_after: 0.01)
