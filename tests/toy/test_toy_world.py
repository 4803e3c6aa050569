"""The toy world and its POPE files: determinism, the official schema, and POPE's negative sampling."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evalkit.tasks.pope import toy as pope_data
from evalkit.tasks.pope.toy import default_toy_dir, question_text, write_pope
from evalkit.toy.world import BACKGROUND, GRID, OBJECTS, SIZE, STYLE, Scene, cell_box, render, sample_scenes

N = 60
SPLITS = ("random", "popular", "adversarial")
TEXT = re.compile(r"^Is there (a|an) ([a-z]+) in the image\?$")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("toy")
    return {
        "a": write_pope(base / "a", seed=0, n_images=N),
        "b": write_pope(base / "b", seed=0, n_images=N),
        "c": write_pope(base / "c", seed=1, n_images=N),
    }


@pytest.fixture(scope="module")
def data(dirs):
    root = dirs["a"]
    ann = json.loads((root / "annotations.json").read_text())
    splits = {}
    for s in SPLITS:
        lines = (root / f"coco_pope_{s}.json").read_text().splitlines()
        splits[s] = [json.loads(line) for line in lines]
    return root, ann, splits


def noun(q: dict) -> str:
    m = TEXT.match(q["text"])
    assert m, q["text"]
    return m.group(2)


def per_image(questions: list[dict]) -> list[tuple[str, list[str]]]:
    """[(image_id, [yes1, no1, yes2, no2, yes3, no3])] in file order."""
    out = []
    for i in range(0, len(questions), 6):
        group = questions[i : i + 6]
        assert len({q["image"] for q in group}) == 1
        assert [q["label"] for q in group] == ["yes", "no"] * 3
        out.append((group[0]["image"].removesuffix(".png"), [noun(q) for q in group]))
    return out


def candidates(objs: list[str], asked: list[str]) -> list[str]:
    return [o for o in OBJECTS if o not in objs and o not in asked]


# ---------------------------------------------------------------- world


def test_object_classes_are_distinct_nouns_with_unique_colours():
    assert 10 <= len(OBJECTS) <= 14 and len(set(OBJECTS)) == len(OBJECTS)
    assert all(re.fullmatch(r"[a-z]+", o) for o in OBJECTS)
    colours = [c for _, c in STYLE.values()]
    assert len(set(colours)) == len(colours) and BACKGROUND not in colours
    assert len(set(STYLE.values())) == len(STYLE)


def test_sample_scenes_is_deterministic_and_well_formed():
    a, b, c = sample_scenes(200, 3), sample_scenes(200, 3), sample_scenes(200, 4)
    assert a == b and a != c
    assert len({s.image_id for s in a}) == 200
    for s in a:
        assert 3 <= len(s.objects) <= 5 and len(s.objects) == len(s.cells)
        assert len(set(s.objects)) == len(s.objects) and set(s.objects) <= set(OBJECTS)
        assert s.cells == sorted(set(s.cells)) and all(0 <= c < GRID * GRID for c in s.cells)


def test_world_has_skewed_frequencies_and_co_occurrence():
    scenes = sample_scenes(1000, 0)
    freq = Counter(o for s in scenes for o in s.objects)
    assert set(freq) == set(OBJECTS)
    assert freq.most_common()[0][1] > 1.8 * freq.most_common()[-1][1]
    # co-occurrence is not explained by frequencies alone: some pair is far above independence
    pair = Counter((a, b) for s in scenes for a in s.objects for b in s.objects if a != b)
    n = len(scenes)
    lift = max(pair[(a, b)] * n / (freq[a] * freq[b]) for a, b in pair)
    assert lift > 1.5


def test_render_pixels():
    scene = Scene("t", ["apple", "umbrella", "car"], [0, 4, 8])
    img = render(scene)
    assert img.mode == "RGB" and img.size == (SIZE, SIZE)
    px = np.asarray(img)
    for cell in range(GRID * GRID):
        x0, y0, x1, y1 = cell_box(cell)
        sub = px[y0:y1, x0:x1]
        if cell in scene.cells:
            colour = STYLE[scene.objects[scene.cells.index(cell)]][1]
            assert tuple(sub[8, 8]) == colour
            # only the object's colour and background inside its cell; the cell border is background
            assert {tuple(p) for p in sub.reshape(-1, 3)} == {colour, BACKGROUND}
            assert (sub[0] == BACKGROUND).all() and (sub[:, 0] == BACKGROUND).all()
        else:
            assert (sub == BACKGROUND).all()
    assert np.array_equal(px, np.asarray(render(scene)))


def test_every_class_renders_with_its_colour_at_the_centre():
    for name in OBJECTS:
        px = np.asarray(render(Scene("t", [name], [4])))
        _, colour = STYLE[name]
        assert tuple(px[24, 24]) == colour
        assert (px == colour).all(axis=-1).sum() >= 40  # a real shape, not a dot


# ---------------------------------------------------------------- POPE files


def test_question_text_article():
    assert question_text("apple") == "Is there an apple in the image?"
    assert question_text("umbrella") == "Is there an umbrella in the image?"
    assert question_text("dog") == "Is there a dog in the image?"


def test_files_are_deterministic(dirs):
    files_a = sorted(p.relative_to(dirs["a"]) for p in dirs["a"].rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(dirs["b"]) for p in dirs["b"].rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == N + 5
    for rel in files_a:
        assert (dirs["a"] / rel).read_bytes() == (dirs["b"] / rel).read_bytes(), rel


def test_different_seed_gives_different_data(dirs):
    for name in ["annotations.json", *(f"coco_pope_{s}.json" for s in SPLITS)]:
        assert (dirs["a"] / name).read_bytes() != (dirs["c"] / name).read_bytes()
    img_a = sorted((dirs["a"] / "images").iterdir())[0].read_bytes()
    img_c = sorted((dirs["c"] / "images").iterdir())[0].read_bytes()
    assert img_a != img_c


def test_meta_and_layout(data):
    root, ann, _ = data
    meta = json.loads((root / "toy_meta.json").read_text())
    assert (meta["seed"], meta["n_images"], meta["version"]) == (0, N, pope_data.VERSION)
    assert len(ann) == N
    assert sorted(p.stem for p in (root / "images").glob("*.png")) == sorted(ann)


def test_official_schema_and_counts(data):
    _, ann, splits = data
    for questions in splits.values():
        assert len(questions) == 6 * N
        assert [q["question_id"] for q in questions] == list(range(1, 6 * N + 1))
        for q in questions:
            assert list(q) == ["question_id", "image", "text", "label"]
            assert isinstance(q["question_id"], int) and q["label"] in ("yes", "no")
            assert q["image"].endswith(".png") and q["image"].removesuffix(".png") in ann
            m = TEXT.match(q["text"])
            assert m and (m.group(1) == "an") == (m.group(2)[0] in "aeiou")
        assert sum(q["label"] == "yes" for q in questions) == 3 * N
        groups = per_image(questions)
        assert [img for img, _ in groups] == list(ann)  # every image once, in annotation order


def test_official_line_format(data):
    root, _, _ = data
    first = (root / "coco_pope_random.json").read_text().splitlines()[0]
    assert first.startswith('{"question_id": 1, "image": "') and first.endswith('"label": "yes"}')


def test_yes_identical_across_splits_and_no_really_absent(data):
    _, ann, splits = data
    yes = {s: [q for q in qs if q["label"] == "yes"] for s, qs in splits.items()}
    assert yes["random"] == yes["popular"] == yes["adversarial"]
    for questions in splits.values():
        for img, nouns in per_image(questions):
            assert len(set(nouns)) == 6
            assert all(o in ann[img] for o in nouns[0::2])
            assert not any(o in ann[img] for o in nouns[1::2])


def test_popular_negatives_are_most_frequent_absent(data):
    _, ann, splits = data
    freq = Counter(o for objs in ann.values() for o in objs)
    for img, nouns in per_image(splits["popular"]):
        for i in range(1, 6, 2):
            cands = candidates(ann[img], nouns[:i])
            assert freq[nouns[i]] == max(freq[c] for c in cands), (img, nouns)


def test_adversarial_negatives_co_occur_most_with_their_positive(data):
    _, ann, splits = data
    co = Counter((a, b) for objs in ann.values() for a in objs for b in objs if a != b)
    for img, nouns in per_image(splits["adversarial"]):
        for i in range(1, 6, 2):
            pos, neg = nouns[i - 1], nouns[i]
            best = max(co[(pos, c)] for c in candidates(ann[img], nouns[:i]))
            if best > 0:  # otherwise POPE falls back to a random absent class
                assert co[(pos, neg)] == best, (img, nouns)


def test_splits_really_differ(data):
    _, ann, splits = data
    negs = {s: [q["text"] for q in qs if q["label"] == "no"] for s, qs in splits.items()}
    for a, b in [("random", "popular"), ("random", "adversarial"), ("popular", "adversarial")]:
        differ = sum(x != y for x, y in zip(negs[a], negs[b], strict=True))
        assert differ > 0.3 * len(negs[a]), (a, b, differ)
    freq = Counter(o for objs in ann.values() for o in objs)
    co = Counter((a, b) for objs in ann.values() for a in objs for b in objs if a != b)

    def mean_freq(split):
        return np.mean([freq[n] for _, ns in per_image(splits[split]) for n in ns[1::2]])

    def mean_co(split):
        pairs = [
            (p, n) for _, ns in per_image(splits[split]) for p, n in zip(ns[0::2], ns[1::2], strict=True)
        ]
        return np.mean([co[pair] for pair in pairs])

    assert mean_freq("popular") > 1.2 * mean_freq("random")
    assert mean_co("adversarial") > 1.5 * mean_co("random")


def test_images_on_disk_match_annotations(data):
    root, ann, _ = data
    scenes = {s.image_id: s for s in sample_scenes(N, 0)}
    for img in list(ann)[:10]:
        scene = scenes[img]
        assert scene.objects == ann[img]
        px = np.asarray(Image.open(root / "images" / f"{img}.png"))
        assert px.shape == (SIZE, SIZE, 3)
        assert np.array_equal(px, np.asarray(render(scene)))
        for cell in range(GRID * GRID):
            x0, y0, _, _ = cell_box(cell)
            centre = tuple(px[y0 + 8, x0 + 8])
            if cell in scene.cells:
                assert centre == STYLE[scene.objects[scene.cells.index(cell)]][1]
            else:
                assert centre == BACKGROUND


# ---------------------------------------------------------------- writing


def test_write_is_idempotent_and_replaces_stale_data(tmp_path):
    root = tmp_path / "pope"
    write_pope(root, seed=2, n_images=5)
    marker = root / "images" / "marker"
    marker.write_text("x")
    assert write_pope(root, seed=2, n_images=5) == root
    assert marker.exists()  # untouched: same parameters
    write_pope(root, seed=2, n_images=7)
    assert not marker.exists()
    assert len(json.loads((root / "annotations.json").read_text())) == 7
    assert [p.name for p in tmp_path.iterdir()] == ["pope"]  # no temp folders left


def test_write_refuses_foreign_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        write_pope(tmp_path, seed=0, n_images=3)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_default_toy_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path))
    assert default_toy_dir(3, 50) == tmp_path / "toy" / "pope-s3-n50"
    monkeypatch.delenv("EVALKIT_CACHE")
    assert default_toy_dir(0, 100) == Path.home() / ".cache" / "evalkit" / "toy" / "pope-s0-n100"
