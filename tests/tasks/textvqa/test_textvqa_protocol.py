"""TextVQA's protocol on hand-built cases, each following a rule of LLaVA's `m4c_evaluator.py` (EvalAI's
answer processor and the leave-one-out soft accuracy) and of `eval_textvqa.py` (the question in a prompt)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.tasks.gqa.protocol import prediction as gqa_prediction
from evalkit.tasks.textvqa.protocol import build_prompt, normalize, question_from_prompt, soft_accuracy


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        # step 1: lower-cased, commas and question marks deleted, a space before 's
        ("Hello, World", "hello world"),
        ("what?", "what"),
        ("1,000", "1000"),
        ("the cat's toy", "cat 's toy"),
        # step 2: newlines and tabs are spaces
        ("yes\nit\tis", "yes it is"),
        # step 3: punctuation replaced by a space, or deleted when some occurrence touches a space
        ("(yes)", "yes"),
        ("coca-cola", "coca cola"),
        ("x - y-z", "x yz"),
        ("hi!", "hi"),
        ("a/b", "b"),  # "a" then is an article
        ("5:30", "5:30"),  # ':' is not in EvalAI's list
        ("50%", "50%"),
        # periods: deleted unless a digit follows
        ("end.", "end"),
        ("U.S.A", "usa"),
        ("3.14", "3.14"),
        ("v1.0.", "v1.0"),
        # step 4: number words, articles, contractions
        ("Two", "2"),
        ("none", "0"),
        ("ten dogs", "10 dogs"),
        ("eleven", "eleven"),
        ("A dog", "dog"),
        ("an apple", "apple"),
        ("The End", "end"),
        ("another", "another"),
        ("dont", "don't"),
        ("isnt", "isn't"),
        ("Im", "im"),  # the table's "Im" is never reached: the words are lower-cased first
        ("  spaced   out  ", "spaced out"),
    ],
)
def test_normalize_follows_each_evalai_rule(raw, want):
    assert normalize(raw) == want


@pytest.mark.parametrize(
    ("k", "want"),
    # k of 10 answers match: k leave-one-out subsets keep k-1 matches, 10-k keep k
    [(0, 0.0), (1, 0.9 * 1 / 3), (2, (2 * 1 / 3 + 8 * 2 / 3) / 10), (3, (3 * 2 / 3 + 7) / 10), (4, 1.0)],
)
def test_soft_accuracy_averages_the_leave_one_out_subsets(k, want):
    answers = ["stop"] * k + ["go"] * (10 - k)
    assert soft_accuracy("stop", answers) == pytest.approx(want)


def test_soft_accuracy_values_by_count():
    assert [round(soft_accuracy("x", ["x"] * k + ["y"] * (10 - k)), 10) for k in range(11)] == [
        0.0,
        0.3,
        0.6,
        0.9,
        1.0,
        1.0,
        1.0,
        1.0,
        1.0,
        1.0,
        1.0,
    ]


def test_soft_accuracy_normalises_both_sides():
    answers = ["Two", "2", "two.", "three", "3", "3", "3", "three", "3", "a three"]
    assert soft_accuracy("2", answers) == pytest.approx(0.9)  # "Two", "2", "two." all read "2"
    assert soft_accuracy("The three.", answers) == pytest.approx(1.0)  # seven answers read "3"
    assert soft_accuracy("two dogs", answers) == 0.0


def test_the_prompt_and_the_question_read_back_from_it():
    plain = build_prompt("what is the brand?", None)
    assert plain == "what is the brand?\nAnswer the question using a single word or phrase."
    ocr = build_prompt("What is the brand?", ["DAKOTA", "DIGITAL"])
    assert ocr == (
        "What is the brand?\nReference OCR token: DAKOTA, DIGITAL\n"
        "Answer the question using a single word or phrase."
    )
    assert question_from_prompt(plain) == question_from_prompt(ocr) == "what is the brand?"
    assert question_from_prompt("Reference OCR token: a\nWhat?\nAnswer briefly.") == "what?"
    assert question_from_prompt("OCR tokens: a, b. Question: Which one? Short answer:") == "which one?"
    assert question_from_prompt("one line only") is None
    assert question_from_prompt("a\nb\nc") is None  # three lines without the OCR line


TEXTS = st.one_of(
    st.text(),
    st.lists(
        st.sampled_from(["the", " ", ".", ",", "-", "'s", "dont", "two", "3.5", "\n", "\x00", "\ud800"])
    ).map("".join),
)


@settings(max_examples=150, deadline=None)
@given(TEXTS, st.lists(TEXTS, min_size=10, max_size=10))
def test_any_text_is_normalised_and_scored_in_range(text, answers):
    out = normalize(text)
    assert out == out.strip() and "  " not in out and out == out.lower()
    score = soft_accuracy(text, answers)
    assert 0.0 <= score <= 1.0
    assert soft_accuracy(text, [text] * 10) == 1.0  # a prediction equal to every answer is right
    assert not gqa_prediction(text).endswith(".")  # whitespace before the periods stays (no re-strip)


def test_evalkit_tasks_lists_both_with_their_group_and_option():
    import json

    from support.cli import run_cli

    proc = run_cli("tasks", "--json")
    assert proc.returncode == 0, proc.stderr
    tasks = {t["name"]: t for t in json.loads(proc.stdout)}
    for name in ("textvqa", "gqa"):
        assert tasks[name]["group"] == "visual knowledge" and tasks[name]["headline"] == "accuracy"
        assert tasks[name]["metrics"]["accuracy"] == {"direction": 1, "unit": "%", "kind": "rate"}
    assert tasks["textvqa"]["options"]["textvqa.ocr"]["choices"] == ["true", "false"]
    assert tasks["textvqa"]["options"]["textvqa.ocr"]["default"] == "false"
