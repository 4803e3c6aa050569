"""`evalkit merge`: the shard folders of one run (`evalkit run --shard I/N`, N independent jobs) into one run
folder whose rows and metrics are those of the run in one process.

A shard judges its own rows (every shard has the run's judge: it is part of the identity), so merging needs
no model, judge or network: it checks that the folders are the N finished shards of one run (same
config_hash, one split, each index once), interleaves their rows back into the task's sample order (shard I
holds batches I, I + N, ... of the one-process run) and summarises them as `run` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.registry import get_task
from evalkit.runner import RunResult, finish
from evalkit.runner.parallel import Part, interleave
from evalkit.scoring import summarize
from evalkit.store import RunStore, check_output
from evalkit.types import UserError


def read_shards(run_dirs: list[Path]) -> list[tuple[RunStore, dict[str, Any]]]:
    """The shard folders ordered by index, each with its header; a `UserError` (one line) for a folder
    that is no finished shard, shards of different runs or splits, and a duplicate or missing shard."""
    if not run_dirs:
        raise UserError("merge needs the shard folders of one run (evalkit run --shard I/N)")
    shards: dict[int, tuple[RunStore, dict[str, Any]]] = {}
    first: tuple[Path, dict[str, Any]] | None = None
    for run_dir in run_dirs:
        store = RunStore(run_dir)
        header = store.read_header()
        shard = header.get("shard")
        if not isinstance(shard, dict):
            raise UserError(f"{run_dir} is not a shard (its run.json names none); merge takes --shard runs")
        index, count, block = shard.get("index"), shard.get("count"), shard.get("block")
        if not (all(isinstance(v, int) for v in (index, count, block)) and 0 <= index < count and block > 0):
            raise UserError(f"{store.header_path}: 'shard' is not {{index, count, block}}; it is damaged")
        if first is None:
            first = (run_dir, header)
        elif header.get("config_hash") != first[1].get("config_hash"):
            raise UserError(
                f"{run_dir} is a shard of another run (config hash {header.get('config_hash')}, not "
                f"{first[1].get('config_hash')} as {first[0]}): merge the shards of one command only"
            )
        elif count != first[1]["shard"]["count"] or shard.get("block") != first[1]["shard"].get("block"):
            raise UserError(
                f"{run_dir} is shard {index}/{count} in batches of {shard.get('block')}, {first[0]} one of "
                f"{first[1]['shard']['count']} in batches of {first[1]['shard'].get('block')}: "
                "merge the shards of one split (same N and --batch-size) only"
            )
        if index in shards:
            raise UserError(f"shard {index}/{count} is given twice ({shards[index][0].dir} and {run_dir})")
        if header.get("status") != "shard-finished":
            raise UserError(
                f"{run_dir}: shard {index}/{count} has not finished (status {header.get('status')!r}); "
                "re-run its command to resume it, then merge"
            )
        shards[index] = (store, header)
    assert first is not None
    count = first[1]["shard"]["count"]
    missing = [f"{i}/{count}" for i in range(count) if i not in shards]
    if missing:
        raise UserError(f"shard {', '.join(missing)} missing: run it with --shard, then merge all {count}")
    return [shards[i] for i in range(count)]


def merge_shards(run_dirs: list[Path], output: Path) -> RunResult:
    """Write the merged run folder `output`; `RunFailed` (after writing it) when the merged run fails as
    `run` would (its --max-failure-rate, or a headline that is missing or NaN)."""
    shards = read_shards([Path(d) for d in run_dirs])
    check_output(output)
    header = {k: v for k, v in shards[0][1].items() if k not in ("shard", "schema_version", "finished")}
    header.update(
        run_id=Path(output).name,
        status="running",
        merged_from=[str(store.dir) for store, _ in shards],
        timings=merged_timings([h for _, h in shards]),
    )
    judges = merged_judges([h for _, h in shards])
    if judges:
        header["judges"] = judges
    else:
        header.pop("judges", None)
    rows_by_task = {name: shard_rows(shards, name, info) for name, info in header["tasks"].items()}
    store = RunStore(Path(output))
    resumed = store.open(header)  # refuses a folder holding another run or a shard
    metrics = {}
    for name, rows in rows_by_task.items():
        log = store.log(name)
        try:
            log.rows.clear()
            for row in rows:
                log.append(row)
            log.compact(row["id"] for row in rows)
        finally:
            log.close()
        metrics[name] = summarize(get_task(name), rows, n_expected=len(rows))
    max_failure_rate = header.get("command", {}).get("max_failure_rate", 0.02)
    return finish(store, header, metrics, max_failure_rate, resumed)


def shard_rows(shards: list[tuple[RunStore, dict[str, Any]]], task: str, info: dict[str, Any]) -> list[dict]:
    """The task's rows of every shard, in the task's sample order; each shard must hold one row for each of
    its samples."""
    n = info.get("n_samples")
    if not isinstance(n, int):
        where = shards[0][0].header_path
        raise UserError(f"{where}: task {task!r} has no n_samples; the run header is damaged")
    parts = []
    block = shards[0][1]["shard"].get("block", 1)
    for index, (store, _) in enumerate(shards):
        rows = store.read_samples(task)
        expected = Part(index, len(shards), block).size(n)
        if len(rows) != expected:
            raise UserError(
                f"{store.samples_path(task)} holds {len(rows)} rows where shard {index}/{len(shards)} has "
                f"{expected} samples of {task}; re-run that shard's command, then merge"
            )
        parts.append(rows)
    return interleave(parts, block)


def merged_timings(headers: list[dict[str, Any]]) -> dict[str, Any]:
    """Per task: the longest shard's seconds (the shards run side by side) and the samples generated."""
    out: dict[str, Any] = {}
    for h in headers:
        for task, t in (h.get("timings") or {}).items():
            m = out.setdefault(task, {"seconds": 0.0, "generated": 0})
            m["seconds"] = max(m["seconds"], t.get("seconds", 0.0))
            m["generated"] += t.get("generated", 0)
    return out


def merged_judges(headers: list[dict[str, Any]]) -> dict[str, Any]:
    """Per judged task: the judge and its usage summed over the shards (cost unknown when one is)."""
    out: dict[str, Any] = {}
    for h in headers:
        for task, j in (h.get("judges") or {}).items():
            if task not in out:
                out[task] = {**j, "usage": dict(j["usage"])}
                continue
            usage = out[task]["usage"]
            for key, value in j["usage"].items():
                if key == "cost_usd":
                    usage[key] = None if value is None or usage[key] is None else usage[key] + value
                elif isinstance(value, int | float) and isinstance(usage.get(key), int | float):
                    usage[key] += value
    return out
