"""LLaVA-Bench review prompt, review parse and relative scores, checked against the official reviews."""

import pytest

from evalkit.tasks.llava_bench.data import (
    read_answers,
    read_contexts,
    read_questions,
    read_reviews,
    read_rules,
)
from evalkit.tasks.llava_bench.protocol import (
    FAILED,
    SYSTEM_PROMPT,
    Rule,
    category_score,
    context_text,
    mean_over_runs,
    parse_review,
    relative_estimate,
    review_content,
    review_messages,
    review_requests,
    summarize,
    summarize_reviews,
)
from evalkit.types import UserError

WILD = "llava_bench/in_the_wild_llava_eval_zip"
COCO = "llava_bench/coco"


@pytest.mark.parametrize(
    ("review", "expected"),
    [
        ("8 10\nAssistant 2 is better.", (8.0, 10.0)),
        ("9 6.5", (9.0, 6.5)),
        ("8,9\nok", (8.0, 9.0)),  # commas become spaces
        ("8, 9", FAILED),  # ... and then "8  9" has three tokens
        ("8  9", FAILED),
        ("8 9 ", FAILED),
        ("8\n9", FAILED),  # only the first line counts
        ("Assistant 1: 8", FAILED),
        ("8 nine", FAILED),
        ("", FAILED),
    ],
)
def test_parse_review(review, expected):
    assert parse_review(review) == expected


def test_relative_score_is_a_ratio_of_means():
    # per-question ratios 50% and 100% average to 75.0; the official score is 3.5 / 6 = 58.3
    s = category_score([(10, 5), (2, 2)])
    assert (s.reference, s.model, s.relative, s.n) == (6.0, 3.5, 58.3, 2)


def test_failed_reviews_enter_the_means():
    s = category_score([(8, 6), FAILED])
    assert (s.reference, s.model, s.relative, s.n_failed) == (3.5, 2.5, 71.4, 1)  # dropping it gives 75.0


def test_means_are_rounded_to_three_decimals_before_the_ratio():
    s = category_score([(1, 5), (1, 5), (2, 5)])  # 5 / 1.333 = 375.09 → 375.1 (5 / (4/3) = 375.0)
    assert (s.reference, s.relative) == (1.333, 375.1)


def test_summary_keys_and_ignore():
    pairs = [(8, 8), (10, 5), (6, 3)]
    out = summarize(pairs, ["b", "a", None], question_ids=[0, 1, 2])
    assert list(out) == ["a", "all", "b"]  # sorted, as printed
    assert (out["a"].relative, out["b"].relative, out["all"].relative, out["all"].n) == (50.0, 100.0, 66.7, 3)
    assert summarize(pairs, ["b", "a", None], question_ids=[0, 1, 2], ignore={1})["all"].relative == 78.6


def test_mean_over_runs():
    runs = [summarize([(10, 7.3)], ["x"]), summarize([(10, 7.25)], ["x"])]
    assert [r["x"].relative for r in runs] == [73.0, 72.5]
    assert mean_over_runs(runs) == {"x": 72.8, "all": 72.8}  # (73.0 + 72.5) / 2 = 72.75 → 72.8


def test_review_prompt_by_hand():
    rule = Rule("Assistant", "Rate them.")
    content = review_content("Q?", "ref", "ans", rule, context_text(["c1", "c2"]))
    assert content == (
        "[Context]\nc1\nc2\n\n[Question]\nQ?\n\n[Assistant 1]\nref\n\n[End of Assistant 1]\n\n"
        "[Assistant 2]\nans\n\n[End of Assistant 2]\n\n[System]\nRate them.\n\n"
    )
    system, user = review_messages("Q?", "ref", "ans", rule, "c")
    assert (system.role, system.text, user.role) == ("system", SYSTEM_PROMPT, "user")
    assert context_text("one caption") == "one caption"
    boxes = [{"category": "dog", "bbox": [0.1, 0.25, 1.0, 0.5]}, {"category": "cat", "bbox": [0, 0.5, 1, 1]}]
    assert context_text(["a", "b"], boxes) == "a\nb\n\ndog: [0.1, 0.25, 1.0, 0.5]\ncat: [0, 0.5, 1, 1]"


# ------------------------------------------------------------------------------------ official files


def _runs(shared):
    return [read_reviews(shared / WILD / f"reviews/llava-v1.5-13b-eval{i}.jsonl") for i in (1, 2, 3)]


def test_official_reviews_reparse_to_their_recorded_scores(shared):
    for reviews in _runs(shared):
        assert len(reviews) == 60
        assert all(parse_review(r.content) == r.scores for r in reviews)


def test_official_13b_in_the_wild(shared):
    per_run = [summarize_reviews(r) for r in _runs(shared)]
    printed = [{k: v.relative for k, v in s.items()} for s in per_run]
    assert printed == [  # what summarize_gpt_review.py prints for each run
        {"all": 72.8, "llava_bench_complex": 82.8, "llava_bench_conv": 74.7, "llava_bench_detail": 52.6},
        {"all": 72.7, "llava_bench_complex": 83.7, "llava_bench_conv": 74.7, "llava_bench_detail": 51.1},
        {"all": 72.1, "llava_bench_complex": 83.5, "llava_bench_conv": 72.5, "llava_bench_detail": 51.1},
    ]
    assert [s["all"].n for s in per_run] == [60, 60, 60]
    assert [per_run[0][f"llava_bench_{c}"].n for c in ("conv", "detail", "complex")] == [17, 15, 28]
    # the published LLaVA-1.5-13B number (MODEL_ZOO) is the mean of the three runs, whichever way it is taken
    assert mean_over_runs(per_run)["all"] == mean_over_runs(per_run, printed=True)["all"] == 72.5
    # per category the two ways can differ in the last digit (conv: 73.9 unrounded, 74.0 from printed values)
    assert mean_over_runs(per_run) == {
        "all": 72.5, "llava_bench_complex": 83.3, "llava_bench_conv": 73.9, "llava_bench_detail": 51.6
    }  # fmt: skip
    assert mean_over_runs(per_run, printed=True)["llava_bench_conv"] == 74.0
    est = relative_estimate([r.scores for r in _runs(shared)[0]])
    assert (
        est.value == pytest.approx(per_run[0]["all"].relative_exact, abs=0.01)
        and est.ci_low < 72.8 < est.ci_high
    )


def test_official_reviews_pair_answers_by_line(shared):
    answers = read_answers(shared / WILD / "answers/llava-v1.5-13b.jsonl")
    for reviews in _runs(shared):
        assert [r.question_id for r in reviews] == [a["question_id"] for a in answers]
        assert [r.answer2_id for r in reviews] == [a["answer_id"] for a in answers]


def test_rule_files(shared):
    rules = read_rules(shared / "llava_bench/judge/rule.json")
    assert {
        "conv",
        "detail",
        "complex",
        "llava_bench_conv",
        "llava_bench_detail",
        "llava_bench_complex",
    } <= set(rules)
    assert rules["llava_bench_conv"].role == "Assistant"
    assert "two values indicating the scores for Assistant 1 and 2" in rules["llava_bench_complex"].prompt
    assert "bounding box" in rules["conv"].prompt and "bounding box" not in rules["llava_bench_conv"].prompt
    assert "llava_bench_conv" not in read_rules(shared / "llava_bench/rlhfv_copy/rule.jsonfile")


def test_coco_review_requests(shared):
    questions = read_questions(shared / COCO / "qa90_questions.jsonl")
    gpt4 = read_answers(shared / COCO / "qa90_gpt4_answer.jsonl")
    contexts = read_contexts(shared / COCO / "caps_boxes_coco2014_val_80.jsonl")
    rules = read_rules(shared / "llava_bench/judge/rule.json")
    model = [
        {"question_id": a["question_id"], "text": f"answer {a['question_id']}", "answer_id": "m"}
        for a in gpt4
    ]
    requests = review_requests(questions, gpt4, model, contexts, rules, in_the_wild=False)
    assert len(requests) == 90 and [r.category for r in requests[:3]] == ["conv", "detail", "complex"]
    first = requests[0]
    assert first.content.startswith("[Context]\n")
    context = first.content.split("\n\n[Question]\n")[0].removeprefix("[Context]\n")
    captions, boxes = context.split("\n\n")
    assert len(captions.split("\n")) == 5 and all(": [" in line for line in boxes.split("\n"))
    assert (
        f"[Assistant 1]\n{gpt4[0]['text']}\n\n[End of Assistant 1]\n\n[Assistant 2]\nanswer 0\n\n"
        in first.content
    )
    assert first.content.endswith(f"[System]\n{rules['conv'].prompt}\n\n")
    assert (first.answer1_id, first.answer2_id) == (0, "m")  # no answer_id in the COCO GPT-4 file
    with pytest.raises(UserError, match="no rule 'llava_bench_conv'"):
        review_requests(questions, gpt4, model, contexts, {"conv": rules["conv"]}, in_the_wild=True)
    with pytest.raises(UserError, match="question 0 is paired with reference 0 and answer 1"):
        review_requests(questions, gpt4, model[1:] + model[:1], contexts, rules, in_the_wild=False)


def test_review_file_errors(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"question_id": 0, "tuple": [8, 9]}\n{"question_id": 1, "tuple": [8]}\n')
    with pytest.raises(UserError, match="r.jsonl:2: 'tuple' must be a list of two numbers"):
        read_reviews(path)
    path.write_text('{"image": "1.jpg"}\n')
    with pytest.raises(UserError, match="r.jsonl:1: missing field 'caption'"):
        read_contexts(path)
