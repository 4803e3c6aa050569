"""The first study's toy pipeline: the pairing rules and the rating parser on hand-built cases, and every
stage on a very small setting (structure and counts, not the result: these sizes say nothing about it)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from evalkit.experiments.judged_pairs import attribute_prompt, build_pairs, parse_ratings
from evalkit.experiments.toy_study_a import LANGUAGE, StudySettings, run_study
from evalkit.toy.judge import sections
from evalkit.toy.world import sample_scenes

N_PROMPTS = 6  # prompt scenes: 3 image questions each
TINY = StudySettings(
    seed=0,
    n_language=40,
    base_steps=4,
    n_sft=20,
    n_prompts=N_PROMPTS,
    sft_steps=4,
    dpo_steps=2,
    dpo_batch=4,
    eval_limit=20,
    min_common=2,
)


def _r(h: int, c: int, co: int) -> dict[str, int]:
    return {"Helpfulness": h, "Correctness": c, "Coherence": co, "Complexity": 4, "Verbosity": 4}


def test_parse_ratings_takes_the_last_line_and_refuses_gaps():
    text = "Helpfulness: 1\nreasoning...\nHelpfulness: 3\nCorrectness: 2\nCoherence: 4\n"
    text += "Complexity: 0\nVerbosity: 1"
    assert parse_ratings(text) == {
        "Helpfulness": 3,
        "Correctness": 2,
        "Coherence": 4,
        "Complexity": 0,
        "Verbosity": 1,
    }
    assert parse_ratings(text.replace("Coherence: 4", "Coherence: 5")) is None  # out of range
    assert parse_ratings(text.replace("Verbosity: 1", "")) is None  # missing
    assert parse_ratings(None) is None


def test_attribute_prompt_has_the_contract_sections():
    s = sections(attribute_prompt("Describe the image.", "apple.", "apple and cup."))
    assert (s.question, s.reference, s.response) == ("Describe the image.", "apple and cup.", "apple.")
    text = attribute_prompt("Q?", "A")
    assert "[Reference answer]" not in text and sections(text).reference is None
    assert (
        text.index("[Question]") < text.index("[The Start of Response]") < text.index("[The End of Response]")
    )


def test_build_pairs_best_vs_worst_with_the_gap_rule():
    prompts = [{"id": k, "question": "Q", "image": None} for k in "abcd"]
    rows = [
        {"prompt_id": "a", "text": "a0", "ratings": _r(2, 2, 2)},  # quality 6
        {"prompt_id": "a", "text": "a1", "ratings": _r(4, 4, 4)},  # 12: chosen
        {"prompt_id": "a", "text": "a2", "ratings": _r(0, 1, 0)},  # 1: rejected
        {"prompt_id": "a", "text": "a3", "ratings": _r(0, 0, 1)},  # 1: a later tie, not taken
        {"prompt_id": "b", "text": "b0", "ratings": _r(3, 3, 3)},
        {"prompt_id": "b", "text": "b1", "ratings": _r(3, 3, 2)},  # gap 1 < 2: dropped
        {"prompt_id": "c", "text": "c0", "ratings": _r(4, 4, 4)},
        {"prompt_id": "c", "text": "c1", "ratings": None},  # unparsed: one rated sample only
        {"prompt_id": "d", "text": "d0", "ratings": _r(1, 1, 1)},
        {"prompt_id": "d", "text": "d1", "ratings": _r(2, 1, 2)},  # gap exactly 2: kept
    ]
    pairs, skipped = build_pairs(prompts, rows, min_gap=2)
    assert [(p["id"], p["chosen"], p["rejected"]) for p in pairs] == [("a", "a1", "a2"), ("d", "d1", "d0")]
    assert pairs[0]["scores"]["chosen"]["quality"] == 12 and pairs[0]["scores"]["rejected"]["quality"] == 1
    assert dict(skipped) == {"quality gap below 2": 1, "fewer than 2 rated samples": 1}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_pipeline_stages_on_a_tiny_setting(tmp_path):
    """Every stage runs, in the documented order and sizes; a re-run redoes nothing."""
    work = tmp_path / "study"
    result = run_study(work, TINY)
    _check_degraded_sft_and_prompts(work)
    _check_annotation(work, result)
    _check_dpo_and_comparisons(work, result)
    again = run_study(work, TINY)
    assert all(t["skipped"] for name, t in again.timings.items() if name != "data")
    for key in ("comparisons", "annotation", "trend"):
        assert json.dumps(getattr(again, key), sort_keys=True) == json.dumps(
            getattr(result, key), sort_keys=True
        )


def _check_degraded_sft_and_prompts(work: Path) -> None:
    sft = _jsonl(work / "data" / "sft.jsonl")
    assert len(sft) == 3 * TINY.n_sft and all(r.get("image") for r in sft)  # no text-only conversations
    samples = _jsonl(work / "annotate" / "samples.jsonl")
    assert len(samples) == 3 * N_PROMPTS * 4
    prompts = {r["prompt_id"] for r in samples}
    assert len(prompts) == 3 * N_PROMPTS
    # the prompts are the pair scenes' image questions (scenes from seed 3000, the documented pair seed)
    scenes = {s.image_id for s in sample_scenes(N_PROMPTS, 3000)}
    assert {p.rsplit("-", 1)[0] for p in prompts} == scenes
    assert {p.rsplit("-", 1)[1] for p in prompts} == {"describe", "yes", "no"}


def _check_annotation(work: Path, result) -> None:
    samples = _jsonl(work / "annotate" / "samples.jsonl")
    stats = result.annotation
    assert stats["prompts"] == 3 * N_PROMPTS and stats["samples"] == len(samples)
    assert stats["unparsed"] == sum(r["ratings"] is None for r in samples)
    assert stats["pairs"] + sum(stats["skipped"].values()) == stats["prompts"]
    assert stats["judge"]["model"] == "toy-judge"
    by_prompt: dict[str, dict[str, dict]] = {}
    for r in samples:
        by_prompt.setdefault(r["prompt_id"], {})[r["text"]] = r
        if r["ratings"] is not None:  # the judge's lines, as written
            assert re.search(rf"Correctness: {r['ratings']['Correctness']}\s*\nCoherence", r["judge"])
    pairs = _jsonl(work / "annotate" / "dpo.jsonl")
    assert len(pairs) == stats["pairs"]
    for p in pairs:
        chosen, rejected = by_prompt[p["id"]][p["chosen"]], by_prompt[p["id"]][p["rejected"]]
        gap = sum(
            chosen["ratings"][a] - rejected["ratings"][a] for a in ("Helpfulness", "Correctness", "Coherence")
        )
        assert gap >= 2 and Path(p["image"]).is_file()


def _check_dpo_and_comparisons(work: Path, result) -> None:
    config = json.loads((work / "dpo" / "train_config.json").read_text())
    assert config["config"]["method"] == "dpo"
    assert Path(config["config"]["model"]) == work / "sft"
    assert Path(config["config"]["data"]) == work / "annotate" / "dpo.jsonl"
    assert config["data"]["items"] == result.annotation["pairs"]
    assert set(result.runs) == {"base", "sft", "dpo"}
    for name in ("dpo", "sft"):
        metrics = [r["metric"] for r in result.comparisons[name]]
        assert set(LANGUAGE) <= set(metrics) and "pope.f1_mean" in metrics and "objhal.CHAIRs" in metrics
    saved = json.loads((work / "study_a.json").read_text())
    assert saved["restores"] == result.restores() and saved["annotation"] == result.annotation
    assert result.trend["steps"] == TINY.dpo_steps
    g = result.signal
    assert sum(g["pairs_by_kind"].values()) == result.annotation["pairs"]
    assert set(g["pairs_by_kind"]) <= {"describe", "yes", "no"}
    assert all(0 <= n <= result.annotation["pairs"] for n in g["pairs_differing_in"].values())
    assert set(g["language_answers_yes_no"]) == {"base", "sft", "dpo"}
