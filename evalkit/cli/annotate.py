"""`evalkit annotate`: the first study's data pipeline (see `evalkit.annotation`). The model, endpoint
and judge flags are `evalkit run`'s own definitions (taken from its signature), so both commands read
them the same way."""

from __future__ import annotations

import json
from copy import copy
from pathlib import Path
from typing import Annotated, Any, get_args, get_type_hints

import typer
from rich.markup import escape

from evalkit.cli import evaluate
from evalkit.cli.display import out

_RUN = get_type_hints(evaluate.run, include_extras=True)


def _run_flag(name: str, help: str | None = None) -> Any:
    """`evalkit run`'s annotation (type and typer option) of flag `name`, with `help` in place of run's
    where run's text speaks of what annotate does not have (tasks, a config file)."""
    hint = _RUN[name]
    if help is None:
        return hint
    kind, *extras = get_args(hint)
    extras = [copy(e) for e in extras]
    for e in extras:
        if isinstance(e, typer.models.OptionInfo):
            e.help = help
    return Annotated[(kind, *extras)]


def annotate(
    prompts: Annotated[
        Path,
        typer.Option(help="JSONL of {id, question, image (path or null), reference (optional)} records."),
    ],
    model: _run_flag(  # type: ignore[valid-type]
        "model",
        "The model that samples the answers: checkpoint path or hub id, 'toy', 'vllm:PATH_OR_HUB_ID' "
        "or 'openai:NAME'.",
    ),
    output: Annotated[
        Path, typer.Option(help="Folder for annotations.jsonl, the training files and summary.json.")
    ],
    judge: _run_flag(  # type: ignore[valid-type]
        "judge",
        "The attribute judge (required): 'openai:MODEL' (any OpenAI-compatible server, see "
        "--judge-base-url) or 'hf:PATH' (a local checkpoint).",
    ) = None,
    samples: Annotated[int, typer.Option(help="Answers sampled per prompt.")] = 4,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.7,
    max_new_tokens: Annotated[int, typer.Option(help="Longest answer in tokens.")] = 512,
    seed: Annotated[
        int, typer.Option(help="Seed; each sample's own seed comes from (seed, prompt id, sample index).")
    ] = 0,
    min_gap: Annotated[
        float, typer.Option(help="Drop a prompt's DPO pair when best - worst quality is below this.")
    ] = 2.0,
    judge_sees_image: Annotated[
        bool, typer.Option(help="Attach the image to the judge's prompt (the study's judge saw it).")
    ] = True,
    judge_max_tokens: Annotated[int, typer.Option(help="Longest judge answer (reasoning + ratings).")] = 1024,
    image_dir: Annotated[
        Path | None, typer.Option(help="Folder relative image paths are read from (default: the file's).")
    ] = None,
    response_as_reference: Annotated[
        bool, typer.Option(help="SFT records: show the record's response to the judge as the reference.")
    ] = False,
    batch_size: _run_flag("batch_size") = None,  # type: ignore[valid-type]
    dtype: _run_flag("dtype") = "auto",  # type: ignore[valid-type]
    device: _run_flag("device") = "auto",  # type: ignore[valid-type]
    base_url: _run_flag("base_url") = None,  # type: ignore[valid-type]
    api_key_env: _run_flag("api_key_env") = "OPENAI_API_KEY",  # type: ignore[valid-type]
    concurrency: _run_flag("concurrency") = 16,  # type: ignore[valid-type]
    timeout: _run_flag("timeout") = 120.0,  # type: ignore[valid-type]
    max_retries: _run_flag("max_retries") = 6,  # type: ignore[valid-type]
    trust_remote_code: _run_flag("trust_remote_code") = False,  # type: ignore[valid-type]
    prompt_style: _run_flag("prompt_style") = None,  # type: ignore[valid-type]
    image_pad: _run_flag("image_pad") = None,  # type: ignore[valid-type]
    tensor_parallel_size: _run_flag("tensor_parallel_size") = None,  # type: ignore[valid-type]
    gpu_memory_utilization: _run_flag("gpu_memory_utilization") = None,  # type: ignore[valid-type]
    max_model_len: _run_flag("max_model_len") = None,  # type: ignore[valid-type]
    threads: _run_flag("threads") = None,  # type: ignore[valid-type]
    judge_base_url: _run_flag("judge_base_url") = None,  # type: ignore[valid-type]
    judge_api_key_env: _run_flag("judge_api_key_env") = "OPENAI_API_KEY",  # type: ignore[valid-type]
    judge_concurrency: _run_flag("judge_concurrency") = 16,  # type: ignore[valid-type]
    judge_timeout: _run_flag("judge_timeout") = 120.0,  # type: ignore[valid-type]
    judge_max_retries: _run_flag("judge_max_retries") = 6,  # type: ignore[valid-type]
    dry_run: Annotated[
        bool,
        typer.Option(
            help="Print the generations and judge calls still to make and the estimated judge cost; "
            "load no model, make no call."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Sample answers, rate them with the attribute judge, and build DPO / rejection-sampling / SteerLM
    training files by the first study's rules; re-running the same command resumes."""
    settings = dict(locals())  # the flags by parameter name, as `evalkit run`'s settings are
    import sys

    from evalkit.annotation.pipeline import annotate as run_annotation
    from evalkit.cli.run_settings import backend_options, judge_settings, torch_threads
    from evalkit.judges.settings import check_endpoint_settings

    check_endpoint_settings(concurrency, timeout, max_retries)
    judges = judge_settings(settings)
    result = run_annotation(
        prompts,
        model,
        output,
        judge=judges,
        samples=samples,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        seed=seed,
        min_gap=min_gap,
        judge_sees_image=judge_sees_image,
        judge_max_tokens=judge_max_tokens,
        image_dir=image_dir,
        response_as_reference=response_as_reference,
        batch_size=batch_size,
        backend_options=backend_options(settings),
        threads=torch_threads(threads),
        dry_run=dry_run,
        progress=not as_json and sys.stderr.isatty(),
    )
    if as_json:
        print(json.dumps(result, indent=2))
    elif dry_run:
        show_plan(result)
    else:
        show_summary(result, output)


def show_plan(p: dict[str, Any]) -> None:
    cost = "unknown price" if p["est_cost_usd"] is None else f"${p['est_cost_usd']:.2f}"
    out.print(
        f"dry run: {p['samples']} samples, {p['generations']} generations to make; judge "
        f"{escape(str(p['judge']))}: {p['calls']} calls ({p['cached']} cached), ~{p['est_prompt_tokens']} + "
        f"{p['est_completion_tokens']} tokens, {cost} (answers not generated yet counted at "
        "--max-new-tokens: an upper bound)",
        highlight=False,
    )


def show_summary(s: dict[str, Any], output: Path) -> None:
    u = s["judge"]["usage"]
    cost = "unknown cost" if u["cost_usd"] is None else f"${u['cost_usd']:.4f}"
    lines = [
        f"prompts {s['prompts']}, samples {s['samples']} ({s['generation_failures']} failed to generate), "
        f"rated {s['rated']}, unparsed {s['unparsed']}, judge failures {s['judge_failures']}",
        f"dpo pairs {s['pairs']} (min gap {s['min_gap']:g}), rejection sampling {s['rejection_sampling']}, "
        f"steerlm {s['steerlm']}",
    ]
    for name, reasons in s["skipped"].items():
        for reason, n in sorted(reasons.items()):
            lines.append(f"skipped ({name}): {n} prompts, {reason}")
    lines.append(
        f"judge {s['judge']['fingerprint']['model']}: {u['calls']} calls ({u['failures']} failed), "
        f"{u['cache_hits']} from the cache, {cost}"
    )
    lines.append(f"output: {output}")
    for line in lines:
        out.print(escape(line), highlight=False)
