"""OpenAIBackend against a real HTTP server on 127.0.0.1 (tests/support/openai_server.py)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time

import numpy as np
import pytest
from PIL import Image
from support.openai_server import FakeOpenAIServer, Fault, default_reply, fail_when

from evalkit.models.base import BackendOptions, load_backend, public_url
from evalkit.models.openai_backend import OpenAIBackend
from evalkit.models.openai_client import OpenAIClient
from evalkit.types import GenerationConfig, Message, Request, UserError
from evalkit.util.images import load_image

KEY = "sk-test-SECRET-0123456789"


@pytest.fixture(autouse=True)
def _no_ambient_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def make(srv: FakeOpenAIServer, *, concurrency: int = 8, timeout_s: float = 5.0, max_retries: int = 4, **kw):
    opts = BackendOptions(
        base_url=srv.base_url, concurrency=concurrency, timeout_s=timeout_s, max_retries=max_retries
    )
    kw.setdefault("backoff_base_s", 0.01)
    return OpenAIBackend("test-model", opts, **kw)


def text_requests(n: int, prefix: str = "question") -> list[Request]:
    return [Request(f"r{i}", (Message("user", f"{prefix} {i}"),)) for i in range(n)]


def expected(req: Request) -> str:
    return default_reply({"messages": [{"role": "user", "content": req.messages[-1].text}]})


def test_plain_batch_returns_responder_texts_in_order(openai_server) -> None:
    reqs = text_requests(12)
    srv = openai_server(served_model="served-2024")
    backend = make(srv)
    out = backend.generate(reqs)
    assert [r.id for r in out] == [r.id for r in reqs]
    assert all(r.ok for r in out)
    assert [r.text for r in out] == [expected(r) for r in reqs]
    assert all(r.prompt_tokens == 2 and r.completion_tokens == 1 for r in out)  # server's word counts
    assert all(r.latency_s > 0 for r in out)
    assert backend.fingerprint() == {
        "provider": "openai-compatible",
        "model": "test-model",
        "base_url": srv.base_url,
        "served_model": "served-2024",
    }


def test_request_body_messages_image_and_sampling(tmp_path, openai_server) -> None:
    rng = np.random.default_rng(0)
    src = tmp_path / "img.png"
    Image.fromarray(rng.integers(0, 256, (12, 16, 4), dtype=np.uint8), "RGBA").save(src)
    req = Request(
        "a",
        (
            Message("system", "be brief"),
            Message("user", "what is this?", images=(str(src),)),
        ),
        GenerationConfig(max_new_tokens=7, temperature=0.5, top_p=0.9, stop=("\n\n",)),
        seed=3,
    )
    srv = openai_server(responder=lambda body: "ok")
    (resp,) = make(srv).generate([req])
    (body,) = srv.requests
    assert resp.text == "ok"
    assert body["model"] == "test-model"
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["stop"], body["seed"]) == (
        0.5,
        0.9,
        7,
        ["\n\n"],
        3,
    )
    system, user = body["messages"]
    assert system == {"role": "system", "content": "be brief"}
    assert user["role"] == "user"
    image_part, text_part = user["content"]
    assert text_part == {"type": "text", "text": "what is this?"}
    assert image_part["type"] == "image_url"
    prefix = "data:image/png;base64,"
    url = image_part["image_url"]["url"]
    assert url.startswith(prefix)
    sent = Image.open(io.BytesIO(base64.b64decode(url[len(prefix) :])))
    assert sent.format == "PNG"
    np.testing.assert_array_equal(np.asarray(sent.convert("RGB")), np.asarray(load_image(src)))


def test_concurrency_is_bounded(openai_server) -> None:
    srv = openai_server(sleep_s=0.05)
    out = make(srv, concurrency=4).generate(text_requests(20))
    assert all(r.ok for r in out)
    assert srv.max_in_flight == 4  # never more, and actually reached


def test_requests_run_concurrently(openai_server) -> None:
    n, sleep = 64, 0.2  # also checks the server takes 64 concurrent connections
    srv = openai_server(sleep_s=sleep)
    backend = make(srv, concurrency=n)
    t0 = time.perf_counter()
    out = backend.generate(text_requests(n))
    elapsed = time.perf_counter() - t0
    assert all(r.ok for r in out)
    assert elapsed < n * sleep / 4, f"{n} requests took {elapsed:.2f}s; serial would be {n * sleep:.1f}s"


def test_faults_are_retried_to_the_clean_result() -> None:
    reqs = text_requests(16)
    with FakeOpenAIServer() as srv:
        clean = [r.text for r in make(srv).generate(reqs)]
    faults = {
        0: Fault("429", retry_after="0.05"),
        1: "500",
        2: "503",
        3: Fault("delay", seconds=2.0),
        4: "malformed",
        5: "bad_schema",
        6: "close",
        8: "500",
        9: "429",
    }
    with FakeOpenAIServer(faults=faults) as srv:
        out = make(srv, timeout_s=0.5).generate(reqs)
        assert srv.count == len(reqs) + len(faults)
    assert [r.error for r in out] == [None] * len(reqs)
    assert [r.text for r in out] == clean


def test_retry_after_is_honoured_and_capped() -> None:
    (req,) = text_requests(1)
    with FakeOpenAIServer(faults={0: Fault("429", retry_after="0.3")}) as srv:
        assert make(srv, backoff_base_s=0.001).generate([req])[0].ok
        first, second = srv.log
        assert second.time - first.time >= 0.28
    with FakeOpenAIServer(faults={0: Fault("429", retry_after="100")}) as srv:
        t0 = time.perf_counter()
        assert make(srv, retry_after_cap_s=0.05).generate([req])[0].ok
        assert time.perf_counter() - t0 < 2.0


@pytest.mark.parametrize(
    ("fault", "error_type", "needle"),
    [
        ("500", "backend_error", "HTTP 500"),
        ("503", "backend_error", "HTTP 503"),
        ("429", "rate_limited", "HTTP 429"),
        (Fault("delay", seconds=1.0), "timeout", "no answer within"),
        ("malformed", "backend_error", "malformed response"),
        ("close", "backend_error", "connection error"),
    ],
)
def test_permanent_failure_is_typed_after_retries(fault, error_type: str, needle: str, openai_server) -> None:
    reqs = text_requests(6)
    reqs[2] = Request("poison", (Message("user", "poison pill"),))
    srv = openai_server(faults=fail_when("poison", fault))
    out = make(srv, max_retries=2, timeout_s=0.25).generate(reqs)
    poison_attempts = sum("poison" in json.dumps(b) for b in srv.requests)
    assert poison_attempts == 3  # first try + max_retries
    bad = out[2]
    assert bad.id == "poison" and bad.text == ""
    assert bad.error is not None and bad.error.type == error_type
    assert needle in bad.error.message and "3 attempts" in bad.error.message
    assert all(r.ok and r.text == expected(q) for r, q in zip(out, reqs, strict=True) if r.id != "poison")


def test_400_is_not_retried(openai_server) -> None:
    srv = openai_server(faults=fail_when("bad", "400"))
    out = make(srv).generate([Request("x", (Message("user", "bad request"),)), *text_requests(2)])
    assert srv.count == 3
    assert out[0].error is not None
    assert out[0].error.type == "backend_error"
    assert out[0].error.message == "HTTP 400: injected 400"
    assert out[1].ok and out[2].ok


def test_missing_or_corrupt_image_gives_image_error_without_a_call(tmp_path, openai_server) -> None:
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    good = tmp_path / "good.png"
    Image.new("RGB", (4, 4), "red").save(good)
    reqs = [
        Request("missing", (Message("user", "q", images=(str(tmp_path / "nope.jpg"),)),)),
        Request("corrupt", (Message("user", "q", images=(str(good), str(corrupt))),)),
        Request("good", (Message("user", "q", images=(str(good),)),)),
    ]
    srv = openai_server()
    out = make(srv).generate(reqs)
    assert srv.count == 1  # only "good" was sent
    assert [r.error.type if r.error else None for r in out] == ["image_error", "image_error", None]
    assert "nope.jpg" in out[0].error.message and "corrupt.png" in out[1].error.message


def test_api_key_sent_as_bearer_and_never_leaked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALKIT_TEST_KEY", KEY)
    with FakeOpenAIServer(api_key=KEY) as srv:  # answers 401 to any other key
        opts = BackendOptions(base_url=srv.base_url, api_key_env="EVALKIT_TEST_KEY")
        backend = OpenAIBackend("m", opts)
        assert all(r.ok for r in backend.generate(text_requests(2)))
        assert {r.headers.get("authorization") for r in srv.log} == {f"Bearer {KEY}"}
    # An endpoint that echoes the key in its (malformed) body, and one that is unreachable.
    with FakeOpenAIServer(responder=lambda b: {"error": f"bad key {KEY}"}) as srv2:
        backend2 = OpenAIBackend("m", BackendOptions(base_url=srv2.base_url, api_key_env="EVALKIT_TEST_KEY"))
        backend2.client.max_retries = 0
        (echoed,) = backend2.generate(text_requests(1))
    port = srv2.base_url.split(":")[2].split("/")[0]  # closed now
    opts = BackendOptions(
        base_url=f"http://127.0.0.1:{port}/v1", api_key_env="EVALKIT_TEST_KEY", max_retries=0
    )
    (refused,) = OpenAIBackend("m", opts).generate(text_requests(1))
    assert echoed.error is not None and echoed.error.type == "backend_error"
    assert "***" in echoed.error.message
    assert refused.error is not None and "connection error" in refused.error.message
    texts = [
        repr(backend),
        repr(backend.client),
        json.dumps(backend.fingerprint()),
        json.dumps(backend.info()),
    ]
    for text in [*texts, echoed.error.message, refused.error.message]:
        assert KEY not in text


def test_no_key_means_no_authorization_header(openai_server) -> None:
    srv = openai_server()
    assert make(srv).generate(text_requests(1))[0].ok
    assert "authorization" not in srv.log[0].headers


def test_base_url_credentials_are_stripped() -> None:
    assert public_url("https://user:pw@host:8000/v1?api-key=abc") == "https://host:8000/v1"
    backend = OpenAIBackend("m", BackendOptions(base_url="http://u:hunter2@localhost:9/v1/"))
    assert backend.fingerprint()["base_url"] == "http://localhost:9/v1"
    assert "hunter2" not in repr(backend)
    with pytest.raises(UserError):
        OpenAIBackend("m", BackendOptions(base_url="localhost:8000"))


def test_load_backend_and_calls_from_a_running_loop(openai_server) -> None:
    srv = openai_server()
    backend = load_backend("openai:my-model", BackendOptions(base_url=srv.base_url))
    assert isinstance(backend, OpenAIBackend)
    assert backend.name == "openai:my-model" and backend.fingerprint()["model"] == "my-model"
    reqs = text_requests(3)

    async def inside_loop():
        sync_out = backend.generate(reqs)  # sync API while a loop runs in this thread
        async with OpenAIClient("my-model", srv.base_url) as client:  # the judge-style API
            text, usage, raw, _ = await client.chat([{"role": "user", "content": "question 0"}])
        return sync_out, text, usage, raw

    sync_out, text, usage, raw = asyncio.run(inside_loop())
    assert [r.text for r in sync_out] == [expected(r) for r in reqs]
    assert text == expected(reqs[0]) and usage["completion_tokens"] == 1 and raw["model"] == "my-model"
    assert backend.generate(reqs)[0].text == sync_out[0].text  # a second sync batch reuses nothing stale
    with pytest.raises(UserError):
        load_backend("openai:")
