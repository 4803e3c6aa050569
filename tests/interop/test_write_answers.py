"""`Task.write_answers` writes a run's rows in the benchmark's official files, byte for byte as written out
here by hand; `Task.import_answers` is declared on every task, and one without official files refuses
with the message `evalkit import` prints."""

from __future__ import annotations

import json

import pytest

from evalkit.registry import TASKS, get_task
from evalkit.task import Task
from evalkit.types import UserError


def pope_row(split: str, qid: int, response: str | None, error: dict | None = None) -> dict:
    return {
        "id": f"{split}-{qid}",
        "response": response,
        "error": error,
        "meta": {"split": split, "question_id": qid, "image": f"img{qid}.png"},
    }


def test_pope_writes_llava_answer_and_question_files(tmp_path):
    rows = [
        pope_row("adversarial", 1, "Yes, there is a dog."),
        pope_row("popular", 2, None, {"kind": "timeout", "message": "no answer"}),
        pope_row("random", 3, "No."),
        pope_row("random", 4, 'A "cat"\nmaybe'),
    ]
    files = get_task("pope").write_answers(rows, tmp_path / "out")
    assert files == {"answers": tmp_path / "out/answers.jsonl", "questions": tmp_path / "out/questions.jsonl"}
    # the failed row (no answer) is left out; the others keep the run's order
    assert files["answers"].read_text(encoding="utf-8") == (
        '{"question_id": "adversarial-1", "text": "Yes, there is a dog."}\n'
        '{"question_id": "random-3", "text": "No."}\n'
        '{"question_id": "random-4", "text": "A \\"cat\\"\\nmaybe"}\n'
    )
    assert files["questions"].read_text(encoding="utf-8") == (
        '{"question_id": "adversarial-1", "category": "adversarial"}\n'
        '{"question_id": "random-3", "category": "random"}\n'
        '{"question_id": "random-4", "category": "random"}\n'
    )


def test_amber_writes_its_responses_file(tmp_path):
    rows = [
        {"id": "7", "response": "a dog", "error": None},
        {"id": "12", "response": None, "error": {"kind": "http", "message": "500"}},
        {"id": "3", "response": "Yes", "error": None},
    ]
    files = get_task("amber").write_answers(rows, tmp_path)
    assert files == {"answers": tmp_path / "answers.json"}
    assert json.loads(files["answers"].read_text()) == [
        {"id": 7, "response": "a dog"},
        {"id": 3, "response": "Yes"},
    ]


def test_imports_official_files_says_whether_import_answers_is_overridden():
    for name in TASKS:
        task = get_task(name)
        below_task = type(task).__mro__[: type(task).__mro__.index(Task)]
        overrides = any("import_answers" in vars(c) for c in below_task)
        assert task.imports_official_files == overrides, name
    assert get_task("pope").imports_official_files and not get_task("toy_language").imports_official_files


def test_a_task_without_official_files_refuses_them(tmp_path):
    task = get_task("mmbench")
    assert not task.imports_official_files
    answers = tmp_path / "answers.json"
    with pytest.raises(UserError) as exc:
        task.import_answers(answers, None, None, [])
    assert str(exc.value) == f"task 'mmbench' imports lmms-eval logs only; {answers} is not one"
    with pytest.raises(NotImplementedError, match="mmbench writes no official answer files"):
        task.write_answers([], tmp_path)


def test_objhal_writes_a_word_rules_run_and_refuses_an_llm_extraction_run(tmp_path):
    row = {"id": "0", "prompt": "Describe.", "response": "A dog.", "error": None}
    words = [{**row, "meta": {"extraction": "words", "image_id": 42}}]
    files = get_task("objhal").write_answers(words, tmp_path / "w")
    assert files["answers"].read_text() == (
        '{"question_id": 0, "image_id": 42, "prompt": "Describe.", "text": "A dog."}\n'
    )
    llm = [{**row, "meta": {"extraction": "llm", "image_id": 42}}]
    with pytest.raises(UserError, match=r"extraction=words .*\['llm'\]"):
        get_task("objhal").write_answers(llm, tmp_path / "l")
