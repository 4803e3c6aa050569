"""A run's answers (and judge outputs) written back in each benchmark's official files, the inverse of the
task's `import_answers`: `WRITERS[task](rows, folder)` writes them under `folder` from a run's stored rows and
returns the keyword arguments of `evalkit.interop.importer.import_answers` (answers, questions, data_dir,
judgments). The data folder is the one the run read, found from its rows (image paths, meta)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Rows = list[dict[str, Any]]


def _jsonl(path: Path, records) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _json(path: Path, doc) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _data_dir(rows: Rows) -> Path:
    """The toy data folder a run read: its images are in DATA_DIR/images/."""
    return Path(rows[0]["images"][0]).parents[1]


def _ok(rows: Rows) -> Rows:
    return [r for r in rows if r.get("error") is None]


def pope(rows: Rows, folder: Path) -> dict:
    """POPE's answer file (question_id, text) and question file (question_id, category = split), in the
    label files' order, as the official script pairs them."""
    rows = _ok(rows)
    questions = [{"question_id": r["id"], "category": r["meta"]["split"]} for r in rows]
    answers = [{"question_id": r["id"], "text": r["response"]} for r in rows]
    return {
        "answers": _jsonl(folder / "answers.jsonl", answers),
        "questions": _jsonl(folder / "questions.jsonl", questions),
        "data_dir": _data_dir(rows),
    }


def amber(rows: Rows, folder: Path) -> dict:
    """AMBER's responses file: `[{"id": int, "response": str}]`."""
    rows = _ok(rows)
    answers = [{"id": int(r["id"]), "response": r["response"]} for r in rows]
    return {"answers": _json(folder / "answers.json", answers), "data_dir": _data_dir(rows)}


def objhal(rows: Rows, folder: Path) -> dict:
    """Object HalBench's answer lines (question_id, image_id, prompt, text); the data folder holds the
    synonyms file a run names in its rows."""
    rows = _ok(rows)
    answers = [
        {"question_id": k, "image_id": r["meta"]["image_id"], "prompt": r["prompt"], "text": r["response"]}
        for k, r in enumerate(rows)
    ]
    data_dir = Path(rows[0]["meta"]["synonyms"]).parent
    return {"answers": _jsonl(folder / "answers.jsonl", answers), "data_dir": data_dir}


def mmvet(rows: Rows, folder: Path) -> dict:
    """MM-Vet's answers (question_id = index into mm-vet.json) and the grader's grade file
    (`{key: {"score": [...], "content": [...], "model": [...]}}`, one entry per grading run)."""
    rows = _ok(rows)
    data_dir = _data_dir(rows)
    keys = list(json.loads((data_dir / "mm-vet.json").read_text()))
    answers = [{"question_id": keys.index(r["id"]), "text": r["response"]} for r in rows]
    grades = {}
    for r in rows:
        outputs = r["judge"]["outputs"]
        grades[r["id"]] = {
            "score": r["judge_scores"],
            "content": outputs,
            "model": ["gpt-4"] * len(outputs),
        }
    return {
        "answers": _jsonl(folder / "answers.jsonl", answers),
        "questions": data_dir / "mm-vet.json",
        "judgments": [_json(folder / "grades.json", grades)],
    }


def llava_bench(rows: Rows, folder: Path, prefix: str = "llava_bench_") -> dict:
    """LLaVA-Bench's answers (question_id, text) and review lines (question_id, category, tuple), one review
    file per judge run. In-the-Wild's reviews name the category "llava_bench_CATEGORY", COCO's "CATEGORY"."""
    rows = _ok(rows)
    answers = [{"question_id": r["meta"]["question_id"], "text": r["response"]} for r in rows]
    n_runs = len(rows[0]["judge"]["outputs"])
    reviews = [
        _jsonl(
            folder / f"reviews-{k}.jsonl",
            [
                {
                    "question_id": r["meta"]["question_id"],
                    "category": prefix + r["meta"]["category"],
                    "content": r["judge"]["outputs"][k],
                    "tuple": r["judge"]["official_scores"][k],
                }
                for r in rows
            ],
        )
        for k in range(n_runs)
    ]
    return {
        "answers": _jsonl(folder / "answers.jsonl", answers),
        "data_dir": _data_dir(rows),
        "judgments": reviews,
    }


def llava_bench_coco(rows: Rows, folder: Path) -> dict:
    return llava_bench(rows, folder, prefix="")


def mmhal(rows: Rows, folder: Path) -> dict:
    """MMHal's response template with `model_answer` filled in, and the GPT-4 review file (one chat
    completion per record)."""
    rows = _ok(rows)
    template = json.loads((_data_dir(rows) / "response_template.json").read_text())
    by_index = {r["meta"]["index"]: r for r in rows}
    records = [
        {**rec, "model_answer": by_index[i]["response"]} for i, rec in enumerate(template) if i in by_index
    ]
    reviews = [
        {
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": by_index[i]["judge"]["outputs"][0]}}
            ]
        }
        for i in range(len(template))
        if i in by_index
    ]
    return {
        "answers": _json(folder / "answered.json", records),
        "judgments": [_json(folder / "evaluation.json", reviews)],
    }


def mt_bench(rows: Rows, folder: Path) -> dict:
    """FastChat's answer file (`model_answer/MODEL.jsonl`) and single-grading judgment file."""
    rows = _ok(rows)
    model = "m"
    answers = [
        {
            "question_id": r["meta"]["question_id"],
            "model_id": model,
            "choices": [{"index": 0, "turns": r["responses"]}],
        }
        for r in rows
    ]
    judgments = []
    for r in rows:
        j = r["judge"]
        for output, turn, prompt in zip(j["outputs"], j["turns"], j["prompts"], strict=True):
            judgments.append(
                {
                    "question_id": r["meta"]["question_id"],
                    "model": model,
                    "judge": ["gpt-4", prompt],
                    "user_prompt": "",
                    "judgment": output,
                    "score": -1,
                    "turn": turn,
                }
            )
    return {
        "answers": _jsonl(folder / f"{model}.jsonl", answers),
        "judgments": [_jsonl(folder / "gpt-4_single.jsonl", judgments)],
    }


def _alpaca_eval(rows: Rows, folder: Path, annotator: str) -> dict:
    """AlpacaEval's model_outputs.json and the annotator's annotations.json (output_1 the reference, output_2
    the model's, the final preference, and the judge's raw completion where the run kept one)."""
    rows = _ok(rows)
    outputs = [{"instruction": r["prompt"], "output": r["response"], "generator": "m"} for r in rows]
    annotations = [
        {
            "instruction": r["prompt"],
            "output_1": r["target"],
            "output_2": r["response"],
            "generator_1": r["meta"]["reference"],
            "generator_2": "m",
            "annotator": annotator,
            "preference": r["preference"],
            "raw_completion": (r["judge"]["outputs"] or [None])[0],
        }
        for r in rows
    ]
    return {
        "answers": _json(folder / "model_outputs.json", outputs),
        "judgments": [_json(folder / "annotations.json", annotations)],
    }


def alpaca_eval(rows: Rows, folder: Path) -> dict:
    return _alpaca_eval(rows, folder, "weighted_alpaca_eval_gpt4_turbo")


def alpaca_eval_v1(rows: Rows, folder: Path) -> dict:
    return _alpaca_eval(rows, folder, "alpaca_eval_gpt4")


WRITERS: dict[str, Callable[[Rows, Path], dict]] = {
    "pope": pope,
    "amber": amber,
    "objhal": objhal,
    "mmvet": mmvet,
    "llava_bench": llava_bench,
    "llava_bench_coco": llava_bench_coco,
    "mmhal": mmhal,
    "mt_bench": mt_bench,
    "alpaca_eval": alpaca_eval,
    "alpaca_eval_v1": alpaca_eval_v1,
}
