"""`evalkit import --task objhal`: score an official answer file.

`--answers` is the model's answer file as RLHF-V's inference writes it (JSON lines with `image_id`, `prompt`
or `question`, and `text` or `answer`; without `image_id`, `--questions` gives the question file whose
records are paired with the answers in order, as the official `--org_folder`). `--data-dir` holds the
synonym list and the COCO annotations (as for `run`). With no `--judgments` the answers are matched with the
classic word rules (the official script without `--use_gpt`); with one, the official review file
`hall_*.json` that `eval_gpt_obj_halbench.py --use_gpt` wrote, whose sentences carry the objects the LLM
extraction gave (`words`); they are paired with the answers by image id and answer text (the script writes
them in completion order).

`write_answers` is the inverse for a run with the word rules: its answers written as that answer file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.task import Imported
from evalkit.tasks.objhal.data import (
    cached_ground_truth,
    find_coco,
    find_questions,
    find_synonyms,
    read_vocabulary,
)
from evalkit.tasks.objhal.nouns import resolve
from evalkit.tasks.objhal.protocol import JUDGE_MODEL, clean_answer
from evalkit.types import Message, Sample, UserError
from evalkit.util.datafiles import mark_partial, read_json, read_jsonl, sha256_file, toy_label, write_jsonl

#: questions of the official set (obj_halbench_300_with_image.jsonl)
OFFICIAL_QUESTIONS = 300


def _text(path: Path, i: int, row: dict[str, Any], names: tuple[str, str]) -> str:
    for name in names:
        if isinstance(row.get(name), str):
            return row[name]
    raise UserError(f"{path}:{i}: expected '{names[0]}' or '{names[1]}'")


def _answers(answers: Path, questions: Path | None) -> list[tuple[int, str, str]]:
    """(image id, question, answer as the official loader cleans it) per answer line."""
    rows = read_jsonl(answers)
    if not rows:
        raise UserError(f"{answers}: no answers")
    ids: list[Any] = [r.get("image_id") for r in rows]
    if any(i is None for i in ids):
        if questions is None:
            raise UserError(f"{answers}: answers without 'image_id' need --questions (the question file)")
        qrows = read_jsonl(questions)
        if len(qrows) < len(rows):
            raise UserError(f"{questions}: {len(qrows)} questions for {len(rows)} answers (paired in order)")
        ids = [q.get("image_id") for q in qrows[: len(rows)]]
    out = []
    for i, (row, image_id) in enumerate(zip(rows, ids, strict=True), 1):
        try:
            image = int(image_id)
        except (TypeError, ValueError):
            raise UserError(f"{answers}:{i}: image_id {image_id!r} is not an integer") from None
        question = _text(answers, i, row, ("prompt", "question"))
        out.append((image, question, clean_answer(_text(answers, i, row, ("text", "answer")))))
    return out


def _review(path: Path) -> tuple[dict[tuple[int, str], list[Any]], dict[str, Any]]:
    data = read_json(path, dict)
    sentences = data.get("sentences")
    if not isinstance(sentences, list):
        raise UserError(f"{path}: not an eval_gpt_obj_halbench.py review file (no 'sentences' list)")
    words = {}
    for k, s in enumerate(sentences):
        if not isinstance(s, dict) or not isinstance(s.get("words"), list) or "caption" not in s:
            raise UserError(f"{path}: sentence {k} lacks 'image_id', 'caption' or its 'words' list")
        try:
            words[(int(s["image_id"]), str(s["caption"]))] = s["words"]
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{path}: sentence {k}: 'image_id' must be an integer") from None
    overall = data.get("overall_metrics")
    return words, overall if isinstance(overall, dict) else {}


def import_answers(
    answers: Path, questions: Path | None, data_dir: Path | None, judgments: list[Path]
) -> tuple[list[Imported], dict[str, Any]]:
    if data_dir is None:
        raise UserError("objhal import needs --data-dir with synonyms_refine.txt and the COCO annotations")
    if len(judgments) > 1:
        raise UserError("objhal import takes at most one --judgments file (the hall_*.json review file)")
    items = _answers(answers, questions)
    synonyms, coco = find_synonyms(data_dir, {}), find_coco(data_dir, {})
    vocab = read_vocabulary(synonyms)
    nlp = resolve("auto").with_lexicon(vocab.lexicon())
    gt, digests = cached_ground_truth({i for i, _, _ in items}, coco, synonyms, vocab, nlp)
    mode = "llm" if judgments else "words"
    meta = {"extraction": mode, "nlp": nlp.name, "synonyms": str(synonyms.resolve())}
    meta["synonyms_sha256"] = digests[synonyms.name]
    review, overall = _review(judgments[0]) if judgments else ({}, {})
    fingerprint = (
        {"model": JUDGE_MODEL, "source": "eval_gpt_obj_halbench.py review file"} if judgments else {}
    )
    out = []
    for k, (image_id, question, answer) in enumerate(items):
        sample = Sample(
            id=str(k),
            messages=(Message("user", question),),
            target=sorted(gt[image_id]),
            cluster=str(image_id),
            meta={"image_id": image_id, **meta},
        )
        judge: dict[str, Any] = {"fingerprint": fingerprint, "extraction": mode, "outputs": []}
        if judgments:
            found = review.get((image_id, answer))
            if found is None:
                raise UserError(
                    f"{judgments[0]}: no sentence for image {image_id} with answer {answer[:60]!r}"
                )
            judge["refined"] = [found]
        out.append(Imported(sample, answer, judge))
    # the benchmark's size: its question file when the data folder has it, else the official 300
    try:
        question_file: Path | None = find_questions(data_dir, {})
    except UserError:
        question_file = None
    total = len(read_jsonl(question_file)) if question_file is not None else OFFICIAL_QUESTIONS
    label = toy_label(question_file.parent) if question_file is not None else None
    info = {
        "source": "import",
        "version": label or f"Object HalBench ({total} questions)",
        "extraction": mode,
        "nlp": nlp.name,
        "files": {**digests, **({question_file.name: sha256_file(question_file)} if question_file else {})},
        "inputs": {p.name: sha256_file(p) for p in [answers, *judgments]},
    }
    mark_partial(info, len(items), total, "questions")
    if overall:
        info["official_overall_metrics"] = {k: v for k, v in overall.items() if isinstance(v, int | float)}
    return out, info


def write_answers(rows: list[dict[str, Any]], folder: Path) -> dict[str, Path]:
    """A run's answers as RLHF-V's answer lines (`question_id`, `image_id`, `prompt`, `text`); `--data-dir`
    is the folder with the synonym list and COCO annotations the run read. Only a run with the word rules:
    the review file of the LLM extraction (`hall_*.json`) is not written, and the answers alone would be
    scored by the rules."""
    rows = [r for r in rows if r.get("error") is None]  # a failed request has no answer
    modes = sorted({r["meta"].get("extraction", "llm") for r in rows})
    if modes != ["words"]:
        raise UserError(
            f"objhal: only a run with extraction=words is written as official files (this one: {modes}); "
            "the LLM extraction's review file (hall_*.json) is not written"
        )
    answers = [
        {"question_id": k, "image_id": r["meta"]["image_id"], "prompt": r["prompt"], "text": r["response"]}
        for k, r in enumerate(rows)
    ]
    return {"answers": write_jsonl(folder / "answers.jsonl", answers)}
