"""The first study's toy pipeline: every stage on a very small setting (structure and counts, not the
result: these sizes say nothing about it). The pairing rules are `evalkit annotate`'s (tests/annotation/);
the toy judge's ratings are checked in tests/toy/test_toy_judge.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

from evalkit.experiments.toy_study_a import LANGUAGE, StudySettings, run_study
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
    samples = _jsonl(work / "annotate" / "annotations.jsonl")
    assert len(samples) == 3 * N_PROMPTS * 4
    prompts = {r["prompt_id"] for r in samples}
    assert len(prompts) == 3 * N_PROMPTS
    # the prompts are the pair scenes' image questions (scenes from seed 3000, the documented pair seed)
    scenes = {s.image_id: s.objects for s in sample_scenes(N_PROMPTS, 3000)}
    assert {p.rsplit("-", 1)[0] for p in prompts} == set(scenes)
    assert {p.rsplit("-", 1)[1] for p in prompts} == {"describe", "yes", "no"}
    for r in samples:  # each with its faithful answer as the reference
        scene = scenes[r["prompt_id"].rsplit("-", 1)[0]]
        if r["prompt_id"].endswith("describe"):
            named = [w for w in re.findall(r"[a-z]+", r["reference"]) if w != "and"]
            assert sorted(named) == sorted(scene)
        else:
            assert r["reference"] == ("Yes" if r["prompt_id"].endswith("-yes") else "No")


def _check_annotation(work: Path, result) -> None:
    samples = _jsonl(work / "annotate" / "annotations.jsonl")
    stats = result.annotation
    assert stats["prompts"] == 3 * N_PROMPTS and stats["samples"] == len(samples)
    assert stats["rated"] == sum(r["ratings"] is not None for r in samples)
    assert stats["pairs"] + sum(stats["skipped"]["dpo"].values()) == stats["prompts"]
    assert stats["judge"]["fingerprint"]["backend"]["model"] == "toy-judge"
    by_prompt: dict[str, dict[str, dict]] = {}
    for r in samples:
        by_prompt.setdefault(r["prompt_id"], {})[r["response"]] = r
        if r["ratings"] is not None:  # the toy judge's lines, as it wrote them
            assert re.search(rf"Correctness: {r['ratings']['correctness']}\s*\nCoherence", r["judge"]["raw"])
    pairs = _jsonl(work / "annotate" / "dpo.jsonl")
    assert len(pairs) == stats["pairs"]
    for p in pairs:
        chosen, rejected = by_prompt[p["id"]][p["chosen"]], by_prompt[p["id"]][p["rejected"]]
        gap = sum(
            chosen["ratings"][a] - rejected["ratings"][a] for a in ("helpfulness", "correctness", "coherence")
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
