"""The toy alignment experiment: its training data (checked against the scenes, rebuilt here from the world
generator), the paired comparison (against a hand-built case), and the full demo end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from evalkit.experiments.toy_alignment import (
    CLAIMED,
    Settings,
    interval_verdict,
    run_experiment,
    train_log_trends,
)
from evalkit.store import RunStore
from evalkit.toy import alignment_data as ad
from evalkit.toy.world import OBJECTS, sample_scenes
from evalkit.training.data import load_preferences, load_sft
from evalkit.types import UserError

N_SFT, N_PAIRS, N_TEXT, N_LANGUAGE = 40, 30, 20, 24
SIZES = {"n_sft": N_SFT, "n_pairs": N_PAIRS, "n_text": N_TEXT, "n_language": N_LANGUAGE}


def _named(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z]+", text.lower()) if w in OBJECTS]


def _scenes(seed: int = 0) -> dict[str, list[str]]:
    """The scene annotations, from the world generator and the documented seeds (not from the writer)."""
    scenes = sample_scenes(N_SFT, 2000 + seed) + sample_scenes(N_PAIRS, 3000 + seed)
    return {s.image_id: s.objects for s in scenes}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return ad.write_alignment_data(tmp_path_factory.mktemp("align") / "data", seed=0, **SIZES)


def test_pairs_reject_exactly_one_absent_object(data_dir):
    truth = _scenes()
    pairs = _jsonl(data_dir / "pairs.jsonl")
    assert len(pairs) == 3 * N_PAIRS
    kinds = {"describe": 0, "yes": 0, "no": 0}
    for p in pairs:
        objects = truth[Path(p["image"]).stem]
        kind = p["id"].rsplit("-", 1)[1]
        kinds[kind] += 1
        if kind == "describe":
            chosen, rejected = _named(p["chosen"]), _named(p["rejected"])
            assert sorted(chosen) == sorted(objects)  # the faithful answer names exactly the scene's objects
            absent = [o for o in rejected if o not in objects]
            assert len(absent) == 1 and len(set(rejected)) == len(rejected)
            assert p["prompt"] in ("Describe the image.", "Describe this image.")
        else:
            noun = re.match(r"Is there an? (\w+) in the image\?", p["prompt"]).group(1)
            assert (p["chosen"], p["rejected"]) == (("Yes", "No") if noun in objects else ("No", "Yes"))
            assert kind == ("yes" if noun in objects else "no")
    assert kinds == {"describe": N_PAIRS, "yes": N_PAIRS, "no": N_PAIRS}
    # both kinds of description pairs occur: one object added, and one object replaced (same length)
    lengths = {len(_named(p["rejected"])) - len(_named(p["chosen"])) for p in pairs if "describe" in p["id"]}
    assert lengths == {0, 1}


def test_sft_is_biased_and_bdhs_source_faithful(data_dir):
    truth = _scenes()
    sft = [r for r in _jsonl(data_dir / "sft.jsonl") if "image" in r]
    assert len(sft) == 3 * N_SFT
    extra, wrong_yes = 0, 0
    for r in sft:
        objects = truth[Path(r["image"]).stem]
        named = _named(r["response"]) if r["prompt"].startswith("Describe") else []
        assert all(o in named for o in objects) or not named  # a description never leaves an object out
        extra += len([o for o in named if o not in objects])
        m = re.match(r"Is there an? (\w+) in the image\?", r["prompt"])
        if m and m.group(1) not in objects and r["response"] == "Yes":
            wrong_yes += 1
    assert 0 < extra < N_SFT and 0 < wrong_yes < N_SFT  # biased, but mostly right
    for r in _jsonl(data_dir / "bdhs_source.jsonl"):
        objects = truth[Path(r["image"]).stem]
        if r["prompt"].startswith("Describe"):
            assert sorted(_named(r["response"])) == sorted(objects)
    # every word of every answer is in the toy tokenizer's vocabulary (the prompts are the tasks' own)
    from evalkit.toy.model import toy_vocab

    vocab = set(toy_vocab())
    for r in _jsonl(data_dir / "sft.jsonl"):
        assert set(re.findall(r"\w+", r["response"].lower())) <= vocab


@pytest.mark.parametrize(("file", "n", "scene_seed"), [("sft", N_TEXT, 4000), ("language", N_LANGUAGE, 5000)])
def test_text_only_conversations_come_from_the_world(data_dir, file, n, scene_seed):
    """The text-only conversations (the SFT stage's part, the language stage's file): no image, the
    prompt's one or two objects drawn from a scene of the documented seed, the answer that scene's other
    objects ("Name things that go with ...") or all of them ("Describe a scene ...")."""
    scenes = sample_scenes(n, scene_seed)
    text = [r for r in _jsonl(data_dir / f"{file}.jsonl") if "image" not in r]
    assert len(text) == n
    from evalkit.toy.model import toy_vocab

    vocab = set(toy_vocab())
    for i, (r, scene) in enumerate(zip(text, scenes, strict=True)):
        m = re.fullmatch(
            r"(Name things that go with|Describe a scene with) an? (\w+)(?: and an? (\w+))?\.", r["prompt"]
        )
        nouns = [x for x in m.groups()[1:] if x]
        assert len(nouns) == 1 + (i // 2) % 2 and all(x in scene.objects for x in nouns)
        assert r["prompt"].split()[0] == ("Name" if i % 2 == 0 else "Describe")
        expected = [o for o in scene.objects if o not in nouns] if i % 2 == 0 else scene.objects
        assert sorted(_named(r["response"])) == sorted(expected)
        assert set(re.findall(r"\w+", (r["prompt"] + r["response"]).lower())) <= vocab


def test_files_load_and_are_deterministic(data_dir, tmp_path):
    pairs = load_preferences(data_dir / "pairs.jsonl")
    sft = load_sft(data_dir / "sft.jsonl")
    source = load_sft(data_dir / "bdhs_source.jsonl")
    assert (len(pairs.items), len(source.items)) == (3 * N_PAIRS, 3 * N_PAIRS)
    assert len(sft.items) == 3 * N_SFT + N_TEXT and sft.items[-1].image is None
    assert not pairs.skipped and not sft.skipped
    assert Path(pairs.items[0].image).is_file()
    again = ad.write_alignment_data(tmp_path / "again", seed=0, **SIZES)
    for name in ("sft.jsonl", "pairs.jsonl", "bdhs_source.jsonl", "language.jsonl", "annotations.json"):
        assert (again / name).read_bytes() == (data_dir / name).read_bytes()
    other = ad.write_alignment_data(tmp_path / "other", seed=1, **SIZES)
    assert (other / "pairs.jsonl").read_bytes() != (data_dir / "pairs.jsonl").read_bytes()
    assert json.loads((data_dir / "annotations.json").read_text()) == _scenes()


def test_interval_verdict():
    assert interval_verdict(-2.0, -3.0, -1.0, -1) == "better"  # lower is better, interval below 0
    assert interval_verdict(-2.0, -3.0, -1.0, +1) == "worse"
    assert interval_verdict(1.0, -0.5, 2.0, +1) == "no significant change"


def test_claim_misses_names_each_unmet_part():
    """Hand-built rows: the claim holds only with every `CLAIMED` metric better, loss down, margin up."""
    from evalkit.experiments.toy_alignment import Result

    def rows(chair: str) -> list[dict]:
        return [{"metric": k, "verdict": chair if k == "amber.chair" else "better"} for k in CLAIMED]

    up = {"loss_falls": True, "margin_rises": True}
    result = Result(
        work=Path("."),
        settings=Settings(),
        checkpoints={},
        runs={},
        metrics={},
        comparisons={"a": rows("better"), "b": rows("no significant change"), "c": rows("better")[1:]},
        visual_stage=[],
        trends={"a": up, "b": up, "c": {"loss_falls": False, "margin_rises": True}},
        timings={},
    )
    assert result.claim_holds("a") and result.claim_misses("a") == []
    assert not result.claim_holds("b") and result.claim_misses("b") == ["amber.chair: no significant change"]
    assert result.claim_misses("c") == ["pope.f1_mean: not measured", "loss does not fall"]
    assert not result.claim_holds("absent")


def test_train_log_trends(tmp_path):
    log = tmp_path / "train_log.jsonl"
    rows = [
        {"step": i, "loss": 0.7 - 0.01 * i, "rewards/margins": 0.02 * i, "rewards/accuracies": 0.5}
        for i in range(20)
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    t = train_log_trends(log)
    assert t["loss"]["first"] == pytest.approx(0.695) and t["loss"]["last"] == pytest.approx(0.515)
    assert t["loss_falls"] and t["margin_rises"]


# What the toy story shows robustly, from `evalkit demo --seed N` for N = 0, 1, 2 (README, "The toy-world
# check", measured with torch 2.13.0+cpu, transformers 5.25.0 on an AVX-512 CPU). The pipeline is bit-for-bit
# deterministic on one machine, but another CPU kind (e.g. AVX2 kernels) or library version rounds floats
# differently, which changes the trained weights as much as another seed does: so a claimed metric is asserted
# beyond its interval only where it was so on all three seeds, and otherwise only in its better direction.
# (Seed 0 with torch's AVX2 kernels forced, ATEN_CPU_CAPABILITY=avx2, passes these checks too, with every
# claimed metric beyond its interval there.)
BEYOND_INTERVAL = {
    "dpo": ("pope.f1_mean", "amber.hal", "objhal.CHAIRs", "objhal.CHAIRi"),
    "bdhs": ("pope.f1_mean", "objhal.CHAIRs", "objhal.CHAIRi"),
}
# AMBER CHAIR: DPO beyond its interval on seeds 0 and 2 only; BDHS on none (−2.8 [−6.7, +0.6] on seed 0),
# AMBER Hal for BDHS on seeds 0 and 2 only
DIRECTION_ONLY = {"dpo": ("amber.chair",), "bdhs": ("amber.chair", "amber.hal")}


@pytest.mark.slow
def test_full_demo(tmp_path):
    """`evalkit demo` as shipped (default settings, seed 0; about 100 s of CPU on one thread) checks:

    - the language stage taught the base the world's co-occurrences (above the chance level computed here);
    - the visual stage (SFT against the base) raises POPE F1 and lowers AMBER CHAIR and Object HalBench
      CHAIRi beyond their intervals;
    - DPO and BDHS: every `CLAIMED` hallucination metric moves the right way, beyond its 95% paired interval
      where that held on seeds 0-2 of the reference measurements (`BEYOND_INTERVAL`), else in direction;
      loss falls and margin rises;
    - the trade-off: DPO costs AMBER Cover and Object HalBench recall beyond their intervals, BDHS less of
      both; neither costs the language side (`toy_language` precision not worse);
    - the tables agree with the experiment; a re-run redoes no stage.

    `Result.claim_holds` (every claimed metric beyond its interval) is not asserted: it held here for DPO on
    seeds 0 and 2 and for BDHS on none of seeds 0-2, and varies across machines (README).
    """
    from evalkit.experiments.demo import run_demo
    from evalkit.toy.language import companions

    assert set(CLAIMED) == {*BEYOND_INTERVAL["dpo"], *DIRECTION_ONLY["dpo"]}
    assert set(CLAIMED) == {*BEYOND_INTERVAL["bdhs"], *DIRECTION_ONLY["bdhs"]}
    work = tmp_path / "demo"
    demo = run_demo(work)
    result = demo["experiment"]
    rows = {name: {r["metric"]: r for r in result.comparisons[name]} for name in ("dpo", "bdhs")}
    for name in ("dpo", "bdhs"):
        for key in BEYOND_INTERVAL[name]:
            assert rows[name][key]["verdict"] == "better", (name, rows[name][key])
        for key in DIRECTION_ONLY[name]:
            sign = 1 if rows[name][key]["better"] == "higher" else -1
            assert sign * rows[name][key]["diff"] > 0, (name, rows[name][key])
        assert result.trends[name]["loss_falls"] and result.trends[name]["margin_rises"], result.trends[name]
        language = rows[name]["toy_language.precision"]
        assert language["verdict"] != "worse", (name, language)
    for key in ("amber.cover", "objhal.obj_recall"):
        assert rows["dpo"][key]["verdict"] == "worse", rows["dpo"][key]
        assert rows["bdhs"][key]["diff"] > rows["dpo"][key]["diff"], (rows["bdhs"][key], rows["dpo"][key])
    # chance: an answer naming other classes at random scores the mean share over them
    shares = companions(0)
    chance = 100 * float(np.mean([np.mean(list(v.values())) for v in shares.values()]))
    base_lang = RunStore(result.runs["base"]).read_metrics()["toy_language"]["metrics"]["precision"]
    assert base_lang["ci_low"] > chance + 10, (base_lang, chance)
    # what the visual stage did, and the tax table: the experiment's numbers, grouped
    visual = {r["metric"]: r for r in result.visual_stage}
    for key in ("pope.f1_mean", "amber.chair", "objhal.CHAIRi"):
        assert visual[key]["verdict"] == "better", visual[key]
    row = demo["visual_stage"].get("sft", "toy_language", "precision")
    assert row.group == "language instruction-following"
    assert row.diff == pytest.approx(visual["toy_language.precision"]["diff"])
    for key in (*CLAIMED, "toy_language.precision"):
        task, metric = key.split(".")
        for name in ("dpo", "bdhs"):
            assert demo["table"].get(name, task, metric).diff == pytest.approx(rows[name][key]["diff"])
    names = ["tax.md", "tax.csv", "tax.html", "tax.json"]
    assert [str(p.relative_to(work)) for p in demo["paths"]] == [f"visual_stage/{n}" for n in names] + names
    # resumable: nothing is trained or evaluated again, the same numbers come back
    again = run_experiment(work)
    assert all(t["skipped"] for name, t in again.timings.items() if name != "data")
    assert json.dumps(again.comparisons, sort_keys=True) == json.dumps(result.comparisons, sort_keys=True)
    with pytest.raises(UserError, match="other settings"):
        run_experiment(work, Settings(dpo_steps=5))


def test_rejected_description_stats(tmp_path):
    """Hand-counted: s1's top co-occurring absent classes are egg (with apple and cup in s2) and dog (ties
    in world order); questions are not descriptions."""
    truth = {"s1": ["apple", "cup", "cake"], "s2": ["apple", "cup", "egg"], "s3": ["dog", "ball", "tree"]}
    (tmp_path / "annotations.json").write_text(json.dumps(truth))
    rows = [
        {"image": "images/s1.png", "prompt": "Describe the image.", "rejected": "apple, cup and egg."},
        {"image": "images/s1.png", "prompt": "Describe the image.", "rejected": "apple, cake, cup and kite."},
        {"image": "images/s3.png", "prompt": "Is there a car in the image?", "rejected": "Yes, a car."},
        {"image": "images/s3.png", "prompt": "Describe this image.", "rejected": "dog, ball and tree."},
    ]
    d = ad.rejected_description_stats(rows, tmp_path)
    assert d["n"] == 3
    assert d["share_naming_absent"] == pytest.approx(2 / 3) and d["absent_per_answer"] == pytest.approx(2 / 3)
    assert d["absent_cooccurring_share"] == pytest.approx(1 / 2)  # egg yes, kite no
    assert d["absent_cooccurring_chance"] == pytest.approx(2 / 9)  # 2 of the 9 absent classes
    assert d["present_missed_share"] == pytest.approx(1 / 9)  # cake, once, of 3 + 3 + 3 present
