"""Partial imports are labelled partial: an answer or grade file covering fewer items than the benchmark
counts what is missing, warns, and gets its own data version (the complete set's label plus "; N of M
... answered"), so a leaderboard never puts it in the column of complete runs."""

import json
import re
import warnings

import pytest
from support.import_cases import BUILDERS, import_case, run_import

from evalkit.analysis.leaderboard import build_leaderboard
from evalkit.interop.importer import import_answers
from evalkit.tasks.mt_bench.data import QUESTION_FILE
from evalkit.tasks.objhal import importing as objhal_import
from evalkit.tasks.objhal.nouns import resolve
from evalkit.types import UserError


@pytest.fixture(autouse=True)
def _builtin_nlp(monkeypatch):
    monkeypatch.setattr(objhal_import, "resolve", lambda name: resolve("builtin"))


def _lines(path):
    return [line for line in path.read_text().splitlines() if line.strip()]


def _drop_last_line(path):
    path.write_text("\n".join(_lines(path)[:-1]) + "\n")


def _drop_last_record(path):
    data = json.loads(path.read_text())
    if isinstance(data, dict):
        data.pop(list(data)[-1])
    else:
        data.pop()
    path.write_text(json.dumps(data))


def _import(case, out):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = import_case(case, out)
    info = result.header["tasks"][case["task"]]["data"]
    return info, [str(w.message) for w in caught]


#: importer → (how to drop one item, the complete set's size counted from the builder's files)
DROP = {
    "mmvet": (
        lambda c: _drop_last_record(c["judgments"][0]),
        lambda c: len(json.loads(c["questions"].read_text())),
    ),
    "llava_bench": (
        lambda c: _drop_last_line(c["judgments"][0]),
        lambda c: len(_lines(c["data_dir"] / "questions.jsonl")),
    ),
    "amber": (
        lambda c: _drop_last_record(c["answers"]),
        lambda c: len(json.loads((c["data_dir"] / "query/query_all.json").read_text())),
    ),
    "objhal": (
        lambda c: _drop_last_line(c["answers"]),
        lambda c: len(_lines(c["data_dir"] / "obj_halbench_300_with_image.jsonl")),
    ),
}


@pytest.mark.parametrize("name", sorted(DROP))
def test_one_item_short_is_a_partial_set_with_its_own_data_version(name, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "part").mkdir()
    full_case = BUILDERS[name](tmp_path / "full")
    full, full_warnings = _import(full_case, tmp_path / "full-run")
    assert "partial" not in full and not any("partial" in w for w in full_warnings)
    case = BUILDERS[name](tmp_path / "part")
    drop, total = DROP[name]
    n = total(case)
    drop(case)
    info, caught = _import(case, tmp_path / "part-run")
    assert info["partial"]["answered"] == n - 1 and info["partial"]["of"] == n
    assert info["partial"]["missing"] == 1
    assert info["version"].endswith(f"; {n - 1} of {n} {info['partial']['unit']} answered")
    assert info["version"] != full["version"]
    assert info["version"].split(";")[0].split(" #")[0] == full["version"].split(" #")[0]
    assert any(f"{n - 1} of {n}" in w and "partial" in w for w in caught)


def test_mt_bench_judgments_of_some_questions_are_partial(tmp_path):
    case = BUILDERS["mt_bench"](tmp_path)
    info, caught = _import(case, tmp_path / "run")
    judged = {json.loads(line)["question_id"] for line in _lines(case["judgments"][0])}
    total = len(_lines(QUESTION_FILE))
    assert total == 80 and info["partial"]["answered"] == len(judged) == 2
    assert re.fullmatch(
        r"MT-Bench \(80 questions\) #[0-9a-f]{8}; 2 of 80 questions answered", info["version"]
    )
    assert caught


def test_alpaca_eval_annotations_of_some_instructions_are_partial(tmp_path):
    case = BUILDERS["alpaca_eval"](tmp_path)
    info, _ = _import(case, tmp_path / "run")
    assert info["partial"] == {
        "answered": 4,
        "of": 805,
        "missing": 801,
        "unit": "instructions",
        "note": "; 4 of 805 instructions answered",
    }
    assert info["version"] == "AlpacaEval 1.0 (805 instructions); 4 of 805 instructions answered"


def test_pope_and_mmhal_refuse_a_short_file(tmp_path):
    """POPE pairs answers with labels by order within a split, MMHal-Bench's answered template is the whole
    benchmark: a short file is refused (one line), never imported as a partial set."""
    (tmp_path / "pope").mkdir()
    case = BUILDERS["pope"](tmp_path / "pope")
    _drop_last_line(case["answers"])
    with pytest.raises(UserError, match="answers for split 'adversarial'"):
        run_import(case, tmp_path / "pope-run")
    (tmp_path / "mmhal").mkdir()
    case = BUILDERS["mmhal"](tmp_path / "mmhal")
    _drop_last_record(case["answers"])
    _drop_last_record(case["judgments"][0])
    with pytest.raises(UserError, match="MMHal-Bench has 96 records, this file has 95"):
        run_import(case, tmp_path / "mmhal-run")


def test_mmvet_208_of_218_official_grades_is_its_own_column(shared, tmp_path):
    """The official LLaVA-1.5-13B grades: all 218 give the published 36.1; 208 of them would give another
    total, which must not sit in the column of complete runs."""
    base = shared / "mm_vet/llava_eval_zip"
    answers = base / "answers/llava-v1.5-13b.jsonl"
    grades = json.loads((base / "results/llava-v1.5-13b_gpt-4-grade-1runs.json").read_text())
    assert len(grades) == 218
    part = tmp_path / "grades-208.json"
    part.write_text(json.dumps(dict(list(grades.items())[:208])))
    full = import_answers(
        "mmvet",
        answers,
        tmp_path / "runs/full",
        judgments=[base / "results/llava-v1.5-13b_gpt-4-grade-1runs.json"],
    )
    with pytest.warns(UserWarning, match="208 of 218 items answered"):
        partial = import_answers("mmvet", answers, tmp_path / "runs/partial", judgments=[part])
    assert full.metrics["mmvet"]["metrics"]["total"]["value"] == 36.1
    assert full.header["tasks"]["mmvet"]["data"]["version"] == "MM-Vet v1 (218 items)"
    data = partial.header["tasks"]["mmvet"]["data"]
    assert data["version"] == "MM-Vet v1 (218 items); 208 of 218 items answered"
    assert data["partial"]["missing"] == 10
    board = build_leaderboard([tmp_path / "runs"])
    columns = [c for c in board.columns if c.task == "mmvet" and c.metric == "total"]
    assert len(columns) == 2 and {c.data for c in columns} == {data["version"], "MM-Vet v1 (218 items)"}
