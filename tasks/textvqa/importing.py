"""`evalkit import --task textvqa` of LLaVA's answer file (`model_vqa_loader.py`'s JSONL: `question_id`, which
holds the image id in LLaVA's question file, `prompt` and `text`), paired with `TextVQA_0.5.1_val.json` as
`eval_textvqa.py` pairs them: by image id and the lower-cased question read from the prompt; and its
inverse, a run's answers written as that file (`write_answers`).

Where two questions share image and question text, `eval_textvqa.py` scores every such answer against the
last of them; here answers take them in file order (the first answer the first question), so each question
is scored once; such pairs have near-identical human answers.
"""

from __future__ import annotations

from collections import defaultdict, deque
from pathlib import Path
from typing import Any

from evalkit.task import Imported
from evalkit.tasks.textvqa.data import data_label, read_annotations
from evalkit.tasks.textvqa.protocol import OCR_PREFIX, question_from_prompt
from evalkit.types import Message, Sample, UserError
from evalkit.util.datafiles import mark_partial, read_jsonl, require_fields, sha256_file, write_jsonl


def sample_of(record: dict[str, Any], prompt: str, image: str) -> Sample:
    """The sample of an annotation record asked with `prompt` (the run's and the import's alike)."""
    return Sample(
        id=str(record["question_id"]),
        messages=(Message("user", prompt, (image,)),),
        target=record["answers"],
        cluster=record["image_id"],
        meta={
            "question_id": record["question_id"],
            "image_id": record["image_id"],
            "question": record["question"],
            "ocr": OCR_PREFIX in prompt,
        },
    )


def import_answers(
    answers: Path, questions: Path | None, data_dir: Path | None, judgments: list[Path]
) -> tuple[list[Imported], dict[str, Any]]:
    if judgments:
        raise UserError("textvqa is scored by rule; --judgments does not apply")
    if questions is not None:
        raise UserError("textvqa answers carry their prompts; --questions does not apply (pass --data-dir)")
    if data_dir is None:
        raise UserError("textvqa import needs --data-dir DIR holding TextVQA_0.5.1_val.json (the answers)")
    records, path = read_annotations(Path(data_dir))
    pending: dict[tuple[str, str], deque[dict[str, Any]]] = defaultdict(deque)
    for r in records:
        pending[(r["image_id"], r["question"].lower())].append(r)
    pairs = []
    for i, a in enumerate(read_jsonl(Path(answers)), 1):
        require_fields(Path(answers), i, a, {"question_id": (str, int), "prompt": str, "text": str})
        question = question_from_prompt(a["prompt"])
        if question is None:
            raise UserError(
                f"{answers}:{i}: a prompt of {len(a['prompt'].splitlines())} lines; expected LLaVA's "
                "'QUESTION\\n[Reference OCR token: ...\\n]Answer the question using a single word or phrase.'"
            )
        key = (str(a["question_id"]), question)
        if not pending.get(key):
            raise UserError(
                f"{answers}:{i}: no question {question!r} about image {key[0]!r} left in {path} (LLaVA's "
                "question_id is the image id)"
            )
        record = pending[key].popleft()
        sample = sample_of(record, a["prompt"], f"{record['image_id']}.jpg")
        pairs.append(Imported(sample, a["text"]))
    info = {
        "source": str(data_dir),
        "version": data_label(Path(data_dir), len(records)),
        "files": {path.name: sha256_file(path)},
        "inputs": {Path(answers).name: sha256_file(Path(answers))},
    }
    return pairs, mark_partial(info, len(pairs), len(records), "questions")


def write_answers(rows: list[dict[str, Any]], folder: Path) -> dict[str, Path]:
    """A run's answers as LLaVA's answer file (`question_id` = the image id, `prompt`, `text`), in the run's
    order; `--data-dir` is the folder of the annotation file the run read."""
    answers = [
        {"question_id": r["meta"]["image_id"], "prompt": r["prompt"], "text": r["response"]}
        for r in rows
        if r.get("error") is None
    ]
    return {"answers": write_jsonl(folder / "answers.jsonl", answers)}
