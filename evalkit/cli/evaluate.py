"""The evaluation commands: `run` (generate and score, resumable), `import` (score answers produced
elsewhere), `rescore` (from the stored samples alone), `export` (a run as an official submission file) and
`tasks` (what each task needs, reads and reports)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from evalkit.cli.display import fail, out, warn
from evalkit.cli.run_display import show, show_plan

REPORT_TO_HELP = (
    "Log to experiment trackers: wandb, tensorboard (comma-separated) or none. wandb reads WANDB_MODE "
    "(offline), WANDB_DIR, WANDB_RUN_GROUP...; TensorBoard writes RUN_DIR/tensorboard or "
    "$TENSORBOARD_LOGGING_DIR/NAME. Extras: evalkit[wandb], evalkit[tensorboard]."
)
TRACKER_PROJECT_HELP = "--report-to wandb: the project (default: $WANDB_PROJECT, else evalkit)."


def run(
    ctx: typer.Context,
    config_file: Annotated[
        Path | None,
        typer.Argument(
            metavar="CONFIG",
            help="YAML or JSON file of settings (keys: the flag names with underscores, e.g. batch_size); "
            "flags given on the command line override it; its relative paths are relative to its folder.",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Checkpoint path or hub id, 'toy', 'vllm:PATH_OR_HUB_ID' or 'openai:NAME' (required here "
            "or in CONFIG).",
            show_default=False,
        ),
    ] = None,
    tasks: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated task names (see `evalkit tasks`; required here or in CONFIG).",
            show_default=False,
        ),
    ] = None,
    data: Annotated[str | None, typer.Option(help="'toy' for the built-in toy world (no downloads).")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder with the official benchmark files. Without it (and without --data toy), a task with "
            "a hub copy reads it from the Hugging Face hub at a pinned commit (see `evalkit data list`)."
        ),
    ] = None,
    image_dir: Annotated[Path | None, typer.Option(help="Folder with the benchmark's images.")] = None,
    limit: Annotated[
        int | None, typer.Option(help="At most N samples per task (POPE: spread over splits).")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(help="Batch size (hf), prompts per engine call (vllm) or requests in flight (openai)."),
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
    prompt_style: Annotated[
        str | None,
        typer.Option(
            help="hf: chat-template (the checkpoint's own), llava_v1.5 (LLaVA's vicuna_v1 conversation, as "
            "the official LLaVA-1.5 evaluation) or llava_v1 (LLaVA's llava_v1, as MMHal's generator). "
            "Default: the protocol a checkpoint trained by evalkit records, else chat-template."
        ),
    ] = None,
    image_pad: Annotated[
        str | None,
        typer.Option(
            help="hf: none, or square (pad to a square of the image processor's mean colour before the "
            "processor, as LLaVA's expand2square). Default: the checkpoint's recorded protocol, else none."
        ),
    ] = None,
    sampling: Annotated[
        str,
        typer.Option(
            help="hf: evalkit (temperature and top-p only) or fastchat (also the checkpoint's top_k, 50 by "
            "default, and top_p, as FastChat's MT-Bench generation)."
        ),
    ] = "evalkit",
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
    tensor_parallel_size: Annotated[
        int | None, typer.Option(help="vllm: GPUs that hold one copy of the model (vLLM's default: 1).")
    ] = None,
    gpu_memory_utilization: Annotated[
        float | None,
        typer.Option(help="vllm: fraction of each GPU's memory the engine may take (vLLM's default: 0.9)."),
    ] = None,
    max_model_len: Annotated[
        int | None,
        typer.Option(help="vllm: longest prompt + answer in tokens (default: the model's context length)."),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            help="Torch CPU threads (intra-op). Default: OMP_NUM_THREADS if set, else the CPUs this process "
            "may use (its affinity), shared among a launcher's local processes. Set it lower on a busy or "
            "small machine: on 2 shared cores one thread ran tiny models many times faster than two."
        ),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            help="I/N: answer part I of N of the samples only (independent jobs, e.g. a Slurm array), into "
            "a shard folder; `evalkit merge` joins the N shards into the run."
        ),
    ] = None,
    report_to: Annotated[str, typer.Option(help=REPORT_TO_HELP)] = "none",
    tracker_project: Annotated[str | None, typer.Option(help=TRACKER_PROJECT_HELP)] = None,
    run_name: Annotated[
        str | None, typer.Option(help="The run's name in the trackers (default: the run folder's name).")
    ] = None,
) -> None:
    """Generate answers and score them; re-running the same command resumes an interrupted run.

    Judged tasks (see `evalkit tasks`; --dry-run lists their judge calls) are then judged; judge answers are
    cached in $EVALKIT_CACHE/judge_cache.sqlite (or $EVALKIT_JUDGE_CACHE), so re-running a finished run
    makes no judge call.

    Settings may come from a CONFIG file (YAML, or JSON by its .json suffix) whose keys are the flag names
    with underscores, e.g. `model: toy`, `tasks: pope,amber` (or a YAML list), `batch_size: 16`; flags given
    on the command line override it. Example: evalkit run pope.yaml --limit 50"""
    params = dict(locals())
    from evalkit.cli.run_settings import settings_from, start_run
    from evalkit.runner import RunFailed
    from evalkit.runner.parallel import is_main_process

    given = {  # the flags typed on the command line (typer vendors click: its ParameterSource by name)
        name: value
        for name, value in params.items()
        if name not in ("ctx", "config_file")
        and getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"
    }
    settings = settings_from(run, config_file, given)
    model, as_json, all_metrics = settings["model"], settings["as_json"], settings["all_metrics"]
    try:
        result = start_run(settings, progress=not as_json and sys.stderr.isatty())
        if settings["dry_run"]:
            show_plan(result, as_json)
            return
    except RunFailed as exc:
        if exc.result is not None:  # the table of what was stored, then the one-line reason
            show(exc.result, as_json, title=f"evalkit · {model}", all_metrics=all_metrics)
        fail(str(exc), 1)
    except KeyboardInterrupt:
        fail("interrupted; finished samples are stored, re-run the same command to resume", 130)
    if not is_main_process():  # data-parallel: rank 0 prints the run's table
        return
    shard_of = result.header.get("shard")
    title = f"evalkit · {model}" + (
        f" · shard {shard_of['index']}/{shard_of['count']} (its samples only)" if shard_of else ""
    )
    show(result, as_json, title=title, all_metrics=all_metrics)


def import_(
    task: Annotated[str, typer.Option(help="Task whose answers these are, e.g. pope.")],
    answers: Annotated[
        list[Path],
        typer.Option(
            help="Answer file (LLaVA format: {question_id, text} lines), or an lmms-eval samples log "
            "(*_samples_<task>.jsonl from --log_samples); repeat it, or give the folder, for the logs of "
            "one lmms-eval run (pope_random, pope_pop, pope_adv)."
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
    show(result, as_json, title=f"evalkit · imported {', '.join(a.name for a in answers)}")


def rescore(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (holds run.json).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Recompute scores and metrics from the stored samples alone (no model, no judge)."""
    from evalkit.runner import RunResult
    from evalkit.scoring import rescore_run

    metrics = rescore_run(run_dir)
    show(RunResult(run_dir, metrics, {}), as_json, title=f"evalkit · rescored {run_dir}")


def export(
    run_dir: Annotated[
        Path, typer.Argument(help="A run folder with the answers of a task that has a submission format.")
    ],
    output: Annotated[
        Path | None, typer.Option(help="The file to write (default: the task's submission file in RUN_DIR).")
    ] = None,
) -> None:
    """Write a run's answers in the official submission format of their task (e.g. MMBench's test split)."""
    from evalkit.interop.exporting import export_run

    path, n, missing = export_run(run_dir, output)
    note = f"; {missing} without a prediction (generation failed)" if missing else ""
    out.print(f"wrote {escape(str(path))}: {n} rows{note}")


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
