"""LLM judges: a model backend plus a prompt, a parser version and a fingerprint, behind a cache.

A task declares its official judge as a `JudgeSpec`; the user may swap the model (`--judge
openai:MODEL` / `--judge hf:PATH`), never silently: the model, prompt hash and parser version form the
judge's fingerprint, stored with every judged row, so runs judged differently are never compared as if
they were the same. Any `Backend` can judge, so judges get batching, concurrency, retries and typed
errors from the same code as the models under test.

A judge may see images (a task puts them in its judge messages, with OpenAI's `detail` when it sets one):
the cache key holds each image's content hash, not its path, so two images never share an answer, and a
spec's `image_detail` is part of the fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image

from evalkit.judges.cache import JudgeCache, cache_key
from evalkit.judges.pricing import cost_usd, image_prompt_tokens
from evalkit.models.base import Backend, BackendOptions, load_backend
from evalkit.types import ErrorInfo, GenerationConfig, Message, Request, Response
from evalkit.util.datafiles import sha256_file


@dataclass(frozen=True)
class JudgeSpec:
    """A task's official judge: model, sampling, number of runs, and the version of its parser."""

    model: str
    temperature: float = 0.0
    max_tokens: int = 1024
    n_runs: int = 1
    parser_version: str = "1"
    #: the OpenAI image `detail` of a judge that sees the image ("low", "high", "auto"); None: the judge
    #: sees no image, or is sent none (and the fingerprint has no such entry, as before images existed)
    image_detail: str | None = None


@dataclass(frozen=True)
class JudgeCall:
    """One call to a judge: the rendered messages and exact decoding settings, the run it belongs to
    (`run_index`, part of the cache key) and a label the caller uses to place the answer (`slot`)."""

    slot: str
    messages: tuple[Message, ...]
    generation: GenerationConfig
    run_index: int | None = None


@dataclass(frozen=True)
class JudgeAnswer:
    id: str
    text: str | None
    cached: bool
    prompt_hash: str
    error: ErrorInfo | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: per-token top log-probabilities, when the call asked for them
    logprobs: list[dict[str, Any]] | None = None

    @property
    def output(self) -> Any:
        """What a parser reads: the text, or for calls that asked for log-probabilities the OpenAI
        choice shape `{"message": {"content"}, "logprobs": {"content": [...]}}` (as official files
        store it)."""
        if self.logprobs is None:
            return self.text
        return {
            "message": {"role": "assistant", "content": self.text},
            "logprobs": {"content": self.logprobs},
        }


#: run.json's definition of `usage.calls`, stored beside the counts
CALLS_DEFINITION = (
    "HTTP requests sent to the judge endpoint (a local judge: generations), retries included, each "
    "counted when sent and kept across interrupted and resumed processes of the run; answers served "
    "from the judge cache are counted in cache_hits, never in calls"
)


@dataclass
class JudgeUsage:
    """What a run's judging cost: calls made (see `CALLS_DEFINITION`), answers served from the cache,
    calls that failed for good, tokens and dollars."""

    calls: int = 0
    cache_hits: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    by_model: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@lru_cache(maxsize=256)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    """`sha256_file`, remembered per file version (path, mtime, size)."""
    return sha256_file(Path(path))


def image_sha256(path: str) -> str | None:
    """The content hash of the image file at `path` (cached per file version), or None when it cannot be
    read (the call then goes uncached, and the backend reports the missing image)."""
    try:
        st = os.stat(path)
        return _file_sha256(str(path), st.st_mtime_ns, st.st_size)
    except OSError:
        return None


def _image_tokens(path: str, detail: str | None) -> int:
    """`image_prompt_tokens` of the image at `path` (its header read for the size); an unreadable image
    costs nothing (its call fails before it is billed)."""
    try:
        with Image.open(path) as img:
            width, height = img.size
    except (OSError, ValueError):
        return 0
    return image_prompt_tokens(width, height, detail)


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
        #: (run, ledger judge id): where every call and answer is also counted durably (`JudgeCache.usage`)
        self.ledger: tuple[str, str] | None = None
        self._usage_lock = threading.Lock()
        # computed once: a local judge's fingerprint hashes its weights, and every cache key uses the id
        self._backend_identity = {k: v for k, v in backend.fingerprint().items() if k != "served_model"}
        identity = json.dumps(self._backend_identity, sort_keys=True, default=str)
        self.id = f"{spec.model}|{identity}|prompt:{prompt_hash[:16]}|parser:{spec.parser_version}"
        if spec.image_detail is not None:  # only then: text judges keep their ids and cache keys
            self.id += f"|image_detail:{spec.image_detail}"

    @property
    def model_name(self) -> str:
        return self.spec.model.split(":", 1)[1] if ":" in self.spec.model else self.spec.model

    def backend_identity(self) -> dict[str, Any]:
        """What tells two judges of the same name apart: the endpoint (a local server may serve another
        model under the same name) or the local checkpoint's weights; the answering snapshot reported by
        the server is recorded in run.json, not here, as it is only known after the first call."""
        return dict(self._backend_identity)

    def fingerprint(self) -> dict[str, Any]:
        out = {
            "model": self.spec.model,
            "backend": self.backend_identity(),
            "prompt_sha256": self.prompt_hash,
            "parser_version": self.spec.parser_version,
            "temperature": self.spec.temperature,
            "max_tokens": self.spec.max_tokens,
            "n_runs": self.spec.n_runs,
        }
        if self.spec.image_detail is not None:  # only then: text judges keep their stored fingerprints
            out["image_detail"] = self.spec.image_detail
        return out

    def _generation(self, temperature: float | None) -> GenerationConfig:
        t = self.spec.temperature if temperature is None else temperature
        return GenerationConfig(max_new_tokens=self.spec.max_tokens, temperature=t)

    def _key(self, messages: tuple[Message, ...], gen: GenerationConfig, run_index: int | None) -> str | None:
        if not gen.greedy and run_index is None:
            return None  # a fresh draw each time: never cached
        rendered: list[list[Any]] = []
        for m in messages:
            images = [image_sha256(p) for p in m.images]
            if None in images:
                return None  # an unreadable image: the backend answers with the error, nothing is cached
            rendered.append([m.role, m.text, images])
            if m.image_detail is not None:
                rendered[-1].append(m.image_detail)
        sampling = [gen.max_new_tokens, gen.temperature, gen.top_p, list(gen.stop), gen.top_logprobs]
        return cache_key(self.id, rendered, sampling, run_index)

    def ask(
        self,
        items: list[tuple[str, tuple[Message, ...]]],
        *,
        run_index: int | None = None,
        temperature: float | None = None,
    ) -> list[JudgeAnswer]:
        """Judge each (id, messages) with the spec's settings; see `ask_calls`."""
        gen = self._generation(temperature)
        return self.ask_calls([JudgeCall(i, m, gen, run_index) for i, m in items])

    def ask_calls(self, calls: list[JudgeCall]) -> list[JudgeAnswer]:
        """Answer each call, in order (`JudgeAnswer.id` is the call's slot); cached answers are reused,
        the rest go to the backend, and each fresh answer is committed to the cache as it arrives (a
        kill loses at most the calls in flight). A `StorageError` from the cache stops the batch."""
        answers: list[JudgeAnswer | None] = [None] * len(calls)
        requests = [Request(c.slot, c.messages, c.generation, seed=c.run_index or 0) for c in calls]
        keys = [
            self._key(c.messages, c.generation, c.run_index) if self.cache is not None else None
            for c in calls
        ]
        hits = self.cache.get_many([k for k in keys if k]) if self.cache is not None else {}
        misses: list[int] = []
        for i, (request, key) in enumerate(zip(requests, keys, strict=True)):
            hit = hits.get(key) if key else None
            if hit is None:
                misses.append(i)
                continue
            answers[i] = JudgeAnswer(
                request.id,
                hit["text"],
                True,
                request.prompt_hash(),
                None,
                hit["prompt_tokens"],
                hit["completion_tokens"],
                hit.get("logprobs"),
            )
        n_hits = len(calls) - len(misses)
        if n_hits:
            with self._usage_lock:
                self.usage.cache_hits += n_hits
            if self.ledger is not None and self.cache is not None:
                self.cache.add_usage(*self.ledger, {"cache_hits": n_hits})
        size = max(1, len(misses) if self.backend.remote else self.backend.default_batch_size)
        for k in range(0, len(misses), size):
            chunk = misses[k : k + size]

            def arrived(j: int, resp: Response, chunk: list[int] = chunk) -> None:
                i = chunk[j]
                answers[i] = self._take(requests[i], keys[i], resp)

            responses = self.backend.generate_each([requests[i] for i in chunk], arrived, self._sent)
            if len(responses) != len(chunk) or any(answers[i] is None for i in chunk):
                raise RuntimeError(f"judge backend returned {len(responses)} answers for {len(chunk)} calls")
        return [a for a in answers if a is not None]

    def _sent(self) -> None:
        """One call made (a remote judge: one HTTP request, retries included), counted before it is sent."""
        if self.ledger is not None and self.cache is not None:
            self.cache.add_usage(*self.ledger, {"calls": 1})
        with self._usage_lock:
            self.usage.calls += 1
            self.usage.by_model[self.model_name] = self.usage.by_model.get(self.model_name, 0) + 1

    def _take(self, request: Request, key: str | None, resp: Response) -> JudgeAnswer:
        """The answer to one fresh call: committed to the cache (with its tokens in the run's ledger, in
        the same transaction) before it is used."""
        wanted = request.generation.top_logprobs > 0
        if resp.ok and wanted and not resp.logprobs:
            missing = ErrorInfo("judge_error", "the judge returned no log-probabilities")
            resp = Response(resp.id, "", resp.prompt_tokens, resp.completion_tokens, resp.latency_s, missing)
        counts = {
            "failures": 0 if resp.ok else 1,
            "prompt_tokens": resp.prompt_tokens,
            "completion_tokens": resp.completion_tokens,
        }
        usage = (*self.ledger, counts) if self.ledger is not None else None
        if self.cache is not None and resp.ok and key:
            value: dict[str, Any] = {
                "text": resp.text,
                "prompt_tokens": resp.prompt_tokens,
                "completion_tokens": resp.completion_tokens,
            }
            if wanted:
                value["logprobs"] = resp.logprobs
            self.cache.put(key, self.id, value, usage)
        elif self.cache is not None and usage is not None:
            self.cache.add_usage(*usage)
        with self._usage_lock:
            u = self.usage
            u.failures += counts["failures"]
            u.prompt_tokens += resp.prompt_tokens
            u.completion_tokens += resp.completion_tokens
            u.cost_usd = self._cost(u.prompt_tokens, u.completion_tokens)
        return JudgeAnswer(
            request.id,
            resp.text if resp.ok else None,
            False,
            request.prompt_hash(),
            resp.error,
            resp.prompt_tokens,
            resp.completion_tokens,
            resp.logprobs if wanted else None,
        )

    def ledger_usage(self) -> dict[str, Any] | None:
        """The run's usage from the durable ledger (every process of the run), or None without one."""
        if self.ledger is None or self.cache is None:
            return None
        counts = self.cache.usage(*self.ledger)
        return {
            **counts,
            "cost_usd": self._cost(counts["prompt_tokens"], counts["completion_tokens"]),
            "by_model": {self.model_name: counts["calls"]} if counts["calls"] else {},
        }

    def estimate(self, items: list[tuple[str, tuple[Message, ...]]], *, run_index: int | None = None) -> dict:
        """`estimate_calls` for (id, messages) items asked with the spec's settings."""
        gen = self._generation(None)
        return self.estimate_calls([JudgeCall(i, m, gen, run_index) for i, m in items])

    def estimate_calls(self, calls: list[JudgeCall]) -> dict[str, Any]:
        """Calls a run would make (cache misses) and their estimated cost (≈ 4 characters a token;
        completions at each call's `max_new_tokens`, an upper bound), for `--dry-run` and
        `--judge-budget-usd`; each image at OpenAI's vision rate (`image_prompt_tokens`). The cost is None
        when the judge model's price is unknown."""
        keys = [
            self._key(c.messages, c.generation, c.run_index) if self.cache is not None else None
            for c in calls
        ]
        hits = self.cache.get_many([k for k in keys if k]) if self.cache is not None else {}
        n_calls, prompt_chars, completion_tokens, image_tokens = 0, 0, 0, 0
        for key, call in zip(keys, calls, strict=True):
            if key is None or key not in hits:
                n_calls += 1
                prompt_chars += sum(len(m.text) for m in call.messages)
                image_tokens += sum(_image_tokens(p, m.image_detail) for m in call.messages for p in m.images)
                completion_tokens += call.generation.max_new_tokens
        prompt_tokens = prompt_chars // 4 + image_tokens
        return {
            "calls": n_calls,
            "cached": len(calls) - n_calls,
            "est_prompt_tokens": prompt_tokens,
            "est_completion_tokens": completion_tokens,
            "est_cost_usd": self._cost(prompt_tokens, completion_tokens),
        }

    def _cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """USD at the pricing table's rate; a local judge costs nothing, an unpriced remote one None."""
        if not self.backend.remote:
            return 0.0
        return cost_usd(self.model_name, prompt_tokens, completion_tokens)


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
        spec = replace(spec, model=override)
    return Judge(spec, load_backend(spec.model, options), prompt_hash, cache)
