"""The seed study's training data (spec training.md §1a, `evalkit.training.data`): completions scored on five
attributes, paired best against worst when the gap is at least 2 (checked at gap 1, 2 and on ties), the
rejection-sampling and SteerLM forms, one row per completion, and scores that name their file and line."""

import pytest
from support.data_files import jsonl, png

from evalkit.training.data import load_preferences, load_sft
from evalkit.types import UserError


def seed_completion(text, h, c, co, cx=2, v=2):
    return {
        "response": text,
        "Helpfulness": h,
        "Correctness": c,
        "Coherence": co,
        "Complexity": cx,
        "Verbosity": v,
    }


# ---- the seed study (§1a) ------------------------------------------------------------------------------


def seed_file(tmp_path):
    png(tmp_path / "x.png")
    groups = {
        # quality = H + Cor + Coh only: "deep" would win if Complexity/Verbosity were summed (8+8 > 12+0)
        "g-sum": [seed_completion("good", 4, 4, 4, 0, 0), seed_completion("deep", 2, 3, 3, 4, 4)],
        "g-gap2": [
            seed_completion("ok", 3, 3, 3),
            seed_completion("meh", 3, 2, 2),
            seed_completion("mid", 3, 3, 2),
        ],
        "g-gap1": [seed_completion("a", 3, 3, 3), seed_completion("b", 3, 3, 2)],
        "g-tie": [seed_completion("a", 2, 2, 2), seed_completion("b", 2, 2, 2)],
        # two share the best quality (10): the first in file order is chosen
        "g-toptie": [
            seed_completion("first", 4, 3, 3),
            seed_completion("second", 3, 3, 4),
            seed_completion("low", 2, 2, 3),
        ],
        # Correctness null: that completion is unscored, leaving one
        "g-one": [seed_completion("only", 4, 4, 4), seed_completion("unscored", 1, None, 1)],
    }
    rows = [
        {
            "id": gid,
            "image": "x.png",
            "question": {"from": "human", "value": f"<image>\nQ {gid}?"},
            "completions": c,
        }
        for gid, c in groups.items()
    ]
    return jsonl(tmp_path / "seed.jsonl", rows)


def test_seed_pairs_best_vs_worst_with_gap_at_least_2(tmp_path):
    f = seed_file(tmp_path)
    out = load_preferences(f)
    assert out.format == "seed" and out.info["rules"] == {"min_gap": 2, "group_by": "prompt"}
    got = {p.id: (p.chosen, p.rejected) for p in out.items}
    assert got == {"g-sum": ("good", "deep"), "g-gap2": ("ok", "meh"), "g-toptie": ("first", "low")}
    assert out.skipped == {
        "quality gap < 2": 1,  # g-gap1
        "tie": 1,  # g-tie
        "completion without scores": 1,  # g-one's second completion
        "fewer than 2 scored completions": 1,  # g-one
    }
    pair = out.items[0]
    assert pair.prompt == "Q g-sum?" and pair.source == f"{f}:1" and pair.image == str(tmp_path / "x.png")
    assert pair.scores == {
        "chosen": {
            "helpfulness": 4,
            "correctness": 4,
            "coherence": 4,
            "complexity": 0,
            "verbosity": 0,
            "quality": 12,
        },
        "rejected": {
            "helpfulness": 2,
            "correctness": 3,
            "coherence": 3,
            "complexity": 4,
            "verbosity": 4,
            "quality": 8,
        },
    }
    out = load_preferences(f, min_gap=1)
    assert {p.id for p in out.items} == {"g-sum", "g-gap2", "g-gap1", "g-toptie"}
    assert out.skipped["tie"] == 1 and "quality gap < 1" not in out.skipped


def test_seed_rejection_sampling_and_steerlm(tmp_path):
    f = seed_file(tmp_path)
    with pytest.raises(UserError, match="seed-best.*steerlm"):
        load_sft(f)
    best = load_sft(f, format="seed-best")
    got = {e.id: e.response for e in best.items}
    assert got == {
        "g-sum": "good",
        "g-gap2": "ok",
        "g-gap1": "a",
        "g-tie": "a",
        "g-toptie": "first",
        "g-one": "only",
    }
    assert best.skipped == {"completion without scores": 1}
    assert best.info["notes"] == {"best tied (first in file order kept)": 2}  # g-tie, g-toptie
    assert all(e.attributes is None for e in best.items)
    strict = load_sft(f, format="seed-best", min_gap=2)
    assert {e.id for e in strict.items} == {"g-sum", "g-gap2", "g-toptie"}

    steer = load_sft(f, format="steerlm")
    assert len(steer) == 13  # 14 completions, one unscored
    first = steer.items[0]
    assert (first.id, first.prompt, first.response) == ("g-sum/0", "Q g-sum?", "good")
    assert first.attributes == {
        "helpfulness": 4,
        "correctness": 4,
        "coherence": 4,
        "complexity": 0,
        "verbosity": 0,
    }
    assert steer.skipped == {"completion without scores": 1}


def test_seed_one_row_per_completion_grouping(tmp_path):
    png(tmp_path / "x.png")
    steer_suffix = "\nPlease answer the question such that your response is in the following attributes"
    rows = [
        {"image": "x.png", "question": "<image>\nWhy?" + steer_suffix, **seed_completion("best", 4, 4, 4)},
        {"image": "x.png", "question": "<image>\nWhy?", **seed_completion("worst", 1, 1, 1)},
        {"image": "x.png", "question": "How?", **seed_completion("h-best", 4, 4, 4)},
        {"image": "x.png", "question": "How?", **seed_completion("h-worst", 2, 2, 2)},
    ]
    f = jsonl(tmp_path / "rows.jsonl", rows)
    out = load_preferences(f)
    assert [(p.prompt, p.chosen, p.rejected, p.source) for p in out.items] == [
        ("Why?", "best", "worst", f"{f}:1"),
        ("How?", "h-best", "h-worst", f"{f}:3"),
    ]
    by_image = load_preferences(f, group_by="image")  # the notebook's grouping: best "Why?" vs worst "Why?"
    assert len(by_image) == 1 and by_image.items[0].rejected == "worst"
    rows[1]["question"] = "Something else?"
    with pytest.raises(UserError, match="no usable preference examples.*question differs 1"):
        load_preferences(jsonl(tmp_path / "rows2.jsonl", rows), group_by="image")


def test_seed_bad_scores_name_file_and_line(tmp_path):
    row = {"question": "q", "completions": [seed_completion("a", 4, 4, 4), seed_completion("b", 7, 0, 0)]}
    f = jsonl(tmp_path / "s.jsonl", [row, row])
    with pytest.raises(UserError, match=r"s\.jsonl:1: score Helpfulness=7 is outside the 0-4 scale"):
        load_preferences(f)
    row["completions"][1]["Helpfulness"] = "high"
    with pytest.raises(UserError, match=r"s\.jsonl:1: score Helpfulness='high' is not a number"):
        load_preferences(jsonl(tmp_path / "s.jsonl", [row]))


def test_seed_dpo_json_with_question_repr_and_attribute_columns(tmp_path):
    png(tmp_path / "x.png")
    row = {
        "image": "x.png",
        "question": str({"from": "human", "value": "<image>\nWhy is this dessert appealing?"}),
        "chosen": {"from": "gpt", "value": "It is sweet."},
        "rejected": {"from": "gpt", "value": "It is a car."},
        "ref_win_logp": -10.0,
        "Helpfulness_gpt4v": 4,
        "Correctness_gpt4v": 4,
        "Coherence_gpt4v": 4,
        "Helpfulness_candidate": 1,
        "Correctness_candidate": 0,
        "Coherence_candidate": 2,
    }
    out = load_preferences(jsonl(tmp_path / "dpo.jsonl", [row]))
    assert out.format == "seed-pairs"
    p = out.items[0]
    assert (p.prompt, p.chosen, p.rejected) == (
        "Why is this dessert appealing?",
        "It is sweet.",
        "It is a car.",
    )
    assert p.scores == {
        "chosen": {"helpfulness": 4, "correctness": 4, "coherence": 4},
        "rejected": {"helpfulness": 1, "correctness": 0, "coherence": 2},
    }
