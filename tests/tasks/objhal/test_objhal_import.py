"""`evalkit import --task objhal`: an official answer file scored by the classic word rules, or with the
objects of the official review file (`hall_*.json`, sentences in completion order); rescore reproduces the
metrics; unmatched files are errors."""

import json

import pytest
from support.objhal import ANSWERS, answer_file, make_data

from evalkit.interop.importer import import_answers
from evalkit.scoring import rescore_run
from evalkit.tasks.objhal import importing
from evalkit.tasks.objhal.nouns import resolve
from evalkit.types import UserError


@pytest.fixture(autouse=True)
def builtin_tools(monkeypatch):
    monkeypatch.setattr(importing, "resolve", lambda name: resolve("builtin"))


def test_import_scores_by_the_classic_rules(tmp_path):
    data = make_data(tmp_path / "data")
    result = import_answers("objhal", answer_file(tmp_path / "a.jsonl"), tmp_path / "run", data_dir=data)
    m = result.metrics["objhal"]["metrics"]
    # 101: person, dog, cat (h), dog; 102: taxi; 103: nothing; 104: elephant, chair (h), tie (h)
    assert m["CHAIRs"]["value"] == pytest.approx(50.0)
    assert m["CHAIRs_refine"]["value"] == pytest.approx(100 * 2 / 3)
    assert m["CHAIRi"]["value"] == pytest.approx(100 * 3 / 8)
    assert m["obj_recall"]["value"] == pytest.approx(100 * 4 / 6)
    assert rescore_run(result.run_dir)["objhal"]["metrics"] == m


def test_import_with_the_official_review_file(tmp_path):
    data = make_data(tmp_path / "data")
    sentences = [  # completion order, not file order; captions as the official loader cleaned them
        {
            "image_id": 104,
            "caption": "An elephant sits on a chair wearing a bow tie.",
            "words": ["elephant", "chair", "tie"],
        },
        {"image_id": 102, "caption": "Yellow taxi.", "words": []},
        {"image_id": 101, "caption": ANSWERS[101], "words": ["man", "puppy", "cat", "dog"]},
        {"image_id": 103, "caption": ANSWERS[103], "words": ["bathroom", "tile"]},
    ]
    overall = {"CHAIRs": 0.5, "CHAIRs_refine": 1.0, "CHAIRi": 3 / 7, "obj_rec": 0.5}
    review = tmp_path / "hall_obj_halbench_answer_-1.json"
    review.write_text(json.dumps({"sentences": sentences, "overall_metrics": overall}))
    questions = tmp_path / "data" / "obj_halbench_300_with_image.jsonl"
    answers = answer_file(tmp_path / "a.jsonl", with_ids=False)  # image ids from the question file, in order
    result = import_answers(
        "objhal", answers, tmp_path / "run", questions=questions, data_dir=data, judgments=[review]
    )
    m = result.metrics["objhal"]["metrics"]
    assert m["CHAIRs"]["value"] == pytest.approx(50.0)
    assert m["CHAIRs_refine"]["value"] == pytest.approx(100.0)  # 102 and 103 mention no COCO object
    assert m["CHAIRi"]["value"] == pytest.approx(100 * 3 / 7)
    assert m["obj_recall"]["value"] == pytest.approx(50.0)
    header = json.loads((result.run_dir / "run.json").read_text())
    assert header["tasks"]["objhal"]["data"]["official_overall_metrics"]["CHAIRs_refine"] == 1.0
    assert rescore_run(result.run_dir)["objhal"]["metrics"] == m
    sentences[0]["caption"] = "Another answer."
    review.write_text(json.dumps({"sentences": sentences}))
    with pytest.raises(UserError, match="no sentence for image 104"):
        import_answers(
            "objhal", answers, tmp_path / "run2", questions=questions, data_dir=data, judgments=[review]
        )


def test_import_errors(tmp_path):
    answers = answer_file(tmp_path / "a.jsonl", with_ids=False)
    with pytest.raises(UserError, match="needs --data-dir"):
        import_answers("objhal", answers, tmp_path / "run")
    with pytest.raises(UserError, match="need --questions"):
        import_answers("objhal", answers, tmp_path / "run", data_dir=make_data(tmp_path / "data"))
