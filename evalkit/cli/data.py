"""`evalkit data list|fetch|verify`: where each task's data comes from, pre-downloading hub data into the
Hugging Face cache, and checking the cached files.

On a cluster whose compute nodes have no internet: `evalkit data fetch TASKS` on a login node (same
`HF_HUB_CACHE` or `HF_HOME`), then `HF_HUB_OFFLINE=1 evalkit run ...` on the compute nodes."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from evalkit.cli.display import out, warn
from evalkit.types import UserError
from evalkit.util.errors import CommandFailed

ACTIONS = ("list", "fetch", "verify")
HELP = """Where each task's data comes from, and its copy in the Hugging Face cache.

\b
evalkit data list [--json]
    each task's source: the hub repository, its pinned revision (a commit
    sha) and the files read, and whether they are cached; or what must be
    supplied by hand (--data-dir) and why; or "bundled" / "toy only"; and
    the official files fetched with a pinned sha256 (url, checksum)
evalkit data fetch TASKS
    download the hub files of TASKS (space- or comma-separated) into the
    cache, with progress bars, and check them, and their official files
    into $EVALKIT_CACHE/official (checked against the pinned sha256); a
    task with neither says what to supply by hand; a name written
    OWNER/NAME is a training set (`evalkit train --data OWNER/NAME`), e.g.
    openbmb/RLAIF-V-Dataset
evalkit data verify [TASKS]
    re-hash the cached files of TASKS or training sets (default: every
    cached hub source of a task)
    against the names the hub gave their blobs (sha256, or the git sha1 of
    small files), and the official files against their pinned sha256; a
    damaged file exits 1 naming the fix

The cache is huggingface_hub's: $HF_HUB_CACHE, else $HF_HOME/hub, else
~/.cache/huggingface/hub. On a cluster whose compute nodes have no
internet, run `evalkit data fetch TASKS` on a login node, then
`HF_HUB_OFFLINE=1 evalkit run ...` on the compute nodes: nothing touches
the network there. `evalkit run` itself fetches what is missing when the
hub can be reached."""


def _names(names: list[str] | None) -> tuple[list[str], list[str]]:
    """The task names and the training-set ids (OWNER/NAME) among the arguments, space- or
    comma-separated."""
    wanted = list(dict.fromkeys(n.strip() for arg in names or [] for n in arg.split(",") if n.strip()))
    return [n for n in wanted if "/" not in n], [n for n in wanted if "/" in n]


def _tasks(names: list[str] | None):
    from evalkit.registry import get_task, task_names

    wanted = [n.strip() for arg in names or [] for n in arg.split(",") if n.strip()]
    return [get_task(n) for n in dict.fromkeys(wanted or task_names())]


def _training_sets(ids: list[str], download: bool) -> list:
    """(id, snapshot) of each training set, fetched (`download`) or as cached; damaged files exit 1."""
    from evalkit.hubdata.cache import damaged, verify
    from evalkit.training.data_hub import fetch

    problems, done = [], []
    for dataset_id in ids:
        snap = fetch(dataset_id, download=download)
        results = verify(snap)
        if not download:
            for v in results:
                out.print(escape(f"{dataset_id}: {v['file']}: {v['status']}"), highlight=False)
        bad = [v["file"] for v in results if v["status"] == "corrupt"]
        if bad:
            problems.append(damaged(snap, dataset_id, bad))
        done.append((dataset_id, snap))
    if problems:
        raise CommandFailed("; ".join(problems))
    return done


def _cached(source, task: str):
    """The cached snapshot of `source`, or None (never downloads)."""
    from evalkit.hubdata.cache import locate

    try:
        return locate(source, task, download=False)
    except UserError:
        return None


def _official(t) -> list[dict]:
    """The task's official files as JSON; `cached`: whether a copy with the pinned sha256 is kept."""
    from evalkit.hubdata.official import verify

    return [{**f.describe(), "cached": verify(f)["status"] == "ok"} for f in t.official_files]


def _entry(t) -> dict:
    if t.hub_sources or t.official_files:
        sources = []
        for s in t.hub_sources:
            snap = _cached(s, t.name)
            cached = None if snap is None else {"repo": snap.repo_id, "revision": snap.revision}
            sources.append({**s.describe(), "cached": cached})
        source = "hub" if sources else "official"
        return {"task": t.name, "source": source, "hub": sources, "official": _official(t), "needs": None}
    return {"task": t.name, "source": t.data_source, "hub": [], "official": [], "needs": t.data_needs}


def _list(tasks, as_json: bool) -> None:
    entries = [_entry(t) for t in tasks]
    if as_json:
        print(json.dumps(entries, indent=2))
        return
    import textwrap

    width = max(len(e["task"]) for e in entries) + 2
    lines = []
    for e in entries:
        if e["hub"] or e["official"]:
            texts = []
            for h in e["hub"]:
                rev = h["revision"] or "main (not pinned; the cached revision is recorded)"
                cached = f"cached at {h['cached']['revision'][:12]}" if h["cached"] else "not cached"
                texts += [
                    f"hub {h['repo_id']} @ {rev} ({h['config']}; {h['size']}; {cached})",
                    f"files: {', '.join(h['files'])}",
                    h["note"],
                ]
            for o in e["official"]:
                cached = "cached" if o["cached"] else "not cached"
                texts.append(f"official {o['name']}: {o['url']} (sha256 {o['sha256'][:16]}…; {cached})")
        else:
            texts = [f"{e['source']}: {e['needs']}"]
        for i, text in enumerate(texts):
            head = e["task"].ljust(width) if i == 0 else " " * width
            wrapped = textwrap.wrap(text, 100, initial_indent=head, subsequent_indent=" " * width)
            lines.extend(wrapped)
    out.print(escape("\n".join(lines)), highlight=False, soft_wrap=True)


def _fetch(tasks, sets: list[str]) -> None:
    from evalkit.hubdata import official
    from evalkit.hubdata.cache import damaged, locate, offline, verify

    if offline() and (sets or any(t.hub_sources or t.official_files for t in tasks)):
        raise UserError(
            "evalkit data fetch downloads from the hub, which HF_HUB_OFFLINE=1 forbids: run it without "
            "HF_HUB_OFFLINE on a machine that reaches huggingface.co (a cluster's login node)"
        )
    if official.offline() and any(t.official_files for t in tasks):
        raise UserError(
            "evalkit data fetch downloads official files, which EVALKIT_OFFLINE=1 forbids: run it without "
            "EVALKIT_OFFLINE on a machine that reaches their release (a cluster's login node)"
        )
    for dataset_id, snap in _training_sets(sets, download=True):
        where = f"{snap.repo_id} at {snap.revision}, {len(snap.files)} file(s) in {snap.folder}"
        out.print(escape(f"{dataset_id}: {where}"), highlight=False)
    unfetched = []
    for t in tasks:
        if not t.hub_sources and not t.official_files:
            unfetched.append(f"{t.name} ({t.data_source}: {t.data_needs})")
            continue
        for s in t.hub_sources:
            snap = locate(s, t.name)
            bad = [v["file"] for v in verify(snap) if v["status"] == "corrupt"]
            if bad:
                raise CommandFailed(damaged(snap, t.name, bad))
            out.print(
                escape(
                    f"{t.name}: {snap.repo_id} at {snap.revision}, {len(snap.files)} file(s) in {snap.folder}"
                ),
                highlight=False,
            )
        for f in t.official_files:
            path = official.fetch(f, t.name)
            out.print(escape(f"{t.name}: {f.url} (sha256 {f.sha256[:16]}…) in {path}"), highlight=False)
    if unfetched:
        raise UserError("nothing to fetch from the hub for " + "; ".join(unfetched))


def _verify(tasks, named: bool) -> None:
    from evalkit.hubdata import official
    from evalkit.hubdata.cache import damaged, locate, verify

    problems = []
    checked = 0
    for t in tasks:
        if not t.hub_sources and not t.official_files:
            if named:
                warn(f"{t.name}: no hub source ({t.data_source}); nothing to verify")
            continue
        for f in t.official_files:
            v = official.verify(f)
            if v["status"] == "missing" and not named:
                continue
            if v["status"] == "missing":
                official.fetch(f, t.name, download=False)  # the one-line error naming the fetch
            checked += 1
            out.print(escape(f"{t.name}: {f.name}: {v['status']}"), highlight=False)
            if v["status"] == "corrupt":
                problems.append(
                    f"{t.name}: {f.path} does not match its pinned sha256 {f.sha256}; delete it and run "
                    f"`evalkit data fetch {t.name}`"
                )
        for s in t.hub_sources:
            snap = locate(s, t.name, download=False) if named else _cached(s, t.name)
            if snap is None:
                continue
            results = verify(snap)
            checked += 1
            for v in results:
                out.print(escape(f"{t.name}: {v['file']}: {v['status']}"), highlight=False)
            bad = [v["file"] for v in results if v["status"] == "corrupt"]
            if bad:
                problems.append(damaged(snap, t.name, bad))
    if problems:
        raise CommandFailed("; ".join(problems))
    if not checked:
        warn("no hub data in the cache to verify (`evalkit data fetch TASKS` fetches it)")


def data(
    action: Annotated[str, typer.Argument(help="list, fetch or verify.", show_default=False)],
    tasks: Annotated[
        list[str] | None, typer.Argument(help="Task names, space- or comma-separated.", show_default=False)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="list: print as JSON.")] = False,
) -> None:
    if action not in ACTIONS:
        raise UserError(f"evalkit data {action}: expected one of {', '.join(ACTIONS)}")
    if action == "list":
        _list(_tasks(tasks), as_json)
    elif action == "fetch":
        if not tasks:
            raise UserError("evalkit data fetch TASKS: name the tasks to fetch (see `evalkit data list`)")
        names, sets = _names(tasks)
        _fetch(_tasks(names) if names else [], sets)
    else:
        names, sets = _names(tasks)
        _training_sets(sets, download=False)
        if names or not sets:
            _verify(_tasks(names), named=bool(names))


data.__doc__ = HELP
