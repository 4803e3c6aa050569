"""The data that flows between tasks, backends, the runner and the store.

Everything here is plain data (dataclasses of JSON-able values) so that it can be stored, hashed and
compared; no module in this file imports torch or any backend.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    """One chat turn. `images` are local file paths shown before the text, in order; `image_detail` is
    OpenAI's `detail` for them ("low", "high" or "auto"; None: not sent, the API's default), which other
    backends ignore."""

    role: Role
    text: str
    images: tuple[str, ...] = ()
    image_detail: str | None = None


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings a task asks for; `temperature == 0` means greedy decoding."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    #: ask for the k most likely tokens at each position with their log-probabilities (judges that
    #: read a token distribution, e.g. AlpacaEval 2.0); 0 = not asked
    top_logprobs: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature < 1e-4


@dataclass(frozen=True)
class Request:
    """What a backend is asked to answer: one conversation and its decoding settings."""

    id: str
    messages: tuple[Message, ...]
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    seed: int = 0

    def prompt_hash(self) -> str:
        """A stable hash of the rendered request (messages and settings), used to detect changed prompts.
        Images enter by file name, not by folder, so a run resumed from another spelling or location of
        the same data (its identity is the data's checksums) re-asks nothing."""
        messages = [[m.role, m.text, [os.path.basename(p) for p in m.images]] for m in self.messages]
        g = self.generation
        settings: list = [g.max_new_tokens, g.temperature, g.top_p, list(g.stop)]
        if g.top_logprobs:  # appended only when asked, so hashes of other requests stay as they were
            settings.append(g.top_logprobs)
        payload = [messages, settings]
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


ErrorType = Literal[
    "image_error",  # an image is missing, unreadable or corrupt
    "input_error",  # the sample itself cannot be turned into a request
    "backend_error",  # the backend raised or the endpoint answered an error
    "timeout",  # the backend did not answer in time (after retries)
    "rate_limited",  # 429 after all retries
    "judge_error",  # the answer exists but its judge could not be reached (after retries)
]


@dataclass(frozen=True)
class ErrorInfo:
    """A typed, stored failure. A sample with an error is counted as failed and never scored."""

    type: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message}


@dataclass(frozen=True)
class Response:
    """A backend's answer to one request; exactly one of `text` / `error` is meaningful."""

    id: str
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    error: ErrorInfo | None = None
    #: with `GenerationConfig.top_logprobs`: per generated token `{"token", "logprob", "top_logprobs":
    #: [{"token", "logprob"}, ...]}`, the shape of OpenAI's `choices[0].logprobs.content`
    logprobs: list[dict[str, Any]] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Sample:
    """One benchmark item as a task loads it.

    `id` is unique within the task and stable across runs (it keys resume and paired comparisons);
    `target` is whatever the task's scorer needs; `cluster` groups samples for clustered bootstrap
    intervals (for POPE: the image); `meta` holds anything else worth storing with the row.
    """

    id: str
    messages: tuple[Message, ...]
    target: Any = None
    cluster: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class UserError(Exception):
    """An error the user can fix (bad flag, missing data, unknown task): printed as one line, exit 2."""


def jsonable(obj: Any) -> Any:
    """Convert dataclasses (recursively) to plain JSON values."""
    if hasattr(obj, "__dataclass_fields__"):
        return {k: jsonable(v) for k, v in asdict(obj).items()}
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    return obj
