"""LLM judges: a model backend plus a prompt, a parser version and a fingerprint, behind a cache.

A task declares its official judge as a `JudgeSpec`; the user may swap the model (`--judge
openai:MODEL` / `--judge hf:PATH`), never silently: the model, prompt hash and parser version form the
judge's fingerprint, stored with every judged row, so runs judged differently are never compared as if
they were the same. Any `Backend` can judge, so judges get batching, concurrency, retries and typed
errors from the same code as the models under test.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from evalkit.judge_cache import JudgeCache, cache_key
from evalkit.models.base import Backend, BackendOptions, load_backend
from evalkit.pricing import cost_usd
from evalkit.types import ErrorInfo, GenerationConfig, Message, Request, jsonable


@dataclass(frozen=True)
class JudgeSpec:
    """A task's official judge: model, sampling, number of runs, and the version of its parser."""

    model: str
    temperature: float = 0.0
    max_tokens: int = 1024
    n_runs: int = 1
    parser_version: str = "1"


@dataclass(frozen=True)
class JudgeAnswer:
    id: str
    text: str | None
    cached: bool
    prompt_hash: str
    error: ErrorInfo | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class JudgeUsage:
    """What a run's judging cost: calls made, answers served from the cache, tokens and dollars."""

    calls: int = 0
    cache_hits: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    by_model: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def prompt_sha256(*templates: str) -> str:
    h = hashlib.sha256()
    for t in templates:
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()


class Judge:
    def __init__(self, spec: JudgeSpec, backend: Backend, prompt_hash: str, cache: JudgeCache | None = None):
        self.spec = spec
        self.backend = backend
        self.prompt_hash = prompt_hash
        self.cache = cache
        self.usage = JudgeUsage()

    @property
    def model_name(self) -> str:
        return self.spec.model.split(":", 1)[1] if ":" in self.spec.model else self.spec.model

    @property
    def id(self) -> str:
        return f"{self.spec.model}|prompt:{self.prompt_hash[:16]}|parser:{self.spec.parser_version}"

    def fingerprint(self) -> dict[str, Any]:
        return {
            "model": self.spec.model,
            "prompt_sha256": self.prompt_hash,
            "parser_version": self.spec.parser_version,
            "temperature": self.spec.temperature,
            "max_tokens": self.spec.max_tokens,
            "n_runs": self.spec.n_runs,
        }

    def _generation(self, temperature: float | None) -> GenerationConfig:
        t = self.spec.temperature if temperature is None else temperature
        return GenerationConfig(max_new_tokens=self.spec.max_tokens, temperature=t)

    def _key(self, messages: tuple[Message, ...], gen: GenerationConfig, run_index: int | None) -> str | None:
        if not gen.greedy and run_index is None:
            return None  # a fresh draw each time: never cached
        return cache_key(self.id, jsonable(messages), jsonable(gen), run_index)

    def ask(
        self,
        items: list[tuple[str, tuple[Message, ...]]],
        *,
        run_index: int | None = None,
        temperature: float | None = None,
    ) -> list[JudgeAnswer]:
        """Judge each (id, messages); cached answers are reused, the rest go to the backend in one batch."""
        gen = self._generation(temperature)
        answers: dict[str, JudgeAnswer] = {}
        misses: list[tuple[Request, str | None]] = []
        keyed = [
            (
                Request(item_id, messages, gen, seed=run_index or 0),
                self._key(messages, gen, run_index) if self.cache is not None else None,
            )
            for item_id, messages in items
        ]
        hits = self.cache.get_many([k for _, k in keyed if k]) if self.cache is not None else {}
        for request, key in keyed:
            hit = hits.get(key) if key else None
            if hit is not None:
                self.usage.cache_hits += 1
                answers[request.id] = JudgeAnswer(
                    request.id,
                    hit["text"],
                    True,
                    request.prompt_hash(),
                    None,
                    hit["prompt_tokens"],
                    hit["completion_tokens"],
                )
            else:
                misses.append((request, key))
        if misses:
            fresh: list[tuple[str, str, dict[str, Any]]] = []
            responses = self.backend.generate([r for r, _ in misses])
            for (request, key), resp in zip(misses, responses, strict=True):
                self._account(resp.prompt_tokens, resp.completion_tokens, resp.ok)
                answers[request.id] = JudgeAnswer(
                    request.id,
                    resp.text if resp.ok else None,
                    False,
                    request.prompt_hash(),
                    resp.error,
                    resp.prompt_tokens,
                    resp.completion_tokens,
                )
                if resp.ok and key:
                    fresh.append(
                        (
                            key,
                            self.id,
                            {
                                "text": resp.text,
                                "prompt_tokens": resp.prompt_tokens,
                                "completion_tokens": resp.completion_tokens,
                            },
                        )
                    )
            if fresh and self.cache is not None:
                self.cache.put_many(fresh)  # one commit for the batch the backend just answered
        return [answers[i] for i, _ in items]

    def _account(self, prompt_tokens: int, completion_tokens: int, ok: bool) -> None:
        u = self.usage
        u.calls += 1
        u.failures += 0 if ok else 1
        u.prompt_tokens += prompt_tokens
        u.completion_tokens += completion_tokens
        u.by_model[self.model_name] = u.by_model.get(self.model_name, 0) + 1
        cost = cost_usd(self.model_name, u.prompt_tokens, u.completion_tokens)
        u.cost_usd = cost if self.backend.name.startswith("openai") else 0.0

    def estimate(self, items: list[tuple[str, tuple[Message, ...]]], *, run_index: int | None = None) -> dict:
        """Calls a run would make (cache misses) and their estimated cost (≈ 4 characters a token;
        completions at `max_tokens`, an upper bound), for `--dry-run` and `--judge-budget-usd`."""
        gen = self._generation(None)
        keys = [self._key(m, gen, run_index) if self.cache is not None else None for _, m in items]
        hits = self.cache.get_many([k for k in keys if k]) if self.cache is not None else {}
        n_calls, prompt_chars = 0, 0
        for key, (_, messages) in zip(keys, items, strict=True):
            if key is None or key not in hits:
                n_calls += 1
                prompt_chars += sum(len(m.text) for m in messages)
        prompt_tokens = prompt_chars // 4
        cost = cost_usd(self.model_name, prompt_tokens, n_calls * self.spec.max_tokens)
        return {"calls": n_calls, "est_prompt_tokens": prompt_tokens, "est_cost_usd": cost}


def make_judge(
    spec: JudgeSpec,
    prompt_hash: str,
    *,
    override: str | None = None,
    options: BackendOptions | None = None,
    cache: JudgeCache | None = None,
) -> Judge:
    """The task's official judge, or the user's `--judge` model with the same prompt and parser."""
    if override:
        spec = JudgeSpec(override, spec.temperature, spec.max_tokens, spec.n_runs, spec.parser_version)
    return Judge(spec, load_backend(spec.model, options), prompt_hash, cache)
