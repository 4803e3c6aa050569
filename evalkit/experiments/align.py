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
    report_to: wandb,tensorboard       # optional (or a list): every training, evaluation and the table
    tracker_project: my-project        # optional: the W&B project

Stages, each resumed rather than redone after a crash: OUTPUT/checkpoints/<name> (`evalkit train`: a
finished checkpoint is kept, an interrupted one resumes from its last save), OUTPUT/eval/<name> (`evalkit
run`: finished samples are kept), then OUTPUT/tax.{md,csv,html,json} from the stored samples.

`run_stages` is the one way to train-then-evaluate a list of checkpoints: `evalkit align` runs it on the
plan read from YAML, `evalkit demo` (`evalkit.experiments.toy_alignment`) on a plan it builds in Python,
with the plan fields YAML does not set (its starting model's name, a checkpoint folder, a step before a
checkpoint trains) and its own tables (`tax_stage`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
_TOP_KEYS = (
    "base",
    "output",
    "evaluate",
    "checkpoints",
    "reference",
    "min_common",
    "report_to",
    "tracker_project",
)


@dataclass
class AlignPlan:
    base: str
    output: Path
    evaluate: dict[str, Any]
    checkpoints: dict[str, dict[str, Any]]  # name -> TrainConfig settings (+ "from")
    reference: str = BASE
    min_common: int = 20
    warnings: list[str] = field(default_factory=list)
    #: the name `from`, `reference` and the eval folder give the starting model
    base_name: str = BASE
    #: False: the starting model is only trained from, not evaluated (the demo's base is its first checkpoint)
    evaluate_base: bool = True
    #: where checkpoint <name> is trained (default OUTPUT/checkpoints)
    checkpoint_dir: Path | None = None
    #: experiment trackers (`report_to`, `tracker_project`): each training, each evaluation and the table
    #: are tracker runs of their own, grouped under OUTPUT's name
    report_to: str | list[str] | None = None
    tracker_project: str | None = None

    @property
    def trackers(self):
        from evalkit.trackers import TrackerSettings

        return TrackerSettings.of(self.report_to, self.tracker_project)

    @property
    def tracker_group(self) -> str:
        return self.output.name

    @property
    def models(self) -> list[str]:
        """The models evaluated, in order: the starting model (unless `evaluate_base` is False), then every
        checkpoint."""
        return [self.base_name] * self.evaluate_base + list(self.checkpoints)


def read_plan(file: str | Path) -> AlignPlan:
    """The checked plan of a YAML (or .json) align config; paths relative to the file."""
    from evalkit.training.config import TrainConfig
    from evalkit.training.config_file import read_config_file_raw, relative_to_file

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
        for key in ("data", "image_dir"):  # a hub dataset id (OWNER/NAME) stays one, as in `evalkit train`
            if settings.get(key) is not None:
                settings[key] = relative_to_file(str(settings[key]), here, key)
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
    plan = AlignPlan(base, output, ev, checkpoints, reference, min_common)
    plan.report_to, plan.tracker_project = raw.get("report_to"), raw.get("tracker_project")
    plan.trackers  # noqa: B018 - known tracker names, or one line naming them
    return plan


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def evaluated(out: Path, tasks: str | list[str]) -> bool:
    """A finished run of exactly these tasks (a changed task list goes through `evaluate`, which resumes
    or refuses a folder of another configuration)."""
    from evalkit.store import RunStore

    names = [t.strip() for t in tasks.split(",")] if isinstance(tasks, str) else list(tasks)
    header = RunStore(out).finished_header()
    return header is not None and sorted(header.get("tasks", {})) == sorted(names)


def model_path(plan: AlignPlan, name: str) -> str:
    if name == plan.base_name:
        return plan.base
    return str((plan.checkpoint_dir or plan.output / "checkpoints") / name)


def eval_dir(plan: AlignPlan, name: str) -> Path:
    return plan.output / "eval" / name


def trained(plan: AlignPlan, name: str) -> bool:
    from evalkit.training.checkpointing import is_completed

    return is_completed(Path(model_path(plan, name)))


def train_stage(
    plan: AlignPlan, name: str, progress: bool = False, say: Callable[[str], None] = _say
) -> bool:
    """Train checkpoint `name` unless it is finished; True when it trained now."""
    from evalkit.training.config import TrainConfig
    from evalkit.training.trainer import train

    out = Path(model_path(plan, name))
    if trained(plan, name):
        say(f"[{name}] trained already: {out}")
        return False
    settings = {k: v for k, v in plan.checkpoints[name].items() if k != "from"}
    settings.setdefault("progress", progress)
    if plan.trackers:  # a checkpoint's own report_to / tracker_project win
        settings.setdefault("report_to", list(plan.trackers.report_to))
        settings.setdefault("tracker_project", plan.tracker_project)
        settings.setdefault("tracker_group", plan.tracker_group)
    start = plan.checkpoints[name].get("from", plan.base_name)
    say(f"[{name}] training {settings.get('method')} from {start}")
    train(TrainConfig(model=model_path(plan, start), output=str(out), **settings))
    return True


def eval_stage(plan: AlignPlan, name: str, progress: bool = False, say: Callable[[str], None] = _say):
    """Evaluate model `name` on the plan's tasks into OUTPUT/eval/<name> (resumes a partial run)."""
    from evalkit.judges.settings import JudgeSettings
    from evalkit.runner import evaluate

    ev = plan.evaluate
    out = eval_dir(plan, name)
    if evaluated(out, ev["tasks"]):
        say(f"[{name}] evaluated already: {out}")
        return None
    judge = dict(ev.get("judge") or {})
    say(f"[{name}] evaluating on {ev['tasks']}")
    result = evaluate(
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
    if plan.trackers:
        from evalkit.trackers.evaluation import report_run

        report_run(plan.trackers, out, name=f"eval-{name}", group=plan.tracker_group)
    return result


@contextmanager
def _no_timer(name: str, skipped: bool) -> Iterator[None]:
    yield


def run_stages(
    plan: AlignPlan,
    *,
    progress: bool = False,
    say: Callable[[str], None] = _say,
    stage=_no_timer,
    before: dict[str, Callable[[], None]] | None = None,
) -> dict[str, Path]:
    """Train every checkpoint in plan order, then evaluate every model; returns name -> run folder.

    `stage(label, skipped)`: a context manager around each stage (labels `<name>` and `eval <name>`), e.g.
    a timer; `before[name]()`: a step run just before checkpoint `name` trains, e.g. writing its data with
    an earlier checkpoint (it skips itself when its output exists)."""
    plan.output.mkdir(parents=True, exist_ok=True)
    for name in plan.checkpoints:
        if before and name in before:
            before[name]()
        with stage(name, skipped=trained(plan, name)):
            train_stage(plan, name, progress, say)
    for name in plan.models:
        with stage(f"eval {name}", skipped=evaluated(eval_dir(plan, name), plan.evaluate["tasks"])):
            eval_stage(plan, name, progress, say)
    return {name: eval_dir(plan, name) for name in plan.models}


def tax_stage(reference: Path, runs: dict[str, Path], folder: Path, min_common: int = 20):
    """The alignment-tax table of the runs `runs` (name -> run folder) against the run `reference`, from
    their stored samples, written to FOLDER/tax.{md,csv,html,json}; returns (table, paths)."""
    from evalkit.analysis.tax import tax_table
    from evalkit.analysis.tax_render import write_report

    table = tax_table(reference, runs, min_common=min_common)
    return table, write_report(table, folder)


def report_tax(plan: AlignPlan, table) -> None:
    """The alignment-tax table as a table (`align/tax`: one row per checkpoint × task × metric with the
    fields of tax.json's rows: base, aligned, diff and its interval, p-value, verdict, counts) in a tracker
    run of its own (kind `align`, named `tax`; a re-run logs it again), whose config is the plan (base,
    reference, checkpoints and their settings, the evaluation) and the table's settings."""
    from evalkit.trackers import RunIdentity, open_trackers

    rows = [r.to_dict() for r in table.rows]
    columns = list(rows[0]) if rows else ["checkpoint", "task", "metric"]
    config = {
        "base": plan.base,
        "reference": plan.reference,
        "checkpoints": plan.checkpoints,
        "evaluate": plan.evaluate,
        "table": {k: v for k, v in table.to_dict().items() if k != "rows"},
    }
    identity = RunIdentity("tax", "align", config, plan.output, plan.tracker_group)
    trackers = open_trackers(plan.trackers, identity)
    try:
        trackers.log_table("align/tax", columns, [[r[c] for c in columns] for r in rows])
    except BaseException:
        trackers.close(failed=True)
        raise
    trackers.close()


def run_align(
    file: str | Path,
    *,
    progress: bool = False,
    report_to: str | list[str] | None = None,
    tracker_project: str | None = None,
) -> dict[str, Any]:
    """Every stage of the plan in `file`; returns the paths of the report files and the table.
    `report_to` / `tracker_project` (the command's flags) replace the plan's."""
    plan = read_plan(file)
    if report_to is not None:
        plan.report_to = report_to
    if tracker_project is not None:
        plan.tracker_project = tracker_project
    plan.trackers.check_ready()
    run_stages(plan, progress=progress)
    aligned = {name: eval_dir(plan, name) for name in plan.models if name != plan.reference}
    table, paths = tax_stage(eval_dir(plan, plan.reference), aligned, plan.output, plan.min_common)
    _say(f"alignment-tax table: {', '.join(str(p) for p in paths)}")
    if plan.trackers:
        report_tax(plan, table)
    return {"table": table, "paths": paths, "plan": plan}
