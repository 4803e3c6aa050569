"""Object HalBench: the CHAIR rules on hand-computed cases (plain vs refine CHAIRs, CHAIRi per mention,
recall, double words, synonyms), the reply parser, the LLM-phrase refinement, ground truth from instance and
caption files, the toy data, and the errors for missing files. Built-in NLP tools throughout."""

import pytest
from PIL import Image
from support.objhal import SYNONYMS, make_data

from evalkit.task import DataSpec
from evalkit.tasks.objhal import ObjHal
from evalkit.tasks.objhal.nouns import resolve
from evalkit.tasks.objhal.protocol import Vocabulary, caption_words, parse_object_list, refine_phrases
from evalkit.types import UserError

GT = {101: {"dog", "person"}, 102: {"car", "person"}, 103: {"toilet"}, 104: {"elephant"}}


def load(root, **options):
    opts = {"objhal.nlp": "builtin", **{f"objhal.{k}": v for k, v in options.items()}}
    return ObjHal().load(DataSpec(data_dir=root, options=opts))


def scored_rows(task, samples, answers):
    """Rows as the runner stores them (words mode: no judge call), scored by the task."""
    rows = []
    for s in samples:
        row = {"id": s.id, "prompt": s.messages[0].text, "response": answers[s.meta["image_id"]]}
        row |= {"target": s.target, "cluster": s.cluster, "meta": s.meta, "error": None}
        assert task.judge_calls(row, [], 1) == []
        row["judge"] = {"fingerprint": {}, "calls": [], **task.judge_record(row, [], 1)}
        rows.append(row | task.score_row(row))
    return rows


@pytest.fixture
def vocab():
    return Vocabulary.parse(SYNONYMS)


@pytest.fixture
def nlp(vocab):
    return resolve("builtin").with_lexicon(vocab.lexicon())


def test_ground_truth_is_instances_and_caption_objects(tmp_path):
    data = load(make_data(tmp_path / "d"), extraction="words")
    assert [s.meta["image_id"] for s in data.samples] == [101, 102, 103, 104]
    assert {s.meta["image_id"]: set(s.target) for s in data.samples} == GT
    assert [s.cluster for s in data.samples] == ["101", "102", "103", "104"]
    assert data.samples[0].messages[0].text == "Describe image 1 in detail."
    image = data.samples[1].messages[0].images[0]
    assert Image.open(image).getpixel((0, 0)) == (2, 0, 0)  # the second record's picture, decoded
    assert data.info["extraction"] == "words" and data.info["nlp"] == "builtin"
    assert set(data.info["files"]) == {
        "obj_halbench_300_with_image.jsonl",
        "synonyms_refine.txt",
        "instances_val2014.json",
        "captions_val2014.json",
    }
    assert len(load(tmp_path / "d", extraction="words").samples) == 4  # from the cache, same answer


def test_words_mode_metrics_hand_computed(tmp_path):
    task = ObjHal()
    data = task.load(DataSpec(data_dir=make_data(tmp_path / "d"), options={"objhal.nlp": "builtin"}))
    assert task.extraction == "llm"  # the default with real data
    for s in data.samples:
        s.meta["extraction"] = "words"
    answers = {
        101: "A man and his puppy play with a cat. The dog runs.",  # person, dog, cat (halluc.), dog
        102: "Assistant: A yellow taxi on the street.",  # car
        103: "A clean white bathroom with tiles.",  # no object: counts for CHAIRs, not for refine
        104: "An elephant sits on a chair wearing a bow tie.",  # elephant, chair (h), tie (h)
    }
    rows = scored_rows(task, data.samples, answers)
    assert rows[0]["objects"] == [[["man", "person"], ["puppy", "dog"], ["cat", "cat"], ["dog", "dog"]]]
    assert rows[0]["hallucinated_objects"] == [[["cat", "cat"]]]
    assert rows[3]["hallucinated_objects"] == [[["chair", "chair"], ["tie", "tie"]]]
    assert rows[2]["objects"] == [[]] and rows[1]["n_words"] == 6  # "Assistant:" removed
    m = task.aggregate(rows)
    assert m["CHAIRs"]["value"] == pytest.approx(100 * 2 / 4)
    assert m["CHAIRs_refine"]["value"] == pytest.approx(100 * 2 / 3)
    assert m["CHAIRi"]["value"] == pytest.approx(100 * 3 / 8)  # every mention counts, "dog" twice
    assert m["obj_recall"]["value"] == pytest.approx(100 * (2 + 1 + 0 + 1) / (2 + 2 + 1 + 1))
    assert m["mentions"]["value"] == 8 and m["hallucinated_mentions"]["value"] == 3
    assert m["responses_with_objects"]["value"] == 3 and m["gt_classes"]["value"] == 6
    assert m["avg_word_len"]["value"] == pytest.approx((12 + 6 + 6 + 10) / 4)
    assert m["CHAIRs_refine"]["n"] == 4 and m["CHAIRs_refine"]["ci_low"] <= m["CHAIRs_refine"]["value"]


def test_double_words_and_the_toilet_seat_rule(vocab, nlp):
    text = "A baby elephant by the train tracks, a toilet seat, a bow tie and a sports car."
    # WordNet makes "sports" "sport", so "sports car" is matched by its "car"
    assert caption_words(text, vocab, nlp) == ["elephant", "toilet", "tie", "car"]
    # 'seat' is a chair only when no toilet is mentioned; 'train track' hides 'train'
    assert caption_words("A seat on a train.", vocab, nlp) == ["seat", "train"]
    assert caption_words("The seat of the toilet.", vocab, nlp) == ["toilet"]
    words = caption_words("Two kittens, three puppies, women, men.", vocab, nlp)
    assert words == ["kitten", "puppy", "woman"]  # WordNet keeps "men" (a noun of its own), so no match


def test_synonym_list_rules():
    v = Vocabulary.parse("person, man, rider\nbicycle, bike, rider\nbus,  minibus ,school bus\n")
    assert v.classes == ("person", "bicycle", "bus")
    assert v.canonical["rider"] == "bicycle"  # a word on two lines belongs to the last one
    assert v.canonical["minibus ,school bus"] == "bus"  # split on ", " only, entries stripped
    assert v.double_words["baby dog"] == "dog" and v.double_words["passenger train"] == "train"
    assert v.double_words["home plate"] == "home plate" and v.double_words["wine glas"] == "wine glass"
    with pytest.raises(UserError, match="no synonym lines"):
        Vocabulary.parse("\n\n")


def test_official_synonym_list(shared):
    v = Vocabulary.parse((shared / "objhal_bench" / "synonyms_refine.txt").read_text())
    assert len(v.classes) == 80 and v.classes[0] == "person" and v.classes[-1] == "toothbrush"
    assert (
        v.canonical["bow tie"] == "tie" and v.canonical["puppy"] == "dog" and v.canonical["seat"] == "chair"
    )
    nlp = resolve("builtin").with_lexicon(v.lexicon())
    words = caption_words("Two women on motor bikes pass a hot dog stand and wine glasses.", v, nlp)
    assert [v.canonical[w] for w in words] == ["person", "motorcycle", "hot dog", "wine glass"]
    assert caption_words("A glass vase, vases and sports.", v, nlp) == ["vase"]  # WordNet: vas, sport


def test_reply_parser():
    assert parse_object_list('["dog", "red car"]') == (["dog", "red car"], "parsed")
    assert parse_object_list("[]") == ([], "parsed")
    assert parse_object_list('Objects:\n["dog", "cat"]') == (["dog", "cat"], "last_line")
    assert parse_object_list('["dog",\n oops') == (None, "unparsed")  # has '["' but the last line fails
    assert parse_object_list("dog, cat") == (None, "unparsed")  # no '["': no fallback
    assert parse_object_list("()") == (None, "unparsed")
    assert parse_object_list('"dog"') == (None, "unparsed")  # JSON, but not a list
    assert parse_object_list(None) == (None, "unparsed")


def test_phrases_are_refined_to_distinct_objects(vocab, nlp):
    phrases = [
        "men",
        "puppies",
        "black cat",
        "dog",
        "dog",
        "baby elephant",
        "wooden seat",
        "toilet",
        "a taxi",
    ]
    # double words first ("baby elephant" → elephant), else the noun run; duplicates dropped
    assert refine_phrases(phrases, vocab, nlp) == [
        "man",
        "puppy",
        "cat",
        "dog",
        "elephant",
        "seat",
        "toilet",
        "taxi",
    ]
    assert refine_phrases(["baseball player", "sports car", 7], vocab, nlp) == [
        "baseball player",
        "sports car",
    ]


def test_train_annotations_are_needed_only_for_images_not_in_val(tmp_path):
    with pytest.raises(UserError, match="instances_train2014.json and captions_train2014.json"):
        load(make_data(tmp_path / "a", image_ids=(101, 205)))
    data = load(make_data(tmp_path / "b", image_ids=(101, 205), train=True))
    assert [set(s.target) for s in data.samples] == [GT[101], {"cat", "chair"}]
    assert "instances_train2014.json" in data.info["files"]


def test_missing_files_are_named(tmp_path):
    with pytest.raises(UserError, match="obj_halbench_300_with_image.jsonl not found.*RLHF-V"):
        load(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError) as err:
        load(empty)
    for name in ("obj_halbench_300_with_image.jsonl", "synonyms_refine.txt", "instances_val2014.json"):
        assert name in str(err.value)
    assert "annotations_trainval2014.zip" in str(err.value)
    root = make_data(tmp_path / "d")
    (root / "annotations" / "captions_val2014.json").unlink()
    with pytest.raises(UserError, match="captions_val2014.json missing"):
        load(root)
    with pytest.raises(UserError, match="objhal.synonyms=.*nowhere.txt: file not found"):
        load(root, synonyms=str(tmp_path / "nowhere.txt"))
    with pytest.raises(UserError, match="objhal.extraction=gpt: expected one of llm, words"):
        load(make_data(tmp_path / "e"), extraction="gpt")
    with pytest.raises(UserError, match="objhal takes objhal.extraction, objhal.nlp"):
        load(tmp_path / "e", colour="red")
    with pytest.raises(UserError, match="objhal needs data: pass --data toy, or --data-dir"):
        ObjHal().load(DataSpec())


def test_toy_data_loads_in_words_mode():
    from evalkit.toy.world import sample_scenes

    task = ObjHal()
    data = task.load(DataSpec(toy=True, options={"objhal.nlp": "builtin"}, limit=20))
    scenes = sample_scenes(20, 0)
    assert len(data.samples) == 20 and task.extraction == "words"
    assert [set(s.target) for s in data.samples] == [set(sc.objects) for sc in scenes]
    assert all(s.messages[0].text == "Describe the image." for s in data.samples)
    assert Image.open(data.samples[3].messages[0].images[0]).size == (48, 48)
    # a toy answer naming one true object (by a synonym) and one absent object
    scene = scenes[0]
    absent = next(o for o in ("apple", "dog", "bus", "clock") if o not in scene.objects)
    from evalkit.tasks.objhal.toy import SYNONYMS

    answer = f"I see {SYNONYMS[scene.objects[0]][0]}s and an {absent}."
    (row,) = scored_rows(task, data.samples[:1], {data.samples[0].meta["image_id"]: answer})
    assert [c for _, c in row["objects"][0]] == [scene.objects[0], absent]
    assert row["hallucinated_objects"] == [[[absent, absent]]]


def test_official_tools_agree_with_the_builtin_ones_when_installed(shared):
    """Where NLTK's WordNet is installed: the built-in lemmatizer gives every word of the official synonym
    list and its plural the class WordNet gives it (the built-in one is what runs without NLTK)."""
    from evalkit.tasks.nlp import installed

    if installed().wordnet is None:
        pytest.skip("NLTK with WordNet data is not installed")
    auto = resolve("auto")
    v = Vocabulary.parse((shared / "objhal_bench" / "synonyms_refine.txt").read_text())
    builtin = resolve("builtin").with_lexicon(v.lexicon())
    words = {w for entry in v.canonical for w in entry.lower().split(" ")}
    words |= {
        w[:-1] + "ies" if w.endswith("y") else w + ("es" if w.endswith(("s", "x", "ch")) else "s")
        for w in words
    }
    words |= {"men", "women", "children", "people", "mice", "knives", "oxen", "glasses", "buses", "benches"}
    lexicon = v.lexicon()

    def matched(lemma):
        return lemma if lemma in lexicon else None

    differ = {w for w in words if matched(auto.lemmatize(w)) != matched(builtin.lemmatize(w))}
    # all that differs: "plurals" of words already plural or not nouns
    assert differ <= {"childrens", "hots", "potteds", "skises", "sportses"}, sorted(differ)
    if auto._spacy is not None:  # the tagger: the phrase refinement gives the same objects here
        phrases = ["red car", "baby dog", "dining table", "two wooden chairs", "a man", "puppies", "bow tie"]
        assert refine_phrases(phrases, v, auto) == refine_phrases(phrases, v, builtin)
