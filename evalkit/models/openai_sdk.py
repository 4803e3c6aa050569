"""`OpenAIClient` with the official `openai` SDK (on its aiohttp transport) doing each HTTP attempt
(written against openai 3.63, which sits on httpx2, with httpx-aiohttp 0.2).

Only the attempt changes: the queue of at most `concurrency` requests in flight, the retry policy
(the SDK's own retries are off, `max_retries=0`, so none is doubled), the error types, the redaction and
the probe stay `OpenAIClient`'s. One `AsyncOpenAI` per event loop, as for the aiohttp session.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import httpx2
import openai
from openai import AsyncOpenAI, DefaultAioHttpClient
from yarl import URL

from evalkit.models.openai_client import ChatError, ChatResult, OpenAIClient, _LoopState, _Retry
from evalkit.models.openai_http import endpoint, retry_after_s, short_body


class OpenAISDKClient(OpenAIClient):
    """`OpenAIClient` whose attempts go through `AsyncOpenAI(http_client=DefaultAioHttpClient())`."""

    def __init__(self, *args: Any, sdk_call: str = "create", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sdk_call = sdk_call  # "create": chat.completions.create; "raw": client.post -> httpx2.Response
        self._sdk: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncOpenAI] = (
            weakref.WeakKeyDictionary()
        )
        self._sdk_lock = threading.Lock()
        # URL credentials win over the key (a default header); no key (a local server): no header at all
        no_key = self._url_auth is None and not self._api_key
        self._no_auth: dict[str, Any] | None = {"Authorization": openai.omit} if no_key else None

    def _client(self) -> AsyncOpenAI:
        loop = asyncio.get_running_loop()
        with self._sdk_lock:
            client = self._sdk.get(loop)
            if client is None or client.is_closed():
                url = URL(self.base_url)
                headers = {"Authorization": self._url_auth} if self._url_auth is not None else None
                client = self._sdk[loop] = AsyncOpenAI(
                    api_key=self._api_key or "none",
                    base_url=str(endpoint(url, "").with_query(None)),
                    default_query=dict(url.query) or None,
                    default_headers=headers,
                    max_retries=0,  # evalkit's retry policy decides
                    timeout=self.timeout_s,
                    http_client=DefaultAioHttpClient(
                        timeout=self.timeout_s,
                        limits=httpx2.Limits(
                            max_connections=self.concurrency, max_keepalive_connections=self.concurrency
                        ),
                    ),
                )
            return client

    async def aclose(self) -> None:
        await super().aclose()
        with self._sdk_lock:
            client = self._sdk.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    async def chat(
        self, messages: list[dict[str, Any]], *, on_sent: Callable[[], None] | None = None, **sampling: Any
    ) -> ChatResult:
        """`OpenAIClient.chat`, queueing the request as a dict (the SDK encodes it)."""
        payload = {"model": self.model, "messages": messages}
        payload.update({k: v for k, v in sampling.items() if v is not None})
        st = self._state()
        for attempt in range(self.max_retries + 1):
            try:
                return await self._submit(st, payload, on_sent)  # type: ignore[arg-type]
            except _Retry as err:
                failure = err
            if attempt < self.max_retries:
                await asyncio.sleep(self._backoff_s(attempt, failure.wait_s))
        n = self.max_retries + 1
        raise ChatError(failure.type, f"{failure.message} (after {n} attempt{'s' * (n > 1)})")

    async def _attempt(self, st: _LoopState, body: Any) -> ChatResult:
        payload: dict[str, Any] = body
        client = self._client()
        t0 = time.perf_counter()
        try:
            if self.sdk_call == "raw":  # the SDK as transport only: no param transform, no typed response
                options: Any = {"headers": self._no_auth} if self._no_auth else {}
                reply = await client.post(
                    "/chat/completions", cast_to=httpx2.Response, body=payload, options=options
                )
                completion = None
            else:
                completion = await client.chat.completions.create(**payload, extra_headers=self._no_auth)
        except openai.APITimeoutError:
            raise _Retry("timeout", f"no answer within {self.timeout_s:g}s") from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise _Retry(
                "backend_error", self.redact(f"connection error: {type(cause).__name__}: {cause}")
            ) from None
        except openai.APIStatusError as exc:
            code, reply = exc.status_code, exc.response.text
            msg = self.redact(f"HTTP {code}: {short_body(reply)}")
            if code == 429:
                raise _Retry(
                    "rate_limited", msg, retry_after_s(exc.response.headers.get("Retry-After"))
                ) from None
            if code == 408 or code >= 500:
                raise _Retry("timeout" if code == 408 else "backend_error", msg) from None
            raise ChatError("backend_error", msg) from None
        except (openai.APIResponseValidationError, ValueError) as exc:  # ValueError: a body not JSON
            raise _Retry("backend_error", self.redact(f"malformed response: {exc}")) from None
        latency = time.perf_counter() - t0
        try:
            raw = json.loads(reply.content) if completion is None else completion.to_dict()
            text = raw["choices"][0]["message"].get("content") or ""
            usage = raw.get("usage") or {}
            if not isinstance(text, str) or not isinstance(usage, dict):
                raise TypeError("content is not a string")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            body = reply.text if completion is None else str(completion)
            short = self.redact(" ".join(body.split())[:200])
            raise _Retry("backend_error", f"malformed response ({type(exc).__name__}): {short}") from None
        return ChatResult(text, usage, raw, latency)
