"""Damaged input files never end an import in a traceback: for every importer and the official-file
readers behind it, generated damage (truncation, byte flips, invalid UTF-8, UTF-16, lone surrogates,
200k-deep nesting, records of the wrong type, fields dropped or retyped) either still imports or is one
`UserError` of one line. Inputs are small files built here (toy data, hand-made answers), so no
official download is needed; hypothesis example counts stay modest so the file runs in seconds."""

import json
import os
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.lmms_eval import mmbench_records as _mmbench_records
from support.objhal import answer_file, make_data

from evalkit.interop.importer import import_answers
from evalkit.tasks.amber.toy import write_amber
from evalkit.tasks.llava_bench.toy import write_toy
from evalkit.tasks.mmhal.toy import write_toy_mmhal
from evalkit.tasks.objhal import importing as objhal_import
from evalkit.tasks.objhal.nouns import resolve
from evalkit.toy.pope_data import write_pope
from evalkit.types import UserError

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


#: EVALKIT_FUZZ_LOG=FILE: write each generated input's outcome to FILE and go on after a traceback
#: (for counting which inputs fail), instead of failing at the first one
TALLY = os.environ.get("EVALKIT_FUZZ_LOG")

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

# ------------------------------------------------------------------------------------------- damage

BAD_BYTES = [b"\xff", b"\xfe\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\x80\x80", b'"', b"}", b"\n"]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just("\ud800"),
)
DAMAGE = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.sampled_from(BAD_BYTES)),
    st.tuples(st.just("utf16"), st.sampled_from(["utf-16", "utf-16-le"])),
    st.tuples(st.just("deep"), st.sampled_from([200_000, 70])),
    st.tuples(st.just("retype"), st.integers(0, 10**6), st.integers(0, 10**6), VALUES),
    st.tuples(st.just("drop"), st.integers(0, 10**6), st.integers(0, 10**6)),
    st.tuples(st.just("replace"), VALUES),
)


def _records(doc):
    """The records of a parsed file: list items, or the values of a top-level object."""
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict):
        return list(doc.values())
    return []


def _retype(data: bytes, damage) -> bytes:
    """Change one field of one record (or drop it); JSON-lines files line by line."""
    text = data.decode("utf-8")
    lines = text.splitlines()
    jsonl = len(lines) > 1 and all(line.strip().startswith("{") for line in lines if line.strip())
    try:
        docs = [json.loads(line) for line in lines if line.strip()] if jsonl else [json.loads(text)]
    except json.JSONDecodeError:  # a text or TSV file: drop one line, or put the value in one cell
        if not lines:
            return data
        i = damage[1] % len(lines)
        if damage[0] == "drop":
            del lines[i]
        else:
            cells = lines[i].split("\t")
            cells[damage[2] % len(cells)] = str(damage[3])
            lines[i] = "\t".join(cells)
        return "\n".join(lines).encode("utf-8", "surrogatepass")
    records = [r for d in docs for r in ([d] if jsonl else _records(d))]
    records = [r for r in records if isinstance(r, dict) and r]
    if records:
        rec = records[damage[1] % len(records)]
        key = sorted(rec)[damage[2] % len(rec)]
        if damage[0] == "drop":
            del rec[key]
        else:
            rec[key] = damage[3]
    out = "".join(json.dumps(d) + "\n" for d in docs) if jsonl else json.dumps(docs[0])
    return out.encode("utf-8", "surrogatepass")


def damaged(data: bytes, damage) -> bytes:
    kind = damage[0]
    at = int(damage[1] * len(data)) if kind in ("truncate", "flip", "insert") else 0
    if kind == "truncate":
        return data[:at]
    if kind == "flip":
        return data[:at] + bytes([damage[2]]) + data[at + 1 :]
    if kind == "insert":
        return data[:at] + damage[2] + data[at:]
    if kind == "utf16":
        return data.decode("utf-8").encode(damage[1])
    if kind == "deep":
        n = damage[1]
        return b"[" * n + b"1" + b"]" * n
    if kind == "replace":
        return json.dumps(damage[1]).encode("utf-8", "surrogatepass")
    return _retype(data, damage)


def _target(case: dict, which: str) -> Path:
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


@pytest.fixture(autouse=True)
def _builtin_nlp(monkeypatch):
    monkeypatch.setattr(objhal_import, "resolve", lambda name: resolve("builtin"))


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_undamaged_inputs_import(name, tmp_path):
    case = BUILDERS[name](tmp_path)
    result = run_import(case, tmp_path / "run")
    assert result.metrics[case["task"]]["n_samples"] > 0


@pytest.mark.parametrize("name", sorted(BUILDERS))
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_damaged_inputs_import_or_fail_in_one_line(name, data, tmp_path):
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    case = BUILDERS[name](root)
    which = data.draw(st.sampled_from(case["damage"]), label="file")
    damage = data.draw(DAMAGE, label="damage")
    path = _target(case, which)
    path.write_bytes(damaged(path.read_bytes(), damage))
    outcome = "imported"
    try:
        run_import(case, root / "run")
    except UserError as exc:
        outcome = "UserError: " + str(exc)[:150]
        assert "\n" not in str(exc) and str(exc).strip(), str(exc)
    except Exception as exc:
        outcome = type(exc).__name__
        if not TALLY:
            raise
    finally:
        if TALLY:
            with open(TALLY, "a") as f:
                f.write(json.dumps([name, which, damage[0], outcome]) + "\n")
