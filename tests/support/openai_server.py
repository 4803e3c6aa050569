"""A small but real OpenAI-compatible chat-completions server for tests (and LLM-judge tests).

    with FakeOpenAIServer(responder=fn, faults={0: "429", 3: Fault("delay", seconds=2)}) as srv:
        backend = OpenAIBackend("m", BackendOptions(base_url=srv.base_url))
        ...
        srv.requests  # parsed JSON bodies in arrival order (every attempt, faulted ones too)

It is a minimal HTTP/1.1 server (keep-alive, Content-Length or chunked bodies) on asyncio
streams, running in its own event-loop thread on 127.0.0.1 with an OS-chosen port. One loop
rather than a thread per connection: under the GIL, 64 server threads cost more CPU than the
client under test, which would spoil throughput benchmarks.

`responder(body) -> str | dict` (or an async function): a string becomes the assistant message
of a full completion (with `usage`); a dict is sent as the whole response. It runs on the
server's loop, so a slow sync responder serializes requests. Default: `default_reply(body)`.

GET /models lists `served_model` (401 for a wrong key when `api_key` is set; 404 with
`serve_models=False`); it is not logged, so `requests` and `count` hold chat requests only.

`faults` injects failures by arrival index (`{index: fault}`) or by a callable
`(index, body) -> fault | None`; a fault is a kind name or a `Fault`. Kinds: "429" (with
Retry-After), "400", "500", "503", "delay" (sleep, then answer normally — longer than the client
timeout it acts as a timeout), "malformed" (200 with a non-JSON body), "bad_schema" (200, JSON
without `choices`), "close" (drop the connection without answering).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import inspect
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

FAULT_KINDS = ("429", "400", "500", "503", "delay", "malformed", "bad_schema", "close")


@dataclass(frozen=True)
class Fault:
    kind: str
    retry_after: str | None = "0"  # Retry-After header for "429" (None: no header)
    seconds: float = 5.0  # sleep for "delay"

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; expected one of {FAULT_KINDS}")


Responder = Callable[[dict[str, Any]], "str | dict[str, Any]"]
FaultSpec = Mapping[int, "str | Fault"] | Callable[[int, dict[str, Any]], "str | Fault | None"] | None


def message_text(message: dict[str, Any]) -> str:
    """The text of one chat message, whether `content` is a string or a list of parts."""
    content = message.get("content") or ""
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text", "") for p in content if p.get("type") == "text")


def last_user_text(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    return message_text(users[-1]) if users else ""


def default_reply(body: dict[str, Any]) -> str:
    """Deterministic answer derived from the last user text (what the default responder says)."""
    return "reply-" + hashlib.sha256(last_user_text(body).encode()).hexdigest()[:12]


def fail_when(substring: str, fault: str | Fault, times: int | None = None) -> FaultSpec:
    """A fault schedule that hits requests whose last user text contains `substring`
    (the first `times` such requests, or all of them when `times` is None)."""
    hits = 0
    lock = threading.Lock()

    def schedule(index: int, body: dict[str, Any]) -> str | Fault | None:
        nonlocal hits
        if substring not in last_user_text(body):
            return None
        with lock:
            hits += 1
            return fault if times is None or hits <= times else None

    return schedule


def completion(body: dict[str, Any], text: str, model: str | None = None) -> dict[str, Any]:
    """A chat.completion response carrying `text`, with word-count `usage`."""
    prompt_words = sum(len(message_text(m).split()) for m in body.get("messages", []))
    done = len(text.split())
    return {
        "id": "chatcmpl-" + hashlib.sha1(text.encode()).hexdigest()[:10],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model or body.get("model", "unknown"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_words,
            "completion_tokens": done,
            "total_tokens": prompt_words + done,
        },
    }


@dataclass
class LoggedRequest:
    index: int
    time: float  # time.monotonic() at arrival
    path: str
    headers: dict[str, str]  # header names lower-cased
    body: dict[str, Any]
    fault: Fault | None


@dataclass
class _Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    log: list[LoggedRequest] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0


class FakeOpenAIServer:
    """Context manager running the server in a background thread; see the module docstring."""

    def __init__(
        self,
        responder: Responder | None = None,
        faults: FaultSpec = None,
        *,
        sleep_s: float = 0.0,
        served_model: str | None = None,
        api_key: str | None = None,
        serve_models: bool = True,
    ) -> None:
        """`sleep_s`: delay before every normal answer; `served_model`: the `model` reported in
        responses (default: echo the request's); `api_key`: if set, other keys get HTTP 401;
        `serve_models`: False answers GET /models with 404 (servers without the route)."""
        self.responder = responder or default_reply
        self.faults = faults
        self.sleep_s = sleep_s
        self.served_model = served_model
        self.api_key = api_key
        self.serve_models = serve_models
        self._stats = _Stats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeOpenAIServer:
        ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(ready),), daemon=True)
        self._thread.start()
        port = ready.result(timeout=10)
        self._base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def _serve(self, ready: concurrent.futures.Future[int]) -> None:
        try:
            self._loop, self._stopped = asyncio.get_running_loop(), asyncio.Event()
            server = await asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=1024)
        except BaseException as exc:
            ready.set_exception(exc)
            raise
        ready.set_result(server.sockets[0].getsockname()[1])
        async with server:
            await self._stopped.wait()
        # Open keep-alive connections are abandoned; asyncio.run cancels their handlers.

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop = self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests read ---------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self._base_url is not None, "server not started"
        return self._base_url

    @property
    def log(self) -> list[LoggedRequest]:
        with self._stats.lock:
            return list(self._stats.log)

    @property
    def requests(self) -> list[dict[str, Any]]:
        return [r.body for r in self.log]

    @property
    def count(self) -> int:
        with self._stats.lock:
            return len(self._stats.log)

    @property
    def max_in_flight(self) -> int:
        return self._stats.max_in_flight

    # -- HTTP --------------------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line.strip():
                    break  # client closed the connection
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = h.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                raw = await _read_body(reader, headers)
                keep = await self._route(method, path, headers, raw, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # the client went away or sent garbage
        finally:
            writer.close()

    async def _route(
        self, method: str, path: str, headers: dict[str, str], raw: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; False closes the connection."""
        route = path.split("?")[0].rstrip("/")
        if method == "GET" and route.endswith("/models") and self.serve_models:  # not logged: not a chat
            if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
                return await _send(writer, 401, {"error": {"message": "invalid api key"}})
            model = self.served_model or "fake-model"
            return await _send(writer, 200, {"object": "list", "data": [{"id": model, "object": "model"}]})
        if method != "POST" or not route.endswith("/chat/completions"):
            return await _send(writer, 404, {"error": {"message": f"no route {method} {path}"}})
        try:
            body = json.loads(raw)
        except ValueError:
            return await _send(writer, 400, {"error": {"message": "request body is not JSON"}})
        stats = self._stats
        with stats.lock:
            index = len(stats.log)
            fault = self._fault_for(index, body)
            stats.log.append(LoggedRequest(index, time.monotonic(), path, headers, body, fault))
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            return await self._answer(body, headers, fault, writer)
        finally:
            with stats.lock:
                stats.in_flight -= 1

    async def _answer(
        self, body: dict[str, Any], headers: dict[str, str], fault: Fault | None, writer: asyncio.StreamWriter
    ) -> bool:
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return await _send(writer, 401, {"error": {"message": "invalid api key"}})
        kind = fault.kind if fault else None
        if kind == "close":
            return False
        if kind == "429":
            extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return await _send(writer, 429, {"error": {"message": "rate limit exceeded"}}, extra)
        if kind in ("400", "500", "503"):
            return await _send(writer, int(kind), {"error": {"message": f"injected {kind}"}})
        if kind == "malformed":
            return await _send_raw(writer, 200, b'{"choices": [ this is not json')
        if kind == "bad_schema":
            return await _send(writer, 200, {"object": "chat.completion", "note": "no choices here"})
        delay = (fault.seconds if kind == "delay" else 0.0) + self.sleep_s
        if delay:
            await asyncio.sleep(delay)
        try:
            out = self.responder(body)
            if inspect.isawaitable(out):
                out = await out
        except Exception as exc:  # surface responder bugs to the client as a 500
            msg = f"responder failed: {type(exc).__name__}: {exc}"
            return await _send(writer, 500, {"error": {"message": msg}})
        return await _send(
            writer, 200, out if isinstance(out, dict) else completion(body, out, self.served_model)
        )

    def _fault_for(self, index: int, body: dict[str, Any]) -> Fault | None:
        if self.faults is None:
            return None
        spec = self.faults(index, body) if callable(self.faults) else self.faults.get(index)
        return Fault(spec) if isinstance(spec, str) else spec


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = []
        while size := int((await reader.readline()).split(b";")[0], 16):
            chunks.append(await reader.readexactly(size))
            await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(chunks)
    return await reader.readexactly(int(headers.get("content-length") or 0))


async def _send(
    writer: asyncio.StreamWriter,
    status: int,
    payload: dict[str, Any],
    headers: Mapping[str, str] | None = None,
) -> bool:
    return await _send_raw(writer, status, json.dumps(payload).encode(), headers)


async def _send_raw(
    writer: asyncio.StreamWriter, status: int, data: bytes, headers: Mapping[str, str] | None = None
) -> bool:
    head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "Content-Type: application/json"]
    head += [f"Content-Length: {len(data)}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
    await writer.drain()
    return True
