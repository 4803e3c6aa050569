"""Every answer/judge-output parser takes arbitrary text without raising: NUL bytes, lone surrogates,
control characters, deep brackets and huge strings are an unparsed answer, never an exception.
Generated with hypothesis (modest example counts: the suite stays fast on two cores)."""

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit.tasks.alpaca_eval.protocol import parse_ranking
from evalkit.tasks.llava_bench.protocol import parse_review
from evalkit.tasks.mmbench.protocol import can_infer
from evalkit.tasks.mmhal.protocol import parse_rating as mmhal_rating
from evalkit.tasks.mmvet.protocol import parse_score
from evalkit.tasks.mt_bench.protocol import parse_rating_status, parse_verdict
from evalkit.tasks.objhal.nouns import builtin_tokenize, split_sentences
from evalkit.tasks.objhal.protocol import parse_object_list
from evalkit.tasks.pope import Pope
from evalkit.tasks.pope.protocol import parse_answer

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: fragments the parsers look for, so generated text reaches their inner branches
FRAGMENTS = [
    "Yes",
    "No",
    "not",
    ".",
    ",",
    "[[",
    "]]",
    "[",
    "]",
    "Rating:",
    "rating: 5",
    "8 9",
    "8, 9",
    "\n",
    "(A)",
    "A.",
    "B",
    "C",
    "0.5",
    "1.0",
    "nan",
    "inf",
    "-1",
    "1e309",
    '["',
    '"]',
    "{'model': 'model_1'",
    "'rank': 1}",
    "[[A]]",
    "[[B]]",
    "[[C]]",
    "\x00",
    "\ud800",
    "\udfff",
    "\u2028",
    "\ufeff",
    "((((((",
]
texts = st.one_of(
    st.text(),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=5)), max_size=40).map("".join),
    st.sampled_from(["(" * 5000, "[" * 100_000, "x" * 2_000_000, "[[" * 10_000 + "9", "1" * 5000]),
)


@SETTINGS
@given(texts)
def test_pope_answer_parser_takes_any_text(text):
    assert parse_answer(text) in ("yes", "no")
    row = Pope().score(text, "yes", {})
    assert row["parsed"] in ("yes", "no") and isinstance(row["correct"], bool)


@SETTINGS
@given(texts, st.dictionaries(st.sampled_from("ABCDE"), st.text(max_size=20), min_size=2, max_size=5))
def test_mmbench_option_matcher_takes_any_text(text, choices):
    assert can_infer(text, choices) in (None, "Z", *choices)


@SETTINGS
@given(texts)
def test_mmvet_grade_parser_takes_any_text(text):
    score = parse_score(text)
    assert score is None or 0.0 <= score <= 1.0


@SETTINGS
@given(texts)
def test_llava_bench_score_pair_parser_takes_any_text(text):
    pair = parse_review(text)
    assert isinstance(pair, tuple) and len(pair) == 2


@SETTINGS
@given(texts)
def test_mt_bench_rating_and_verdict_parsers_take_any_text(text):
    rating, status = parse_rating_status(text)
    assert isinstance(rating, int | float) and isinstance(status, str)
    parse_verdict(text)


@SETTINGS
@given(texts)
def test_alpaca_eval_ranking_parser_takes_any_text(text):
    rank = parse_ranking(text)
    assert math.isnan(rank) or rank in (1.0, 2.0)


@SETTINGS
@given(texts)
def test_mmhal_rating_parser_takes_any_text(text):
    assert isinstance(mmhal_rating(text), int)


@SETTINGS
@given(texts)
def test_object_halbench_readers_take_any_text(text):
    phrases, status = parse_object_list(text)
    assert status in ("parsed", "last_line", "unparsed") and (phrases is None or isinstance(phrases, list))
    assert all(isinstance(t, str) for t in builtin_tokenize(text))
    assert all(isinstance(s, str) for s in split_sentences(text))
