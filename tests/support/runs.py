"""Finished run folders built with the store classes, as `evaluate` leaves them, from constructed POPE rows:
the analysis tests (compare, leaderboard, tax, the store under damage) compute their expected numbers from
the same items by hand."""

from __future__ import annotations

import random

from evalkit.registry import get_task
from evalkit.runner import new_header
from evalkit.scoring import summarize
from evalkit.store import RunStore

SPLITS = ("random", "popular", "adversarial")
JUDGE = {"model": "gpt-3.5-turbo-0613", "backend": {"base_url": "https://api.openai.com/v1"}, "n_runs": 1}


def write_run(path, task_name, rows, *, version=None, judge=None):
    """A finished run folder written with the store classes, as `evaluate` leaves it."""
    task = get_task(task_name)
    info = {**task.info(), "data": {"version": "test"}, "n_samples": len(rows)}
    if version is not None:
        info["version"] = version
    header = new_header(
        path, path.name, {"model": path.name}, {"fingerprint": {}, "backend": "test"}, {task_name: info}
    )
    if judge is not None:
        header["judges"] = {task_name: {"fingerprint": judge, "backend": {}, "usage": {}}}
        rows = [{**r, "judge": {**r.get("judge", {}), "fingerprint": judge}} for r in rows]
    store = RunStore(path)
    store.open(header)
    log = store.log(task_name)
    for r in rows:
        log.append(r)
    log.compact(r["id"] for r in rows)
    log.close()
    store.write_metrics({task_name: summarize(task, rows)})
    store.write_header({**header, "status": "finished"})
    return path


def pope_items(n, seed=0, accuracy=0.88):
    """(id, split, image, label, correct?) for n POPE-like questions."""
    rng = random.Random(seed)
    return [
        (
            f"{SPLITS[i % 3]}-{i}",
            SPLITS[i % 3],
            f"img{i % (n // 5)}",
            rng.choice("yn"),
            rng.random() < accuracy,
        )
        for i in range(n)
    ]


def pope_rows(items, flip=frozenset()):
    """Scored rows answering right when `correct` (xor the id is in `flip`)."""
    task = get_task("pope")
    rows = []
    for sid, split, image, label, correct in items:
        right = correct != (sid in flip)
        yes = (label == "y") == right
        target = "yes" if label == "y" else "no"
        meta = {"split": split, "image": image}
        response = "Yes, there is." if yes else "No, there is not."
        row = {"id": sid, "response": response, "target": target, "cluster": image, "meta": meta}
        rows.append({**row, "error": None, **task.score(response, target, meta)})
    return rows
