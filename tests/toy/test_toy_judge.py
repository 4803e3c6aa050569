"""The toy judge: ratings of hand-built answers against values worked out here (language precision counted
afresh from the world generator), the attribute prompt's sections, and the judge through the judge layer."""

from __future__ import annotations

import re

import pytest

from evalkit.judges.cache import JudgeCache
from evalkit.judges.judge import Judge, JudgeSpec
from evalkit.models.base import load_backend
from evalkit.toy.judge import ToyJudge, judge_text, language_named, sections
from evalkit.toy.world import sample_scenes
from evalkit.types import Message, UserError

NAMES = ("Helpfulness", "Correctness", "Coherence", "Complexity", "Verbosity")


def prompt(question: str, response: str, reference: str | None = None) -> str:
    """The contract's layout: instructions, [Question], optional [Reference answer], the response, format."""
    ref = f"[Reference answer]\n{reference}\n\n" if reference is not None else ""
    return (
        "Rate the response on Helpfulness, Correctness, Coherence, Complexity and Verbosity (0-4).\n\n"
        f"[Question]\n{question}\n\n{ref}[The Start of Response]\n{response}\n[The End of Response]\n\n"
        "End with five lines:\n" + "\n".join(f"{n}: N" for n in NAMES)
    )


def ratings(text: str) -> dict[str, int] | None:
    found = {n: re.findall(rf"^{n}: (\d)$", text, re.MULTILINE) for n in NAMES}
    return {n: int(v[-1]) for n, v in found.items()} if all(found.values()) else None


def rate(question: str, response: str, reference: str | None = None) -> tuple[int, ...]:
    r = ratings(judge_text(prompt(question, response, reference)))
    assert r is not None
    return tuple(r[n] for n in NAMES)


def test_sections_with_and_without_reference():
    s = sections(prompt("Describe the image.", "apple and cup.\nmore", "apple, cup and dog."))
    assert (s.question, s.reference, s.response) == (
        "Describe the image.",
        "apple, cup and dog.",
        "apple and cup.\nmore",
    )
    s = sections(prompt("Name things that go with a kite.", "dog."))
    assert (s.question, s.reference, s.response) == ("Name things that go with a kite.", None, "dog.")
    assert sections("Rate this: dog.") is None
    assert language_named("Describe a scene with a kite and a dog.") == ("dog", "kite")
    assert language_named("Describe the image.") is None
    assert language_named("Name things that go with an kite.") is None  # not the form's own wording


def test_yes_no_questions():
    q = "Is there a dog in the image? Please answer yes or no."
    # (Helpfulness, Correctness, Coherence, Complexity, Verbosity)
    assert rate(q, "Yes", "Yes") == (4, 4, 4, 0, 0)
    assert rate(q, "no.", "Yes") == (2, 0, 4, 0, 0)  # wrong: helpfulness = (0 + 4) / 2
    assert rate(q, "Yes, there is a dog in it.", "Yes") == (3, 4, 2, 1, 2)  # (4 + 2) / 2; 7 words
    assert rate(q, "dog.", "No") == (0, 0, 0, 1, 0)  # no yes or no: no answer


def test_descriptions_against_the_reference():
    q, ref = "Describe the image.", "apple, cup and dog."
    assert rate(q, "apple, cup and dog.", ref) == (4, 4, 4, 3, 1)
    assert rate(q, "apple and cup.", ref) == (4, 3, 4, 2, 1)  # 4·2/3 = 2.67 -> 3; (3 + 4) / 2 = 3.5 -> 4
    assert rate(q, "apple, cup, dog and kite.", ref) == (3, 1, 4, 4, 1)  # 4·(3 − 2)/3 = 1.33 -> 1
    assert rate(q, "apple, cup, kite and bus.", ref) == (2, 0, 4, 4, 1)  # 2 − 4 < 0
    assert rate(q, "apple and cup and dog", ref) == (3, 4, 2, 3, 1)  # only the list punctuation is off
    assert rate(q, "apple apple cup cup dog dog", ref) == (2, 4, 0, 3, 2)  # repeats
    assert rate(q, "nothing here", ref) == (0, 0, 0, 0, 0)


def _share(named: tuple[str, ...], other: str) -> float:
    """The share of the 20,000 reference scenes (seed 0) holding `named` that also hold `other`."""
    holding = [s for s in sample_scenes(20000, 0) if all(o in s.objects for o in named)]
    return sum(other in s.objects for s in holding) / len(holding)


def test_language_questions_rated_by_the_worlds_statistics():
    q = "Name things that go with a kite."
    precision = (_share(("kite",), "dog") + _share(("kite",), "ball")) / 2
    correctness = int(4 * precision + 0.5)
    assert rate(q, "dog and ball.") == ((correctness + 4 + 1) // 2, correctness, 4, 2, 1)
    # the named object itself is not an answer; a reference answer is not needed nor read
    assert rate(q, "kite.", "apple.") == (0, 0, 4, 1, 0)
    assert rate(q, "dog, dog, dog")[2] == 0
    q2 = "Describe a scene with a kite and a dog."
    expected = int(4 * _share(("dog", "kite"), "ball") + 0.5)
    assert rate(q2, "dog, ball and kite.")[1] == expected


def test_unrateable_prompts_give_no_rating_lines():
    for text in (
        prompt("Describe the image.", "apple."),  # an image question without a reference
        prompt("Describe the image.", "apple.", "a nice picture"),  # a reference naming nothing
        "Rate this answer: apple.",
    ):
        answer = judge_text(text)
        assert answer.startswith("The toy judge cannot rate this") and ratings(answer) is None


def test_through_the_judge_layer(tmp_path):
    backend = load_backend("toy-judge")
    assert isinstance(backend, ToyJudge) and backend.seed == 0
    assert load_backend("toy-judge:3").seed == 3
    with pytest.raises(UserError, match="toy-judge:SEED"):
        load_backend("toy-judge:x")
    from PIL import Image

    image = str(tmp_path / "img.png")  # a real file: the cache keys an image by its content
    Image.new("RGB", (8, 8)).save(image)
    cache = JudgeCache(tmp_path / "judge.sqlite")
    judge = Judge(JudgeSpec("toy-judge"), backend, "0" * 64, cache)
    items = [
        ("a", (Message("user", prompt("Describe the image.", "apple.", "apple.")),)),
        ("b", (Message("user", prompt("Is there a cup in the image?", "No", "Yes"), (image,)),)),
    ]
    first = judge.ask(items)
    assert [a.cached for a in first] == [False, False]
    assert [ratings(a.text)["Correctness"] for a in first] == [4, 0]
    again = Judge(JudgeSpec("toy-judge"), load_backend("toy-judge"), "0" * 64, cache).ask(items)
    assert [a.cached for a in again] == [True, True] and [a.text for a in again] == [a.text for a in first]
    assert judge.fingerprint()["backend"] == {"model": "toy-judge", "rules_version": "1", "reference_seed": 0}


def test_reads_evalkit_annotates_prompt_and_its_parser_reads_the_answer():
    """The contract with `evalkit annotate`: its rendered prompt (image attached or not) in, its parser's
    ratings out, equal to the ratings worked out above."""
    from evalkit.annotation.rating import parse_ratings, quality, render

    cases = [
        (
            ("Describe the image.", "apple, cup, dog and kite.", "apple, cup and dog.", "img.png"),
            (3, 1, 4, 4, 1),
        ),
        (("Describe the image.", "apple and cup.", "apple, cup and dog.", None), (4, 3, 4, 2, 1)),
        (("Is there a dog in the image? Please answer yes or no.", "no.", "Yes", "img.png"), (2, 0, 4, 0, 0)),
    ]
    for (question, response, reference, image), expected in cases:
        (message,) = render(question, response, reference, image)
        scores, why = parse_ratings(judge_text(message.text))
        assert why is None and tuple(scores[n.lower()] for n in NAMES) == expected
        assert quality(scores) == sum(expected[:3])
    (message,) = render("Describe the image.", "apple.", None, "img.png")  # no reference: unrateable
    scores, why = parse_ratings(judge_text(message.text))
    assert scores is None and why


def test_annotate_takes_the_bare_toy_judge_name(tmp_path):
    """`evalkit annotate --judge toy-judge` (no colon) builds the attribute judge on the toy judge; a bare
    name that is no judge spec is still refused."""
    from evalkit.annotation.pipeline import make_attribute_judge
    from evalkit.judges.settings import JudgeSettings

    judge = make_attribute_judge(JudgeSettings(model="toy-judge", cache_path=tmp_path / "c.sqlite"), 256)
    assert isinstance(judge, Judge) and judge.spec.model == "toy-judge"
    with pytest.raises(UserError, match="--judge is required"):
        make_attribute_judge(JudgeSettings(model="gpt-4o", cache_path=tmp_path / "c.sqlite"), 256)
