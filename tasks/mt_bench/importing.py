"""`evalkit import --task mt_bench`: FastChat's model answers and single-grading judgments as rows of a run,
each keeping the raw judgment text (re-parsed by rescore) beside the score gen_judgment stored; and its
inverse, a run's answers and judgments written as those files (`write_answers`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.task import Imported
from evalkit.tasks.mt_bench.data import (
    QUESTION_FILE,
    answer_model_id,
    judgment_rows,
    load_answers,
    load_questions,
    load_reference_answers,
)
from evalkit.tasks.mt_bench.protocol import JUDGE_MODEL, conversation, needs_reference, parse_rating_status
from evalkit.types import Sample, UserError
from evalkit.util.datafiles import mark_partial, sha256_file, write_jsonl


def import_answers(
    answers: Path, questions: Path | None, judgments: list[Path]
) -> tuple[list[Imported], dict[str, Any]]:
    """Rows of one model from FastChat's answer file and single-grading judgment files (`evalkit import
    --task mt_bench`): the raw judgment texts (re-parsed by rescore), the stored scores beside them."""
    if not judgments:
        raise UserError(
            "mt_bench import needs --judgments: FastChat's single-grading judgment JSONL "
            "(model_judgment/gpt-4_single.jsonl); repeat the flag for several files"
        )
    question_list = load_questions(questions)
    by_id = {q.question_id: q for q in question_list}
    if len(by_id) != len(question_list):
        raise UserError(f"{questions or QUESTION_FILE}: duplicate question_id")
    texts = load_answers(answers)
    rows = [(path, i, row) for path in judgments for i, row in judgment_rows(path)]
    model = _pick_model(answers, sorted({r["model"] for _, _, r in rows}))
    rows = [(p, i, r) for p, i, r in rows if r["model"] == model]
    judge_models = sorted({r["judge"][0] for _, _, r in rows})
    if len(judge_models) != 1:
        raise UserError(f"--judgments mix judge models {judge_models}; import one judge at a time")
    per_question: dict[int, list[dict[str, Any]]] = {}
    for path, i, r in rows:
        q = by_id.get(r["question_id"])
        if q is None:
            raise UserError(f"{path}:{i}: question {r['question_id']} is not in the question file")
        if not 1 <= r["turn"] <= len(q.turns):
            raise UserError(f"{path}:{i}: question {q.question_id} has no turn {r['turn']}")
        turns = texts.get(q.question_id)
        if turns is None or len(turns) < r["turn"]:
            raise UserError(
                f"{answers}: no turn-{r['turn']} answer for judged question {q.question_id} (model {model!r})"
            )
        per_question.setdefault(q.question_id, []).append(r)
    references = load_reference_answers()
    items = []
    for q in question_list:  # question-file order
        judged = per_question.get(q.question_id)
        if not judged:
            continue
        judge = {
            "fingerprint": {
                "model": judge_models[0],
                "prompts": sorted({r["judge"][1] for r in judged}),
                "source": "FastChat single judgments",
            },
            "outputs": [r["judgment"] for r in judged],
            "turns": [r["turn"] for r in judged],
            "prompts": [r["judge"][1] for r in judged],
            "official_scores": [float(r["score"]) for r in judged],
        }
        meta = {
            "question_id": q.question_id,
            "category": q.category,
            "questions": list(q.turns),
            "model": model,
        }
        ref = references.get(q.question_id) if needs_reference(q.category) else None
        sample = Sample(
            id=str(q.question_id),
            messages=conversation(q, 1),
            target=list(ref) if ref is not None else None,
            meta=meta,
        )
        turns = list(texts[q.question_id])
        items.append(Imported(sample, turns[0], judge, responses=turns))
    if not items:
        raise UserError(f"--judgments hold no judgment of model {model!r}")
    question_path = Path(questions) if questions else QUESTION_FILE
    inputs: dict[str, str] = {}
    for k, p in enumerate([answers, *judgments], 1):  # keyed by name, never by folder
        inputs[p.name if p.name not in inputs else f"{p.name} ({k})"] = sha256_file(p)
    info = {
        "source": "import",
        "version": f"MT-Bench ({len(question_list)} questions)",
        "files": {question_path.name: sha256_file(question_path)},
        "inputs": inputs,
        "model": model,
        "judge_model": judge_models[0],
        "n_judgments": len(rows),
        "n_questions_unjudged": len(question_list) - len(items),
    }
    return items, mark_partial(info, len(items), len(question_list), "questions")


def _pick_model(answers: Path, models: list[str]) -> str:
    """The judged model whose answers these are: the only one in the judgment files, else the answer
    file's `model_id` (or its name, `model_answer/<model>.jsonl`)."""
    if len(models) == 1:
        return models[0]
    for name in (answer_model_id(answers), answers.stem):
        if name in models:
            return name
    shown = ", ".join(models[:8]) + (", ..." if len(models) > 8 else "")
    raise UserError(
        f"--judgments grade {len(models)} models ({shown}) and none matches the model_id or file name of "
        f"{answers}; name the answer file <model>.jsonl as FastChat does"
    )


#: the model name `write_answers` gives the answers (a run's rows do not name their model)
WRITTEN_MODEL = "model"


def write_answers(rows: list[dict[str, Any]], folder: Path) -> dict[str, Any]:
    """A run's answers as FastChat's answer file (`model_answer/MODEL.jsonl`: every turn) and its judge
    outputs as the single-grading judgment file (`model_judgment/gpt-4_single.jsonl`: one line per turn and
    judge run, with the score gen_judgment parses from it, -1 when none)."""
    rows = [r for r in rows if r.get("error") is None]  # a failed request has no answer
    answers = [
        {
            "question_id": r["meta"]["question_id"],
            "model_id": WRITTEN_MODEL,
            "choices": [{"index": 0, "turns": r["responses"]}],
        }
        for r in rows
    ]
    judgments = [
        {
            "question_id": r["meta"]["question_id"],
            "model": WRITTEN_MODEL,
            "judge": [JUDGE_MODEL, prompt],
            "user_prompt": "",
            "judgment": output,
            "score": parse_rating_status(output)[0],
            "turn": turn,
        }
        for r in rows
        for output, turn, prompt in zip(
            r["judge"]["outputs"], r["judge"]["turns"], r["judge"]["prompts"], strict=True
        )
    ]
    return {
        "answers": write_jsonl(folder / f"{WRITTEN_MODEL}.jsonl", answers),
        "judgments": [write_jsonl(folder / f"{JUDGE_MODEL}_single.jsonl", judgments)],
    }
