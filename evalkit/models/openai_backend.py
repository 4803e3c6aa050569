"""The `openai:` model backend: `Request`s as OpenAI chat messages, sent through `OpenAIClient`.

`OpenAIBackend` turns `Request`s into chat messages (images as PNG data URLs) and sends them with
`evalkit.models.openai_client.OpenAIClient`; it never raises for one request's failure: it returns a
`Response` with a typed `ErrorInfo`.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

from evalkit.models.base import Backend, BackendOptions
from evalkit.models.openai_client import ChatError, OpenAIClient
from evalkit.types import ErrorInfo, Message, Request, Response
from evalkit.util.errors import StorageError
from evalkit.util.images import ImageLoadError, load_image


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


def _logprobs(raw: dict[str, Any]) -> list[dict[str, Any]] | None:
    """`choices[0].logprobs.content` of a completion, or None when the server sent none."""
    lp = raw["choices"][0].get("logprobs")
    content = lp.get("content") if isinstance(lp, dict) else None
    return content if isinstance(content, list) else None


def to_openai_messages(messages: tuple[Message, ...] | list[Message]) -> list[dict[str, Any]]:
    """Chat messages in OpenAI format: plain string content for text-only messages, otherwise
    image parts (in order, with the message's `image_detail` when set) followed by the text part.
    Raises `ImageLoadError`."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if not m.images:
            out.append({"role": m.role, "content": m.text})
            continue
        detail = {} if m.image_detail is None else {"detail": m.image_detail}
        parts: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": image_data_url(p), **detail}} for p in m.images
        ]
        if m.text:
            parts.append({"type": "text", "text": m.text})
        out.append({"role": m.role, "content": parts})
    return out


class OpenAIBackend(Backend):
    """`--model openai:NAME --base-url URL`: any OpenAI-compatible chat-completions endpoint."""

    remote = True

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
        # a batch is sent concurrently: several waves per batch keep the connections busy
        self.default_batch_size = 4 * options.concurrency

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.client!r})"

    def generate(self, requests: list[Request]) -> list[Response]:
        """Answer a batch concurrently; callable from sync code or from inside a running loop."""
        return self.generate_each(requests, lambda i, r: None)

    def generate_each(
        self,
        requests: list[Request],
        on_response: Callable[[int, Response], None],
        on_sent: Callable[[], None] | None = None,
    ) -> list[Response]:
        """`generate`, with `on_response` called (in a worker thread) as each answer arrives and
        `on_sent` before every HTTP request is sent, retries included (see `Backend.generate_each`)."""
        if not requests:
            return []
        work = self._generate_and_close(requests, on_response, on_sent)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(work)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="evalkit-openai") as pool:
            return pool.submit(asyncio.run, work).result()

    def probe(self, timeout_s: float = 30.0) -> str | None:
        """`OpenAIClient.aprobe` from sync code: None when the endpoint is usable, else why not."""

        async def go() -> str | None:
            return await self.client.aprobe(timeout_s)

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(go())
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="evalkit-openai") as pool:
            return pool.submit(asyncio.run, go()).result()

    async def _generate_and_close(
        self,
        requests: list[Request],
        on_response: Callable[[int, Response], None] | None = None,
        on_sent: Callable[[], None] | None = None,
    ) -> list[Response]:
        try:
            return await self.agenerate(requests, on_response, on_sent)
        finally:
            await self.client.aclose()

    async def agenerate(
        self,
        requests: list[Request],
        on_response: Callable[[int, Response], None] | None = None,
        on_sent: Callable[[], None] | None = None,
    ) -> list[Response]:
        # Bound requests being prepared/retried (not only those on the wire) so a huge batch
        # does not hold every encoded image in memory at once.
        pending = asyncio.Semaphore(2 * self.client.concurrency)

        async def one(i: int, req: Request) -> Response:
            async with pending:  # held while the answer is stored: a bounded backlog of unstored answers
                resp = await self._one(req, on_sent)
                if on_response is not None:  # e.g. a SQLite commit: off the event loop
                    await asyncio.to_thread(on_response, i, resp)
            return resp

        return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(requests))))

    async def _one(self, req: Request, on_sent: Callable[[], None] | None = None) -> Response:
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
                logprobs=True if g.top_logprobs else None,
                top_logprobs=g.top_logprobs or None,
                on_sent=on_sent,
            )
        except StorageError:  # the caller could not record the call: stop, nothing is lost
            raise
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
            logprobs=_logprobs(res.raw) if g.top_logprobs else None,
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
