"""`evalkit import --task mt_bench` of FastChat single-grading judgments, on hand-made files in the official
schema (the official gpt-4_single.jsonl is not stored): numbers checked against hand-computed values, and
`rescore` re-parses the stored judgment texts to the same metrics."""

import json

import pytest
from support.cli import run_cli

MODEL = "toy-model"
#: (question_id, category, turn, judge prompt, judgment text, stored score)
JUDGMENTS = [
    (81, "writing", 1, "single-v1", "Vivid and well organised.\n\nRating: [[8]]", 8),
    (81, "writing", 2, "single-v1-multi-turn", "Most sentences start with A. Rating: [[6]]", 6),
    (101, "reasoning", 1, "single-math-v1", "Matches the reference. Rating: [3]", 3),  # backup [x]
    (101, "reasoning", 2, "single-math-v1-multi-turn", "I cannot rate this answer.", -1),  # dropped
    (131, "extraction", 1, "single-v1", "Perfect extraction. Rating: [[10]]", 10),
    (131, "extraction", 2, "single-v1-multi-turn", "Good, one slip. Rating: [[7.5]] (not [[2]])", 7.5),
]
# Hand-computed over the 5 kept judgments (8, 6, 3, 10, 7.5); the -1 is dropped, not averaged.
EXPECTED = {
    "score": 34.5 / 5,  # 6.9
    "turn1": (8 + 3 + 10) / 3,  # 7.0
    "turn2": (6 + 7.5) / 2,  # 6.75
    "category/writing": (8 + 6) / 2,
    "category/reasoning": 3.0,
    "category/extraction": (10 + 7.5) / 2,
    "dropped": 1.0,
}


def _judgment(qid, turn, prompt, text, score, model=MODEL):
    return {
        "question_id": qid,
        "model": model,
        "judge": ["gpt-4", prompt],
        "user_prompt": "[Instruction] ...",
        "judgment": text,
        "score": score,
        "turn": turn,
        "tstamp": 1687000000.0,
    }


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def files(tmp_path):
    answers = _write_jsonl(
        tmp_path / f"{MODEL}.jsonl",
        [
            {
                "question_id": qid,
                "answer_id": f"a{qid}",
                "model_id": MODEL,
                "choices": [{"index": 0, "turns": [f"answer {qid}.1", f"answer {qid}.2"]}],
                "tstamp": 1687000000.0,
            }
            for qid in (81, 101, 131, 150)  # 150 has an answer but no judgment: not a row
        ],
    )
    ours = [_judgment(q, t, p, text, s) for q, _, t, p, text, s in JUDGMENTS]
    # another model in the same file, as in the official gpt-4_single.jsonl: must be ignored
    other = [_judgment(q, t, p, "Rating: [[1]]", 1, model="other-model") for q, _, t, p, _, _ in JUDGMENTS]
    judgments = _write_jsonl(tmp_path / "gpt-4_single.jsonl", [*other[:3], *ours, *other[3:]])
    return answers, judgments, ours


def _import(tmp_path, answers, *judgments, name="run"):
    out = tmp_path / name
    args = ["import", "--task", "mt_bench", "--answers", str(answers), "--output", str(out), "--json"]
    for j in judgments:
        args += ["--judgments", str(j)]
    return out, run_cli(*args)


def test_mt_bench_import_matches_hand_computed_scores(shared, tmp_path, files):
    answers, judgments, _ = files
    out, proc = _import(tmp_path, answers, judgments)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)["metrics"]["mt_bench"]
    metrics = summary["metrics"]
    assert summary["headline"] == "score" and summary["n_samples"] == 3 and summary["n_errors"] == 0
    assert {k: m["value"] for k, m in metrics.items()} == pytest.approx(EXPECTED)
    assert metrics["score"]["n"] == 5 and metrics["dropped"]["n"] == 6
    assert metrics["turn1"]["n"] == 3 and metrics["turn2"]["n"] == 2
    # intervals resample whole questions (3 here); none for a single question or for the count
    assert metrics["score"]["ci_low"] <= 6.9 <= metrics["score"]["ci_high"]
    assert metrics["category/reasoning"]["ci_low"] is None and metrics["dropped"]["ci_high"] is None

    rows = [json.loads(line) for line in (out / "samples/mt_bench.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["81", "101", "131"]
    r101 = rows[1]
    assert r101["response"] == "answer 101.1" and r101["responses"] == ["answer 101.1", "answer 101.2"]
    assert r101["meta"]["category"] == "reasoning" and r101["target"] is not None  # GPT-4 reference turns
    judge = r101["judge"]
    assert judge["fingerprint"] == {
        "model": "gpt-4",
        "prompts": ["single-math-v1", "single-math-v1-multi-turn"],
        "source": "FastChat single judgments",
    }
    assert judge["turns"] == [1, 2] and judge["outputs"][1] == "I cannot rate this answer."
    assert r101["judge_scores"] == [3.0, -1] and r101["judge_dropped"] == 1
    assert all(r["judge_scores"] == r["judge"]["official_scores"] for r in rows)

    rescored = run_cli("rescore", str(out), "--json")
    assert rescored.returncode == 0, rescored.stderr
    assert json.loads(rescored.stdout)["metrics"]["mt_bench"]["metrics"] == metrics


def test_mt_bench_judgments_split_over_files(shared, tmp_path, files):
    answers, judgments, ours = files
    turn1 = _write_jsonl(tmp_path / "turn1.jsonl", [j for j in ours if j["turn"] == 1])
    turn2 = _write_jsonl(tmp_path / "turn2.jsonl", [j for j in ours if j["turn"] == 2])
    _, whole = _import(tmp_path, answers, judgments, name="whole")
    _, split = _import(tmp_path, answers, turn1, turn2, name="split")
    assert split.returncode == 0, split.stderr
    metrics = json.loads(split.stdout)["metrics"]["mt_bench"]["metrics"]
    assert metrics == json.loads(whole.stdout)["metrics"]["mt_bench"]["metrics"]


def test_mt_bench_import_needs_the_judgments(shared, tmp_path, files):
    answers, _, _ = files
    _, proc = _import(tmp_path, answers)
    assert proc.returncode == 2 and "--judgments" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_mt_bench_import_rejects_judgments_without_text(shared, tmp_path, files):
    answers, _, ours = files
    bad = _write_jsonl(
        tmp_path / "bad.jsonl", [{k: v for k, v in j.items() if k != "judgment"} for j in ours]
    )
    _, proc = _import(tmp_path, answers, bad)
    assert proc.returncode == 2 and "judgment" in proc.stderr and "Traceback" not in proc.stderr
