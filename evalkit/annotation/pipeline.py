"""`evalkit annotate` end to end: sample K answers per prompt, rate each with the attribute judge, keep
every sample in `annotations.jsonl`, build the training files and `summary.json`.

Resumable: each batch of samples and each batch of ratings is appended and flushed as it comes
(`evalkit.store.SampleLog`, which also cuts a line torn by a kill), and judge answers are committed to the
judge cache as they arrive; a re-run generates only the samples not stored (or whose generation failed)
and asks the judge only about samples without an answer. The settings that decide what is generated and
how it is rated are written to `settings.json` on the first run; a re-run with another value is refused
naming it. `--min-gap` only shapes the built files, which every run rebuilds, so it may change.

Each sample draws from its own seed, derived from (seed, prompt id, sample index), so neither resuming nor
the batch size changes it. Generation batches through the backend as `evalkit run` does.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from evalkit.annotation.build import build
from evalkit.annotation.rating import (
    ATTRIBUTE_PROMPT,
    IMAGE_FACT,
    IMAGE_NOTE,
    PARSER_VERSION,
    REFERENCE_SECTION,
    SECTIONS,
    parse_ratings,
    quality,
    render,
)
from evalkit.annotation.records import PromptRecord, load_prompts
from evalkit.judges.settings import JudgeSettings
from evalkit.types import GenerationConfig, Message, Request, UserError
from evalkit.util.datafiles import sha256_file

ANNOTATIONS = "annotations.jsonl"
FLAGS = {
    "model": "--model",
    "prompts_sha256": "the prompts file",
    "samples": "--samples",
    "temperature": "--temperature",
    "max_new_tokens": "--max-new-tokens",
    "seed": "--seed",
    "response_as_reference": "--response-as-reference",
    "judge": "--judge",
    "judge_sees_image": "--judge-sees-image",
    "judge_max_tokens": "--judge-max-tokens",
    "judge_prompt_sha256": "the judge prompt (evalkit version)",
    "judge_parser_version": "the rating parser (evalkit version)",
}


def sample_seed(seed: int, prompt_id: str, index: int) -> int:
    """A sample's own seed (31 bits, as every backend and OpenAI's `seed` accept)."""
    digest = hashlib.sha256(f"{seed}:{prompt_id}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") >> 1


def judge_prompt_sha256() -> str:
    from evalkit.judges.judge import prompt_sha256

    return prompt_sha256(ATTRIBUTE_PROMPT, IMAGE_NOTE, IMAGE_FACT, REFERENCE_SECTION, SECTIONS)


def make_attribute_judge(settings, max_tokens: int):
    """The attribute judge through the judge layer (cached, retried, fingerprinted) that `settings` (a
    `JudgeSettings`) names; a ready `Judge` (e.g. from `attribute_judge`) is used as it is."""
    from evalkit.judges.cache import JudgeCache
    from evalkit.judges.judge import Judge, JudgeSpec, make_judge
    from evalkit.util.environment import judge_cache_path

    if isinstance(settings, Judge):
        return settings
    if not settings.model or (":" not in settings.model and settings.model != "toy-judge"):
        raise UserError(
            "--judge is required: write openai:MODEL (see --judge-base-url), hf:PATH, "
            "or toy-judge in the toy world"
        )
    spec = JudgeSpec(settings.model, temperature=0.0, max_tokens=max_tokens, parser_version=PARSER_VERSION)
    cache = JudgeCache(settings.cache_path or judge_cache_path())
    return make_judge(spec, judge_prompt_sha256(), options=settings.options(), cache=cache)


def attribute_judge(backend, *, max_tokens: int = 1024, cache=None):
    """A `Judge` with the attribute prompt and parser on any ready `Backend` (a local or scripted judge
    from Python), for `annotate(judge=...)`."""
    from evalkit.judges.judge import Judge, JudgeSpec

    spec = JudgeSpec(backend.name, temperature=0.0, max_tokens=max_tokens, parser_version=PARSER_VERSION)
    return Judge(spec, backend, judge_prompt_sha256(), cache)


def _closing(given, made) -> None:
    """Close the judge's backend and cache when this call made the judge."""
    if made is given:
        return
    made.backend.close()
    if made.cache is not None:
        made.cache.close()


def check_settings(output: Path, settings: dict[str, Any]) -> None:
    """Refuse a folder annotated with other settings, naming the first that differs."""
    path = output / "settings.json"
    if not path.exists():
        return
    old = json.loads(path.read_text())
    for key, flag in FLAGS.items():
        if old.get(key) != settings.get(key):
            raise UserError(
                f"{output} was annotated with {flag} = {old.get(key)!r}, not {settings.get(key)!r}: re-run "
                "with the same setting to resume, or give another --output"
            )


def _request(record: PromptRecord, k: int, seed: int, gen: GenerationConfig) -> Request:
    images = (record.image,) if record.image else ()
    return Request(
        f"{record.id}/{k}", (Message("user", record.question, images),), gen, sample_seed(seed, record.id, k)
    )


def _judge_messages(row: dict[str, Any], sees_image: bool) -> tuple[Message, ...]:
    return render(
        row["question"], row["response"], row.get("reference"), row["image"] if sees_image else None
    )


def _needs_rating(row: dict[str, Any]) -> bool:
    return row.get("error") is None and (row.get("judge") is None or row["judge"].get("raw") is None)


def annotate(
    prompts: str | Path,
    model,
    output: str | Path,
    *,
    judge,
    samples: int = 4,
    temperature: float = 0.7,
    max_new_tokens: int = 512,
    seed: int = 0,
    min_gap: float = 2.0,
    judge_sees_image: bool = True,
    judge_max_tokens: int = 1024,
    image_dir: str | Path | None = None,
    response_as_reference: bool = False,
    batch_size: int | None = None,
    backend_options=None,
    threads: int | None = None,
    dry_run: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Run (or with `dry_run`, plan) the annotation into `output`; returns the summary (or the plan).

    `model` is a backend spec (`toy`, a checkpoint, `openai:NAME`, `vllm:PATH`) or a ready `Backend`;
    `judge` a `JudgeSettings` (what `--judge` and its flags say) or a ready `Judge` (`attribute_judge`)."""
    if samples < 1:
        raise UserError("--samples must be at least 1")
    if temperature < 0 or max_new_tokens < 1:
        raise UserError("--temperature must be 0 or more and --max-new-tokens at least 1")
    if batch_size is not None and batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    output = Path(output)
    records = load_prompts(prompts, image_dir=image_dir, response_as_reference=response_as_reference)
    settings = {
        "model": model
        if isinstance(model, str)
        else json.dumps(model.fingerprint(), sort_keys=True, default=str),
        "prompts": str(Path(prompts).resolve()),
        "prompts_sha256": sha256_file(Path(prompts)),
        "samples": samples,
        "temperature": temperature,
        "max_new_tokens": max_new_tokens,
        "seed": seed,
        "response_as_reference": response_as_reference,
        "judge": judge.model if isinstance(judge, JudgeSettings) else judge.spec.model,
        "judge_sees_image": judge_sees_image,
        "judge_max_tokens": judge_max_tokens,
        "judge_prompt_sha256": judge_prompt_sha256(),
        "judge_parser_version": PARSER_VERSION,
    }
    check_settings(output, settings)
    gen = GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature)
    wanted = [(r, k) for r in records for k in range(samples)]
    if dry_run:
        return plan(output, wanted, judge, judge_max_tokens, judge_sees_image, max_new_tokens)

    from evalkit.judges.judge import JudgeAnswer
    from evalkit.runner.generation import batches, generate
    from evalkit.store import SampleLog, write_json_atomic
    from evalkit.util.progress import make_progress

    attribute_judge = make_attribute_judge(judge, judge_max_tokens)
    output.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output / "settings.json", settings)
    log = SampleLog(output / ANNOTATIONS)
    backend = None
    try:
        todo = [(r, k) for r, k in wanted if _needs_sample(log.rows.get(f"{r.id}/{k}"))]
        with make_progress(progress) as bars:
            bar = bars.add_task("generate", total=len(wanted), completed=len(wanted) - len(todo))
            if todo:
                from evalkit.models.base import load_backend
                from evalkit.util.environment import torch_threads

                backend = load_backend(model, backend_options) if isinstance(model, str) else model
                with nullcontext() if backend.remote else torch_threads(threads):
                    for chunk in batches(todo, batch_size or backend.default_batch_size):
                        requests = [_request(r, k, seed, gen) for r, k in chunk]
                        for (r, k), req, resp in zip(
                            chunk, requests, generate(backend, requests), strict=True
                        ):
                            log.append(_sample_row(r, k, req, resp, max_new_tokens))
                        bars.advance(bar, len(chunk))
            pending = [log.rows[f"{r.id}/{k}"] for r, k in wanted if _needs_rating(log.rows[f"{r.id}/{k}"])]
            jbar = bars.add_task("judge", total=len(pending))
            size = 4 * judge.concurrency if isinstance(judge, JudgeSettings) else 64
            for chunk in batches(pending, size):
                items = [(row["id"], _judge_messages(row, judge_sees_image)) for row in chunk]
                answers: list[JudgeAnswer] = attribute_judge.ask(items)
                for row, answer in zip(chunk, answers, strict=True):
                    log.append(_rated(row, answer))
                bars.advance(jbar, len(chunk))
        rows = {row["id"]: row for row in log.compact(f"{r.id}/{k}" for r, k in wanted)}
        summary = write_outputs(output, [r.id for r in records], rows, samples, min_gap)
        summary["model"] = {
            "spec": settings["model"],
            **({"fingerprint": backend.fingerprint()} if backend else {}),
        }
        summary["judge"] = {
            "fingerprint": attribute_judge.fingerprint(),
            "usage": attribute_judge.usage.to_dict(),
        }
        write_json_atomic(output / "summary.json", summary)
        return summary
    finally:
        log.close()
        if backend is not None and backend is not model:
            backend.close()
        _closing(judge, attribute_judge)


def _needs_sample(row: dict[str, Any] | None) -> bool:
    return row is None or row.get("error") is not None


def _sample_row(
    record: PromptRecord, k: int, request: Request, response, max_new_tokens: int
) -> dict[str, Any]:
    finish = None
    if response.ok:  # backends report tokens, not a finish reason: an answer that used every token was cut
        finish = "length" if response.completion_tokens >= max_new_tokens else "stop"
    return {
        "id": request.id,
        "prompt_id": record.id,
        "sample_index": k,
        "seed": request.seed,
        "question": record.question,
        "image": record.image,
        "reference": record.reference,
        "response": response.text if response.ok else None,
        "finish_reason": finish,
        "error": None if response.ok else response.error.to_dict(),
        "judge": None,
        "ratings": None,
        "unrated_reason": "not rated yet" if response.ok else "generation failed",
        "quality": None,
    }


def _rated(row: dict[str, Any], answer) -> dict[str, Any]:
    if answer.error is not None:
        judge = {"raw": None, "error": answer.error.to_dict(), "prompt_hash": answer.prompt_hash}
        return {**row, "judge": judge, "ratings": None, "unrated_reason": "judge failed", "quality": None}
    scores, why = parse_ratings(answer.text)
    judge = {"raw": answer.text, "error": None, "prompt_hash": answer.prompt_hash}
    return {
        **row,
        "judge": judge,
        "ratings": scores,
        "unrated_reason": None if scores else f"unparsed: {why}",
        "quality": quality(scores) if scores else None,
    }


def write_outputs(
    output: Path, prompt_ids: list[str], rows: dict[str, dict[str, Any]], samples: int, min_gap: float
) -> dict[str, Any]:
    """The three training files and the counts of the summary."""
    from evalkit.store import write_atomic

    dpo, rs, steer, skipped = build(prompt_ids, rows, samples, min_gap)
    for name, items in (("dpo.jsonl", dpo), ("rejection_sampling.jsonl", rs), ("steerlm.jsonl", steer)):
        write_atomic(output / name, lambda f, items=items: f.writelines(json.dumps(x) + "\n" for x in items))
    states = Counter()
    for row in rows.values():
        if row.get("error") is not None:
            states["generation failures"] += 1
        elif row.get("ratings") is not None:
            states["rated"] += 1
        elif row.get("judge") and row["judge"].get("error") is not None:
            states["judge failures"] += 1
        elif row.get("judge"):
            states["unparsed"] += 1
    return {
        "prompts": len(prompt_ids),
        "samples": len(rows),
        "rated": states["rated"],
        "unparsed": states["unparsed"],
        "judge_failures": states["judge failures"],
        "generation_failures": states["generation failures"],
        "min_gap": min_gap,
        "pairs": len(dpo),
        "rejection_sampling": len(rs),
        "steerlm": len(steer),
        "skipped": skipped,
    }


def plan(output, wanted, judge, judge_max_tokens, sees_image, max_new_tokens) -> dict[str, Any]:
    """`--dry-run`: generations still to make, judge calls still to make and their estimated cost; loads
    no model (a stored sample is judged as stored; one not generated yet is counted at
    `max_new_tokens`, so the estimate is an upper bound)."""
    from evalkit.store import read_rows

    path = Path(output) / ANNOTATIONS
    rows = read_rows(path)[0] if path.exists() else {}
    placeholder = "x" * (4 * max_new_tokens)
    generations, items = 0, []
    for record, k in wanted:
        row = rows.get(f"{record.id}/{k}")
        if _needs_sample(row):
            generations += 1
            row = {"question": record.question, "response": placeholder, "reference": record.reference}
            row["image"] = record.image
        elif not _needs_rating(row):
            continue
        items.append((f"{record.id}/{k}", _judge_messages(row, sees_image)))
    attribute_judge = make_attribute_judge(judge, judge_max_tokens)
    try:
        estimate = attribute_judge.estimate(items)
    finally:
        _closing(judge, attribute_judge)
    return {
        "samples": len(wanted),
        "generations": generations,
        "judge": attribute_judge.spec.model,
        **estimate,
    }
