"""The training commands: `train` (one checkpoint), `align` (a plan of checkpoints evaluated into an
alignment-tax table) and `demo` (the toy alignment story end to end)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from evalkit.cli.display import err, fail, out


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
