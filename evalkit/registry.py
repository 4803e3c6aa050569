"""Task registry: a plain name → module table, imported lazily so the CLI starts fast."""

from __future__ import annotations

import importlib

from evalkit.task import Task
from evalkit.types import UserError

#: task name → "module:Class" (modules live in the top-level tasks/ folder, installed as evalkit.tasks), in
#: the order the alignment-tax table lists them: group by group (`evalkit.task.TAX_GROUPS`), then the rest
TASKS: dict[str, str] = {
    "mt_bench": "evalkit.tasks.mt_bench:MTBench",
    "alpaca_eval": "evalkit.tasks.alpaca_eval:AlpacaEval2",
    "alpaca_eval_v1": "evalkit.tasks.alpaca_eval:AlpacaEval1",
    "mmvet": "evalkit.tasks.mmvet:MMVet",
    "llava_bench": "evalkit.tasks.llava_bench:LlavaBenchWild",
    "llava_bench_coco": "evalkit.tasks.llava_bench:LlavaBenchCoco",
    "pope": "evalkit.tasks.pope:Pope",
    "amber": "evalkit.tasks.amber:Amber",
    "mmhal": "evalkit.tasks.mmhal:MMHal",
    "mmhal_v": "evalkit.tasks.mmhal.vision:MMHalV",
    "objhal": "evalkit.tasks.objhal:ObjHal",
    "mmbench": "evalkit.tasks.mmbench:MMBench",
    "textvqa": "evalkit.tasks.textvqa:TextVQA",
    "gqa": "evalkit.tasks.gqa:GQA",
    "toy_language": "evalkit.tasks.toy_language:ToyLanguage",
}


def task_names() -> list[str]:
    return sorted(TASKS)


def get_task(name: str) -> Task:
    target = TASKS.get(name)
    if target is None:
        raise UserError(
            f"unknown task {name!r}; known tasks: {', '.join(task_names())} (see `evalkit tasks`)"
        )
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)()


def parse_task_list(tasks: str | list[str | Task]) -> list[Task]:
    """Tasks from "a,b" or a list of names and/or `Task` objects (a library user's own tasks)."""
    items = tasks.split(",") if isinstance(tasks, str) else tasks
    objs = [
        t if isinstance(t, Task) else get_task(t.strip()) for t in items if isinstance(t, Task) or t.strip()
    ]
    if not objs:
        raise UserError("no task given; pass --tasks NAME[,NAME...] (see `evalkit tasks`)")
    names = [t.name for t in objs]
    if len(set(names)) != len(names):
        raise UserError(f"a task is listed twice in {names}")
    return objs
