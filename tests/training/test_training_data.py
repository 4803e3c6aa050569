"""Training data loaders (`evalkit.training.data`): every format on small files written here (tiny PNGs made
with PIL), outputs checked by hand; skip counts; `file:line` errors; auto-detection. The seed study's
format: test_training_data_seed.py; hub ids: test_training_data_hub.py."""

import json

import pytest
from support.data_files import jsonl, png

from evalkit.training.data import PreferencePair, SFTExample, load_preferences, load_sft
from evalkit.types import UserError
from evalkit.util.datafiles import sha256_file

# ---- generic ------------------------------------------------------------------------------------------


def test_generic_preferences_resolve_images_relative_to_the_file(tmp_path):
    png(tmp_path / "data" / "img" / "a.png")
    f = jsonl(
        tmp_path / "data" / "prefs.jsonl",
        [
            {
                "id": "p1",
                "image": "img/a.png",
                "prompt": "<image>\nWhat colour?",
                "chosen": "Red.",
                "rejected": "Blue.",
            },
            {"prompt": "Say hi.", "chosen": "Hi!", "rejected": "No.", "scores": {"margin": 1}},
        ],
    )
    out = load_preferences(f)
    assert out.format == "generic" and out.skipped == {}
    assert out.items[0] == PreferencePair(
        prompt="What colour?",  # the <image> placeholder is dropped
        chosen="Red.",
        rejected="Blue.",
        image=str((tmp_path / "data" / "img" / "a.png").resolve()),
        source=f"{f}:1",
        id="p1",
    )
    second = out.items[1]
    assert (second.image, second.id, second.source, second.scores) == (
        None,
        "prefs-2",
        f"{f}:2",
        {"margin": 1},
    )
    assert out.info["sha256"] == sha256_file(f) and out.info["records"] == 2 and out.info["items"] == 2
    assert out.info["auto_detected"] and "'generic'" in out.info["detected"]
    assert json.loads(json.dumps(out.info))["skipped"] == {}  # plain JSON for the training log
    assert "2 examples from 2 records" in out.summary() and "auto-detected" in out.summary()


def test_json_list_sources_name_the_line_where_each_element_starts(tmp_path):
    f = tmp_path / "prefs.json"
    f.write_text(
        "[\n"
        '  {"prompt": "q1",\n'
        '   "chosen": "a", "rejected": "b"},\n'
        '  {"prompt": "q2", "chosen": "c", "rejected": "d"}\n'
        "]\n"
    )
    out = load_preferences(f, format="generic")
    assert [p.source for p in out.items] == [f"{f}:2", f"{f}:4"]
    f.write_text('[\n  {"prompt": "q1", "chosen": "a", "rejected": "b"},\n  {"prompt": "q2", "chosen": }\n]')
    with pytest.raises(UserError, match=r"prefs\.json:3: malformed JSON"):
        load_preferences(f)


def test_text_that_looks_like_json_stays_text_and_u2028_is_not_a_line_break(tmp_path):
    rows = [
        {"prompt": "List two numbers as JSON.", "chosen": "[1, 2]", "rejected": '{"a": 1}'},
        {"prompt": "Say it.", "chosen": "one\u2028two", "rejected": "three"},
    ]
    f = tmp_path / "p.jsonl"
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = load_preferences(f)
    assert [(p.chosen, p.rejected, p.source) for p in out.items] == [
        ("[1, 2]", '{"a": 1}', f"{f}:1"),
        ("one\u2028two", "three", f"{f}:2"),
    ]
    f.write_text('[{"prompt": "q", "chosen": "a", "rejected": "b"},\n 3]')
    with pytest.raises(UserError, match=r"p\.jsonl:2: expected a JSON object, got int"):
        load_preferences(f)


def test_generic_preferences_in_trl_conversational_form(tmp_path):
    png(tmp_path / "a.png")
    row = {
        "images": ["a.png"],
        "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many?"}]}],
        "chosen": [{"role": "assistant", "content": [{"type": "text", "text": "Two."}]}],
        "rejected": [{"role": "assistant", "content": [{"type": "text", "text": "Nine."}]}],
    }
    out = load_preferences(jsonl(tmp_path / "trl.jsonl", [row]))
    p = out.items[0]
    assert (p.prompt, p.chosen, p.rejected, p.image) == (
        "How many?",
        "Two.",
        "Nine.",
        str(tmp_path / "a.png"),
    )
    with pytest.raises(UserError, match=r"trl\.jsonl:2: 2 images; the trainers take one image per example"):
        load_preferences(jsonl(tmp_path / "trl.jsonl", [row, {**row, "images": ["a.png", "a.png"]}]))


def test_generic_sft_and_llava_sft(tmp_path):
    png(tmp_path / "a.png")
    f = jsonl(
        tmp_path / "sft.jsonl", [{"image": "a.png", "prompt": "Describe.", "response": "A red square."}]
    )
    out = load_sft(f)
    assert out.format == "generic"
    assert out.items == [SFTExample("Describe.", "A red square.", str(tmp_path / "a.png"), f"{f}:1", "sft-1")]
    conv = [{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "A square."}]
    f = jsonl(tmp_path / "llava.jsonl", [{"id": 7, "image": "a.png", "conversations": conv}])
    out = load_sft(f)
    assert out.format == "llava"
    assert (out.items[0].prompt, out.items[0].response, out.items[0].id) == ("What is it?", "A square.", "7")


def test_image_root_and_missing_images(tmp_path):
    png(tmp_path / "images" / "a.png")
    row = {"image": "a.png", "prompt": "q", "chosen": "a", "rejected": "b"}
    f = jsonl(tmp_path / "prefs.jsonl", [row, {**row, "image": "gone.png"}])
    with pytest.raises(UserError, match=r"prefs\.jsonl:1: image not found: .*a\.png"):
        load_preferences(f)
    with pytest.raises(UserError, match=r"prefs\.jsonl:2: image not found: .*gone\.png"):
        load_preferences(f, image_root=tmp_path / "images")
    out = load_preferences(f, image_root=tmp_path / "images", skip_missing_images=True)
    assert len(out) == 1 and out.items[0].image == str(tmp_path / "images" / "a.png")
    assert out.skipped == {"image not found": 1}


# ---- public preference sets (§2) ------------------------------------------------------------------------


def vlf_completion(text, h, e, v, model="m"):
    ann = {
        "Helpfulness": {"Rating": h, "Rationale": "..."},
        "Ethical Considerations": {"Rating": e, "Rationale": "..."},
        "Visual Faithfulness": {"Rating": v, "Rationale": "..."},
    }
    return {"annotations": ann, "model": model, "response": text}


def test_vlfeedback_best_mean_vs_seeded_worse_other(tmp_path):
    png(tmp_path / "v.png")
    rows = [
        # means 4, 5, 2: chosen = B; the only strictly worse others are A and C
        {
            "id": "r1",
            "prompt": "Describe.",
            "img_path": "v.png",
            "models": ["a", "b", "c"],
            "completions": [
                vlf_completion("A", "4", "4", "4", "a"),
                vlf_completion("B", "5", "5", "5", "b"),
                vlf_completion("C", "2", "2", "2", "c"),
            ],
        },
        # means 3 and 3 (the N/A rating is left out of the mean): nothing strictly worse
        {
            "id": "r2",
            "prompt": "Describe.",
            "img_path": "v.png",
            "completions": [vlf_completion("X", "3", "3", "3"), vlf_completion("Y", "N/A", "3", "3")],
        },
        # means 5 and 1: one strictly worse, so no draw is involved
        {
            "id": "r3",
            "prompt": "Describe.",
            "img_path": "v.png",
            "completions": [vlf_completion("lo", "1", "1", "1"), vlf_completion("hi", "5", "5", "5")],
        },
    ]
    f = jsonl(tmp_path / "vlf.jsonl", rows)
    out = load_preferences(f)
    assert out.format == "vlfeedback" and out.info["rules"] == {"seed": 0}
    assert out.skipped == {"tie": 1, "rating not a number (left out of the mean)": 1}
    r1, r3 = out.items
    assert r1.chosen == "B" and r1.rejected in ("A", "C") and r1.image == str(tmp_path / "v.png")
    assert r1.scores["chosen"] == {
        "helpfulness": 5.0,
        "ethical considerations": 5.0,
        "visual faithfulness": 5.0,
        "mean": 5.0,
        "index": 1,
        "model": "b",
    }
    assert r1.scores["seed"] == 0 and r1.scores["rejected"]["index"] in (0, 2)
    assert (r3.chosen, r3.rejected) == ("hi", "lo")
    draws = {s: load_preferences(f, seed=s).items[0].rejected for s in range(16)}
    assert draws == {s: load_preferences(f, seed=s).items[0].rejected for s in range(16)}  # reproducible
    assert set(draws.values()) == {"A", "C"}  # and really a draw


def test_rlhfv_rlaifv_povid_mix_llava_rlhf(tmp_path):
    png(tmp_path / "i.png")
    text = json.dumps({"question": "How many?", "chosen": "Two.", "rejected": "Five."})
    f = jsonl(
        tmp_path / "rlhfv.jsonl", [{"ds_name": "RLHF-V", "image_path": "i.png", "text": text, "idx": 3}]
    )
    out = load_preferences(f)
    assert out.format == "rlhfv"
    assert (out.items[0].prompt, out.items[0].chosen, out.items[0].rejected, out.items[0].id) == (
        "How many?",
        "Two.",
        "Five.",
        "3",
    )
    f = jsonl(tmp_path / "bad.jsonl", [{"ds_name": "RLHF-V", "text": "{not json", "idx": 1}])
    with pytest.raises(UserError, match=r"bad\.jsonl:1: field 'text' is not valid JSON"):
        load_preferences(f, format="rlhfv")

    row = {
        "ds_name": "x",
        "image": "i.png",
        "question": "How many families?",
        "idx": "a1",
        "chosen": "18,000 families.",
        "rejected": "No information.",
    }
    out = load_preferences(jsonl(tmp_path / "rlaifv.jsonl", [row]))
    assert out.format == "rlaifv" and out.items[0].id == "a1" and out.items[0].chosen == "18,000 families."

    human = {"from": "human", "value": "<image>\nDescribe the image."}
    rows = [
        {
            "id": "p1",
            "image": "i.png",
            "conversations": [human, {"from": "gpt", "value": "A dog."}],
            "rejected_conversations": [human, {"from": "gpt", "value": "A cat on a sofa."}],
        },
        {"id": "p2", "image": "i.png", "conversations": [human], "chosen": "A dog.", "rejected": "Two dogs."},
        {
            "id": "p3",
            "image": "i.png",
            "conversations": [human, {"from": "gpt", "value": "A dog."}],
            "rejected_conversations": [{"from": "human", "value": "Other?"}, {"from": "gpt", "value": "x"}],
        },
    ]
    out = load_preferences(jsonl(tmp_path / "povid.jsonl", rows))
    assert out.format == "povid" and out.skipped == {"prompt differs between chosen and rejected": 1}
    assert [(p.prompt, p.chosen, p.rejected) for p in out.items] == [
        ("Describe the image.", "A dog.", "A cat on a sofa."),
        ("Describe the image.", "A dog.", "Two dogs."),
    ]

    conv = json.dumps(
        [
            {"from": "human", "value": "<image>\nWhat is shown?"},
            {"from": "gpt", "preference_values": ["A bridge.", "A boat."]},
        ]
    )
    out = load_preferences(
        jsonl(
            tmp_path / "mix.jsonl",
            [{"id": 5, "origin_pre_dataset": "VLFeedback", "image_path": "i.png", "conversations": conv}],
        )
    )
    assert out.format == "mix" and (out.items[0].prompt, out.items[0].chosen, out.items[0].rejected) == (
        "What is shown?",
        "A bridge.",
        "A boat.",
    )

    row = {
        "id": "h1",
        "image": "i.png",
        "conversations": [{"from": "human", "value": "<image>\nWhat?"}],
        "output_1": {"from": "llava", "value": "one"},
        "output_2": {"from": "llava", "value": "two"},
        "preference": 2,
    }
    out = load_preferences(jsonl(tmp_path / "lr.jsonl", [row]))
    assert out.format == "llava-rlhf" and (out.items[0].chosen, out.items[0].rejected) == ("two", "one")


# ---- errors, skips, detection ----------------------------------------------------------------------------


def test_malformed_line_and_missing_field_name_file_and_line(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n{"prompt": "q", "chosen": \n')
    with pytest.raises(UserError, match=r"p\.jsonl:2: malformed JSON line"):
        load_preferences(f)
    jsonl(f, [{"prompt": "q", "chosen": "a", "rejected": "b"}, {"prompt": "q", "chosen": "a"}])
    with pytest.raises(UserError, match=r"p\.jsonl:2: missing field 'rejected'"):
        load_preferences(f)
    jsonl(f, [{"prompt": "q", "chosen": 3, "rejected": "b"}])
    with pytest.raises(UserError, match=r"p\.jsonl:1: field 'chosen': expected text"):
        load_preferences(f)
    with pytest.raises(UserError, match="file not found: .*nope.jsonl"):
        load_preferences(tmp_path / "nope.jsonl")


def test_skipped_records_are_counted(tmp_path):
    rows = [
        {"prompt": "q", "chosen": "a", "rejected": "b"},
        {"prompt": "q", "chosen": "same", "rejected": "same"},
        {"prompt": "q", "chosen": "", "rejected": "b"},
        {"prompt": "", "chosen": "a", "rejected": "b"},
        {
            "prompt": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "yo"},
                {"role": "user", "content": "again"},
            ],
            "chosen": "a",
            "rejected": "b",
        },
        {"id": "dup", "prompt": "q", "chosen": "a", "rejected": "b"},
        {"id": "dup", "prompt": "q", "chosen": "a", "rejected": "c"},
    ]
    out = load_preferences(jsonl(tmp_path / "p.jsonl", rows))
    assert [p.id for p in out.items] == ["p-1", "dup", "dup#2"] and out.info["renamed_duplicate_ids"] == 1
    assert out.skipped == {
        "chosen == rejected": 1,
        "empty response": 1,
        "empty prompt and no image": 1,
        "multi-turn conversation": 1,
    }
    assert "skipped: chosen == rejected 1, empty prompt and no image 1" in out.summary()


def test_auto_detection_errors(tmp_path):
    f = jsonl(tmp_path / "odd.jsonl", [{"query": "q", "good": "a", "bad": "b"}])
    with pytest.raises(UserError) as e:
        load_preferences(f)
    assert "unknown preference data schema" in str(
        e.value
    ) and "generic, seed, seed-pairs, vlfeedback" in str(e.value)
    assert "keys found in the first record: bad, good, query" in str(e.value)
    f = jsonl(tmp_path / "sft.jsonl", [{"prompt": "q", "response": "a"}])
    with pytest.raises(UserError, match="looks like sft data.*use load_sft"):
        load_preferences(f)
    with pytest.raises(UserError, match="unknown sft data format 'dpo'; formats: auto, generic, seed-best"):
        load_sft(f, format="dpo")
    f = jsonl(tmp_path / "prefs.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}])
    with pytest.raises(UserError, match="looks like preference data.*use load_preferences"):
        load_sft(f)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(UserError, match="no records"):
        load_preferences(tmp_path / "empty.jsonl")
