"""MT-Bench protocol pieces, checked by hand against FastChat's rules and the official files.

No published MT-Bench number can be recomputed offline: the official judgments (`gpt-4_single.jsonl`) live on
the Hugging Face hub, not in git, so the aggregation is checked on hand-made judgment files instead.
"""

import hashlib
import json
from collections import Counter

import pytest

from evalkit.tasks.mt_bench.data import (
    DATA_DIR,
    load_judge_prompts,
    load_judgments,
    load_questions,
    load_reference_answers,
)
from evalkit.tasks.mt_bench.protocol import (
    CATEGORIES,
    INVALID,
    Judgment,
    Question,
    conversation,
    generation_config,
    judge_prompt_name,
    pair_outcome,
    parse_rating,
    parse_verdict,
    render_pair,
    render_single,
    summarize_single,
    win_rates,
)
from evalkit.types import Message, UserError

PROMPTS = load_judge_prompts()
WRITING = Question(81, "writing", ("Q1 {x}", "Q2"))
MATH = Question(111, "math", ("What is 2+2?", "And 3+3?"))
REFS = {111: ("4", "6")}


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- official files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["question.jsonl", "judge_prompts.jsonl", "reference_answer/gpt-4.jsonl"])
def test_shipped_files_are_the_official_ones(shared, name):
    assert _sha(DATA_DIR / name) == _sha(shared / "mt_bench" / name)


def test_official_counts():
    questions = load_questions()
    assert len(questions) == 80
    assert [q.question_id for q in questions] == list(range(81, 161))
    assert Counter(q.category for q in questions) == dict.fromkeys(CATEGORIES, 10)
    assert all(len(q.turns) == 2 for q in questions)
    refs = load_reference_answers()
    assert sorted(refs) == list(range(101, 131))
    assert all(len(r) == 2 for r in refs.values())
    assert {q.category for q in questions if q.question_id in refs} == {"math", "reasoning", "coding"}
    assert sorted(PROMPTS) == sorted(
        ["pair-v2", "pair-v2-multi-turn", "pair-math-v1", "pair-math-v1-multi-turn"]
        + ["single-v1", "single-math-v1", "single-v1-multi-turn", "single-math-v1-multi-turn"]
    )


def test_every_reference_category_question_has_a_reference():
    refs = load_reference_answers()
    questions = load_questions()
    for q in questions:
        for turn in (1, 2):
            render_single(q, ["a1", "a2"], turn, PROMPTS, refs)  # raises if a reference were missing


def test_prompt_choice_over_the_official_questions():
    names = Counter(judge_prompt_name(q.category, t) for q in load_questions() for t in (1, 2))
    assert names == {
        "single-v1": 50,
        "single-v1-multi-turn": 50,
        "single-math-v1": 30,
        "single-math-v1-multi-turn": 30,
    }


# --- generation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "temperature", "greedy"),
    [
        ("writing", 0.7, False),
        ("roleplay", 0.7, False),
        ("extraction", 0.0, True),
        ("math", 0.0, True),
        ("coding", 0.0, True),
        ("reasoning", 0.0, True),
        ("stem", 0.1, False),
        ("humanities", 0.1, False),
        ("unknown-category", 0.7, False),
    ],
)
def test_generation_settings_per_category(category, temperature, greedy):
    g = generation_config(category)
    assert (g.temperature, g.greedy, g.max_new_tokens) == (temperature, greedy, 1024)


def test_turn_two_sees_turn_one_question_and_the_models_answer():
    assert conversation(WRITING, 1) == (Message("user", "Q1 {x}"),)
    assert conversation(WRITING, 2, ["  my first answer \n"]) == (
        Message("user", "Q1 {x}"),
        Message("assistant", "my first answer"),  # stripped, as gen_model_answer stores it
        Message("user", "Q2"),
    )
    with pytest.raises(ValueError):
        conversation(WRITING, 2)
    with pytest.raises(ValueError):
        conversation(WRITING, 3, ["a", "b"])


# --- judge prompts ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "turn", "name"),
    [
        ("writing", 1, "single-v1"),
        ("writing", 2, "single-v1-multi-turn"),
        ("stem", 2, "single-v1-multi-turn"),
        ("extraction", 1, "single-v1"),
        ("math", 1, "single-math-v1"),
        ("reasoning", 2, "single-math-v1-multi-turn"),
        ("coding", 1, "single-math-v1"),
    ],
)
def test_judge_prompt_per_category_and_turn(category, turn, name):
    assert judge_prompt_name(category, turn) == name


def test_turn_one_general_rendering_is_exact():
    call = render_single(WRITING, ["A1 {answer}", "A2"], 1, PROMPTS)
    assert call.prompt_name == "single-v1"
    system, user = call.messages
    assert system == Message("system", "You are a helpful assistant.")
    assert user.role == "user"
    assert user.text.startswith("[Instruction]\nPlease act as an impartial judge")
    # braces in questions and answers are data, not placeholders
    assert user.text.endswith(
        '"Rating: [[5]]".\n\n[Question]\nQ1 {x}\n\n'
        "[The Start of Assistant's Answer]\nA1 {answer}\n[The End of Assistant's Answer]"
    )
    assert "Reference" not in user.text


def test_turn_two_reference_rendering_is_exact():
    call = render_single(MATH, [" four ", "six"], 2, PROMPTS, REFS)
    assert call.prompt_name == "single-math-v1-multi-turn"
    assert call.messages[0].text.startswith(
        "Please act as an impartial judge and evaluate the quality of the response provided by an AI "
        "assistant to the user question. Your evaluation should consider correctness and helpfulness."
    )
    assert call.messages[0].text.endswith('"Rating: [[5]]".\n\n')
    assert call.messages[1].text == (
        "<|The Start of Reference Answer|>\n\n"
        "### User:\nWhat is 2+2?\n\n### Reference answer:\n4\n\n"
        "### User:\nAnd 3+3?\n\n### Reference answer:\n6\n\n"
        "<|The End of Reference Answer|>\n\n\n"
        "<|The Start of Assistant A's Conversation with User|>\n\n"
        "### User:\nWhat is 2+2?\n\n### Assistant A:\nfour\n\n"
        "### User:\nAnd 3+3?\n\n### Assistant A:\nsix\n\n"
        "<|The End of Assistant A's Conversation with User|>"
    )


def test_general_turn_two_has_no_reference_block():
    call = render_single(WRITING, ["a", "b"], 2, PROMPTS, REFS)
    assert call.prompt_name == "single-v1-multi-turn"
    assert call.messages[1].text.startswith("<|The Start of Assistant A's Conversation with User|>")
    assert "Reference" not in call.messages[1].text


def test_reference_comes_from_the_gpt4_file_not_the_inline_field():
    q101 = next(q for q in load_questions() if q.question_id == 101)
    user = render_single(q101, ["x", "y"], 1, PROMPTS, load_reference_answers()).messages[1].text
    assert "your current position is now second place" in user  # reference_answer/gpt-4.jsonl
    assert "You are in second place." not in user  # question.jsonl's inline `reference`


def test_reference_categories_need_a_reference():
    with pytest.raises(UserError, match="reference"):
        render_single(MATH, ["4", "6"], 1, PROMPTS, {})


# --- rating parse -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("judgment", "score"),
    [
        ("Good answer. Rating: [[5]]", 5),
        ("Rating: [[8.5]]", 8.5),
        ("Rating: [[10]]", 10),
        ("Rating: [[7.]]", 7.0),
        ("Rating: [7]", 7),  # the single-bracket fallback
        ("step [3] is wrong ... Rating: [[8]]", 8),  # [[x]] anywhere beats an earlier [x]
        ("Rating: [[5]] ... on reflection [[9]]", 5),  # first match
        ("Rating: 5", INVALID),
        ('I follow the format "[[rating]]"', INVALID),
        ("Rating: [[ 5 ]]", INVALID),
        ("Rating: [[-3]]", INVALID),
        ("$ERROR$", INVALID),  # FastChat's API failure output
        ("Rating: [[07]]", INVALID),  # ast.literal_eval rejects it (the official run would crash)
    ],
)
def test_rating_parse(judgment, score):
    assert parse_rating(judgment) == score


# --- aggregation ------------------------------------------------------------------------------------------

CATS = {81: "writing", 91: "roleplay", 101: "reasoning"}
JUDGMENTS = [
    Judgment(81, 1, 8),
    Judgment(81, 2, INVALID),
    Judgment(91, 1, 6),
    Judgment(91, 2, 4),
    Judgment(101, 1, 10),
    Judgment(101, 2, INVALID),
]


def test_minus_one_is_dropped_and_the_score_is_the_mean_over_judgments():
    s = summarize_single(JUDGMENTS, CATS)
    assert (s.n_judgments, s.n_dropped) == (6, 2)
    assert s.score.value == pytest.approx((8 + 6 + 4 + 10) / 4)  # 7.0
    assert s.turns[1].value == pytest.approx((8 + 6 + 10) / 3)  # 8.0
    assert s.turns[2].value == pytest.approx(4.0)
    # the mean of the turn means (6.0) is not the MT-Bench score, and -1 must not enter a mean (26/6)
    assert s.score.value != pytest.approx((s.turns[1].value + s.turns[2].value) / 2)
    assert {c: e.value for c, e in s.categories.items()} == {
        "writing": 8.0,
        "roleplay": 5.0,
        "reasoning": 10.0,
    }
    assert (s.score.n, s.turns[1].n, s.turns[2].n) == (4, 3, 1)
    m = s.metrics()
    assert m["score"]["value"] == 7.0 and m["turn2"]["value"] == 4.0
    assert m["category/roleplay"]["value"] == 5.0 and m["dropped"]["value"] == 2


def _judgment_row(qid, model, turn, score, judgment="..."):
    name = "single-v1" if turn == 1 else "single-v1-multi-turn"
    return {
        "question_id": qid,
        "model": model,
        "judge": ["gpt-4", name],
        "user_prompt": "...",
        "judgment": judgment,
        "score": score,
        "turn": turn,
        "tstamp": 1687000000.0,
    }


def test_official_judgment_file_loads_per_model(tmp_path):
    rows = [_judgment_row(j.question_id, "m1", j.turn, j.score) for j in JUDGMENTS]
    rows += [_judgment_row(81, "m2", 1, 3), _judgment_row(81, "m2", 2, 5.5)]
    path = tmp_path / "gpt-4_single.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    by_model = load_judgments(path)
    assert sorted(by_model) == ["m1", "m2"]
    assert by_model["m1"][0].prompt_name == "single-v1"
    assert summarize_single(by_model["m1"], CATS).score.value == pytest.approx(7.0)
    assert summarize_single(by_model["m2"]).score.value == pytest.approx(4.25)
    assert list(load_judgments(path, model="m2")) == ["m2"]
    with pytest.raises(UserError, match="m3"):
        load_judgments(path, model="m3")
    (tmp_path / "bad.jsonl").write_text(json.dumps({"question_id": 81, "model": "m"}) + "\n")
    with pytest.raises(UserError, match="score"):
        load_judgments(tmp_path / "bad.jsonl")


# --- pairwise ---------------------------------------------------------------------------------------------


def test_pairwise_rendering():
    call = render_pair(WRITING, ["a1", "a2"], ["b1", "b2"], 1, PROMPTS)
    assert call.prompt_name == "pair-v2"
    assert call.messages[0].text.startswith(
        "Please act as an impartial judge and evaluate the quality of the resp"
    )
    assert call.messages[1].text == (
        "[User Question]\nQ1 {x}\n\n"
        "[The Start of Assistant A's Answer]\na1\n[The End of Assistant A's Answer]\n\n"
        "[The Start of Assistant B's Answer]\nb1\n[The End of Assistant B's Answer]"
    )
    call = render_pair(MATH, ["a1", "a2"], ["b1", "b2"], 2, PROMPTS, REFS)
    assert call.prompt_name == "pair-math-v1-multi-turn"
    text = call.messages[1].text
    assert text.startswith(
        "<|The Start of Reference Answer|>\n\n### User:\nWhat is 2+2?\n\n### Reference answer:\n4"
    )
    assert "### Assistant A:\na2\n\n" in text and "### Assistant B:\nb2\n\n" in text


@pytest.mark.parametrize(
    ("judgment", "verdict"),
    [("[[A]]", "A"), ("[[B]]", "B"), ("[[C]]", "tie"), ("[[B]] no, [[A]]", "A"), ("A is better", "error")],
)
def test_verdict_parse(judgment, verdict):
    assert parse_verdict(judgment) == verdict


def test_pair_outcome_over_both_orders():
    assert pair_outcome("A", "B") == "model_1"  # model 1 wins in both positions
    assert pair_outcome("B", "A") == "model_2"
    assert pair_outcome("A", "A") == "tie"  # position-dependent verdicts are a tie
    assert pair_outcome("tie", "B") == "tie"
    assert pair_outcome("B", "tie") == "tie"
    assert pair_outcome("error", "B") == "error"
    rates = win_rates(["model_1", "model_1", "tie", "model_2", "error"])
    assert rates == {"win_rate": 0.5, "loss_rate": 0.25, "win_rate_adjusted": 0.625}
