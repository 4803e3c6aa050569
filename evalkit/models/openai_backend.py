"""OpenAI-compatible chat-completions: a reusable async client and the backend built on it.

`OpenAIClient` owns everything about talking to the endpoint (auth, connection limits, timeouts,
retries with backoff) so that model backends and LLM judges share one implementation.
`OpenAIBackend` turns `Request`s into chat messages (images as PNG data URLs) and never raises
for one request's failure: it returns a `Response` with a typed `ErrorInfo`.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import io
import json
import logging
import os
import random
import ssl
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import httpx

from evalkit.images import ImageLoadError, load_image
from evalkit.models.base import Backend, BackendOptions
from evalkit.types import ErrorInfo, Message, Request, Response, UserError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class ChatError(Exception):
    """A chat call that failed for good; `type` is an `ErrorType` ("backend_error", "timeout", ...)."""

    def __init__(self, type: str, message: str) -> None:
        super().__init__(message)
        self.type = type
        self.message = message

    def to_error_info(self) -> ErrorInfo:
        return ErrorInfo(self.type, self.message)


class ChatResult(NamedTuple):
    text: str
    usage: dict[str, Any]  # the server's `usage` object ({} when absent)
    raw: dict[str, Any]  # the full response body
    latency_s: float  # of the successful HTTP attempt (no queueing, no backoff)


class _Retry(Exception):
    """One failed attempt that may be retried; `wait_s` is the server's Retry-After, if any."""

    def __init__(self, type: str, message: str, wait_s: float | None = None) -> None:
        super().__init__(message)
        self.type, self.message, self.wait_s = type, message, wait_s


@dataclass
class _LoopState:
    """Per event loop: `concurrency` slots, each lazily holding its own one-connection client."""

    slots: asyncio.Queue[int]
    clients: list[httpx.AsyncClient | None]


def public_url(url: str) -> str:
    """`url` without user info, query or fragment (which may hold credentials)."""
    u = httpx.URL(url)
    return str(u.copy_with(username=None, password=None, query=None, fragment=None))


def _retry_after_s(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _short_body(resp: httpx.Response, limit: int = 300) -> str:
    """The error message from an OpenAI-style error body, else the body text, on one short line."""
    text = resp.text
    try:
        err = json.loads(text).get("error")
        if isinstance(err, dict) and err.get("message"):
            text = str(err["message"])
        elif isinstance(err, str):
            text = err
    except (ValueError, AttributeError):
        pass
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")


class OpenAIClient:
    """Async client for one model on an OpenAI-compatible `/chat/completions` endpoint.

    At most `concurrency` HTTP requests are in flight per event loop; failed attempts on 429, 408,
    5xx, connection errors, timeouts and malformed bodies are retried `max_retries` times with
    exponential backoff and jitter (or the server's Retry-After, capped at `retry_after_cap_s`).
    Connections are created lazily for the running loop; close them with `aclose()` (or
    `async with client:`) before that loop ends.

    Each concurrency slot owns a one-connection `httpx.AsyncClient` rather than all slots sharing
    one pool: httpcore's pool bookkeeping is O(connections²) per request, which at 64 connections
    costs several ms of CPU per request and caps throughput far below what the server can do.
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        *,
        concurrency: int = 16,
        timeout_s: float = 120.0,
        max_retries: int = 6,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        retry_after_cap_s: float = 120.0,
    ) -> None:
        self.model = model
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        try:
            url = httpx.URL(self.base_url)
        except httpx.InvalidURL as exc:
            raise UserError(f"invalid --base-url {public_url(self.base_url)!r}: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise UserError(f"--base-url must be an http(s) URL, got {public_url(self.base_url)!r}")
        self._url = url.copy_with(path=url.path.rstrip("/") + "/chat/completions")
        self.api_key_env = api_key_env
        self._api_key = os.environ.get(api_key_env) or None  # None: local server, no auth header
        self.concurrency = max(1, int(concurrency))
        self.timeout_s = float(timeout_s)
        self.max_retries = max(0, int(max_retries))
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.retry_after_cap_s = retry_after_cap_s
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        self._ssl: ssl.SSLContext | None = None  # shared by all slots (loading CAs is slow)

    def __repr__(self) -> str:
        return (
            f"OpenAIClient(model={self.model!r}, base_url={public_url(self.base_url)!r}, "
            f"api_key_env={self.api_key_env!r}, concurrency={self.concurrency})"
        )

    @property
    def public_base_url(self) -> str:
        return public_url(self.base_url)

    def redact(self, text: str) -> str:
        """`text` with the API key and any URL password removed."""
        for secret in (self._api_key, httpx.URL(self.base_url).password):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        with self._lock:
            st = self._states.get(loop)
            if st is None:
                slots: asyncio.Queue[int] = asyncio.Queue()
                for i in range(self.concurrency):
                    slots.put_nowait(i)
                st = self._states[loop] = _LoopState(slots, [None] * self.concurrency)
            return st

    def _http(self, st: _LoopState, slot: int) -> httpx.AsyncClient:
        http = st.clients[slot]
        if http is None:
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()
            http = st.clients[slot] = httpx.AsyncClient(
                headers={"Authorization": f"Bearer {self._api_key}"} if self._api_key else {},
                timeout=httpx.Timeout(self.timeout_s),
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                verify=self._ssl,
            )
        return http

    async def aclose(self) -> None:
        """Close the connections of the running event loop."""
        with self._lock:
            st = self._states.pop(asyncio.get_running_loop(), None)
        if st is not None:
            await asyncio.gather(*(c.aclose() for c in st.clients if c is not None))

    async def __aenter__(self) -> OpenAIClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _backoff_s(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.retry_after_cap_s)
        d = min(self.backoff_max_s, self.backoff_base_s * 2**attempt)
        return d / 2 + random.uniform(0, d / 2)  # "equal jitter": spreads a burst of retries

    async def chat(self, messages: list[dict[str, Any]], **sampling: Any) -> ChatResult:
        """POST one chat completion (`sampling`: temperature, top_p, max_tokens, stop, seed, ...;
        None values are dropped). Raises `ChatError` once retries are exhausted."""
        payload = {"model": self.model, "messages": messages}
        payload.update({k: v for k, v in sampling.items() if v is not None})
        st = self._state()
        for attempt in range(self.max_retries + 1):
            try:
                return await self._attempt(st, payload)
            except _Retry as err:
                failure = err
            if attempt < self.max_retries:
                delay = self._backoff_s(attempt, failure.wait_s)
                log.debug("retry %d/%d in %.2fs: %s", attempt + 1, self.max_retries, delay, failure.message)
                await asyncio.sleep(delay)
        n = self.max_retries + 1
        raise ChatError(failure.type, f"{failure.message} (after {n} attempt{'s' * (n > 1)})")

    async def _attempt(self, st: _LoopState, payload: dict[str, Any]) -> ChatResult:
        slot = await st.slots.get()
        try:
            t0 = time.perf_counter()
            try:
                async with asyncio.timeout(self.timeout_s):  # total deadline, not per read
                    resp = await self._http(st, slot).post(self._url, json=payload)
            except (TimeoutError, httpx.TimeoutException):
                raise _Retry("timeout", f"no answer within {self.timeout_s:g}s") from None
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                raise ChatError("backend_error", self.redact(f"bad URL: {exc}")) from None
            except httpx.RequestError as exc:
                msg = self.redact(f"connection error: {type(exc).__name__}: {exc}")
                raise _Retry("backend_error", msg) from None
            latency = time.perf_counter() - t0
        finally:
            st.slots.put_nowait(slot)
        code = resp.status_code
        if code == 429:
            body = self.redact(_short_body(resp))
            raise _Retry("rate_limited", f"HTTP 429: {body}", _retry_after_s(resp.headers.get("Retry-After")))
        if code == 408 or code >= 500:
            kind = "timeout" if code == 408 else "backend_error"
            raise _Retry(kind, self.redact(f"HTTP {code}: {_short_body(resp)}"))
        if code != 200:
            raise ChatError("backend_error", self.redact(f"HTTP {code}: {_short_body(resp)}"))
        try:
            raw = resp.json()
            message = raw["choices"][0]["message"]
            text = message.get("content") or ""
            usage = raw.get("usage") or {}
            if not isinstance(text, str) or not isinstance(usage, dict):
                raise TypeError("content is not a string")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            short = self.redact(" ".join(resp.text.split())[:200])
            raise _Retry("backend_error", f"malformed response ({type(exc).__name__}): {short}") from None
        return ChatResult(text, usage, raw, latency)


@lru_cache(maxsize=32)
def _png_data_url(path: str, mtime_ns: int, size: int) -> str:
    """Cached per file version: POPE-style tasks ask many questions about one image."""
    buf = io.BytesIO()
    load_image(path).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def image_data_url(path: str) -> str:
    """A PNG data URL for the image at `path`; raises `ImageLoadError`."""
    try:
        st = Path(path).stat()
    except OSError as exc:
        raise ImageLoadError(f"image not found: {path}") from exc
    return _png_data_url(str(path), st.st_mtime_ns, st.st_size)


def to_openai_messages(messages: tuple[Message, ...] | list[Message]) -> list[dict[str, Any]]:
    """Chat messages in OpenAI format: plain string content for text-only messages, otherwise
    image parts (in order) followed by the text part. Raises `ImageLoadError`."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if not m.images:
            out.append({"role": m.role, "content": m.text})
            continue
        parts: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": image_data_url(p)}} for p in m.images
        ]
        if m.text:
            parts.append({"type": "text", "text": m.text})
        out.append({"role": m.role, "content": parts})
    return out


class OpenAIBackend(Backend):
    """`--model openai:NAME --base-url URL`: any OpenAI-compatible chat-completions endpoint."""

    def __init__(self, model: str, options: BackendOptions | None = None, **client_kwargs: Any) -> None:
        """`client_kwargs` go to `OpenAIClient` (e.g. `backoff_base_s=0.01` in tests)."""
        options = options or BackendOptions()
        self.model = model
        self.name = f"openai:{model}"
        self.client = OpenAIClient(
            model,
            options.base_url,
            options.api_key_env,
            concurrency=options.concurrency,
            timeout_s=options.timeout_s,
            max_retries=options.max_retries,
            **client_kwargs,
        )
        self.served_model: str | None = None

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.client!r})"

    def generate(self, requests: list[Request]) -> list[Response]:
        """Answer a batch concurrently; callable from sync code or from inside a running loop."""
        if not requests:
            return []
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._generate_and_close(requests))
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="evalkit-openai") as pool:
            return pool.submit(asyncio.run, self._generate_and_close(requests)).result()

    async def _generate_and_close(self, requests: list[Request]) -> list[Response]:
        try:
            return await self.agenerate(requests)
        finally:
            await self.client.aclose()

    async def agenerate(self, requests: list[Request]) -> list[Response]:
        # Bound requests being prepared/retried (not only those on the wire) so a huge batch
        # does not hold every encoded image in memory at once.
        pending = asyncio.Semaphore(2 * self.client.concurrency)

        async def one(req: Request) -> Response:
            async with pending:
                return await self._one(req)

        return list(await asyncio.gather(*(one(r) for r in requests)))

    async def _one(self, req: Request) -> Response:
        t0 = time.perf_counter()
        g = req.generation
        try:
            if any(m.images for m in req.messages):  # decoding/encoding images is slow: off the loop
                messages = await asyncio.to_thread(to_openai_messages, req.messages)
            else:
                messages = to_openai_messages(req.messages)
            res = await self.client.chat(
                messages,
                temperature=g.temperature,
                top_p=g.top_p,
                max_tokens=g.max_new_tokens,
                stop=list(g.stop) or None,
                seed=req.seed,
            )
        except ImageLoadError as exc:
            return Response(req.id, error=ErrorInfo("image_error", str(exc)))
        except ChatError as exc:
            return Response(req.id, latency_s=time.perf_counter() - t0, error=exc.to_error_info())
        except Exception as exc:  # a bug must not lose the batch
            msg = self.client.redact(f"{type(exc).__name__}: {exc}")
            return Response(req.id, latency_s=time.perf_counter() - t0, error=ErrorInfo("backend_error", msg))
        if self.served_model is None and isinstance(res.raw.get("model"), str):
            self.served_model = res.raw["model"]
        return Response(
            req.id,
            text=res.text,
            prompt_tokens=int(res.usage.get("prompt_tokens") or 0),
            completion_tokens=int(res.usage.get("completion_tokens") or 0),
            latency_s=res.latency_s,
        )

    def fingerprint(self) -> dict[str, Any]:
        return {
            "provider": "openai-compatible",
            "model": self.model,
            "base_url": self.client.public_base_url,
            "served_model": self.served_model,
        }

    def info(self) -> dict[str, Any]:
        c = self.client
        return {
            "concurrency": c.concurrency,
            "timeout_s": c.timeout_s,
            "max_retries": c.max_retries,
            "backoff_base_s": c.backoff_base_s,
            "api_key_env": c.api_key_env,
            "api_key_set": c._api_key is not None,
        }
