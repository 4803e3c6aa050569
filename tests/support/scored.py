"""Scored rows as a run stores them, from a task's toy data and plausible (sometimes wrong) answers, with no
model and no judge: what the statistics tests and the analysis tests score and aggregate."""

from __future__ import annotations

import random

from evalkit.registry import get_task
from evalkit.task import DataSpec

TOY_OPTIONS = {
    "pope": {},
    "amber": {"amber.nlp": "basic"},
    "objhal": {"objhal.nlp": "builtin"},
    "mmbench": {},
}
WORDS = ("dog", "apple", "cup", "tree", "car", "bus", "clock", "kite", "ball", "egg", "cake", "umbrella")


def answer(task: str, sample, rng: random.Random) -> str:
    """A plausible, sometimes wrong answer of the kind the task reads."""
    if task == "pope":
        return rng.choice(["Yes", "No", "yes, there is", "No, there is not.", "maybe"])
    if task == "amber" and sample.meta["type"] != "generative":
        return rng.choice(["Yes", "No", "yes", "no."])
    if task == "mmbench":
        letters = list(sample.meta["options"])
        return rng.choice([*letters, "I am not sure", f"The answer is {letters[0]}."])
    return "I see " + " and ".join(f"a {w}" for w in rng.sample(WORDS, rng.randint(0, 4))) + "."


def scored_rows(name: str, seed: int = 0, limit: int | None = None) -> list[dict]:
    """Rows as a run stores them: generation fields, then (judged tasks) an offline judge record, scores."""
    task = get_task(name)
    data = task.load(DataSpec(toy=True, limit=limit, options=TOY_OPTIONS[name]))
    rng = random.Random(seed)
    rows = []
    for s in data.samples:
        row = {"id": s.id, "prompt": s.messages[0].text, "response": answer(name, s, rng)}
        row |= {"target": s.target, "cluster": s.cluster, "meta": s.meta, "error": None}
        if hasattr(task, "judge_calls"):
            assert task.judge_calls(row, [], 1) == []  # toy modes never call a judge
            row["judge"] = {"fingerprint": {}, "calls": [], **task.judge_record(row, [], 1)}
        rows.append(row | task.score_row(row))
    return rows
