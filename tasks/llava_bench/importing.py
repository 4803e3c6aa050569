"""`evalkit import` for LLaVA-Bench: the model's answer file and the official review file of each GPT-4 run
(`eval_gpt_review_bench.py` / `eval_gpt_review_visual.py` output), stored with the judge record that
`evalkit run` writes, so both are scored by the same `score_row`; and its inverse, a run's answers and
reviews written as those files (`write_answers`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.task import Imported
from evalkit.tasks.llava_bench.data import read_answers, read_questions, read_reviews
from evalkit.tasks.llava_bench.protocol import JUDGE_MODEL, Review, rule_key
from evalkit.types import Message, Sample, UserError
from evalkit.util.datafiles import mark_partial, sha256_file, toy_label, write_jsonl

if TYPE_CHECKING:
    from evalkit.tasks.llava_bench import LlavaBench

#: questions of the official sets (in the wild: 60 on 24 images; COCO: 90), by `in_the_wild`
OFFICIAL_QUESTIONS = {True: 60, False: 90}


def _category(task: LlavaBench, review_category: str, path: Path, qid: int) -> str:
    """The short category (conv / detail / complex) of a review's category key."""
    prefix = rule_key("", in_the_wild=True)
    if review_category.startswith(prefix) != task.in_the_wild:
        other = "llava_bench_coco" if task.in_the_wild else "llava_bench"
        raise UserError(
            f"{path}: question {qid} is reviewed under {review_category!r}, which is a rule of the other "
            f"benchmark; use --task {other}"
        )
    return review_category.removeprefix(prefix) if task.in_the_wild else review_category


def import_reviews(
    task: LlavaBench, answers: Path, questions: Path | None, data_dir: Path | None, judgments: list[Path]
) -> tuple[list[Imported], dict[str, Any]]:
    if not judgments:
        raise UserError(
            f"{task.name} import needs at least one --judgments file: the official review JSONL of each "
            "GPT-4 run (e.g. reviews/MODEL-eval1.jsonl); repeat --judgments for several runs"
        )
    if questions is None and data_dir is not None:
        questions = data_dir / task.question_file
        if not questions.is_file():
            raise UserError(f"--data-dir {data_dir}: no {task.question_file} there; pass --questions")
    texts: dict[int, dict[str, Any]] = {}
    for row in read_answers(answers):
        if row["question_id"] in texts:
            raise UserError(f"{answers}: question {row['question_id']} is answered twice")
        texts[row["question_id"]] = row
    by_qid: dict[int, dict[str, Any]] | None = None
    if questions is not None:
        by_qid = {}
        for q in read_questions(questions):
            if q["question_id"] in by_qid:
                raise UserError(f"{questions}: question {q['question_id']} appears twice")
            by_qid[q["question_id"]] = q
    runs: list[dict[int, Review]] = []
    for path in judgments:
        if not path.is_file():
            raise UserError(f"--judgments {path}: file not found")
        run: dict[int, Review] = {}
        for r in read_reviews(path):
            if r.question_id in run:
                raise UserError(f"{path}: question {r.question_id} is reviewed twice")
            run[r.question_id] = r
        if not run:
            raise UserError(f"{path}: no reviews")
        if runs and set(run) != set(runs[0]):
            first = sorted(set(run) ^ set(runs[0]))[0]
            raise UserError(
                f"{path} and {judgments[0]} review different questions (first difference: question "
                f"{first}); every judge run must review the same questions"
            )
        runs.append(run)
    missing = [qid for qid in runs[0] if qid not in texts]
    if missing:
        raise UserError(f"{answers}: no answer for {len(missing)} reviewed questions (first: {missing[0]})")

    items = []
    for qid in runs[0]:
        answer = texts[qid]
        reviews = [run[qid] for run in runs]
        for path, r in zip(judgments, reviews, strict=True):
            if r.answer2_id is not None and answer.get("answer_id") not in (None, r.answer2_id):
                raise UserError(
                    f"{path}: the review of question {qid} judges answer {r.answer2_id!r}, but {answers} "
                    f"holds answer {answer['answer_id']!r}; the reviews belong to another answer file"
                )
        named = [r.category for r in reviews if r.category is not None]
        if len(set(named)) > 1:
            raise UserError(f"the --judgments files disagree on the category of question {qid}: {named}")
        reviewed_as = named[0] if named else None
        image = None
        if by_qid is not None:
            if qid not in by_qid:
                raise UserError(f"{questions}: no question {qid} (reviewed in {judgments[0]})")
            q = by_qid[qid]
            key = rule_key(q["category"], in_the_wild=task.in_the_wild)
            if reviewed_as is not None and reviewed_as != key:
                raise UserError(
                    f"{judgments[0]}: question {qid} is reviewed under {reviewed_as!r}, but {questions} "
                    f"gives category {q['category']!r} (rule {key!r}); is it the question file of "
                    f"{task.name}?"
                )
            category, image, text = q["category"], q["image"], q["text"]
        else:
            if reviewed_as is None:
                raise UserError(
                    f"{judgments[0]}: the reviews carry no 'category'; pass --questions "
                    f"({task.question_file}) for the categories"
                )
            category, text = _category(task, reviewed_as, judgments[0], qid), str(answer.get("prompt", ""))
        meta: dict[str, Any] = {"question_id": qid, "category": category}
        if image is not None:
            meta["image"] = image
        sample = Sample(id=str(qid), messages=(Message("user", text),), cluster=image, meta=meta)
        models = [r.model for r in reviews]
        fingerprint: dict[str, Any] = {
            "model": next((m for m in models if m), JUDGE_MODEL),
            "source": "official reviews",
        }
        if len(set(models)) > 1:
            fingerprint["models"] = models
        judge = {
            "fingerprint": fingerprint,
            # a review file without the review text keeps its recorded pair, which parses back to itself
            "outputs": [r.content or f"{r.scores[0]} {r.scores[1]}" for r in reviews],
            "official_scores": [list(r.scores) for r in reviews],
        }
        items.append(Imported(sample, answer["text"], judge))
    inputs: dict[str, str] = {}
    for k, p in enumerate([answers, *judgments], 1):  # keyed by name, never by folder
        inputs[p.name if p.name not in inputs else f"{p.name} ({k})"] = sha256_file(p)
    n = len(by_qid) if by_qid is not None else OFFICIAL_QUESTIONS[task.in_the_wild]
    label = toy_label(questions.parent) if questions else None
    info = {
        "source": "import",
        "version": label or ("official" if n == OFFICIAL_QUESTIONS[task.in_the_wild] else f"{n} questions"),
        "files": {task.question_file: sha256_file(questions)} if questions else {},
        "inputs": inputs,
        "judge_runs": len(judgments),
    }
    return items, mark_partial(info, len(items), n, "questions")


def write_answers(task: LlavaBench, rows: list[dict[str, Any]], folder: Path) -> dict[str, Any]:
    """A run's answers as the answer file (`question_id`, `text`) and each judge run as a review file
    (`question_id`, `category` = the rule key, `content`, `tuple`); `--data-dir` is the folder with the
    question file the run read."""
    rows = [r for r in rows if r.get("error") is None]  # a failed request has no answer
    answers = [{"question_id": r["meta"]["question_id"], "text": r["response"]} for r in rows]
    reviews = [
        write_jsonl(
            folder / f"reviews-{k}.jsonl",
            [
                {
                    "question_id": r["meta"]["question_id"],
                    "category": rule_key(r["meta"]["category"], in_the_wild=task.in_the_wild),
                    "content": r["judge"]["outputs"][k],
                    "tuple": r["judge"]["official_scores"][k],
                }
                for r in rows
            ],
        )
        for k in range(len(rows[0]["judge"]["outputs"]) if rows else 0)
    ]
    return {"answers": write_jsonl(folder / "answers.jsonl", answers), "judgments": reviews}
