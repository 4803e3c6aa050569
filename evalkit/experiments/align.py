"""`evalkit align CONFIG.yaml`: train aligned checkpoints from a base, evaluate all of them on one task
suite, and write the alignment-tax table.

    base: toy                          # the starting model (a path, a hub id or toy)
    output: runs/align                 # everything goes here; relative paths are relative to this file
    evaluate:
      tasks: pope,amber,objhal
      data: toy                        # or data_dir: PATH (+ image_dir)
      limit: 200                       # optional, per task
      task_options: {amber.nlp: basic}
      judge: {model: openai:gpt-4o, base_url: http://...}   # optional: the judge flags of evalkit run
    checkpoints:                       # trained in this order; `from` names an earlier one (default: base)
      sft: {method: sft, data: sft.jsonl, max_steps: 300, lora_rank: 0, lr: 1e-3}
      dpo: {method: dpo, from: sft, data: pairs.jsonl, max_steps: 60}
    reference: sft                     # the table's baseline (default: base)
    min_common: 20                     # fewest common samples and bootstrap units per task (as compare)

Stages, each resumed rather than redone after a crash: OUTPUT/checkpoints/<name> (`evalkit train`: a
finished checkpoint is kept, an interrupted one resumes from its last save), OUTPUT/eval/<name> (`evalkit
run`: finished samples are kept), then OUTPUT/tax.{md,csv,html,json} from the stored samples.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from evalkit.types import UserError

BASE = "base"
_EVAL_KEYS = (
    "tasks",
    "data",
    "data_dir",
    "image_dir",
    "limit",
    "task_options",
    "judge",
    "batch_size",
    "seed",
)
_TOP_KEYS = ("base", "output", "evaluate", "checkpoints", "reference", "min_common")


@dataclass
class AlignPlan:
    base: str
    output: Path
    evaluate: dict[str, Any]
    checkpoints: dict[str, dict[str, Any]]  # name -> TrainConfig settings (+ "from")
    reference: str = BASE
    min_common: int = 20
    warnings: list[str] = field(default_factory=list)

    @property
    def models(self) -> list[str]:
        return [BASE, *self.checkpoints]


def read_plan(file: str | Path) -> AlignPlan:
    """The checked plan of a YAML (or .json) align config; paths relative to the file."""
    from evalkit.training.config import TrainConfig, read_config_file_raw

    path = Path(file).expanduser()
    raw = read_config_file_raw(path)
    here = path.resolve().parent
    unknown = [k for k in raw if k not in _TOP_KEYS]
    if unknown:
        raise UserError(f"{path}: unknown key {unknown[0]!r}; keys: {', '.join(_TOP_KEYS)}")
    for key in ("base", "output", "checkpoints"):
        if raw.get(key) in (None, "", {}):
            raise UserError(f"{path}: {key!r} is required")
    ev = dict(raw.get("evaluate") or {})
    bad = [k for k in ev if k not in _EVAL_KEYS]
    if bad:
        raise UserError(f"{path}: unknown key evaluate.{bad[0]}; keys: {', '.join(_EVAL_KEYS)}")
    if not ev.get("tasks"):
        raise UserError(f"{path}: evaluate.tasks is required (e.g. pope,amber)")
    for key in ("data_dir", "image_dir"):
        if ev.get(key):
            ev[key] = str(here / Path(ev[key]).expanduser())
    if not isinstance(raw["checkpoints"], dict):
        raise UserError(f"{path}: checkpoints must map names to training settings")
    train_keys = {f.name for f in fields(TrainConfig)} - {"model", "output"}
    checkpoints: dict[str, dict[str, Any]] = {}
    for name, settings in raw["checkpoints"].items():
        if name == BASE or not str(name).replace("-", "_").isidentifier():
            raise UserError(f"{path}: checkpoint name {name!r} must be a plain name other than {BASE!r}")
        settings = dict(settings or {})
        start = settings.pop("from", BASE)
        if start != BASE and start not in checkpoints:
            raise UserError(f"{path}: checkpoint {name} starts from {start!r}, which is not defined above it")
        wrong = [k for k in settings if k.replace("-", "_") not in train_keys]
        if wrong:
            raise UserError(f"{path}: checkpoints.{name}: unknown setting {wrong[0]!r}")
        settings = {k.replace("-", "_"): v for k, v in settings.items()}
        if "data" in settings:
            settings["data"] = str(here / Path(str(settings["data"])).expanduser())
        checkpoints[str(name)] = {"from": start, **settings}
    base = str(raw["base"])
    if base != "toy" and not base.startswith("hf:") and (here / base).exists():
        base = str(here / base)
    reference = str(raw.get("reference") or BASE)
    if reference != BASE and reference not in checkpoints:
        raise UserError(f"{path}: reference {reference!r} is neither base nor a checkpoint")
    min_common = raw.get("min_common", 20)
    if isinstance(min_common, bool) or not isinstance(min_common, int) or min_common < 2:
        raise UserError(f"{path}: min_common must be a whole number of at least 2, not {min_common!r}")
    output = here / Path(str(raw["output"])).expanduser()
    return AlignPlan(base, output, ev, checkpoints, reference, min_common)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _evaluated(out: Path, tasks: str | list[str]) -> bool:
    """A finished run of exactly these tasks (a changed task list goes through `evaluate`, which resumes
    or refuses a folder of another configuration)."""
    from evalkit.store import RunStore

    names = [t.strip() for t in tasks.split(",")] if isinstance(tasks, str) else list(tasks)
    header = RunStore(out).finished_header()
    return header is not None and sorted(header.get("tasks", {})) == sorted(names)


def model_path(plan: AlignPlan, name: str) -> str:
    return plan.base if name == BASE else str(plan.output / "checkpoints" / name)


def train_stage(plan: AlignPlan, name: str, progress: bool = False) -> bool:
    """Train checkpoint `name` unless it is finished; True when it trained now."""
    from evalkit.training.config import TrainConfig
    from evalkit.training.trainer import is_completed, train

    out = Path(model_path(plan, name))
    if is_completed(out):
        _say(f"[{name}] trained already: {out}")
        return False
    settings = {k: v for k, v in plan.checkpoints[name].items() if k != "from"}
    settings.setdefault("progress", progress)
    _say(f"[{name}] training {settings.get('method')} from {plan.checkpoints[name]['from']}")
    train(TrainConfig(model=model_path(plan, plan.checkpoints[name]["from"]), output=str(out), **settings))
    return True


def eval_stage(plan: AlignPlan, name: str, progress: bool = False):
    """Evaluate model `name` on the plan's tasks into OUTPUT/eval/<name> (resumes a partial run)."""
    from evalkit.judges.settings import JudgeSettings
    from evalkit.runner import evaluate

    ev = plan.evaluate
    out = plan.output / "eval" / name
    if _evaluated(out, ev["tasks"]):
        _say(f"[{name}] evaluated already: {out}")
        return None
    judge = dict(ev.get("judge") or {})
    _say(f"[{name}] evaluating on {ev['tasks']}")
    return evaluate(
        model_path(plan, name),
        ev["tasks"],
        data=ev.get("data"),
        data_dir=ev.get("data_dir"),
        image_dir=ev.get("image_dir"),
        limit=ev.get("limit"),
        batch_size=ev.get("batch_size"),
        seed=int(ev.get("seed") or 0),
        output=out,
        judges=JudgeSettings(**judge) if judge else None,
        task_options={str(k): str(v) for k, v in (ev.get("task_options") or {}).items()},
        progress=progress,
    )


def run_align(file: str | Path, *, progress: bool = False) -> dict[str, Any]:
    """Every stage of the plan in `file`; returns the paths of the report files and the table."""
    from evalkit.analysis.tax import tax_table
    from evalkit.analysis.tax_render import write_report

    plan = read_plan(file)
    plan.output.mkdir(parents=True, exist_ok=True)
    for name in plan.checkpoints:
        train_stage(plan, name, progress)
    for name in plan.models:
        eval_stage(plan, name, progress)
    aligned = {n: plan.output / "eval" / n for n in plan.models if n not in (plan.reference,)}
    table = tax_table(plan.output / "eval" / plan.reference, aligned, min_common=plan.min_common)
    paths = write_report(table, plan.output)
    _say(f"alignment-tax table: {', '.join(str(p) for p in paths)}")
    return {"table": table, "paths": paths, "plan": plan}
