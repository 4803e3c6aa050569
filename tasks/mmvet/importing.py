"""`evalkit import --task mmvet` of official files: the answers (submission JSON or LLaVA's JSONL), the
official grade file (`*-grade-Nruns.json`) and, for the capability tables, `mm-vet.json`; and its inverse, a
run's answers and grades written as those files (`write_answers`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.task import Imported
from evalkit.tasks.mmvet.data import METADATA, OFFICIAL_ITEMS, read_answers, read_grades, read_metadata
from evalkit.tasks.mmvet.protocol import JUDGE_MODEL
from evalkit.types import Message, Sample, UserError
from evalkit.util.datafiles import mark_partial, sha256_file, toy_label, write_json


def import_answers(
    answers: Path, questions: Path | None, data_dir: Path | None, judgments: list[Path]
) -> tuple[list[Imported], dict[str, Any]]:
    """Pair the official answers with the official grade file (one judge record per item, its runs'
    deciding outputs); `questions` (mm-vet.json) adds the capabilities the tables need."""
    if len(judgments) != 1:
        raise UserError("mmvet import needs exactly one --judgments file (the official grade JSON)")
    texts = read_answers(answers)
    grades = read_grades(judgments[0])
    metadata = read_metadata(questions) if questions else None
    missing = [k for k in grades if k not in texts]
    if missing:
        raise UserError(f"{answers}: no answer for {len(missing)} graded items (first: {missing[0]})")
    items = []
    for key, grade in grades.items():
        meta: dict[str, Any] = {"question_id": key}
        if metadata is not None:
            if key not in metadata:
                raise UserError(f"{questions}: item {key} of the grade file is not in the question file")
            meta["capability"] = list(metadata[key]["capability"])
        target = metadata[key].get("answer") if metadata else None
        question = metadata[key].get("question", "") if metadata else ""
        sample = Sample(id=key, messages=(Message("user", question),), target=target, meta=meta)
        judge = {
            "fingerprint": {
                "model": grade.models[0] if grade.models else JUDGE_MODEL,
                "source": "official grades",
            },
            "outputs": list(grade.contents) if grade.contents else [str(s) for s in grade.scores],
            "official_scores": list(grade.scores),
        }
        items.append(Imported(sample, texts[key], judge))
    # the benchmark: the question file when given, else the official set the grade file is of
    n = len(metadata) if metadata is not None else OFFICIAL_ITEMS
    label = toy_label(questions.parent) if questions else None
    info = {
        "source": "import",
        "version": label or ("MM-Vet v1 (218 items)" if n == OFFICIAL_ITEMS else f"unknown ({n} items)"),
        "files": {METADATA: sha256_file(questions)} if questions else {},
        "inputs": {p.name: sha256_file(p) for p in (answers, judgments[0])},
    }
    return items, mark_partial(info, len(items), n)


def write_answers(rows: list[dict[str, Any]], folder: Path) -> dict[str, Any]:
    """A run's answers as the submission JSON (`{"v1_0": answer}`), its judge runs as the grade file
    (`{key: {"score": [...], "content": [...], "model": [...]}}`, one entry per run), and its items as
    `mm-vet.json` (imagename, question, answer, capability; the import reads the capabilities from
    `--questions` only)."""
    rows = [r for r in rows if r.get("error") is None]  # a failed request has no answer
    answers = {r["id"]: r["response"] for r in rows}
    questions = {
        r["id"]: {
            "imagename": r["meta"]["image"],
            "capability": r["meta"]["capability"],
            "question": r["prompt"],
            "answer": r["target"],
        }
        for r in rows
    }
    grades = {}
    for r in rows:
        outputs = r["judge"]["outputs"]
        model = r["judge"].get("fingerprint", {}).get("model", JUDGE_MODEL)
        grades[r["id"]] = {"score": r["judge_scores"], "content": outputs, "model": [model] * len(outputs)}
    return {
        "answers": write_json(folder / "answers.json", answers),
        "questions": write_json(folder / METADATA, questions),
        "judgments": [write_json(folder / "grades.json", grades)],
    }
