"""The async HTTP client for OpenAI-compatible `/chat/completions` endpoints.

`OpenAIClient` owns everything about talking to the endpoint (URL and auth handling, proxies,
connection limits, timeouts, retries with backoff and Retry-After, the pre-run probe) so that the
model backend (`evalkit.models.openai_backend`) and the LLM judges share one implementation.
A call that fails for good raises `ChatError`; a successful one returns a `ChatResult`. URL, proxy and
header parsing live in `evalkit.models.openai_http`; this module holds the queue, retry and timeout loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import aiohttp
from yarl import URL

from evalkit.models.base import public_url
from evalkit.models.openai_http import basic_auth, endpoint, env_proxy, retry_after_s, short_body
from evalkit.types import ErrorInfo, UserError

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


class _Job:
    """One HTTP attempt waiting for (or being run by) a runner; `scope` is set while it is in flight;
    `on_sent` is called (in a worker thread) just before the request is sent."""

    __slots__ = ("body", "future", "scope", "on_sent")

    def __init__(
        self, body: bytes, future: asyncio.Future[ChatResult], on_sent: Callable[[], None] | None = None
    ) -> None:
        self.body, self.future, self.on_sent = body, future, on_sent
        self.scope: asyncio.Timeout | None = None


@dataclass
class _LoopState:
    """Per event loop (an aiohttp session is bound to the loop it was created in): queued attempts,
    the runner tasks (at most `concurrency`) that send them, and the lazily opened session."""

    concurrency: int
    queue: deque[_Job] = field(default_factory=deque)
    runners: set[asyncio.Task[None]] = field(default_factory=set)
    session: aiohttp.ClientSession | None = None
    headers: dict[str, str] = field(default_factory=dict)
    proxy: URL | None = None


class OpenAIClient:
    """Async client for one model on an OpenAI-compatible `/chat/completions` endpoint.

    At most `concurrency` HTTP requests are in flight per event loop: attempts are queued and sent by
    up to `concurrency` runner tasks, each going straight on to the next queued attempt (a semaphore
    would hand a freed slot to the next caller's task one event-loop turn later, which costs several
    percent of throughput at ~1000 requests/s). Failed attempts on 429, 408, 5xx, connection
    errors, timeouts and malformed bodies are retried `max_retries` times with exponential backoff
    and jitter (or the server's Retry-After, capped at `retry_after_cap_s`); a caller waiting out a
    backoff holds no slot.
    Connections (one aiohttp session per event loop) are created lazily for the running loop; close
    them with `aclose()` (or `async with client:`) before that loop ends.
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
            url = URL(self.base_url)
            host = url.host
        except ValueError as exc:
            raise UserError(f"invalid --base-url {public_url(self.base_url)!r}: {exc}") from None
        if url.scheme not in ("http", "https") or not host:
            raise UserError(f"--base-url must be an http(s) URL, got {public_url(self.base_url)!r}")
        self._url = endpoint(url, "/chat/completions")  # URL credentials go in the Authorization header
        self._models_url = endpoint(url, "/models")
        self._url_password = url.password
        # query values may be keys (`?api-key=...`); short ones (`?v=1`) would mask too much
        self._url_secrets = [v for v in url.query.values() if len(v) >= 8]
        self._url_auth = basic_auth(url) if url.user is not None or url.password is not None else None
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

    def __repr__(self) -> str:
        return (
            f"OpenAIClient(model={self.model!r}, base_url={public_url(self.base_url)!r}, "
            f"api_key_env={self.api_key_env!r}, concurrency={self.concurrency})"
        )

    @property
    def public_base_url(self) -> str:
        return public_url(self.base_url)

    def redact(self, text: str) -> str:
        """`text` with the API key, any URL password and long URL query values removed."""
        for secret in (self._api_key, self._url_password, *self._url_secrets):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        with self._lock:
            st = self._states.get(loop)
            if st is None:
                st = self._states[loop] = _LoopState(self.concurrency)
            return st

    def _session(self, st: _LoopState) -> aiohttp.ClientSession:
        """The running loop's session, opened on first use (it must be created inside that loop)."""
        if st.session is None or st.session.closed:
            # Per request, not session-wide: aiohttp merges session headers into those for a proxy
            # too (and would send the API key to it as Proxy-Authorization).
            st.headers = {"Content-Type": "application/json"}  # every request is a JSON POST
            if self._url_auth is not None:  # URL credentials win over the API key
                st.headers["Authorization"] = self._url_auth
            elif self._api_key:
                st.headers["Authorization"] = f"Bearer {self._api_key}"
            st.proxy = env_proxy(self._url)
            st.session = aiohttp.ClientSession(
                # TLS: aiohttp's default context (system CAs; honours SSL_CERT_FILE / SSL_CERT_DIR).
                connector=aiohttp.TCPConnector(limit=st.concurrency),
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),  # per attempt, body included
                raise_for_status=False,
            )
        return st.session

    async def aclose(self) -> None:
        """Close the connections of the running event loop (attempts still queued or in flight there
        fail with a `ChatError`)."""
        with self._lock:
            st = self._states.pop(asyncio.get_running_loop(), None)
        if st is None:
            return
        while st.queue:
            job = st.queue.popleft()
            if not job.future.done():
                job.future.set_exception(ChatError("backend_error", "client closed"))
        for task in list(st.runners):
            task.cancel()
        if st.runners:
            await asyncio.wait(st.runners)
        if st.session is not None:
            await st.session.close()

    async def __aenter__(self) -> OpenAIClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _backoff_s(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.retry_after_cap_s)
        d = min(self.backoff_max_s, self.backoff_base_s * 2**attempt)
        return d / 2 + random.uniform(0, d / 2)  # "equal jitter": spreads a burst of retries

    def _auth_headers(self) -> dict[str, str]:
        if self._url_auth is not None:  # URL credentials win over the API key
            return {"Authorization": self._url_auth}
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    async def aprobe(self, timeout_s: float = 30.0) -> str | None:
        """One cheap request to tell a usable endpoint from a wrong one before a run: None when usable,
        else the reason (the server's own message for a refused key, or why it is unreachable).

        GET /models is free and served by OpenAI, vLLM and most compatible servers; a 401/403 there is
        a bad key. Where /models does not exist (404/405/other 4xx) a 1-token chat request decides.
        Unreachable: connection refused or reset, DNS or TLS failure, no answer within `timeout_s`.
        A 429 or 5xx means the server is there (busy or failing now): the run's retries handle it."""
        headers = self._auth_headers()
        proxy = env_proxy(self._url)
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
                async with session.get(self._models_url, headers=headers, proxy=proxy) as resp:
                    code, reply = resp.status, (await resp.read()).decode("utf-8", errors="replace")
                if 400 <= code < 500 and code not in (401, 403, 408, 429):
                    ping = [{"role": "user", "content": "ping"}]
                    body = {"model": self.model, "messages": ping, "max_tokens": 1}
                    async with session.post(self._url, json=body, headers=headers, proxy=proxy) as resp:
                        code, reply = resp.status, (await resp.read()).decode("utf-8", errors="replace")
        except TimeoutError:
            return f"unreachable: no answer within {timeout_s:g}s"
        except (aiohttp.ClientError, OSError) as exc:
            return self.redact(f"unreachable: {type(exc).__name__}: {exc}")
        if code == 200 or code in (408, 429) or code >= 500:
            return None
        return self.redact(f"HTTP {code}: {short_body(reply)}")

    async def chat(
        self, messages: list[dict[str, Any]], *, on_sent: Callable[[], None] | None = None, **sampling: Any
    ) -> ChatResult:
        """POST one chat completion (`sampling`: temperature, top_p, max_tokens, stop, seed, ...;
        None values are dropped). Raises `ChatError` once retries are exhausted. `on_sent()` runs before
        each HTTP attempt is sent (retries included); an exception from it stops the call."""
        payload = {"model": self.model, "messages": messages}
        payload.update({k: v for k, v in sampling.items() if v is not None})
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        st = self._state()
        for attempt in range(self.max_retries + 1):
            try:
                return await self._submit(st, body, on_sent)
            except _Retry as err:
                failure = err
            if attempt < self.max_retries:
                delay = self._backoff_s(attempt, failure.wait_s)
                log.debug("retry %d/%d in %.2fs: %s", attempt + 1, self.max_retries, delay, failure.message)
                await asyncio.sleep(delay)
        n = self.max_retries + 1
        raise ChatError(failure.type, f"{failure.message} (after {n} attempt{'s' * (n > 1)})")

    async def _submit(
        self, st: _LoopState, body: bytes, on_sent: Callable[[], None] | None = None
    ) -> ChatResult:
        """One attempt, run by one of the loop's runners; raises `_Retry` or `ChatError`."""
        job = _Job(body, asyncio.get_running_loop().create_future(), on_sent)
        st.queue.append(job)
        if len(st.runners) < st.concurrency:
            runner = asyncio.create_task(self._runner(st))
            runner.add_done_callback(st.runners.discard)  # also if cancelled before it started
            st.runners.add(runner)
        try:
            return await job.future
        except asyncio.CancelledError:
            if job.scope is not None:  # the caller is gone: abort its request, freeing the runner
                job.scope.reschedule(-1.0)
            raise

    async def _runner(self, st: _LoopState) -> None:
        """Send queued attempts one after another until the queue is empty."""
        task = asyncio.current_task()
        assert task is not None
        job: _Job | None = None
        try:
            while st.queue:
                job = st.queue.popleft()
                if job.future.done():  # its caller was cancelled while it waited
                    continue
                try:
                    async with asyncio.timeout(None) as job.scope:  # lets `_submit` abort it
                        if job.on_sent is not None:  # e.g. a SQLite commit: off the event loop
                            await asyncio.to_thread(job.on_sent)
                        result = await self._attempt(st, job.body)
                except Exception as exc:  # _Retry, ChatError, or TimeoutError from an abort
                    if not job.future.done():
                        job.future.set_exception(exc)
                else:
                    if not job.future.done():
                        job.future.set_result(result)
                finally:
                    job.scope = None
        except asyncio.CancelledError:  # aclose() or the loop shutting down
            if job is not None and not job.future.done():
                job.future.set_exception(ChatError("backend_error", "client closed"))
            raise
        finally:
            st.runners.discard(task)  # now, not only in the done-callback: `_submit` counts runners

    async def _attempt(self, st: _LoopState, body: bytes) -> ChatResult:
        session = self._session(st)
        t0 = time.perf_counter()
        try:
            async with session.post(
                self._url,
                data=body,
                headers=st.headers,
                proxy=st.proxy,
            ) as resp:
                code, retry_after = resp.status, resp.headers.get("Retry-After")
                reply = (await resp.read()).decode("utf-8", errors="replace")  # JSON is UTF-8 (RFC 8259)
        except TimeoutError:  # asyncio.TimeoutError, aiohttp's ServerTimeoutError & co.
            raise _Retry("timeout", f"no answer within {self.timeout_s:g}s") from None
        except aiohttp.InvalidURL as exc:
            raise ChatError("backend_error", self.redact(f"bad URL: {exc}")) from None
        except (aiohttp.ClientError, OSError) as exc:  # refused, reset, ServerDisconnectedError, ...
            msg = f"connection error: {type(exc).__name__}: {exc}"
            if st.proxy is not None:  # proxy errors name the proxy URL, user info included
                for secret in (st.proxy.raw_password, st.proxy.password):
                    msg = msg.replace(secret, "***") if secret else msg
            raise _Retry("backend_error", self.redact(msg)) from None
        latency = time.perf_counter() - t0
        if code == 429:
            msg = self.redact(f"HTTP 429: {short_body(reply)}")
            raise _Retry("rate_limited", msg, retry_after_s(retry_after))
        if code == 408 or code >= 500:
            kind = "timeout" if code == 408 else "backend_error"
            raise _Retry(kind, self.redact(f"HTTP {code}: {short_body(reply)}"))
        if code != 200:
            raise ChatError("backend_error", self.redact(f"HTTP {code}: {short_body(reply)}"))
        try:
            raw = json.loads(reply)
            message = raw["choices"][0]["message"]
            text = message.get("content") or ""
            usage = raw.get("usage") or {}
            if not isinstance(text, str) or not isinstance(usage, dict):
                raise TypeError("content is not a string")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            short = self.redact(" ".join(reply.split())[:200])
            raise _Retry("backend_error", f"malformed response ({type(exc).__name__}): {short}") from None
        return ChatResult(text, usage, raw, latency)
