"""MMBench from lmms-eval logs: `mmbench_en_dev`, `mmbench_en_test` (lmms-eval
`lmms_eval/tasks/mmbench/en_utils.py`: HF lmms-lab/MMBench `en`).

`gpt_eval_score` holds index, question, hint, A-E, answer, category, L2-category, split: each record is a
circular pass (index = g_index + k·1e6). VLMEvalKit's rules read the answer; lmms-eval's ChatGPT matching
is not logged per sample, so an unread answer takes the official random fallback (`matcher: none`, counted
as passes/random). The prompt is lmms-eval's (`input`), not LLaVA's.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from evalkit.task import Imported
from evalkit.tasks.mmbench import pass_meta
from evalkit.tasks.mmbench.data import CIRCULAR_STEP, Pass
from evalkit.tasks.mmbench.protocol import is_na
from evalkit.types import Message, Sample, UserError


def _na(value: Any) -> bool:
    """A cell lmms-eval's pandas reads as missing: None, NaN, or 'nan'-like text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return isinstance(value, str) and is_na(value)


def convert(
    records: list[Any], lmms_task: str | None, tmp: Path, data_dir: Path | None, path: Path
) -> tuple[list[Imported], dict[str, Any], dict[str, Any]]:
    """The records as MMBench passes scored by the circular rules, with lmms-eval's prompt (see above)."""
    for name in sorted(({lmms_task} | {r.task for r in records}) - {None}):
        if "_cn" in name:
            raise UserError(f"{path}: {name} is MMBench-CN; evalkit's mmbench is the English set")
    judge = {
        "fingerprint": {"model": "none", "source": "lmms-eval log (its matcher outputs are not logged)"},
        "outputs": [[]],
    }
    items, groups = [], set()
    for rec in records:
        f = rec.doc or rec.metric("gpt_eval_score", "submission")
        if "index" not in f or "question" not in f:
            raise UserError(f"{path}: doc_id {rec.doc_id}: no MMBench index/question (doc or gpt_eval_score)")
        index = int(f["index"])
        options = {c: str(f[c]) for c in "ABCDEFGHI" if c in f and not _na(f[c])}
        names = ("hint", "answer", "category", "L2-category", "split")
        hint, answer, category, l2, split = (None if _na(f.get(c)) else str(f[c]) for c in names)
        g, k = index % CIRCULAR_STEP, index // CIRCULAR_STEP
        p = Pass(index, g, k, str(f["question"]), hint, options, answer, category, l2, split, "", False)
        groups.add(p.g_index)
        meta = {**pass_meta(p), "matcher": "none", "lmms_eval_doc_id": rec.doc_id}
        sample = Sample(str(index), (Message("user", rec.input or ""),), p.answer, str(p.g_index), meta)
        items.append(Imported(sample, rec.response, judge))
    if len({it.sample.id for it in items}) != len(items):
        raise UserError(f"{path}: an MMBench index is logged twice")
    hidden = all(it.sample.target is None for it in items)
    info = {
        "source": "lmms-eval",
        "version": f"lmms-lab/MMBench en, as logged by lmms-eval ({lmms_task or 'task name unknown'})",
        "prompt": "lmms-eval",
        "matcher": "none",
        "answers": "hidden" if hidden else "given",
    }
    return items, info, {"questions": len(groups), "passes": len(items)}
