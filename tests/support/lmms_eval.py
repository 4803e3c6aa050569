"""lmms-eval sample logs built by hand, shared by the lmms-eval import tests and the generated-input
import tests."""

import hashlib
import json


def mmbench_records():
    """Two questions in lmms-eval's mmbench_en_dev format, each asked in every circular rotation (pass k
    shows the options shifted k places and has index g + k·1e6). Question 7 (right: "dog") is answered
    right in every pass; question 9 (right: "red") is wrong in its second pass."""
    questions = [
        (7, "What is shown?", None, ["cat", "dog", "bird"], ["B", "The answer is A", "C"]),
        (9, "Which color?", "Look closely.", ["red", "blue"], ["A", "A"]),
    ]
    records, doc_id = [], 0
    for g, question, hint, options, answers in questions:
        right = options[1] if g == 7 else options[0]
        for k in range(len(options)):
            rotated = options[k:] + options[:k]
            letter = "ABCD"[rotated.index(right)]
            fields = {
                "index": g + k * 1_000_000,
                "question": question,
                "answer": letter,
                "hint": hint or "nan",
            }
            fields.update(
                prediction=answers[k], source="x", split="dev", category="cat1", **{"L2-category": "l2"}
            )
            fields.update({c: (rotated[i] if i < len(options) else "nan") for i, c in enumerate("ABCDE")})
            rec = {
                "doc_id": doc_id,
                "target": letter,
                "input": f"{question} ...",
                "filtered_resps": [answers[k]],
            }
            rec.update(
                gpt_eval_score=fields, submission=fields, doc_hash="h", prompt_hash="p", target_hash="t"
            )
            records.append(rec)
            doc_id += 1
    return records


POPE_SUFFIX = "\nAnswer the question using a single word or phrase."


def _sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def pope_record(doc_id, row, text):
    """One POPE record as lmms-eval's tracker writes it (`pope_process_results`' five objects; `doc`,
    `arguments` and `resps` dropped; `input` added last), for a row {question_id, text, label} of an
    official POPE file answered `text`."""
    pred = text.lower().strip()
    rec = {
        "doc_id": doc_id,
        "target": row["label"],
        "filtered_resps": [text],
        "doc_hash": _sha(row["text"]),
        "prompt_hash": _sha(row["text"] + POPE_SUFFIX),
        "target_hash": _sha(row["label"]),
    }
    metric = {
        "question_id": str(row["question_id"]),
        "score": float(pred == row["label"]),
        "prediction": pred,
        "ground_truth": row["label"],
    }
    for name in ("accuracy", "precision", "recall", "f1_score", "yes_ratio"):
        rec[f"pope_{name}"] = dict(metric)
    rec["input"] = row["text"] + POPE_SUFFIX
    return rec


def write_lmms_run(folder, logs, *, date="20260101_120000", model="llava_hf", model_args="pretrained=m"):
    """One lmms-eval run as its tracker lays it out: `<folder>/<date>_samples_<task>.jsonl` per task of
    `logs` ({task: records}) and `<date>_results.json` with the run's config. Returns the samples paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for task, records in logs.items():
        path = folder / f"{date}_samples_{task}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        paths.append(path)
    config = {"model": model, "model_args": model_args, "batch_size": "1"}
    results = {"results": {task: {"alias": task} for task in logs}, "config": config}
    (folder / f"{date}_results.json").write_text(json.dumps(results, indent=2))
    return paths
