"""`evalkit import --task gqa` of LLaVA's GQA outputs: the answer file its loader writes (`merge.jsonl`: one
`{"question_id", "prompt", "text"}` a line) or the predictions file `convert_gqa_for_eval.py` makes of it
(`testdev_balanced_predictions.json`: `[{"questionId", "prediction"}]`), paired by question id with
`testdev_balanced_questions.json` as GQA's `eval.py` pairs them; and its inverse, a run's answers written as
the answer file (`write_answers`). A converted prediction is read by the same rule again, which changes
only one that ends in whitespace after a period (from an answer such as "x. ."), not a case LLaVA's
stripped answers make otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.task import Imported
from evalkit.tasks.gqa.data import data_label, read_questions
from evalkit.tasks.gqa.protocol import PROMPT_SUFFIX
from evalkit.types import Message, Sample, UserError
from evalkit.util.datafiles import (
    mark_partial,
    read_json,
    read_jsonl,
    read_text,
    require_fields,
    sha256_file,
    write_jsonl,
)


def sample_of(record: dict[str, Any], image: str, prompt: str | None = None) -> Sample:
    """The sample of a question record (the run's and the import's alike), asked with the official prompt
    or `prompt` (another harness's)."""
    text = record["question"] + PROMPT_SUFFIX if prompt is None else prompt
    return Sample(
        id=record["question_id"],
        messages=(Message("user", text, (image,)),),
        target=record["answer"],
        cluster=record["image_id"],
        meta={
            "question_id": record["question_id"],
            "image_id": record["image_id"],
            "structural": record["structural"],
            "semantic": record["semantic"],
        },
    )


def read_predictions(path: Path) -> list[tuple[str, str]]:
    """(question id, answer text) of either LLaVA file, in file order."""
    if read_text(path).lstrip().startswith("["):
        rows = read_json(path, list)
        for i, row in enumerate(rows, 1):
            require_fields(path, i, row, {"questionId": (str, int), "prediction": str})
        return [(str(r["questionId"]), r["prediction"]) for r in rows]
    rows = read_jsonl(path)
    for i, row in enumerate(rows, 1):
        require_fields(path, i, row, {"question_id": (str, int), "text": str})
    return [(str(r["question_id"]), r["text"]) for r in rows]


def import_answers(
    answers: Path, questions: Path | None, data_dir: Path | None, judgments: list[Path]
) -> tuple[list[Imported], dict[str, Any]]:
    if judgments:
        raise UserError("gqa is scored by rule; --judgments does not apply")
    if questions is not None:
        raise UserError("gqa pairs answers by question id; --questions does not apply (pass --data-dir)")
    if data_dir is None:
        raise UserError(
            "gqa import needs --data-dir DIR holding testdev_balanced_questions.json (the answers)"
        )
    records, path = read_questions(Path(data_dir))
    by_id = {r["question_id"]: r for r in records}
    pairs, seen = [], set()
    for i, (qid, text) in enumerate(read_predictions(Path(answers)), 1):
        if qid not in by_id:
            raise UserError(
                f"{answers}: answer {i}: question id {qid!r} is not a balanced question of {path}"
            )
        if qid in seen:
            raise UserError(f"{answers}: answer {i}: question id {qid!r} answered twice")
        seen.add(qid)
        record = by_id[qid]
        pairs.append(Imported(sample_of(record, f"{record['image_id']}.jpg"), text))
    info = {
        "source": str(data_dir),
        "version": data_label(Path(data_dir), len(records)),
        "files": {path.name: sha256_file(path)},
        "inputs": {Path(answers).name: sha256_file(Path(answers))},
    }
    return pairs, mark_partial(info, len(pairs), len(records), "questions")


def write_answers(rows: list[dict[str, Any]], folder: Path) -> dict[str, Path]:
    """A run's answers as LLaVA's answer file (`question_id`, `prompt`, `text`), in the run's order;
    `--data-dir` is the folder of the question file the run read."""
    answers = [
        {"question_id": r["meta"]["question_id"], "prompt": r["prompt"], "text": r["response"]}
        for r in rows
        if r.get("error") is None
    ]
    return {"answers": write_jsonl(folder / "answers.jsonl", answers)}
