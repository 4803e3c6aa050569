"""The attribute judge's prompt and parser, and the study's rules for the built files, on hand-made cases."""

from __future__ import annotations

import pytest

from evalkit.annotation.build import SKIP_EQUAL, SKIP_FEW, SKIP_NONE_RATED, SKIP_SAME_TEXT, build, skip_gap
from evalkit.annotation.rating import parse_ratings, quality, render

GOOD = "Reasoning here.\nHelpfulness: 3\nCorrectness: 4\nCoherence: 2\nComplexity: 1\nVerbosity: 0"


def test_parser_reads_the_five_lines():
    assert parse_ratings(GOOD) == (
        {"helpfulness": 3, "correctness": 4, "coherence": 2, "complexity": 1, "verbosity": 0},
        None,
    )
    assert quality(parse_ratings(GOOD)[0]) == 9


def test_parser_takes_the_last_occurrence():
    text = (
        "Draft: Helpfulness: 1\nCorrectness: 1\n" + GOOD + "\nOn reflection:\nHelpfulness: 4\nCorrectness: 0"
    )
    scores, why = parse_ratings(text)
    assert why is None
    assert scores["helpfulness"] == 4 and scores["correctness"] == 0 and scores["coherence"] == 2


@pytest.mark.parametrize(
    "text, reason",
    [
        (GOOD.replace("Verbosity: 0", "Verbosity: 5"), "Verbosity 5 is not an integer from 0 to 4"),
        (GOOD.replace("Coherence: 2", "Coherence: -1"), "Coherence -1 is not an integer from 0 to 4"),
        (GOOD.replace("Complexity: 1", "Complexity: 2.5"), "Complexity 2.5 is not an integer from 0 to 4"),
        (GOOD.replace("Correctness: 4\n", ""), "no 'Correctness: N' line"),
        ("", "empty judge answer"),
        (None, "empty judge answer"),
        # the last occurrence counts even when an earlier one was in range
        (GOOD + "\nHelpfulness: 9", "Helpfulness 9 is not an integer from 0 to 4"),
    ],
)
def test_parser_leaves_bad_ratings_unparsed(text, reason):
    assert parse_ratings(text) == (None, reason)


def test_prompt_sections_in_the_contract_order():
    (msg,) = render("What is red?", "A ball.", "The ball is red.", "/x/img.png")
    text = msg.text
    order = ["Helpfulness", "[Question]\nWhat is red?", "[Reference answer]\nThe ball is red.",
             "[The Start of Response]\nA ball.\n[The End of Response]",
             "Helpfulness: N\nCorrectness: N\nCoherence: N\nComplexity: N\nVerbosity: N"]  # fmt: skip
    positions = [text.index(part) for part in order]
    assert positions == sorted(positions)
    assert text.rstrip().endswith("Verbosity: N")
    assert msg.images == ("/x/img.png",)
    (plain,) = render("What is red?", "A ball.", None, None)
    assert "[Reference answer]" not in plain.text and plain.images == ()
    assert "attached image" in text and "attached image" not in plain.text


def _row(pid, k, q, text=None, error=False):
    ratings = None if q is None else {"helpfulness": q, "correctness": 0, "coherence": 0, "complexity": 1,
                                       "verbosity": 2}  # fmt: skip
    return {
        "id": f"{pid}/{k}", "prompt_id": pid, "sample_index": k, "question": f"q {pid}", "image": None,
        "response": None if error else (text or f"answer {pid} {k}"), "ratings": ratings, "quality": q,
        "error": {"type": "x"} if error else None,
    }  # fmt: skip


def test_build_follows_the_study_rules():
    groups = {
        "gap3": [4, 1, 4, 2],  # best tie at 0 and 2 -> 0; worst 1
        "gap1": [2, 3, 3, 2],  # gap 1 < 2: no pair; RS still takes sample 1
        "equal": [2, 2, None, 2],
        "one": [None, 3, None, None],
        "none": [None, None, None, None],
        "worsttie": [0, 4, 0, 3],  # worst tie at 0 and 2 -> 0; best 1
    }
    rows = {}
    for pid, qs in groups.items():
        for k, q in enumerate(qs):
            rows[f"{pid}/{k}"] = _row(pid, k, q, error=(pid == "one" and k == 0))
    rows["same/0"] = _row("same", 0, 4, text="identical")
    rows["same/1"] = _row("same", 1, 0, text="identical ")
    ids = [*groups, "same"]
    dpo, rs, steer, skipped = build(ids, rows, 4, 2)
    assert [(p["id"], p["chosen"], p["rejected"]) for p in dpo] == [
        ("gap3", "answer gap3 0", "answer gap3 1"),
        ("worsttie", "answer worsttie 1", "answer worsttie 0"),
    ]
    assert dpo[0]["scores"]["chosen"]["helpfulness"] == 4 and dpo[0]["scores"]["rejected"]["helpfulness"] == 1
    assert skipped["dpo"] == {skip_gap(2): 1, SKIP_EQUAL: 1, SKIP_FEW: 2, SKIP_SAME_TEXT: 1}
    assert [(r["id"], r["response"]) for r in rs] == [
        ("gap3", "answer gap3 0"), ("gap1", "answer gap1 1"), ("equal", "answer equal 0"),
        ("one", "answer one 1"), ("worsttie", "answer worsttie 1"), ("same", "identical"),
    ]  # fmt: skip
    assert skipped["rejection_sampling"] == {SKIP_NONE_RATED: 1}
    rated = [r for r in rows.values() if r["ratings"] is not None]
    assert len(steer) == len(rated) == 4 + 4 + 3 + 1 + 4 + 2
    assert all(s["attributes"] == rows[s["id"]]["ratings"] for s in steer)
    # a smaller gap threshold keeps the gap-1 group
    dpo1, _, _, skipped1 = build(ids, rows, 4, 1)
    assert [p["id"] for p in dpo1] == ["gap3", "gap1", "worsttie"]
    assert dpo1[1]["chosen"] == "answer gap1 1" and dpo1[1]["rejected"] == "answer gap1 0"
    assert skip_gap(1) not in skipped1["dpo"]
