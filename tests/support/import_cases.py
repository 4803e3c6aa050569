"""Official answer (and judgment) files for every importer, built small from toy data and hand-made answers:
`BUILDERS[name](root)` writes them under `root` and returns the case `import_case` imports (task, file paths,
and under "damage" the files a damage test may break)."""

import json
import warnings
from pathlib import Path

from evalkit.interop.importer import import_answers
from evalkit.tasks.amber.toy import write_amber
from evalkit.tasks.llava_bench.toy import write_toy
from evalkit.tasks.mmhal.toy import write_toy_mmhal
from evalkit.tasks.pope.toy import write_pope
from support.lmms_eval import mmbench_records as _mmbench_records
from support.objhal import answer_file, make_data

SPLITS = ("random", "popular", "adversarial")
MODEL = "m"


def _jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _pope(root: Path) -> dict:
    data = write_pope(root / "pope", seed=0, n_images=2)
    questions, answers = [], []
    for s in SPLITS:
        for line in (data / f"coco_pope_{s}.json").read_text().splitlines():
            row = json.loads(line)
            qid = f"{s}-{row['question_id']}"
            questions.append({"question_id": qid, "category": s})
            answers.append({"question_id": qid, "text": "Yes" if row["label"] == "yes" else "No"})
    return {
        "task": "pope",
        "answers": _jsonl(root / "answers.jsonl", answers),
        "questions": _jsonl(root / "questions.jsonl", questions),
        "data_dir": data,
        "damage": ["answers", "questions", "data_dir/coco_pope_random.json"],
    }


def _mt_bench(root: Path) -> dict:
    answers = [
        {"question_id": q, "model_id": MODEL, "choices": [{"index": 0, "turns": [f"a{q}.1", f"a{q}.2"]}]}
        for q in (81, 101)
    ]
    judgments = [
        {
            "question_id": q,
            "model": MODEL,
            "judge": ["gpt-4", prompt],
            "user_prompt": "[Instruction] ...",
            "judgment": f"Fine. Rating: [[{score}]]",
            "score": score,
            "turn": turn,
        }
        for q, turn, prompt, score in [
            (81, 1, "single-v1", 8),
            (81, 2, "single-v1-multi-turn", 6),
            (101, 1, "single-math-v1", 3),
            (101, 2, "single-math-v1-multi-turn", 5),
        ]
    ]
    return {
        "task": "mt_bench",
        "answers": _jsonl(root / f"{MODEL}.jsonl", answers),
        "judgments": [_jsonl(root / "gpt-4_single.jsonl", judgments)],
        "damage": ["answers", "judgments"],
    }


def _mmvet(root: Path) -> dict:
    keys = ["v1_0", "v1_1", "v1_2"]
    meta = {
        k: {
            "imagename": f"{k}.png",
            "question": f"q {k}",
            "answer": "a",
            "capability": ["rec", "ocr"][: i + 1],
        }
        for i, k in enumerate(keys)
    }
    grades = {k: {"score": [0.5], "content": ["0.5"], "model": ["gpt-4"]} for k in keys}
    (root / "mm-vet.json").write_text(json.dumps(meta))
    (root / "grades.json").write_text(json.dumps(grades))
    return {
        "task": "mmvet",
        "answers": _jsonl(root / "answers.jsonl", [{"question_id": i, "text": "a"} for i in range(3)]),
        "questions": root / "mm-vet.json",
        "judgments": [root / "grades.json"],
        "damage": ["answers", "questions", "judgments"],
    }


def _mmbench(root: Path) -> dict:
    return {
        "task": "mmbench",
        "answers": _jsonl(root / "mmbench_en_dev_samples.jsonl", _mmbench_records()),
        "damage": ["answers"],
    }


def _objhal(root: Path) -> dict:
    data = make_data(root / "data")
    return {
        "task": "objhal",
        "answers": answer_file(root / "a.jsonl"),
        "data_dir": data,
        "damage": ["answers", "data_dir/obj_halbench_300_with_image.jsonl"],
    }


def _llava_bench(root: Path) -> dict:
    data = write_toy(root / "data")
    questions = [json.loads(line) for line in (data / "questions.jsonl").read_text().splitlines()][:6]
    _jsonl(data / "questions.jsonl", questions)
    answers = [{"question_id": q["question_id"], "text": f"answer {q['question_id']}"} for q in questions]
    reviews = [
        {"question_id": q["question_id"], "category": f"llava_bench_{q['category']}", "tuple": [7, 8]}
        for q in questions
    ]
    return {
        "task": "llava_bench",
        "answers": _jsonl(root / "answers.jsonl", answers),
        "data_dir": data,
        "judgments": [_jsonl(root / "reviews.jsonl", reviews)],
        "damage": ["answers", "judgments", "data_dir/questions.jsonl"],
    }


def _mmhal(root: Path) -> dict:
    data = write_toy_mmhal(root / "data")
    records = json.loads((data / "response_template.json").read_text())
    for i, r in enumerate(records):
        r["model_answer"] = f"model answer {i}"
    (root / "answered.json").write_text(json.dumps(records))
    reviews = [
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": f"Rating: {i % 7}"}}]}
        for i in range(len(records))
    ]
    (root / "evaluation.json").write_text(json.dumps(reviews))
    return {
        "task": "mmhal",
        "answers": root / "answered.json",
        "judgments": [root / "evaluation.json"],
        "damage": ["answers", "judgments"],
    }


def _amber(root: Path) -> dict:
    data = write_amber(root / "data", n_images=6)
    queries = json.loads((data / "query/query_all.json").read_text())
    (root / "answers.json").write_text(
        json.dumps([{"id": q["id"], "response": "Yes" if i % 2 else "a dog"} for i, q in enumerate(queries)])
    )
    return {
        "task": "amber",
        "answers": root / "answers.json",
        "data_dir": data,
        "damage": ["answers", "data_dir/annotations.json", "data_dir/query/query_all.json"],
    }


def _alpaca_eval(root: Path) -> dict:
    instructions = [f"Write line {i}." for i in range(4)]
    outputs = [
        {"instruction": t, "output": f"Line {i}.", "generator": MODEL} for i, t in enumerate(instructions)
    ]
    annotations = [
        {
            "instruction": t,
            "output_1": f"Reference {i}.",
            "output_2": f"Line {i}.",
            "generator_1": "text_davinci_003",
            "generator_2": MODEL,
            "annotator": "alpaca_eval_gpt4",
            "preference": 1 + i % 2,
        }
        for i, t in enumerate(instructions)
    ]
    (root / "model_outputs.json").write_text(json.dumps(outputs))
    (root / "annotations.json").write_text(json.dumps(annotations))
    return {
        "task": "alpaca_eval_v1",
        "answers": root / "model_outputs.json",
        "judgments": [root / "annotations.json"],
        "damage": ["answers", "judgments"],
    }


BUILDERS = {
    "pope": _pope,
    "mt_bench": _mt_bench,
    "mmvet": _mmvet,
    "mmbench": _mmbench,
    "objhal": _objhal,
    "llava_bench": _llava_bench,
    "mmhal": _mmhal,
    "amber": _amber,
    "alpaca_eval": _alpaca_eval,
}


def target_file(case: dict, which: str) -> Path:
    if which == "judgments":
        return case["judgments"][0]
    if which.startswith("data_dir/"):
        return case["data_dir"] / which.split("/", 1)[1]
    return case[which]


def import_case(case: dict, out: Path):
    """`import_answers` on a built case's files."""
    return import_answers(
        case["task"],
        case["answers"],
        out,
        questions=case.get("questions"),
        data_dir=case.get("data_dir"),
        judgments=case.get("judgments"),
    )


def run_import(case: dict, out: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return import_case(case, out)
