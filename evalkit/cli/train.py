"""The training commands: `train` (one checkpoint), `align` (a plan of checkpoints evaluated into an
alignment-tax table) and `demo` (the toy alignment story end to end).

`train`'s flags are made from `TrainConfig`'s fields (`train_flags`): each field's default, type and help
live in the dataclass alone, as in TRL, and the config-file keys are the same names."""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import typer
from rich.markup import escape

from evalkit.cli.display import err, fail, out
from evalkit.training.config import TrainConfig
from evalkit.training.config_file import config_from

#: the order `evalkit train --help` lists the flags in: what every run needs, then the optimisation, the
#: saving and the sampling settings (the fields' own order groups them differently); a field not named here
#: follows these, in field order
FLAG_ORDER = (
    "method", "model", "data", "output", "format", "image_dir", "max_steps", "epochs", "lr", "beta", "loss",
    "sft_weight", "batch_size", "grad_accum", "lora_rank", "reference", "seed", "max_length", "prompt_style",
    "image_pad", "save_every",
    "warmup_ratio", "schedule", "projector_lr", "gradient_checkpointing", "train_vision", "merge", "device",
    "trust_remote_code", "overwrite", "samples", "temperature", "max_new_tokens", "reward", "judge",
    "judge_base_url", "judge_api_key_env", "judge_concurrency", "offline_prob", "steer", "embedder",
    "bdhs_keep", "bdhs_threshold", "bdhs_tries", "bdhs_image", "noise_steps", "second_rejected", "gamma",
)  # fmt: skip

CONFIG_ARGUMENT = inspect.Parameter(
    "config_file",
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    default=None,
    annotation=Annotated[
        Path | None,
        typer.Argument(
            metavar="CONFIG",
            help="YAML or JSON file of settings (keys: the option names with underscores, e.g. max_steps); "
            "flags override it; its relative paths are relative to its folder.",
            show_default=False,
        ),
    ],
)


def train_flags() -> list[inspect.Parameter]:
    """One keyword parameter per `TrainConfig` field with a flag (metadata `cli` not False), in
    `FLAG_ORDER`: its default the field's (None for a required field, which the config file may give
    instead), its help the field's metadata `help`."""
    hints = get_type_hints(TrainConfig)
    position = {name: i for i, name in enumerate(FLAG_ORDER)}
    flagged = [f for f in dataclasses.fields(TrainConfig) if f.metadata.get("cli", True)]
    flagged.sort(key=lambda f: position.get(f.name, len(position)))  # stable: the rest in field order
    params = []
    for f in flagged:
        kind, help_ = f.metadata.get("cli_type", hints[f.name]), f.metadata.get("help", "")
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required:
            option = typer.Option(help=f"{help_}; required here or in CONFIG.", show_default=False)
            annotation, default = Annotated[kind | None, option], None
        else:
            option = typer.Option(help=help_)
            default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
            annotation = Annotated[kind, option]
        params.append(
            inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        )
    return params


def train(ctx: typer.Context, config_file: Path | None = None, **flags: Any) -> None:
    """Align a model and save a checkpoint that `evalkit run --model OUTPUT` loads.

    Methods: sft; rs (best of --samples answers by --reward or --judge, then SFT; or the best of the
    seed study's judged completions with --format seed); steerlm (attribute-conditioned SFT); dpo;
    online-dpo (pairs sampled from the current policy, ranked by --reward or --judge); mixed-dpo (the
    offline pair with probability --offline-prob, else an online one); bdhs (rejected answers written by
    the starting model with the image masked, or noised with --bdhs-image noise, then DPO); online-bdhs
    (the same, written by the current policy during training). --second-rejected
    data|bdhs|online-bdhs|distortion trains dpo on two rejected answers per chosen one, weighted by --gamma
    (distortion: POVID's teacher-forced prediction on a noised image).

    Settings come from the flags, or from a CONFIG file (YAML, or JSON by its .json suffix) whose keys are
    the option names with underscores, e.g. `method: dpo`, `max_steps: 200`, `lora_rank: 64`; flags given
    on the command line override the file, and the file's relative paths (data, output, model when it is a
    path) are relative to the file's folder. Example: evalkit train dpo.yaml --lr 1e-5
    """
    # the flags typed on the command line (typer vendors click, so its ParameterSource is compared by name);
    # a path flag (`cli_type` Path) is given to TrainConfig as the string of the path
    given = {
        name: str(value) if isinstance(value, Path) else value
        for name, value in flags.items()
        if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"
    }
    try:
        config = config_from(config_file, given, defaults={"progress": sys.stderr.isatty()})
        from evalkit.training.trainer import train as run_training

        result = run_training(config)
    except KeyboardInterrupt:
        fail("interrupted; re-run the same command to resume from the last saved step", 130)
    output = config.output
    if not result.is_main:
        # another process of a multi-process run: the main one reports. Its work is done and its process
        # group taken down; leaving without the interpreter's teardown keeps a native thread of the
        # distributed libraries from aborting it there now and then ("terminate called without an active
        # exception", exit -6, which fails the whole launch after the checkpoint was saved)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    losses = [r["loss"] for r in result.log if r.get("loss") is not None]
    final = f"{losses[-1]:.4f}" if losses else "n/a"
    if result.already_complete:  # the same command after the run finished: nothing to do, exit 0
        out.print(f"checkpoint {escape(str(output))} is complete ({result.steps} steps; final loss {final})")
        return
    out.print(f"trained {result.steps} steps; final loss {final}; saved {escape(str(output))}")


# typer reads the options from the signature: the context, CONFIG, then one flag per TrainConfig field
train.__signature__ = inspect.Signature(
    [
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
        CONFIG_ARGUMENT,
        *train_flags(),
    ]
)


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
    report_to: Annotated[
        str | None,
        typer.Option(
            help="Log every training, evaluation and the table to experiment trackers: wandb, tensorboard "
            "(comma-separated) or none (default: the plan's report_to key, else none).",
            show_default=False,
        ),
    ] = None,
    tracker_project: Annotated[
        str | None,
        typer.Option(help="--report-to wandb: the project (default: the plan's, $WANDB_PROJECT, evalkit)."),
    ] = None,
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
        result = run_align(
            config_file, progress=sys.stderr.isatty(), report_to=report_to, tracker_project=tracker_project
        )
    except Incomparable as exc:
        fail(str(exc), 3)
    except KeyboardInterrupt:
        fail("interrupted; re-run the same command to resume", 130)
    print_table(result["table"], as_json=as_json)


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
