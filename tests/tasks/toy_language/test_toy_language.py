"""toy_language: the parser and scorer against hand-worked answers, the reference statistics against a
direct count over the scenes, the task's samples, statistics and an end-to-end run of a real tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evalkit.registry import get_task
from evalkit.task import DataSpec
from evalkit.toy import language as lang
from evalkit.toy.world import OBJECTS, sample_scenes
from evalkit.types import UserError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("apple.", True),
        ("apple and cup.", True),
        ("apple, cup and dog.", True),
        (" dog, ball and tree. ", True),
        ("apple, cup, dog.", False),  # no "and"
        ("apple and apple.", False),  # repeated
        ("apple cup.", False),
        ("an apple.", False),
        ("apple, cup and dog", False),  # no full stop
        ("apple, and cup.", False),
        ("", False),
        ("and.", False),
    ],
)
def test_well_formed(text, ok):
    assert lang.well_formed(text) is ok


def test_score_answer_by_hand():
    shares = {o: 0.0 for o in OBJECTS if o != "kite"} | {"dog": 0.6, "ball": 0.5, "tree": 0.4, "car": 0.1}
    s = lang.score_answer("dog, ball and tree.", ["kite"], shares)
    assert s["others"] == ["dog", "ball", "tree"] and s["precision"] == pytest.approx(0.5)
    assert s["answered"] and s["well_formed"]
    # the named object itself is not counted; repeats count once; unknown words are ignored
    s = lang.score_answer("kite, car and car, and a spaceship.", ["kite"], shares)
    assert s["others"] == ["car"] and s["precision"] == pytest.approx(0.1) and not s["well_formed"]
    s = lang.score_answer("kite.", ["kite"], shares)
    assert s == {"others": [], "precision": 0.0, "answered": False, "well_formed": True}


def test_companions_match_a_direct_count():
    """The shares from scenes counted here one combination at a time (a second path)."""
    n = 3000
    scenes = sample_scenes(n, 7)
    shares = lang.companions(7, n)
    assert len(shares) == 12 + 66
    for named in [("kite",), ("apple",), ("kite", "car"), ("umbrella", "clock"), ("egg", "clock")]:
        holding = [s for s in scenes if all(o in s.objects for o in named)]
        assert holding
        for other in OBJECTS:
            if other in named:
                assert other not in shares[named]
                continue
            expected = sum(other in s.objects for s in holding) / len(holding)
            assert shares[named][other] == pytest.approx(expected)
    # the world's themes: a kite's usual companions are the park's other classes
    top = sorted(shares[("kite",)], key=shares[("kite",)].get, reverse=True)[:3]
    assert set(top) == {"dog", "ball", "tree"}


def test_records_prompts_and_answers():
    scenes = sample_scenes(4, 11)
    import random

    rows = lang.records(scenes, random.Random(0))
    assert [r["prompt"].split()[0] for r in rows] == ["Name", "Describe", "Name", "Describe"]
    assert lang.prompt("name", ("apple", "egg")) == "Name things that go with an apple and an egg."
    assert lang.answer("describe", scenes[0], ("x",)) == lang.describe(scenes[0].objects)
    assert all("image" not in r for r in rows)


def test_task_samples_and_errors():
    task = get_task("toy_language")
    data = task.load(DataSpec(toy=True))
    assert len(data.samples) == 2 * (12 + 66)
    assert len({s.id for s in data.samples}) == len(data.samples)
    assert all(not s.messages[0].images for s in data.samples)
    first = data.samples[0]
    assert first.messages[0].text == "Name things that go with an apple."
    assert first.target["named"] == ["apple"] and "apple" not in first.target["shares"]
    assert task.load(DataSpec(toy=True)).info == data.info  # deterministic
    assert len(task.load(DataSpec(toy=True, limit=5)).samples) == 5
    with pytest.raises(UserError, match="--data toy"):
        task.load(DataSpec())


def test_statistics_equal_plain_means():
    task = get_task("toy_language")
    samples = task.load(DataSpec(toy=True)).samples[::13]
    answers = ["dog, ball and tree.", "apple.", "", "cup and cake and egg", "car, bus and umbrella."]
    rows = []
    for i, s in enumerate(samples):
        text = answers[i % len(answers)]
        rows.append({"id": s.id, "meta": s.meta, **task.score(text, s.target, s.meta)})
    values = {k: v["value"] for k, v in task.aggregate(rows).items()}
    assert values["precision"] == pytest.approx(100 * np.mean([r["precision"] for r in rows]))
    assert values["answered"] == pytest.approx(100 * np.mean([bool(r["others"]) for r in rows]))
    assert values["objects"] == pytest.approx(np.mean([len(r["others"]) for r in rows]))
    names = [r for r in rows if r["meta"]["form"] == "name"]
    assert values["name/precision"] == pytest.approx(100 * np.mean([r["precision"] for r in names]))


@pytest.mark.slow
def test_toy_model_run_end_to_end(tmp_path):
    """A real run of the toy model: rows stored, every score recomputed here from the stored text."""
    from evalkit.runner import evaluate

    out = tmp_path / "run"
    evaluate("toy", "toy_language", data="toy", limit=12, output=out, progress=False)
    rows = [json.loads(x) for x in (out / "samples" / "toy_language.jsonl").read_text().splitlines()]
    assert len(rows) == 12
    shares = lang.companions(0)
    for r in rows:
        named = tuple(r["target"]["named"])
        others = [o for o in lang.objects_named(r["response"]) if o not in named]
        expected = np.mean([shares[named][o] for o in others]) if others else 0.0
        assert r["precision"] == pytest.approx(expected, abs=1e-6)
    metrics = json.loads((out / "metrics.json").read_text())
    got = metrics["toy_language"]["metrics"]["precision"]["value"]
    assert got == pytest.approx(100 * np.mean([r["precision"] for r in rows]))
