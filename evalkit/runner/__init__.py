"""`evaluate`: load data, load the model, answer every sample in batches, store rows, compute metrics.

The run's identity (model fingerprint, tasks and versions, data checksums and labels but never where the
data lies, limit, seed) is hashed into `config_hash`; the default run folder is named from it, so
re-running the same command resumes: rows already stored are skipped and only failed or missing samples
are asked again. The generation loop of one task is in `evalkit.runner.generation`; this module plans the
run (tasks and data, run folder and identity, judges) and reports it; the run's identity and run.json are
`evalkit.runner.identity`'s, how it ends (`finish`, `RunFailed`) `evalkit.runner.outcome`'s.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from evalkit.judges.endpoints import probe_judges, probe_model
from evalkit.judges.settings import JudgeSet, JudgeSettings
from evalkit.models.base import Backend, BackendOptions, load_backend
from evalkit.registry import parse_task_list
from evalkit.runner.generation import WHOLE, run_task, run_task_parallel
from evalkit.runner.identity import config_hash, new_header, now, slug
from evalkit.runner.outcome import RunFailed, RunResult, error_summary, failure_reasons, finish
from evalkit.runner.parallel import Group, Part, parse_shard
from evalkit.store import RunStore, check_output
from evalkit.task import DataSpec, LoadedData, Task
from evalkit.trackers import TrackerSettings
from evalkit.trackers.evaluation import report_run
from evalkit.types import Sample, UserError
from evalkit.util.datafiles import content_version, data_identity
from evalkit.util.environment import set_torch_threads
from evalkit.util.progress import make_progress

DEFAULT_MAX_FAILURE_RATE = 0.02

#: the package's API: `evaluate` and what it is built of (a run's identity: `runner.identity`; how it ends:
#: `runner.outcome`)
__all__ = [
    "DEFAULT_MAX_FAILURE_RATE",
    "RunFailed",
    "RunResult",
    "config_hash",
    "error_summary",
    "evaluate",
    "failure_reasons",
    "finish",
    "load_tasks",
    "new_header",
    "now",
    "plan_judging",
    "slug",
]


def load_tasks(
    tasks: str | list[str | Task],
    *,
    data: str | None = None,
    data_dir: str | Path | None = None,
    image_dir: str | Path | None = None,
    limit: int | None = None,
    seed: int = 0,
    task_options: dict[str, str] | None = None,
) -> tuple[list[Task], dict[str, LoadedData]]:
    """The tasks and their samples; fails on bad flags or missing data before any model is loaded."""
    if data not in (None, "toy"):
        raise UserError(f"--data {data!r}: the only built-in data set is 'toy'; for real data use --data-dir")
    if limit is not None and limit < 1:
        raise UserError("--limit must be at least 1")
    task_objs = parse_task_list(tasks)
    spec = DataSpec(
        toy=data == "toy",
        data_dir=Path(data_dir) if data_dir else None,
        image_dir=Path(image_dir) if image_dir else None,
        seed=seed,
        limit=limit,
        options=dict(task_options or {}),
    )
    if spec.data_dir is not None and not spec.data_dir.is_dir():
        raise UserError(f"--data-dir {spec.data_dir} is not a folder")
    names = {t.name for t in task_objs}
    stray = [k for k in spec.options if k.split(".", 1)[0] not in names or "." not in k]
    if stray:
        raise UserError(f"--task-option {stray[0]}: options are named TASK.KEY for a task of this run")
    for t in task_objs:  # every option name and value checked before any data is read
        t.read_options(spec)
    loaded = {}
    for t in task_objs:
        data = t.load(spec)
        loaded[t.name] = LoadedData([_absolute_images(s) for s in data.samples], content_version(data.info))
    return task_objs, loaded


def _absolute_images(sample: Sample) -> Sample:
    """`sample` with its image paths absolute and normalised: the prompt hash that keys resume covers
    them, so `data/pope`, `./data/pope` and `/abs/data/pope` must give the same requests."""
    if not any(m.images for m in sample.messages):
        return sample
    messages = tuple(replace(m, images=tuple(os.path.abspath(p) for p in m.images)) for m in sample.messages)
    return replace(sample, messages=messages)


def plan_judging(
    tasks: str | list[str | Task],
    judges: JudgeSettings,
    *,
    output: str | Path | None = None,
    **data: Any,
) -> dict[str, dict[str, Any]]:
    """`--dry-run`: the judge calls a run would make and their estimated cost, without loading the model
    (answers already stored in `output` are used; see `evalkit.judges.settings`)."""
    task_objs, loaded = load_tasks(tasks, **data)
    judge_set = JudgeSet.for_tasks(task_objs, judges)
    try:
        return judge_set.estimate(task_objs, loaded, Path(output) if output else None)
    finally:
        judge_set.close()


def evaluate(
    model: str | Backend,
    tasks: str | list[str | Task],
    *,
    data: str | None = None,
    data_dir: str | Path | None = None,
    image_dir: str | Path | None = None,
    limit: int | None = None,
    batch_size: int | None = None,
    output: str | Path | None = None,
    results_root: str | Path = "results",
    seed: int = 0,
    max_failure_rate: float = DEFAULT_MAX_FAILURE_RATE,
    backend_options: BackendOptions | None = None,
    judges: JudgeSettings | None = None,
    task_options: dict[str, str] | None = None,
    progress: bool = True,
    threads: int | None = None,
    shard: str | Part | None = None,
    report_to: str | list[str] | None = None,
    tracker_project: str | None = None,
    run_name: str | None = None,
) -> RunResult:
    """Evaluate `model` on `tasks` and return the run's metrics (also written to the run folder).

    `model` is a checkpoint path or hub id, `toy`, `openai:NAME`, or a ready `Backend`. `data="toy"`
    uses the built-in toy world; otherwise each task reads official files from `data_dir`. Judged
    tasks use their official judge unless `judges` says otherwise.
    `threads` sets torch's intra-op threads (recorded in run.json, not part of the run's identity).
    Under `torchrun` / `accelerate launch` (WORLD_SIZE > 1) the processes split the samples and write one
    run folder, the same as one process would; `shard="I/N"` answers part I of N only, into a shard run
    folder of its own for `evalkit merge` (see `evalkit.runner.parallel`).
    `report_to` ("wandb", "tensorboard", a list or "none"; `tracker_project`, `run_name`): log the stored
    run to experiment trackers once it ends (`evalkit.trackers.evaluation`).
    Raises `UserError` for input the user can fix and `RunFailed` when the failure rate is too high.
    """
    if batch_size is not None and batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    if threads is not None:
        if threads < 1:
            raise UserError(f"--threads must be at least 1 (got {threads}); leave it out for the default")
        set_torch_threads(threads)
    if not 0.0 <= max_failure_rate <= 1.0:
        raise UserError("--max-failure-rate must be between 0 and 1")
    part = parse_shard(shard) if isinstance(shard, str) else (shard or WHOLE)
    trackers = TrackerSettings.of(report_to, tracker_project, run_name)
    if trackers and part.count > 1:
        raise UserError(
            "--report-to logs a whole run; a shard's metrics come from `evalkit merge`: drop --report-to here"
        )
    trackers.check_ready()
    group = Group.from_environment()
    if group is not None:
        if part.count > 1:
            raise UserError(
                "--shard is for independent jobs; the processes of torchrun or accelerate launch split the "
                "samples themselves: drop --shard"
            )
        if not isinstance(model, str) or model.startswith("openai:"):
            raise UserError(
                "data-parallel runs need a local checkpoint (one replica per process); an openai: model "
                "batches on its server: run one process with --batch-size"
            )
        options = backend_options or BackendOptions()
        if options.device.startswith("cuda:"):
            raise UserError(
                f"--device {options.device}: under a launcher each process takes cuda:LOCAL_RANK; "
                "pass --device cuda or leave it out"
            )
        if options.device in ("auto", "cuda"):
            backend_options = options = replace(options, device=group.device(options.device))
        group.start(options.device)
    try:
        result = _evaluate(
            model,
            tasks,
            data=data,
            data_dir=data_dir,
            image_dir=image_dir,
            limit=limit,
            batch_size=batch_size,
            output=output,
            results_root=results_root,
            seed=seed,
            max_failure_rate=max_failure_rate,
            backend_options=backend_options,
            judges=judges,
            task_options=task_options,
            progress=progress and (group is None or group.rank == 0),
            part=part,
            group=group,
            threads=threads,
        )
    except RunFailed as exc:  # a failed run is reported too, as failed
        if exc.result is not None and (group is None or group.rank == 0):
            report_run(trackers, exc.result.run_dir)
        raise
    finally:
        if group is not None:
            group.close()
    if group is None or group.rank == 0:
        report_run(trackers, result.run_dir)
    return result


def _evaluate(
    model: str | Backend,
    tasks: str | list[str | Task],
    *,
    data: str | None,
    data_dir: str | Path | None,
    image_dir: str | Path | None,
    limit: int | None,
    batch_size: int | None,
    output: str | Path | None,
    results_root: str | Path,
    seed: int,
    max_failure_rate: float,
    backend_options: BackendOptions | None,
    judges: JudgeSettings | None,
    task_options: dict[str, str] | None,
    progress: bool,
    part: Part,
    group: Group | None,
    threads: int | None,
) -> RunResult:
    writer = group is None or group.rank == 0  # the one process that writes run.json and the task files
    step = group.step if group is not None else (lambda fn: fn())
    check_output(output if output is not None else results_root)  # now, not after the model is loaded
    probe_model(model, backend_options)  # a refused key or a dead --base-url: one line, before any data
    task_objs, loaded = load_tasks(
        tasks,
        data=data,
        data_dir=data_dir,
        image_dir=image_dir,
        limit=limit,
        seed=seed,
        task_options=task_options,
    )
    probe_judges(task_objs, loaded, judges or JudgeSettings())  # the data says if a task asks its judge
    judge_set = JudgeSet.for_tasks(task_objs, judges or JudgeSettings())
    try:
        backend = model if isinstance(model, Backend) else step(lambda: load_backend(model, backend_options))
    except BaseException:
        judge_set.close()
        raise
    model_name = model if isinstance(model, str) else backend.name
    fingerprint = backend.fingerprint()
    identity = {
        "model": fingerprint,
        # the data by content (checksums, labels, options), never by where it lies: `data/pope` and its
        # absolute path, or the toy files through `--data toy` and `--data-dir`, are the same run
        "tasks": {
            t.name: {"version": t.version, "data": data_identity(loaded[t.name].info)} for t in task_objs
        },
        "limit": limit,
        "seed": seed,
    }
    if task_options:
        identity["task_options"] = dict(sorted(task_options.items()))
    if judge_set.judges:  # a run judged differently is a different run, never merged into this one
        identity["judges"] = judge_set.fingerprints()
    chash = config_hash(identity)
    shard_name = f"-shard-{part.index}-of-{part.count}" if part.count > 1 else ""
    run_dir = Path(output) if output else Path(results_root) / f"{slug(model_name)}-{chash}{shard_name}"
    try:
        if group is not None and len(hashes := set(group.gather(chash))) > 1:  # every rank sees it alike
            raise UserError(
                f"the processes see different runs (config hashes {', '.join(sorted(hashes))}): give every "
                "process the same command, data and checkpoint"
            )
        judge_set.check_budget(task_objs, loaded, run_dir)
        if writer:
            judge_set.attach(run_dir)  # judge calls counted durably, across interrupted processes
    except BaseException:
        judge_set.close()
        if not isinstance(model, Backend):
            backend.close()
        raise
    bs = batch_size or backend.default_batch_size
    part = replace(part, block=bs)
    command = {
        "model": model_name,
        "tasks": [t.name for t in task_objs],
        "data": data,
        "data_dir": str(data_dir) if data_dir else None,
        "limit": limit,
        "seed": seed,
        "task_options": task_options or {},
        "batch_size": bs,
        **({"threads": threads} if threads is not None else {}),
        "max_failure_rate": max_failure_rate,
        **judge_set.command(),
    }
    header = new_header(
        run_dir,
        chash,
        command,
        model={"fingerprint": fingerprint, "backend": backend.name, **backend.info()},
        tasks={
            t.name: {**t.info(), "data": loaded[t.name].info, "n_samples": len(loaded[t.name].samples)}
            for t in task_objs
        },
    )
    if part.count > 1:  # not part of the identity: every shard of a run has the run's config_hash
        header["shard"] = {"index": part.index, "count": part.count, "block": part.block}
    store = RunStore(run_dir)
    try:
        resumed = step(lambda: store.open(header) if writer else False)
    except BaseException:
        judge_set.close()
        if not isinstance(model, Backend):
            backend.close()
        raise
    if writer:
        header = store.read_header()

    all_metrics: dict[str, Any] = {}
    try:
        with make_progress(progress) as bars:
            for task in task_objs:
                t0 = time.perf_counter()
                judge = judge_set.judges.get(task.name)
                args = (task, loaded[task.name], backend, store, bs, seed, bars, judge)
                if group is None:
                    summary, n_new = run_task(*args, part=part)
                else:
                    summary, n_new = run_task_parallel(*args, group=group)
                all_metrics[task.name] = summary
                if not writer:
                    continue
                header["timings"][task.name] = {
                    "seconds": round(time.perf_counter() - t0, 3),
                    "generated": n_new,
                }
                if judge is not None:
                    judged = header.setdefault("judges", {})
                    judged[task.name] = judge_set.report(task.name, judged.get(task.name))
                store.write_header(header)
    except KeyboardInterrupt:
        if writer:
            header["status"] = "interrupted"
            store.write_header(header)
        raise
    finally:
        judge_set.close()
        if not isinstance(model, Backend):
            backend.close()

    if group is not None:

        def end() -> RunResult | None:
            return finish(store, header, all_metrics, max_failure_rate, resumed) if writer else None

        return group.share(group.step(end))
    if part.count > 1:  # a shard: its rows only; the run's metrics are computed by `evalkit merge`
        header["status"] = "shard-finished"
        header["finished"] = now()
        store.write_header(header)
        return RunResult(run_dir, all_metrics, header, resumed)
    return finish(store, header, all_metrics, max_failure_rate, resumed)
