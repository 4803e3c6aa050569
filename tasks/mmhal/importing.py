"""`evalkit import --task mmhal`: the answered template (LLaVA-RLHF `model_vqa_mmhal.py` output) with the
official reviews, either RLHF-V's merged judged file or LLaVA-RLHF's `eval_gpt_mmhal.py --evaluation` file,
stored with the judge record `evalkit run` writes, so both are scored by the same `score_row`; and its
inverse, a run's answers and reviews written as LLaVA-RLHF's two files (`write_answers`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.task import Imported
from evalkit.tasks.mmhal.data import is_template, load_judged, load_template, read_json_list
from evalkit.tasks.mmhal.protocol import JUDGE_MODEL, N_ITEMS, item_meta, user_message
from evalkit.types import Sample, UserError
from evalkit.util.datafiles import mark_partial, sha256_file, write_json


def import_judged(answers: Path, judgments: list[Path]) -> tuple[list[Imported], dict[str, Any]]:
    """One imported row per template record: the model's answer and the official review (see `MMHal`)."""
    if len(judgments) != 1:
        raise UserError(
            "mmhal import needs exactly one --judgments file: RLHF-V's merged review file (records with "
            "gpt4_review) or LLaVA-RLHF's eval_gpt_mmhal.py --evaluation file"
        )
    path = judgments[0]
    answered = load_template(answers)
    if all(not it.model_answer for it in answered):
        raise UserError(f"{answers}: every model_answer is empty; pass the template with the model's answers")
    raw = read_json_list(path)
    merged = is_template(raw)
    if merged:
        judged = load_judged(path)  # raises when a record lacks its gpt4_review
        differ = [j.item.index for j, it in zip(judged, answered, strict=True) if j.item != it]
        if differ:
            raise UserError(
                f"{path}: the merged file's records differ from --answers {answers} at {len(differ)} "
                f"records (first: {differ[0]}); the reviews must grade these answers"
            )
    else:
        judged = load_judged(answers, path)
    # chat-completion responses name the judge model; the merged file does not (official: gpt-4-0314)
    models = set() if merged else {str(r.get("model")) for r in raw if isinstance(r, dict)}
    judge_model = models.pop() if len(models) == 1 and models != {"None"} else JUDGE_MODEL
    source = "RLHF-V merged review file" if merged else "LLaVA-RLHF eval_gpt_mmhal.py --evaluation file"
    fingerprint = {"model": judge_model, "prompt": "eval_gpt_mmhal.py template", "source": source}
    items = []
    for j in judged:
        it = j.item
        sample = Sample(
            id=str(it.index),
            messages=(user_message(it, it.image_src),),
            target=it.gt_answer,
            cluster=it.image_id,
            meta=item_meta(it),
        )
        judge = {"fingerprint": fingerprint, "outputs": [j.review]}
        items.append(Imported(sample, it.model_answer, judge))
    info = {
        "source": "import",
        "version": f"MMHal-Bench ({N_ITEMS} records)",
        "inputs": {p.name: sha256_file(p) for p in (answers, path)},
    }
    return items, mark_partial(info, len(items), N_ITEMS, "records")


def write_answers(rows: list[dict[str, Any]], folder: Path) -> dict[str, Any]:
    """A run's answers as the answered template (its records rebuilt from the rows, in template order,
    `model_answer` filled in; `image_src` is the image the run showed, a row keeping no URL) and its
    reviews as the `eval_gpt_mmhal.py --evaluation` file (one chat completion per record). The import
    needs all {N_ITEMS} records."""
    rows = [r for r in rows if r.get("error") is None]  # a failed request has no answer
    rows = sorted(rows, key=lambda r: r["meta"]["index"])
    records = [
        {
            "question_type": r["meta"]["question_type"],
            "question_topic": r["meta"]["question_topic"],
            "image_id": r["meta"]["image_id"],
            "image_src": r["images"][0] if r["images"] else "",
            "image_content": r["meta"]["image_content"],
            "question": r["prompt"],
            "gt_answer": r["target"],
            "model_answer": r["response"],
        }
        for r in rows
    ]
    reviews = [
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": r["judge"]["outputs"][0]}}]}
        for r in rows
    ]
    return {
        "answers": write_json(folder / "answered.json", records),
        "judgments": [write_json(folder / "evaluation.json", reviews)],
    }
