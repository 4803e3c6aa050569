"""Ranking the policy's samples (rejection sampling, online and mixed DPO): a reward function or a judge.

A scorer rates each (example, response): `score(examples, responses) -> [float | None]`, None when no
score could be had (an unparseable or failed judge answer), which the caller counts and never turns into
a preference. The example gives the prompt, the image and a reference answer (an SFT example's response,
a pair's chosen answer) the rating may compare against.

- `--reward module:function` (or `path/to/file.py:function`): `function(prompt, response, reference,
  image) -> float`, higher is better. Built in: `toy-objects`, for the toy world (see `toy_objects`).
- `--judge openai:MODEL | hf:PATH`: every response is rated 1-10 through evalkit's judge layer (cached,
  fingerprinted, retried) with `RATING_PROMPT` below, evalkit's own prompt: the judge does not see the
  image, so it is shown the reference answer and asked to penalise anything the reference does not
  support (seed (b)'s annotator picked "less hallucination, more helpful"). The rating is read from
  "[[N]]" as MT-Bench's single-answer grader writes it.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evalkit.types import UserError

RATING_PROMPT = (
    "Please act as an impartial judge and rate the response of an AI assistant to a user's question about "
    "an image. You cannot see the image; a reference answer written by someone who could see it is given. "
    "Judge the response first for correctness against the reference: any object, attribute or fact it "
    "states that the reference does not support is a hallucination and must lower the rating. Then judge "
    "its helpfulness. Begin with a short explanation, then give your rating on a scale of 1 to 10 in this "
    'exact format: "Rating: [[5]]".\n\n'
    "[Question]\n{question}\n\n[Reference answer]\n{reference}\n\n[The assistant's response]\n{response}"
)
RATING_PROMPT_NO_REFERENCE = (
    "Please act as an impartial judge and rate the response of an AI assistant to a user's question about "
    "an image. You cannot see the image. Judge the response for correctness and helpfulness; a claim it "
    "cannot support must lower the rating. Begin with a short explanation, then give your rating on a "
    'scale of 1 to 10 in this exact format: "Rating: [[5]]".\n\n'
    "[Question]\n{question}\n\n[The assistant's response]\n{response}"
)
_RATING = re.compile(r"\[\[(\d+(?:\.\d+)?)\]\]")
_RATING_LOOSE = re.compile(r"\[(\d+(?:\.\d+)?)\]")


def reference_of(example: Any) -> str | None:
    """The answer a response is compared with: an SFT example's response or a pair's chosen answer."""
    return getattr(example, "response", None) or getattr(example, "chosen", None)


def parse_rating(text: str | None) -> float | None:
    """The rating in "[[N]]" (else a lone "[N]"), None when there is none."""
    if not text:
        return None
    m = _RATING.search(text) or _RATING_LOOSE.search(text)
    return float(m.group(1)) if m else None


class RewardFunction:
    def __init__(self, name: str, fn: Callable[..., float]) -> None:
        self.name, self.fn = name, fn
        self.usage: dict[str, Any] = {}

    def describe(self) -> dict[str, Any]:
        return {"reward": self.name}

    def score(self, examples: Sequence[Any], responses: Sequence[str]) -> list[float | None]:
        out: list[float | None] = []
        for ex, response in zip(examples, responses, strict=True):
            value = self.fn(ex.prompt, response, reference_of(ex), ex.image)
            try:
                out.append(float(value))
            except (TypeError, ValueError):
                raise UserError(f"reward {self.name} returned {value!r}, not a number") from None
        return out


class JudgeScorer:
    """Ratings through the judge layer (`evalkit.judges.judge`): cached, retried, fingerprinted."""

    def __init__(self, judge) -> None:
        self.judge = judge

    def describe(self) -> dict[str, Any]:
        return {"judge": self.judge.fingerprint()}

    @property
    def usage(self) -> dict[str, Any]:
        return self.judge.usage.to_dict()

    def score(self, examples: Sequence[Any], responses: Sequence[str]) -> list[float | None]:
        from evalkit.types import Message

        items = []
        for k, (ex, response) in enumerate(zip(examples, responses, strict=True)):
            reference = reference_of(ex)
            template = RATING_PROMPT if reference else RATING_PROMPT_NO_REFERENCE
            text = template.format(question=ex.prompt, reference=reference, response=response)
            items.append((str(k), (Message("user", text),)))
        answers = self.judge.ask(items)
        return [parse_rating(a.text) if a.error is None else None for a in answers]


def load_scorer(
    reward: str | None,
    judge: str | None,
    *,
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    concurrency: int = 16,
):
    """The scorer `--reward` or `--judge` names."""
    if judge:
        from evalkit.judges.cache import JudgeCache
        from evalkit.judges.judge import JudgeSpec, make_judge, prompt_sha256
        from evalkit.models.base import BackendOptions
        from evalkit.util.environment import judge_cache_path

        if ":" not in judge:
            raise UserError(f"--judge {judge!r}: write openai:MODEL or hf:PATH")
        spec = JudgeSpec(judge, temperature=0.0, max_tokens=512, parser_version="rating-1")
        options = BackendOptions(base_url=base_url, api_key_env=api_key_env, concurrency=concurrency)
        prompt_hash = prompt_sha256(RATING_PROMPT, RATING_PROMPT_NO_REFERENCE)
        return JudgeScorer(
            make_judge(spec, prompt_hash, options=options, cache=JudgeCache(judge_cache_path()))
        )
    if not reward:
        raise UserError("no --reward or --judge given")
    if reward in BUILTIN:
        return RewardFunction(reward, BUILTIN[reward])
    return RewardFunction(reward, _import_function(reward))


def scorer_for(cfg) -> Any:
    """The scorer a `TrainConfig` names (`reward` / `judge` and the judge's endpoint settings)."""
    return load_scorer(
        cfg.reward,
        cfg.judge,
        base_url=cfg.judge_base_url,
        api_key_env=cfg.judge_api_key_env,
        concurrency=cfg.judge_concurrency,
    )


def _import_function(spec: str) -> Callable[..., float]:
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise UserError(
            f"--reward {spec!r}: write module:function or path/to/file.py:function "
            f"(built in: {', '.join(BUILTIN)})"
        )
    if where.endswith(".py"):
        path = Path(where).expanduser()
        if not path.is_file():
            raise UserError(f"--reward {spec!r}: file not found: {path}")
        module_spec = importlib.util.spec_from_file_location(f"evalkit_reward_{path.stem}", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise UserError(f"--reward {spec!r}: cannot import {where}: {exc}") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise UserError(f"--reward {spec!r}: {where} has no function {name!r}")
    return fn


# ---- built-in rewards -------------------------------------------------------------------------------


def _toy_nouns(text: str) -> set[str]:
    from evalkit.toy.model import plural
    from evalkit.toy.world import OBJECTS

    words = set(re.findall(r"[a-z]+", text.lower()))
    return {o for o in OBJECTS if o in words or plural(o) in words}


def toy_objects(prompt: str, response: str, reference: str | None, image: Any = None) -> float:
    """The toy world's reward, against the reference answer: a yes/no reference scores 1 for the same
    first word and -1 otherwise; a description scores +1 per toy object it shares with the reference and
    -2 per object the reference does not name (a hallucination costs more than an omission)."""
    if reference is None:
        raise UserError("reward toy-objects needs a reference answer (an SFT response or a chosen answer)")
    first = re.match(r"\s*(yes|no)\b", reference, re.IGNORECASE)
    if first:
        said = re.match(r"\s*(yes|no)\b", response, re.IGNORECASE)
        return 1.0 if said and said.group(1).lower() == first.group(1).lower() else -1.0
    named, truth = _toy_nouns(response), _toy_nouns(reference)
    return float(len(named & truth) - 2 * len(named - truth))


BUILTIN: dict[str, Callable[..., float]] = {"toy-objects": toy_objects}
