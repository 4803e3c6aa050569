"""`evalkit import --task mmhal` of GPT-4 reviews in both official forms (LLaVA-RLHF's evaluation file and
RLHF-V's merged file), on hand-made reviews of the official template (no official reviews are stored):
numbers checked against hand-computed values; `rescore` re-parses the stored reviews to the same metrics."""

import json

import pytest
from support.cli import run_cli

#: Rating given to every record of a type (type = index % 8): 12 records each.
TYPE_RATING = {
    "attribute": 6,
    "adversarial": 5,
    "comparison": 4,
    "counting": 3,
    "relation": 2,
    "environment": 1,
    "holistic": 0,
    "other": 6,
}
#: Reviews the official parser scores 0: two ratings (record 0, an attribute item), none (record 7, other).
UNPARSED = {
    0: "At first I would say Rating: 6, on reflection rating: 2.",
    7: "The response is fine but I forgot the verdict.",
}
# Hand-computed. Without the two unparsed reviews the ratings sum to 12 × (6+5+4+3+2+1+0+6) = 324; the two
# lose 6 each → 312 / 96. Ratings < 3: relation, environment, holistic (36) + the two zeros → 38 / 96.
# Informativeness (s-3 if s>=3 else s)/3 per cycle: 1+2/3+1/3+0+2/3+1/3+0+1 = 4 → 48, minus 2 → 46/96 × 100.
EXPECTED = {
    "score": 3.25,
    "hallucination_rate": 38 / 96,
    "informativeness": 46 / 96 * 100,
    "type/attribute": 66 / 12,  # 5.5
    "type/adversarial": 5.0,
    "type/comparison": 4.0,
    "type/counting": 3.0,
    "type/relation": 2.0,
    "type/environment": 1.0,
    "type/holistic": 0.0,
    "type/other": 66 / 12,  # 5.5
    "unparsed": 2.0,
}


def _review(i, record):
    if i in UNPARSED:
        return UNPARSED[i]
    s = TYPE_RATING[record["question_type"]]
    return f"Explanation: the response is checked against the image contents.\nRating: {s}, see above."


@pytest.fixture
def answered(shared, tmp_path):
    records = json.loads((shared / "mmhal_bench/mmhal-bench_answer_template.json").read_text())
    for i, r in enumerate(records):
        r["model_answer"] = f"model answer {i}"
    path = tmp_path / "answered.json"
    path.write_text(json.dumps(records))
    return path, records


def _evaluation_file(tmp_path, records):
    """LLaVA-RLHF `eval_gpt_mmhal.py --evaluation`: the list of chat-completion responses, in record order."""
    responses = [
        {
            "id": f"chatcmpl-{i}",
            "object": "chat.completion",
            "model": "gpt-4-0314",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": _review(i, r)}}],
        }
        for i, r in enumerate(records)
    ]
    path = tmp_path / "evaluation.json"
    path.write_text(json.dumps(responses))
    return path


def _merged_file(tmp_path, records):
    """RLHF-V `merge_mmhal_review_with_predict.py`: the answered template with each record's gpt4_review."""
    path = tmp_path / "merged.json"
    path.write_text(json.dumps([{**r, "gpt4_review": _review(i, r)} for i, r in enumerate(records)]))
    return path


def _import(tmp_path, answers, *judgments):
    out = tmp_path / "run"
    args = ["import", "--task", "mmhal", "--answers", str(answers), "--output", str(out), "--json"]
    for j in judgments:
        args += ["--judgments", str(j)]
    return out, run_cli(*args)


@pytest.mark.parametrize("form", ["evaluation", "merged"])
def test_mmhal_import_matches_hand_computed_scores(shared, tmp_path, answered, form):
    answers, records = answered
    judgments = (_evaluation_file if form == "evaluation" else _merged_file)(tmp_path, records)
    out, proc = _import(tmp_path, answers, judgments)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)["metrics"]["mmhal"]
    metrics = summary["metrics"]
    assert summary["headline"] == "score" and summary["n_samples"] == 96 and summary["n_errors"] == 0
    assert {k: m["value"] for k, m in metrics.items()} == pytest.approx(EXPECTED)
    assert metrics["score"]["n"] == 96 and metrics["type/attribute"]["n"] == 12
    assert metrics["score"]["ci_low"] <= 3.25 <= metrics["score"]["ci_high"]
    assert metrics["unparsed"]["ci_low"] is None

    rows = [json.loads(line) for line in (out / "samples/mmhal.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [str(i) for i in range(96)]
    assert rows[0]["response"] == "model answer 0" and rows[0]["target"] == records[0]["gt_answer"]
    assert rows[0]["judge"]["outputs"] == [UNPARSED[0]]
    assert rows[0]["rating"] == 0 and rows[0]["ratings_found"] == [2, 6] and rows[0]["unparsed"]
    assert rows[1]["rating"] == 5 and not rows[1]["unparsed"]
    assert rows[1]["meta"]["question_type"] == "adversarial"
    assert rows[1]["judge"]["fingerprint"]["model"] == "gpt-4-0314"

    rescored = run_cli("rescore", str(out), "--json")
    assert rescored.returncode == 0, rescored.stderr
    assert json.loads(rescored.stdout)["metrics"]["mmhal"]["metrics"] == metrics


def test_mmhal_import_needs_the_judgments(shared, tmp_path, answered):
    answers, _ = answered
    _, proc = _import(tmp_path, answers)
    assert proc.returncode == 2 and "--judgments" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_mmhal_merged_reviews_must_grade_these_answers(shared, tmp_path, answered):
    answers, records = answered
    other = [{**r, "model_answer": "something else"} if i == 3 else r for i, r in enumerate(records)]
    _, proc = _import(tmp_path, answers, _merged_file(tmp_path, other))
    assert proc.returncode == 2 and "differ" in proc.stderr and "Traceback" not in proc.stderr


def test_mmhal_import_rejects_the_blank_template(shared, tmp_path, answered):
    _, records = answered
    blank = tmp_path / "blank.json"
    blank.write_text(json.dumps([{**r, "model_answer": ""} for r in records]))
    _, proc = _import(tmp_path, blank, _evaluation_file(tmp_path, records))
    assert proc.returncode == 2 and "model_answer" in proc.stderr and "Traceback" not in proc.stderr
