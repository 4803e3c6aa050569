"""MT-Bench with an irrelevant image (the first study's Table 7): the seeded draw per question checked against
a hand computation from the sorted file names, the image on every turn, the "<image>\\n" text-token reading,
the default requests byte for byte as without the options, the recorded setting, the one-line errors, and
one run through the local OpenAI-compatible server where the candidate receives the drawn image.
"""

import base64
import hashlib
import io
import json

import pytest
from PIL import Image
from support.openai_server import FakeOpenAIServer, message_text

from evalkit.judges.settings import JudgeSettings
from evalkit.models.base import BackendOptions
from evalkit.models.openai_backend import OpenAIBackend
from evalkit.runner import evaluate
from evalkit.task import DataSpec
from evalkit.tasks.mt_bench import MTBench
from evalkit.tasks.mt_bench.data import QUESTION_FILE
from evalkit.types import UserError

pytestmark = pytest.mark.usefixtures("fast_retries")

COLOURS = {"b.png": (0, 0, 255), "a.jpg": (255, 0, 0), "c.PNG": (0, 255, 0)}
SORTED = ["a.jpg", "b.png", "c.PNG"]  # by name; notes.txt and the sub-folder are not images
OFFICIAL = [json.loads(line) for line in QUESTION_FILE.read_text().splitlines() if line.strip()]
QUESTION_IDS = [q["question_id"] for q in OFFICIAL]
#: question id → its two questions, straight from the bundled question.jsonl
TURNS = {q["question_id"]: q["turns"] for q in OFFICIAL}
BY_FIRST_TURN = {q["turns"][0]: q["question_id"] for q in OFFICIAL}


@pytest.fixture
def image_dir(tmp_path):
    folder = tmp_path / "coco"
    folder.mkdir()
    for name, colour in COLOURS.items():
        Image.new("RGB", (8, 8), colour).save(folder / name, format="JPEG" if name.endswith("jpg") else "PNG")
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub.png").mkdir()
    return folder


def by_hand(seed, qid):
    """The documented rule: sha256("<seed>:<question_id>") as an integer, modulo the number of images."""
    return SORTED[int(hashlib.sha256(f"{seed}:{qid}".encode()).hexdigest(), 16) % len(SORTED)]


def load(**options):
    return MTBench().load(DataSpec(toy=True, options={f"mt_bench.{k}": v for k, v in options.items()}))


def turn2(task, sample):
    return task.turn_request(sample, 2, ["first answer"])


def test_each_question_gets_the_hand_computed_image_on_every_turn(image_dir):
    task = MTBench()
    for seed in (0, 7):
        loaded = load(image_dir=str(image_dir), image_seed=str(seed))
        assert [s.meta["question_id"] for s in loaded.samples] == QUESTION_IDS
        for sample in loaded.samples:
            expected = str(image_dir / by_hand(seed, sample.meta["question_id"]))
            assert sample.meta["image"] == by_hand(seed, sample.meta["question_id"])
            assert [m.images for m in task.request(sample).messages] == [(expected,)]
            roles = [(m.role, m.images) for m in turn2(task, sample).messages]
            assert roles == [("user", (expected,)), ("assistant", ()), ("user", (expected,))]
        drawn = {by_hand(seed, q) for q in QUESTION_IDS}
        info = loaded.info["irrelevant_image"]
        assert info["mode"] == "image" and info["seed"] == seed and info["n_images"] == 3
        assert info["drawn"] == {n: hashlib.sha256((image_dir / n).read_bytes()).hexdigest() for n in drawn}
    # 80 questions over 3 images: the draw uses them all, and the two seeds differ somewhere
    assert {by_hand(0, q) for q in QUESTION_IDS} == set(SORTED)
    assert any(by_hand(0, q) != by_hand(7, q) for q in QUESTION_IDS)


def test_default_seed_is_zero_and_text_is_unchanged(image_dir):
    plain, seeded = load().samples, load(image_dir=str(image_dir)).samples
    for a, b in zip(plain, seeded, strict=True):
        assert b.meta["image"] == by_hand(0, a.meta["question_id"])
        assert [(m.role, m.text) for m in a.messages] == [(m.role, m.text) for m in b.messages]
        assert b.meta["questions"] == a.meta["questions"]  # the judge sees the original questions


def test_text_token_reading_prefixes_the_first_question_only():
    task = MTBench()
    loaded = load(image_mode="text-token")
    assert loaded.info["irrelevant_image"] == {"mode": "text-token", "text": "<image>\n"}
    for sample in loaded.samples:
        q1, q2 = TURNS[int(sample.id)]
        first = task.request(sample).messages
        assert [(m.role, m.text, m.images) for m in first] == [("user", "<image>\n" + q1, ())]
        second = [(m.role, m.text, m.images) for m in turn2(task, sample).messages]
        assert second == [("user", "<image>\n" + q1, ()), ("assistant", "first answer", ()), ("user", q2, ())]
        assert "image" not in sample.meta and sample.meta["image_mode"] == "text-token"


def test_default_requests_and_info_are_unchanged():
    """Without the options the rows, requests and data info are those of the task before them."""
    task = MTBench()
    loaded = load()
    assert "irrelevant_image" not in loaded.info
    for sample in loaded.samples:
        q1, q2 = TURNS[sample.meta["question_id"]]
        assert set(sample.meta) == {"question_id", "category", "questions"}
        req = task.request(sample)
        assert [(m.role, m.text, m.images) for m in req.messages] == [("user", q1, ())]
        second = turn2(task, sample).messages
        assert [(m.role, m.text, m.images) for m in second] == [
            ("user", q1, ()),
            ("assistant", "first answer", ()),
            ("user", q2, ()),
        ]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"image_dir": "MISSING"}, "folder not found"),
        ({"image_dir": "EMPTY"}, "no images"),
        ({"image_mode": "image"}, "needs mt_bench.image_dir"),
        ({"image_seed": "3"}, "needs mt_bench.image_dir"),
        ({"image_mode": "text-token", "image_dir": "IMAGES"}, "sends no image"),
        ({"image_dir": "IMAGES", "image_seed": "x"}, "expected an integer"),
        ({"image_mode": "pixels"}, "expected one of image, text-token"),
    ],
)
def test_errors_are_one_line(tmp_path, image_dir, options, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    paths = {"MISSING": str(tmp_path / "nope"), "EMPTY": str(tmp_path / "empty"), "IMAGES": str(image_dir)}
    with pytest.raises(UserError) as err:
        load(**{k: paths.get(v, v) for k, v in options.items()})
    assert message in str(err.value) and "\n" not in str(err.value).replace("<image>\n", "")


def decoded_colour(part):
    data = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
    return Image.open(io.BytesIO(data)).convert("RGB").getpixel((4, 4))


def test_run_sends_the_drawn_image_every_turn_and_is_a_different_run(tmp_path, image_dir):
    def play(body):
        if body["model"] == "candidate":
            return "an answer"
        return "Rating: [[5]]"

    def run(name, options):
        backend = OpenAIBackend("candidate", BackendOptions(base_url=server.base_url, timeout_s=2.0))
        judges = JudgeSettings(
            base_url=server.base_url, cache_path=tmp_path / f"{name}.sqlite", timeout_s=2.0
        )
        try:
            return evaluate(
                backend,
                [MTBench()],
                data="toy",
                limit=2,
                output=tmp_path / name,
                judges=judges,
                progress=False,
                task_options=options,
            )
        finally:
            backend.close()

    with FakeOpenAIServer(responder=play) as server:
        plain = run("plain", {})
        imaged = run("imaged", {"mt_bench.image_dir": str(image_dir), "mt_bench.image_seed": "7"})
        bodies = [b for b in server.requests if b["model"] == "candidate"]
    assert plain.header["config_hash"] != imaged.header["config_hash"]
    assert len(bodies) == 8
    for body in bodies[4:]:
        first = message_text(body["messages"][0])
        qid = BY_FIRST_TURN[first]
        expected = COLOURS[by_hand(7, qid)]
        users = [m for m in body["messages"] if m["role"] == "user"]
        parts = [p for m in users for p in m["content"] if p.get("type") == "image_url"]
        assert len(parts) == len(users) and all(decoded_colour(p)[:3] == expected for p in parts)
    for body in bodies[:4]:
        assert all(
            isinstance(m["content"], str) or all(p.get("type") == "text" for p in m["content"])
            for m in body["messages"]
        )
    rows = [json.loads(line) for line in open(imaged.run_dir / "samples" / "mt_bench.jsonl")]
    assert {r["meta"]["image"] for r in rows} == {by_hand(7, q) for q in QUESTION_IDS[:2]}
