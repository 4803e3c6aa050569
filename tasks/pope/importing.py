"""`evalkit import --task pope` of an official answer file: LLaVA's `eval_pope.py` pairing (answers of
category S, in file order, zipped with coco_pope_S.json); and its inverse, a run's answers written as those
files (`write_answers`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.task import Imported
from evalkit.tasks.pope.data import data_label, read_label_files
from evalkit.tasks.pope.protocol import PROMPT_SUFFIX, SPLITS
from evalkit.types import Message, Sample, UserError
from evalkit.util.datafiles import read_jsonl, require_fields, sha256_file, write_jsonl


def import_answers(
    answers: Path, questions: Path | None, data_dir: Path | None, judgments: list[Path]
) -> tuple[list[Imported], dict[str, Any]]:
    """Pair an answer file with the labels as the official script does: answers whose question (by
    `question_id` in the question file) has category S, in file order, zipped with coco_pope_S.json."""
    if judgments:
        raise UserError("pope is scored by rule; --judgments does not apply")
    if questions is None or data_dir is None:
        raise UserError("pope import needs --questions (gives each answer's split) and --data-dir (labels)")
    splits, paths = read_label_files(Path(data_dir))
    qrows = read_jsonl(Path(questions))
    category = {}
    for i, q in enumerate(qrows, 1):
        require_fields(Path(questions), i, q, {"question_id": (int, str), "category": str})
        category[q["question_id"]] = q["category"]
    arows = read_jsonl(Path(answers))
    by_split: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for i, a in enumerate(arows, 1):
        require_fields(Path(answers), i, a, {"question_id": (int, str), "text": str})
        cat = category.get(a["question_id"])
        if cat is None:
            raise UserError(f"{answers}:{i}: question_id {a['question_id']!r} is not in {questions}")
        if cat not in by_split:
            raise UserError(f"{questions}: unknown POPE category {cat!r} (expected one of {SPLITS})")
        by_split[cat].append(a)
    pairs = []
    for split in SPLITS:
        labels, got = splits[split], by_split[split]
        if len(got) != len(labels):
            raise UserError(
                f"{answers}: {len(got)} answers for split {split!r} but {paths[split]} has {len(labels)} "
                "questions; answers are matched to labels by order, so the counts must agree"
            )
        for row, ans in zip(labels, got, strict=True):
            sample = Sample(
                id=f"{split}-{row['question_id']}",
                messages=(Message("user", row["text"] + PROMPT_SUFFIX, (row["image"],)),),
                target=row["label"],
                cluster=row["image"],
                meta={
                    "split": split,
                    "question_id": row["question_id"],
                    "image": row["image"],
                    "answer_question_id": ans["question_id"],
                },
            )
            pairs.append(Imported(sample, ans["text"]))
    counts = tuple(len(splits[s]) for s in SPLITS)
    info = {
        "source": str(data_dir),
        "version": data_label(Path(data_dir), counts),
        "files": {p.name: sha256_file(p) for p in paths.values()},
        "inputs": {p.name: sha256_file(p) for p in (Path(questions), Path(answers))},
    }
    return pairs, info


def write_answers(rows: list[dict[str, Any]], folder: Path) -> dict[str, Path]:
    """A run's answers as LLaVA's answer file (`question_id`, `text`) and question file (`question_id`,
    `category` = the split), in the order of the run's rows, which is the label files' order the official
    script pairs them by; `--data-dir` is the folder of labels the run read."""
    rows = [r for r in rows if r.get("error") is None]  # a failed request has no answer
    questions = [{"question_id": r["id"], "category": r["meta"]["split"]} for r in rows]
    answers = [{"question_id": r["id"], "text": r["response"]} for r in rows]
    return {
        "answers": write_jsonl(folder / "answers.jsonl", answers),
        "questions": write_jsonl(folder / "questions.jsonl", questions),
    }
