"""The `evalkit` command line. Heavy libraries are imported inside commands so `--help` is instant."""

from __future__ import annotations

import functools
import json
import sqlite3
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from evalkit.errors import CommandFailed, describe_os_error
from evalkit.types import UserError

app = typer.Typer(
    help="Evaluate (multimodal) language models on alignment benchmarks with the official protocols.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


def fail(message: str, code: int) -> None:
    """One line on stderr (the message is shown as typed: paths may hold rich markup) and exit `code`."""
    err.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True, emoji=False)
    raise typer.Exit(code)


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False, soft_wrap=True, emoji=False)


def command(*args, **kwargs):
    """`app.command` whose errors end as one line: a `UserError` exits 2, a `CommandFailed` (a storage
    error, diverged training) or an OSError (disk full, read-only, permission denied) exits 1 naming the
    path and the fix, never a traceback."""

    def wrap(fn):
        @functools.wraps(fn)
        def guarded(*a, **kw):
            try:
                return fn(*a, **kw)
            except UserError as exc:
                fail(str(exc), 2)
            except CommandFailed as exc:  # StorageError, TrainingDiverged
                fail(str(exc), 1)
            except OSError as exc:
                fail(describe_os_error(exc), 1)
            except sqlite3.OperationalError as exc:
                fail(f"SQLite: {exc}", 1)

        return app.command(*args, **kwargs)(guarded)

    return wrap


def show(result, as_json: bool, title: str, all_metrics: bool = True) -> None:
    """The run's table (every metric of each task; `run` passes `all_metrics=False` unless --all-metrics,
    for one headline row per task), the first message of each error type with its count (so a failed
    row's cause is on screen), and judge usage."""
    from evalkit.analysis.report import results_table
    from evalkit.runner import error_summary

    if as_json:
        print(json.dumps({"run_dir": str(result.run_dir), "metrics": result.metrics}, indent=2))
    else:
        out.print(results_table(result.metrics, title=escape(title), all_metrics=all_metrics))
        for line in error_summary(result.metrics):
            out.print(f"failed rows: {escape(line)}", highlight=False)
        for task, j in (result.header.get("judges") or {}).items():
            u = j["usage"]
            cost = "unknown cost" if u["cost_usd"] is None else f"${u['cost_usd']:.4f}"
            out.print(
                f"judge {task}: {escape(str(j['fingerprint']['model']))}, "
                f"{u['calls']} calls ({u['failures']} failed), "
                f"{u['cache_hits']} from the cache, "
                f"{u['prompt_tokens']}+{u['completion_tokens']} tokens, {cost}"
            )
        out.print(f"run folder: {escape(str(result.run_dir))}")


def parse_task_options(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or "." not in key or not value:
            raise UserError(
                f"--task-option {item!r}: expected TASK.KEY=VALUE, e.g. mt_bench.reference=ref.jsonl"
            )
        if key in out:
            raise UserError(f"--task-option {key} is given twice")
        out[key] = value
    return out


def show_plan(plan: dict, as_json: bool) -> None:
    from rich.table import Table

    if as_json:
        print(json.dumps(plan, indent=2))
        return
    if not plan:
        out.print("no judged task: the run makes no judge call")
        return
    table = Table(title="judge calls (dry run)")
    for col in (
        "task",
        "judge",
        "calls",
        "cached",
        "est. prompt tokens",
        "est. completion tokens",
        "est. cost",
    ):
        table.add_column(col, justify="left" if col in ("task", "judge") else "right")
    for task, e in plan.items():
        cost = "unknown price" if e["est_cost_usd"] is None else f"${e['est_cost_usd']:.2f}"
        table.add_row(
            task,
            e["judge"],
            str(e["calls"]),
            str(e["cached"]),
            str(e["est_prompt_tokens"]),
            str(e["est_completion_tokens"]),
            cost,
        )
    out.print(table)
    out.print(
        "first-round calls only (re-asks after unparseable answers come on top); answers not generated yet "
        "are counted at the task's maximum length, so this is an upper bound"
    )


@command()
def run(
    model: Annotated[str, typer.Option(help="Checkpoint path or hub id, 'toy', or 'openai:NAME'.")],
    tasks: Annotated[str, typer.Option(help="Comma-separated task names (see `evalkit tasks`).")],
    data: Annotated[str | None, typer.Option(help="'toy' for the built-in toy world (no downloads).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder with the official benchmark files.")] = None,
    image_dir: Annotated[Path | None, typer.Option(help="Folder with the benchmark's images.")] = None,
    limit: Annotated[
        int | None, typer.Option(help="At most N samples per task (POPE: spread over splits).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Batch size (hf) or requests in flight (openai).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Run folder (default: results/<model>-<config hash>).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for data sampling and generation.")] = 0,
    task_option: Annotated[
        list[str] | None,
        typer.Option(
            help="TASK.KEY=VALUE, repeatable: a task's own setting, e.g. "
            "mt_bench.reference=PATH (see `evalkit tasks`)."
        ),
    ] = None,
    max_failure_rate: Annotated[
        float, typer.Option(help="Fail the run (exit 1) above this rate of failed samples.")
    ] = 0.02,
    dtype: Annotated[str, typer.Option(help="auto|float32|bfloat16|float16 (hf).")] = "auto",
    device: Annotated[str, typer.Option(help="auto|cpu|cuda|cuda:N|mps (hf).")] = "auto",
    base_url: Annotated[str | None, typer.Option(help="Endpoint for openai:NAME models.")] = None,
    api_key_env: Annotated[
        str, typer.Option(help="Environment variable holding the API key.")
    ] = "OPENAI_API_KEY",
    concurrency: Annotated[int, typer.Option(help="Requests in flight at once (openai).")] = 16,
    trust_remote_code: Annotated[bool, typer.Option(help="Allow a checkpoint's own code (hf).")] = False,
    steer: Annotated[
        str | None,
        typer.Option(
            help="SteerLM checkpoints: target attributes for this run, e.g. 'verbosity=1,complexity=2' "
            "(0-4; the others keep the checkpoint's targets)."
        ),
    ] = None,
    judge: Annotated[
        str | None,
        typer.Option(
            help="Judge for judged tasks instead of each task's official one: 'openai:MODEL' (any "
            "OpenAI-compatible server, see --judge-base-url) or 'hf:PATH' (a local checkpoint)."
        ),
    ] = None,
    judge_base_url: Annotated[
        str | None, typer.Option(help="Endpoint of the judge (default: OpenAI's).")
    ] = None,
    judge_api_key_env: Annotated[
        str, typer.Option(help="Environment variable holding the judge's API key.")
    ] = "OPENAI_API_KEY",
    judge_concurrency: Annotated[int, typer.Option(help="Judge requests in flight at once.")] = 16,
    judge_runs: Annotated[
        int | None, typer.Option(help="Independent judge runs per answer (default: the task's official).")
    ] = None,
    judge_budget_usd: Annotated[
        float | None,
        typer.Option(help="Refuse to start when the estimated judge cost exceeds this many US dollars."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            help="Print the judge calls the run would make and their estimated cost; generate nothing."
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the metrics as JSON instead of a table.")
    ] = False,
    all_metrics: Annotated[
        bool, typer.Option("--all-metrics", help="Show every metric of each task, not only its headline.")
    ] = False,
    judge_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for one judge HTTP request before retrying it.")
    ] = 120.0,
    judge_max_retries: Annotated[
        int, typer.Option(help="Retries of a failed judge request (429, 5xx, timeout, dropped connection).")
    ] = 6,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for one HTTP request of an openai: model before retrying.")
    ] = 120.0,
    max_retries: Annotated[int, typer.Option(help="Retries of a failed request of an openai: model.")] = 6,
) -> None:
    """Generate answers and score them; re-running the same command resumes an interrupted run.

    Judged tasks (mt_bench, alpaca_eval, mmvet, llava_bench, mmhal; objhal and mmbench where their
    protocol asks a model) are then judged; judge answers are
    cached in $EVALKIT_CACHE/judge_cache.sqlite (or $EVALKIT_JUDGE_CACHE), so re-running a finished run
    makes no judge call."""
    from evalkit.judges.settings import JudgeSettings, check_endpoint_settings
    from evalkit.models.base import BackendOptions
    from evalkit.runner import RunFailed, evaluate, plan_judging

    check_endpoint_settings(concurrency, timeout, max_retries)
    check_endpoint_settings(judge_concurrency, judge_timeout, judge_max_retries, prefix="--judge-")
    judges = JudgeSettings(
        model=judge,
        base_url=judge_base_url,
        api_key_env=judge_api_key_env,
        concurrency=judge_concurrency,
        timeout_s=judge_timeout,
        max_retries=judge_max_retries,
        runs=judge_runs,
        budget_usd=judge_budget_usd,
    )
    options_by_key = parse_task_options(task_option or [])
    if dry_run:
        plan = plan_judging(
            tasks,
            judges,
            output=output,
            data=data,
            data_dir=data_dir,
            image_dir=image_dir,
            limit=limit,
            seed=seed,
            task_options=options_by_key,
        )
        show_plan(plan, as_json)
        return

    options = BackendOptions(
        dtype=dtype,
        device=device,
        base_url=base_url,
        api_key_env=api_key_env,
        concurrency=concurrency,
        timeout_s=timeout,
        max_retries=max_retries,
        trust_remote_code=trust_remote_code,
        steer=steer,
    )
    try:
        result = evaluate(
            model,
            tasks,
            data=data,
            data_dir=data_dir,
            image_dir=image_dir,
            limit=limit,
            batch_size=batch_size,
            output=output,
            seed=seed,
            max_failure_rate=max_failure_rate,
            backend_options=options,
            judges=judges,
            task_options=options_by_key,
            progress=not as_json and sys.stderr.isatty(),
        )
    except RunFailed as exc:
        if exc.result is not None:  # the table of what was stored, then the one-line reason
            show(exc.result, as_json, title=f"evalkit · {model}", all_metrics=all_metrics)
        fail(str(exc), 1)
    except KeyboardInterrupt:
        fail("interrupted; finished samples are stored, re-run the same command to resume", 130)
    show(result, as_json, title=f"evalkit · {model}", all_metrics=all_metrics)


@command("import")
def import_(
    task: Annotated[str, typer.Option(help="Task whose answers these are, e.g. pope.")],
    answers: Annotated[
        Path,
        typer.Option(
            help="Answer file (LLaVA format: {question_id, text} lines), or an lmms-eval samples log "
            "(*_samples_<task>.jsonl from --log_samples)."
        ),
    ],
    output: Annotated[Path, typer.Option(help="Run folder to create.")],
    questions: Annotated[Path | None, typer.Option(help="Question file (POPE: gives each split).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder with the official label files.")] = None,
    judgments: Annotated[
        list[Path] | None, typer.Option(help="Official judge outputs (repeat for several judge runs).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Score answers produced elsewhere with the official metrics; no model needed."""
    import warnings

    from evalkit.interop.importer import import_answers

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        result = import_answers(
            task, answers, output, questions=questions, data_dir=data_dir, judgments=judgments
        )
    for w in caught:
        warn(str(w.message))
    show(result, as_json, title=f"evalkit · imported {answers.name}")


@command()
def rescore(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (holds run.json).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Recompute scores and metrics from the stored samples alone (no model, no judge)."""
    from evalkit.runner import RunResult
    from evalkit.scoring import rescore_run

    metrics = rescore_run(run_dir)
    show(RunResult(run_dir, metrics, {}), as_json, title=f"evalkit · rescored {run_dir}")


@command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run folder holding samples/mmbench.jsonl.")],
    output: Annotated[
        Path | None, typer.Option(help="The .xlsx to write (default: RUN_DIR/mmbench_submission.xlsx).")
    ] = None,
) -> None:
    """Write a run's MMBench test-split answers in the official submission format (.xlsx)."""
    from evalkit.tasks.mmbench_export import export_submission

    path, n, missing = export_submission(run_dir, output)
    note = f"; {missing} without a prediction (generation failed)" if missing else ""
    out.print(f"wrote {escape(str(path))}: {n} rows{note}")


@command()
def train(
    ctx: typer.Context,
    config_file: Annotated[
        Path | None,
        typer.Argument(
            metavar="CONFIG",
            help="YAML or JSON file of settings (keys: the option names with underscores, e.g. max_steps); "
            "flags override it; its relative paths are relative to its folder.",
            show_default=False,
        ),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(
            help="sft, rs (rejection sampling), steerlm, dpo, online-dpo, mixed-dpo or bdhs; "
            "required here or in CONFIG.",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Base checkpoint path or hub id, or 'toy'; required here or in CONFIG.", show_default=False
        ),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            help="Training data: JSONL / JSON file or cached hub dataset id; required here or in CONFIG.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Checkpoint folder to write (re-run to resume); required here or in CONFIG.",
            show_default=False,
        ),
    ] = None,
    format: Annotated[
        str, typer.Option(help="Data format (default: detected from the first record).")
    ] = "auto",
    max_steps: Annotated[int | None, typer.Option(help="Optimizer steps (overrides --epochs).")] = None,
    epochs: Annotated[float, typer.Option(help="Passes over the data.")] = 1.0,
    lr: Annotated[
        float | None, typer.Option(help="Peak learning rate (default: dpo 5e-5, sft 4e-4).")
    ] = None,
    beta: Annotated[float, typer.Option(help="DPO beta.")] = 0.1,
    loss: Annotated[str, typer.Option(help="DPO loss: sigmoid or ipo.")] = "sigmoid",
    sft_weight: Annotated[
        float, typer.Option(help="DPO methods: add this weight x the chosen answer's NLL to the loss.")
    ] = 0.0,
    batch_size: Annotated[int, typer.Option(help="Examples (DPO: pairs) per micro-batch.")] = 8,
    grad_accum: Annotated[int, typer.Option(help="Micro-batches per optimizer step.")] = 1,
    lora_rank: Annotated[int, typer.Option(help="LoRA rank (alpha = 2 x rank); 0 = full fine-tuning.")] = 128,
    reference: Annotated[
        str | None,
        typer.Option(help="DPO reference: frozen, adapter-off or cached (default: adapter-off with LoRA)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for initialisation and data order.")] = 0,
    max_length: Annotated[
        int | None,
        typer.Option(
            help="Cut answers to fit this many tokens with their prompt (default: an answer over the "
            "model's context is refused at load; prompts that do not fit are skipped and counted)."
        ),
    ] = None,
    save_every: Annotated[int, typer.Option(help="Steps between resume checkpoints (0: never).")] = 50,
    warmup_ratio: Annotated[float, typer.Option(help="Fraction of steps of linear warmup.")] = 0.03,
    schedule: Annotated[str, typer.Option(help="Decay after warmup: linear or cosine.")] = "linear",
    projector_lr: Annotated[
        float | None,
        typer.Option(help="LoRA: also train the vision-language projector at this rate (seed recipe 2e-5)."),
    ] = None,
    gradient_checkpointing: Annotated[
        bool, typer.Option(help="Recompute activations in the backward pass (less memory, slower).")
    ] = False,
    train_vision: Annotated[
        bool, typer.Option(help="Full fine-tuning: also train the vision tower.")
    ] = False,
    merge: Annotated[bool, typer.Option(help="LoRA: merge the adapter into the saved weights.")] = True,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    overwrite: Annotated[bool, typer.Option(help="Start over even if OUTPUT holds a run.")] = False,
    samples: Annotated[int, typer.Option(help="rs: answers sampled per prompt.")] = 4,
    temperature: Annotated[
        float | None,
        typer.Option(help="Sampling temperature of rs / online / bdhs (default: rs 0.7, others 1.0)."),
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Longest sampled answer (rs, online).")] = 128,
    reward: Annotated[
        str | None,
        typer.Option(
            help="rs / online-dpo / mixed-dpo: reward function module:function or file.py:function "
            "(fn(prompt, response, reference, image) -> float), or built-in toy-objects."
        ),
    ] = None,
    judge: Annotated[
        str | None,
        typer.Option(help="rs / online-dpo / mixed-dpo: rate samples with openai:MODEL or hf:PATH."),
    ] = None,
    judge_base_url: Annotated[str | None, typer.Option(help="Endpoint of an openai: judge.")] = None,
    judge_api_key_env: Annotated[
        str, typer.Option(help="Environment variable holding the judge's API key.")
    ] = "OPENAI_API_KEY",
    judge_concurrency: Annotated[int, typer.Option(help="Judge requests in flight at once.")] = 16,
    offline_prob: Annotated[
        float, typer.Option(help="mixed-dpo: probability of training on the offline pair.")
    ] = 0.5,
    steer: Annotated[
        str | None,
        typer.Option(
            help="steerlm: inference targets saved with the checkpoint, e.g. 'verbosity=2' (default 4)."
        ),
    ] = None,
    embedder: Annotated[
        str | None,
        typer.Option(help="bdhs: sentence-embedding model name or local folder (see the README)."),
    ] = None,
    bdhs_keep: Annotated[float, typer.Option(help="bdhs: fraction of image tokens left visible.")] = 0.01,
    bdhs_threshold: Annotated[
        float, typer.Option(help="bdhs: re-sample while the similarity to the chosen answer is >= this.")
    ] = 0.97,
    bdhs_tries: Annotated[int, typer.Option(help="bdhs: tries per example (the last one unguided).")] = 5,
) -> None:
    """Align a model and save a checkpoint that `evalkit run --model OUTPUT` loads.

    Methods: sft; rs (best of --samples answers by --reward or --judge, then SFT; or the best of the
    seed study's judged completions with --format seed); steerlm (attribute-conditioned SFT); dpo;
    online-dpo (pairs sampled from the current policy, ranked by --reward or --judge); mixed-dpo (the
    offline pair with probability --offline-prob, else an online one); bdhs (rejected answers written by
    the model with the image masked, then DPO).

    Settings come from the flags, or from a CONFIG file (YAML, or JSON by its .json suffix) whose keys are
    the option names with underscores, e.g. `method: dpo`, `max_steps: 200`, `lora_rank: 64`; flags given
    on the command line override the file, and the file's relative paths (data, output, model when it is a
    path) are relative to the file's folder. Example: evalkit train dpo.yaml --lr 1e-5
    """
    from evalkit.training.config import config_from

    # the flags typed on the command line (typer vendors click, so its ParameterSource is compared by name)
    given = {
        name: value
        for name, value in ctx.params.items()
        if name != "config_file" and getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"
    }
    if given.get("output") is not None:
        given["output"] = str(given["output"])
    try:
        config = config_from(config_file, given, defaults={"progress": sys.stderr.isatty()})
        from evalkit.training.trainer import train as run_training

        result = run_training(config)
    except KeyboardInterrupt:
        fail("interrupted; re-run the same command to resume from the last saved step", 130)
    output = config.output
    if not result.is_main:  # another process of a multi-process run: the main one reports
        return
    losses = [r["loss"] for r in result.log if r.get("loss") is not None]
    final = f"{losses[-1]:.4f}" if losses else "n/a"
    if result.already_complete:  # the same command after the run finished: nothing to do, exit 0
        out.print(f"checkpoint {escape(str(output))} is complete ({result.steps} steps; final loss {final})")
        return
    out.print(f"trained {result.steps} steps; final loss {final}; saved {escape(str(output))}")


@command()
def align(
    config_file: Annotated[
        Path,
        typer.Argument(
            metavar="CONFIG",
            help="YAML or JSON plan: base, output, evaluate (tasks, data...), checkpoints (name -> train "
            "settings, `from` an earlier one), reference.",
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON.")] = False,
) -> None:
    """Train aligned checkpoints from a base, evaluate base and checkpoints on one suite, and write the
    alignment-tax table (OUTPUT/tax.md, .csv, .html, .json). Re-running resumes every stage.

    Example plan (paths relative to the file):

        base: toy
        output: runs/align
        evaluate: {tasks: "pope,amber", data: toy}
        checkpoints:
          sft: {method: sft, data: sft.jsonl, max_steps: 300}
          dpo: {method: dpo, from: sft, data: pairs.jsonl, max_steps: 60}
        reference: sft
    """
    from evalkit.analysis.compare import Incomparable
    from evalkit.analysis.tax_render import print_table
    from evalkit.experiments.align import run_align

    try:
        result = run_align(config_file, progress=sys.stderr.isatty())
    except Incomparable as exc:
        fail(str(exc), 3)
    except KeyboardInterrupt:
        fail("interrupted; re-run the same command to resume", 130)
    print_table(result["table"], as_json=as_json)


@command()
def demo(
    work: Annotated[Path, typer.Option(help="Work folder (re-running resumes it).")] = Path("results/demo"),
    seed: Annotated[int, typer.Option(help="Seed of the toy data and training.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print both tables as one JSON object.")] = False,
) -> None:
    """The toy alignment story, offline: toy data, the toy model made a base by a language stage, a biased
    visual-instruction SFT stage, DPO and BDHS from it, every checkpoint evaluated on toy POPE / AMBER /
    Object HalBench / toy_language. Prints what the visual stage did (SFT against the base;
    WORK/visual_stage/tax.*) and the alignment-tax table (DPO and BDHS against SFT; WORK/tax.md, .csv, .html,
    .json). About 4 minutes on 2 CPU cores."""
    from evalkit.experiments.demo import run_demo
    from evalkit.experiments.toy_alignment import Settings

    try:
        result = run_demo(
            work,
            Settings(seed=seed),
            say=lambda m: err.print(m, markup=False, highlight=False),
            progress=sys.stderr.isatty(),
        )
    except KeyboardInterrupt:
        fail("interrupted; re-run the same command to resume", 130)
    from evalkit.analysis.tax_render import print_table

    if as_json:
        tables = {"visual_stage": result["visual_stage"].to_dict(), "alignment": result["table"].to_dict()}
        print(json.dumps(tables, indent=2, ensure_ascii=False))
        return
    print_table(result["visual_stage"])
    print_table(result["table"])


@command("tasks")
def list_tasks(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """List the tasks, their versions, headline metrics, the data each needs and the --task-option names
    each reads; each task's alignment-tax group and how its metrics read (↑ higher is better, ↓ lower is
    better, · neither; the unit; "other metrics": any metric it does not name)."""
    import dataclasses

    from rich.table import Table

    from evalkit.registry import get_task, task_names
    from evalkit.task import MetricInfo, Task

    infos = [get_task(n) for n in task_names()]

    def declared(t: Task) -> dict[str, MetricInfo]:
        """The headline and the task's `metric_info` entries (names and patterns), each as it reads."""
        return {m: t.metric(m) for m in dict.fromkeys([t.headline, *t.metric_info])}

    def read(info: MetricInfo) -> str:
        return {1: "↑", -1: "↓", 0: "·"}[info.direction] + (f" {info.unit}" if info.unit else "")

    if as_json:
        print(
            json.dumps(
                [
                    {
                        "name": t.name,
                        "version": t.version,
                        "headline": t.headline,
                        "toy": t.supports_toy,
                        "description": t.description,
                        "data": t.data_needs,
                        "options": {
                            f"{t.name}.{k}": {"help": o.help, "choices": o.choices, "default": o.default}
                            for k, o in t.task_options.items()
                        },
                        "group": t.group,
                        "metrics": {m: dataclasses.asdict(i) for m, i in declared(t).items()},
                        "other_metrics": dataclasses.asdict(t.default_metric),
                    }
                    for t in infos
                ],
                indent=2,
            )
        )
        return
    table = Table(show_lines=True)
    for col in ("task", "version", "headline", "toy"):
        table.add_column(col)
    table.add_column("data needed; --task-option", overflow="fold")
    for t in infos:
        options = [
            f"{t.name}.{k}" + (f"={'|'.join(o.choices)}" if o.choices else "=VALUE") + f": {o.help}"
            for k, o in t.task_options.items()
        ]
        metrics = "metrics: " + "; ".join(
            [*(f"{m} {read(i)}" for m, i in declared(t).items()), f"other metrics {read(t.default_metric)}"]
        )
        table.add_row(
            f"[bold]{t.name}[/bold]\n{t.description}",
            t.version,
            t.headline,
            "yes" if t.supports_toy else "no",
            "\n".join([t.data_needs, *options, f"group: {t.group}", metrics]),
        )
    out.print(table)


COMPARE_HELP = (
    "Compare NEW_RUN with BASE_RUN, paired on the samples both scored.\n\n"
    "Per task (default: every task in both runs) and metric (default: the task's headline), the difference "
    "NEW - BASE with a 95% paired-bootstrap interval and p-value, Holm-corrected across the metrics checked: "
    "the --fail-on metrics, or without --fail-on every compared metric that has a better direction (then a "
    "significant loss in any of them fails).\n\n"
    "Exit codes: 0 no regression; 1 a checked metric regressed (significant after Holm and beyond its "
    "threshold); 2 usage error (bad flag, unparsable --fail-on, not a run folder); 3 the runs cannot be "
    "compared (task or data versions or judges differ, too few common samples or units, a checked metric is "
    "NaN, a run is unfinished without --allow-unfinished, a task missing from a run)."
)


@command(help=COMPARE_HELP)
def compare(
    base_run: Annotated[Path, typer.Argument(help="The reference run folder.")],
    new_run: Annotated[Path, typer.Argument(help="The run folder to check against it.")],
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-on",
            help="Rule 'TASK.METRIC OP THRESHOLD' (OP: <, <=, >, >=; threshold in the metric's unit, points "
            "for percentages), e.g. 'pope.f1_mean < -1.0'; repeatable.",
        ),
    ] = None,
    tasks: Annotated[str | None, typer.Option(help="Tasks to compare, comma-separated.")] = None,
    metrics: Annotated[
        list[str] | None,
        typer.Option(help="METRIC, TASK.METRIC or 'all'; comma-separated or repeated (default: headlines)."),
    ] = None,
    junit: Annotated[
        Path | None, typer.Option(help="Write JUnit XML (one testcase per checked metric).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 1234,
    alpha: Annotated[float, typer.Option(help="Significance level (after Holm).")] = 0.05,
    min_common: Annotated[
        int,
        typer.Option(
            help="Fewest samples scored in both runs, and fewest bootstrap units (images, questions) they "
            "share, per task, to compare at all."
        ),
    ] = 20,
    allow_unfinished: Annotated[
        bool,
        typer.Option(
            "--allow-unfinished",
            help="Compare a run that is still running or was interrupted (the rows stored so far).",
        ),
    ] = False,
) -> None:
    from evalkit.analysis.compare import (
        EXIT_INCOMPARABLE,
        Incomparable,
        Rule,
        compare_runs,
        comparison_table,
    )

    try:
        rules = [Rule.parse(r) for r in fail_on or []]
        result = compare_runs(
            base_run,
            new_run,
            tasks=[t.strip() for t in tasks.split(",") if t.strip()] if tasks else None,
            metrics=[m.strip() for item in metrics for m in item.split(",") if m.strip()]
            if metrics
            else None,
            rules=rules,
            n_resamples=resamples,
            seed=seed,
            alpha=alpha,
            min_common=min_common,
            allow_unfinished=allow_unfinished,
        )
    except Incomparable as exc:
        fail(f"not comparable: {exc}", EXIT_INCOMPARABLE)
    for warning in result.warnings:
        warn(warning)
    if junit is not None:
        from evalkit.analysis.junit import write_junit

        write_junit(result, junit)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        out.print(comparison_table(result))
        n_fail, n_checked = len(result.failures), len(result.checked)
        status = (
            f"[bold red]{n_fail} of {n_checked} checked metrics regressed[/bold red]"
            if n_fail
            else (f"[green]no regression[/green] in {n_checked} checked metrics")
        )
        out.print(f"{status} (alpha {alpha}, Holm over {result.family})")
    raise typer.Exit(result.exit_code)


LEADERBOARD_HELP = (
    "Runs x tasks: each task's headline metric with its 95% interval, from the runs' metrics.json.\n\n"
    "A task scored with different task versions, judges or data gets one column per variant, labelled with "
    "what differs (e.g. 'mmvet.total \\[judge gpt-4-0613 #1a2b3c]'); such numbers are never merged."
)


@command(help=LEADERBOARD_HELP)
def leaderboard(
    results_dir: Annotated[
        list[Path] | None,
        typer.Argument(help="Run folders, or folders of run folders (default: results/)."),
    ] = None,
    tasks: Annotated[str | None, typer.Option(help="Task columns to show, comma-separated.")] = None,
    sort: Annotated[str | None, typer.Option(help="Sort best first by a column: TASK.METRIC.")] = None,
    filter_: Annotated[
        list[str] | None,
        typer.Option("--filter", help="Keep runs whose model or run name contains this (repeatable)."),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="md, csv, html or json (default: from --output, else a table)."),
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Write to this file instead of printing.")] = None,
) -> None:
    from evalkit.analysis.leaderboard import build_leaderboard, format_for, render, rich_table

    board = build_leaderboard(
        results_dir or [Path("results")],
        tasks=[t.strip() for t in tasks.split(",") if t.strip()] if tasks else None,
        sort=sort,
        filters=filter_,
    )
    text = render(board, format_for(output, fmt)) if (fmt or output) else None
    for warning in board.warnings:
        warn(warning)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {escape(str(output))}: {len(board.entries)} runs, {len(board.columns)} columns")
    elif text is not None:
        sys.stdout.write(text)
    else:
        out.print(rich_table(board))


def main() -> None:  # pragma: no cover
    app()
