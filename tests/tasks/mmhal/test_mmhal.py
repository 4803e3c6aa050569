"""MMHal-Bench protocol pieces, checked by hand against LLaVA-RLHF's `eval_gpt_mmhal.py` rules.

No published MMHal-Bench number can be recomputed offline: the official GPT-4 reviews of any model are not in
the stored files (only the empty answer template is), so aggregation is checked on hand-made reviews.
"""

import hashlib
import json
from collections import Counter

import pytest

from evalkit.tasks.mmhal.data import load_judged, load_template
from evalkit.tasks.mmhal.protocol import (
    JUDGE_TEMPLATE,
    QUESTION_TYPES,
    Item,
    parse_rating,
    question_type,
    ratings_found,
    render_judge,
    summarize,
    summarize_judged,
    user_message,
)
from evalkit.types import Message, UserError


@pytest.fixture
def template(shared):
    return shared / "mmhal_bench" / "mmhal-bench_answer_template.json"


def _records(template):
    return json.loads(template.read_text())


def _write(path, data):
    path.write_text(json.dumps(data))
    return path


# --- the official template --------------------------------------------------------------------------------


def test_official_template_has_96_items_cycling_through_8_types(template):
    items = load_template(template)
    assert len(items) == 96
    assert [it.index for it in items] == list(range(96))
    assert all(it.question_type == QUESTION_TYPES[i % 8] == question_type(i) for i, it in enumerate(items))
    assert Counter(it.question_type for it in items) == dict.fromkeys(QUESTION_TYPES, 12)
    topics = Counter(it.question_topic for it in items)
    assert len(topics) == 12 and set(topics.values()) == {8}
    assert len({it.image_id for it in items}) == 96
    assert all(it.model_answer == "" for it in items)
    first = items[0]
    assert (first.question_type, first.image_content) == ("attribute", ("Fire hydrant",))
    assert first.question == "What color is the fire hydrant cap in the picture?"


def test_template_order_and_size_are_enforced(template, tmp_path):
    records = _records(template)
    swapped = [records[1], records[0], *records[2:]]
    with pytest.raises(UserError, match="index % 8"):
        load_template(_write(tmp_path / "swapped.json", swapped))
    with pytest.raises(UserError, match="96"):
        load_template(_write(tmp_path / "short.json", records[:95]))


# --- prompts ----------------------------------------------------------------------------------------------


def test_model_prompt_is_the_bare_question():
    item = Item(0, "attribute", "outdoor", "id", "src", ("Car",), "What color is the car?", "Red.")
    assert user_message(item, "img.jpg") == Message("user", "What color is the car?", ("img.jpg",))


def test_judge_template_is_the_official_text():
    # 6,631 characters, checked against LLaVA-RLHF Eval/eval_gpt_mmhal.py at 830a083 (offsets 69–6700)
    assert len(JUDGE_TEMPLATE) == 6631
    assert hashlib.sha256(JUDGE_TEMPLATE.encode()).hexdigest() == (
        "2c73d8c50f1740d000fae62cfeed103c2f7a5bcfa904b27e6e09900e7ce600cc"
    )
    assert JUDGE_TEMPLATE.count("{}") == 4 and "cautious during evalutation." in JUDGE_TEMPLATE


def test_judge_rendering_is_exact():
    item = Item(
        3, "counting", "animal", "id", "src", ("Lynx", "Cat"), "How many cats?", "There are two {cats}."
    )
    (msg,) = render_judge(item, "One cat.")
    assert msg.role == "user" and msg.images == ()
    assert msg.text.startswith("Please act as an impartial and objective judge")
    assert msg.text.endswith(
        "- Rating: 0, not informative, with hallucination\n\n"
        "### Image Contents\nLynx, Cat\n\n"
        "### Question\nHow many cats?\n\n"
        "### Standard Human-Generated Answer\nThere are two {cats}.\n\n"
        "### LMM Response to Evaluate\nOne cat.\n"
    )


# --- rating parse -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("review", "rating"),
    [
        ("The answer is right.\nRating: 4, somewhat informative, no hallucination", 4),
        ("RATING: 5", 5),  # case-insensitive
        ("Rating: 6", 6),
        ("rating: 3 ... so again, rating: 3", 3),  # the same rating twice is one rating
        ("Rating: 2 (not Rating: 5)", 0),  # two different ratings → 0
        ("Rating:5", 0),  # needs 'rating: ' with the space
        ("Rating - 5", 0),
        ("I cannot rate this.", 0),
        ("Rating: 7", 0),  # only 0..6 are looked for
        ("Rating: 0", 0),
    ],
)
def test_rating_parse(review, rating):
    assert parse_rating(review) == rating


def test_ratings_found_exposes_ambiguity():
    assert ratings_found("Rating: 2 (not Rating: 5)") == (2, 5)
    assert ratings_found("nothing") == ()


# --- aggregation ------------------------------------------------------------------------------------------


def test_score_hallucination_rate_and_types_by_index():
    # indices 0, 8 are 'attribute'; 1 is 'adversarial'; 15 is 'other' (i % 8 == 7)
    s = summarize([6, 3, 2, 0], indices=[0, 8, 1, 15])
    assert s.score.value == pytest.approx(11 / 4)
    assert s.hallucination_rate.value == pytest.approx(2 / 4)  # 3 is not a hallucination, 2 is
    assert {t: e.value for t, e in s.types.items()} == {"attribute": 4.5, "adversarial": 2.0, "other": 0.0}
    assert s.informativeness.value == pytest.approx((3 + 0 + 2 + 0) / 3 / 4 * 100)
    assert s.metrics()["hallucination_rate"]["value"] == pytest.approx(0.5)


def test_full_run_by_hand():
    s = summarize([i % 7 for i in range(96)])
    # 13 cycles of 0..6 (sum 21) and 0..4: 283 / 96; ratings < 3: 13 * 3 + 3 = 42
    assert s.score.value == pytest.approx(283 / 96)
    assert s.hallucination_rate.value == pytest.approx(42 / 96)
    # type 0 holds i = 0, 8, ..., 88: i % 7 for those
    assert s.types["attribute"].value == pytest.approx(sum((8 * k) % 7 for k in range(12)) / 12)
    assert all(e.n == 12 for e in s.types.values())


def _answered(template):
    records = _records(template)
    for r in records:
        r["model_answer"] = "An answer."
    return records


def _reviews():
    # item i gets rating i % 7, except item 5 (two ratings) and item 6 (none): both score 0
    texts = [f"Fine. Rating: {i % 7}, whatever" for i in range(96)]
    texts[5] = "Rating: 2 or maybe Rating: 4"
    texts[6] = "No verdict."
    return texts


def test_rlhfv_merged_file(template, tmp_path):
    records = _answered(template)
    for r, text in zip(records, _reviews(), strict=True):
        r["gpt4_review"] = text
    judged = load_judged(_write(tmp_path / "merged.json", records))
    assert [j.rating for j in judged[:8]] == [0, 1, 2, 3, 4, 0, 0, 0]
    assert judged[0].item.model_answer == "An answer."
    s = summarize_judged(judged)
    assert s.n_unparsed == 2
    assert s.score.value == pytest.approx((283 - 5 - 6) / 96)


def test_llava_rlhf_evaluation_file(template, tmp_path):
    answers = _write(tmp_path / "answers.json", _answered(template))
    completions = [{"choices": [{"message": {"role": "assistant", "content": t}}]} for t in _reviews()]
    judged = load_judged(answers, _write(tmp_path / "eval.json", completions))
    assert [j.rating for j in judged[:8]] == [0, 1, 2, 3, 4, 0, 0, 0]
    assert summarize_judged(judged).hallucination_rate.value == pytest.approx((42 + 2) / 96)
    with pytest.raises(UserError, match="96"):
        load_judged(answers, _write(tmp_path / "short.json", completions[:10]))
    with pytest.raises(UserError, match="gpt4_review"):
        load_judged(answers)
