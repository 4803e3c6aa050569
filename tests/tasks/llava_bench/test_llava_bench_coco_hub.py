"""LLaVA-Bench (COCO) without --data-dir: the images from lmms-lab/llava-bench-coco's parquet in a Hugging
Face cache laid out on disk (support/hub_cache.py), the qa90 files and caps_boxes_coco2014_val_80.jsonl as
official files kept under their sha256; an offline run gives the samples and metrics the same files and
images give through --data-dir (candidate and GPT-4 judge played by a local server), and records what it
read. The official files here are test-made, declared with their own sha256 in place of the real pins;
one test checks the real pins against the verbatim files and the samples they give."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from support.hub_cache import HubCache, parquet_bytes, png_bytes
from support.openai_server import last_user_text

from evalkit.hubdata.official import OfficialFile
from evalkit.judges.settings import JudgeSettings
from evalkit.models.base import BackendOptions
from evalkit.models.openai_backend import OpenAIBackend
from evalkit.registry import get_task
from evalkit.runner import evaluate
from evalkit.task import DataSpec
from evalkit.tasks.llava_bench import hub
from evalkit.types import UserError

pytestmark = pytest.mark.usefixtures("fast_retries")

COMMIT = "0123456789abcdef0123456789abcdef01234567"
PARQUET = "data/train-00000-of-00001.parquet"
FEATURES = {"question_id": "string", "question": "string", "image": "Image", "category": "string"}
FEATURES |= {"image_id": "string", "answer": "string", "caption": "string"}
COLORS = {"000000000101.jpg": (200, 30, 30), "000000000202.jpg": (30, 30, 200)}
BOXES = {
    "000000000101.jpg": (["A red apple on a table.", "An apple."], [("apple", [0.1, 0.2, 0.5, 0.6])]),
    "000000000202.jpg": (["A dog runs."], [("dog", [0.0, 0.1, 0.9, 0.8]), ("ball", [0.7, 0.7, 0.8, 0.8])]),
}
QUESTIONS = [  # (question_id, image, category, question, GPT-4 reference)
    (0, "000000000101.jpg", "conv", "What fruit is on the table?", "There is a red apple."),
    (1, "000000000101.jpg", "detail", "Describe the image in detail.", "A red apple on a wooden table."),
    (2, "000000000202.jpg", "complex", "Why might the dog be running?", "It is chasing the ball."),
]
PAIRS = {0: (8, 6), 1: (9, 9), 2: (6, 3)}


def jsonl(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def official_bytes() -> dict[str, bytes]:
    return {
        "qa90_questions.jsonl": jsonl(
            [{"question_id": q, "image": im, "text": t, "category": c} for q, im, c, t, _ in QUESTIONS]
        ),
        "qa90_gpt4_answer.jsonl": jsonl(
            [{"question_id": q, "text": ref, "category": c} for q, _, c, _, ref in QUESTIONS]
        ),
        "caps_boxes_coco2014_val_80.jsonl": jsonl(
            [
                {
                    "id": im[:-4],
                    "image": im,
                    "captions": caps,
                    "instances": [{"category": c, "bbox": b} for c, b in boxes],
                }
                for im, (caps, boxes) in BOXES.items()
            ]
        ),
    }


def hub_rows(images: dict[str, bytes], change=None) -> list[dict]:
    rows = []
    for qid, im, cat, text, ref in QUESTIONS:
        row = {
            "question_id": str(qid),
            "question": text,
            "image": {"bytes": images[im], "path": None},
            "category": cat,
            "image_id": im[:-4],
            "answer": ref,
            "caption": " ".join(BOXES[im][0]),  # one string, no boxes, as the hub copy has it
        }
        rows.append(change(row) if change else row)
    return rows


@pytest.fixture
def world(tmp_path, monkeypatch):
    """The test-made official files (declared and kept in the official cache), the same files with their
    images as a --data-dir folder, and an empty hub cache."""
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "ek"))
    official = tmp_path / "official"
    (official / "images").mkdir(parents=True)
    declared = {}
    for name, data in official_bytes().items():
        (official / name).write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        declared[name] = OfficialFile(f"https://example.invalid/LLaVA/{name}", sha, len(data), name)
    images = {im: png_bytes(color) for im, color in COLORS.items()}
    for im, data in images.items():
        (official / "images" / im).write_bytes(data)
    monkeypatch.setattr(hub, "COCO_OFFICIAL", declared)
    cache = HubCache.install(tmp_path / "hf", monkeypatch)
    return {"official": official, "declared": declared, "cache": cache, "images": images}


def keep_official(world) -> None:
    for name, f in world["declared"].items():
        f.path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(world["official"] / name, f.path)


def add_hub(world, change=None) -> None:
    rows = parquet_bytes(hub_rows(world["images"], change), FEATURES)
    world["cache"].add(hub.COCO_SOURCE.repo_id, COMMIT, {PARQUET: rows})


def play(body):
    text = last_user_text(body)
    for qid, im, _, question, _ in QUESTIONS:
        if body["model"] == "candidate" and text == question:
            return f"My answer to question {qid}."
        if body["model"] != "candidate" and f"\n[Question]\n{question}\n\n" in text:
            assert f"[Assistant 2]\nMy answer to question {qid}.\n\n" in text
            for category, box in BOXES[im][1]:  # the official context: captions and boxes
                assert f"{category}: {box}" in text
            return "{} {}\nBoth answers are fine.".format(*PAIRS[qid])
    raise AssertionError(f"unexpected request: {body['model']} {text[:80]!r}")


def run(server, tmp_path, name, **kw):
    backend = OpenAIBackend("candidate", BackendOptions(base_url=server.base_url, max_retries=3, timeout_s=5))
    settings = JudgeSettings(base_url=server.base_url, concurrency=2, timeout_s=5.0, runs=1)
    return evaluate(
        backend, ["llava_bench_coco"], output=tmp_path / name, judges=settings, progress=False, **kw
    )


def samples(result) -> list[tuple]:
    rows = [json.loads(line) for line in open(result.run_dir / "samples" / "llava_bench_coco.jsonl")]
    keys = ("id", "prompt", "prompt_hash", "target", "cluster", "meta", "response")
    return [tuple(r[k] for k in keys) for r in rows]


def test_an_offline_hub_run_equals_a_data_dir_run(world, tmp_path, openai_server):
    keep_official(world)
    add_hub(world)
    server = openai_server(responder=play)
    from_hub = run(server, tmp_path, "hub")
    from_dir = run(server, tmp_path, "dir", data_dir=world["official"])
    a = from_hub.metrics["llava_bench_coco"]["metrics"]
    b = from_dir.metrics["llava_bench_coco"]["metrics"]
    assert {k: v["value"] for k, v in a.items()} == {k: v["value"] for k, v in b.items()}
    assert a["relative"]["value"] == round(100 * (6 + 9 + 3) / (8 + 9 + 6), 1)
    assert samples(from_hub) == samples(from_dir)
    info = json.loads((from_hub.run_dir / "run.json").read_text())["tasks"]["llava_bench_coco"]["data"]
    assert info["hub"]["repo"] == "lmms-lab/llava-bench-coco" and info["hub"]["revision"] == COMMIT
    assert info["hub"]["pinned"] is False and info["hub"]["rows"] == len(QUESTIONS)
    parquet = world["cache"].repo_folder(hub.COCO_SOURCE.repo_id) / "snapshots" / COMMIT / PARQUET
    assert info["hub"]["files"] == {PARQUET: hashlib.sha256(parquet.read_bytes()).hexdigest()}
    assert info["hub"]["rows_differing_from_official"] == []
    assert {n: o["sha256"] for n, o in info["official"].items()} == {
        n: f.sha256 for n, f in world["declared"].items()
    }
    dir_info = json.loads((from_dir.run_dir / "run.json").read_text())["tasks"]["llava_bench_coco"]["data"]
    assert info["files"] == dir_info["files"]  # the same official files, by checksum
    assert info["version"].startswith("hub lmms-lab/llava-bench-coco images + official files (3 questions)")
    for im, data in world["images"].items():  # the images the prompts carry are the hub's bytes
        assert (Path(info["image_dir"]) / im).read_bytes() == data


def test_hub_rows_that_differ_from_the_official_files_are_recorded(world):
    keep_official(world)
    add_hub(world, lambda row: {**row, "question": "Other?"} if row["question_id"] == "2" else row)
    loaded = get_task("llava_bench_coco").load(DataSpec())
    assert loaded.info["hub"]["rows_differing_from_official"] == [2]
    assert [s.messages[0].text for s in loaded.samples][2] == QUESTIONS[2][3]  # the official text decides


def test_a_hub_copy_missing_an_image_names_it(world):
    keep_official(world)
    add_hub(world, lambda row: {**row, "question_id": "0"} if row["question_id"] == "2" else row)
    with pytest.raises(UserError, match=r"image 000000000202.jpg \(and 0 more\) of qa90_questions.jsonl"):
        get_task("llava_bench_coco").load(DataSpec())


def test_an_empty_cache_is_one_line_naming_the_fetch(world):
    task = get_task("llava_bench_coco")
    with pytest.raises(UserError) as err:
        task.load(DataSpec())
    assert "\n" not in str(err.value) and "`evalkit data fetch llava_bench_coco`" in str(err.value)
    assert "lmms-lab/llava-bench-coco" in str(err.value)
    add_hub(world)  # the images are there, the official files are not
    with pytest.raises(UserError) as err:
        task.load(DataSpec())
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("llava_bench_coco needs the official file qa90_questions.jsonl")
    assert "`evalkit data fetch llava_bench_coco`" in message


def test_llava_bench_coco_declares_its_sources():
    task = get_task("llava_bench_coco")
    assert task.hub_sources == (hub.COCO_SOURCE,)
    assert hub.COCO_SOURCE.mirrors == ("lmms-lab-encoder/llava-bench-coco",)
    assert {f.url.split(hub.COCO_COMMIT + "/", 1)[1]: f.sha256 for f in task.official_files} == {
        "playground/data/coco2014_val_qa_eval/qa90_questions.jsonl": (
            "2a77196696b5602b544244ace9aeac21300513be85b5e53eb2414d00cddbe1c7"
        ),
        "playground/data/coco2014_val_qa_eval/qa90_gpt4_answer.jsonl": (
            "5fd1a760483fb54e62a717a406add8a986f3e03a40d037b5d6515828cc90dbc5"
        ),
        "llava/eval/table/caps_boxes_coco2014_val_80.jsonl": (
            "818d3df2b52784699bbdc129b6bc68e035d78ff8f5093c3e2ce5e0f726549b15"
        ),
    }
    assert all(
        f.url.startswith("https://raw.githubusercontent.com/haotian-liu/LLaVA/")
        for f in hub.COCO_OFFICIAL.values()
    )


def test_the_pins_are_the_official_files_and_give_their_samples(shared, tmp_path, monkeypatch):
    """With the verbatim official files (kept under the real pins) and a hub parquet of test-made images
    for the 90 rows, the hub path gives the samples the official files give through --data-dir."""
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "ek"))
    data = shared / "llava_bench" / "coco"
    for name, f in hub.COCO_OFFICIAL.items():
        assert f.sha256 == hashlib.sha256((data / name).read_bytes()).hexdigest()
        assert (data / name).stat().st_size == f.size
        f.path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data / name, f.path)
    folder = tmp_path / "official"
    shutil.copytree(data, folder)
    (folder / "images").mkdir()
    questions = [json.loads(line) for line in (data / "qa90_questions.jsonl").read_text().splitlines()]
    names = sorted({q["image"] for q in questions})
    assert len(questions) == 90 and len(names) == 30
    images = {im: png_bytes((i, 255 - i, 7), size=4) for i, im in enumerate(names)}
    for im, data_ in images.items():
        (folder / "images" / im).write_bytes(data_)
    rows = [
        {
            "question_id": str(q["question_id"]),
            "question": q["text"],
            "image": {"bytes": images[q["image"]], "path": None},
            "category": q["category"],
            "image_id": q["image"][:-4],
            "answer": "",
            "caption": "",
        }
        for q in questions
    ]
    cache = HubCache.install(tmp_path / "hf", monkeypatch)
    cache.add(hub.COCO_SOURCE.repo_id, COMMIT, {PARQUET: parquet_bytes(rows, FEATURES)})
    task = get_task("llava_bench_coco")
    from_hub = task.load(DataSpec())
    from_dir = task.load(DataSpec(data_dir=folder))

    def plain(s):
        (message,) = s.messages
        (image,) = message.images
        return (s.id, message.text, s.target, s.cluster, s.meta, Path(image).read_bytes())

    assert [plain(s) for s in from_hub.samples] == [plain(s) for s in from_dir.samples]
    assert len(from_hub.samples) == 90
    assert all("\n\n" in s.meta["context"] for s in from_hub.samples)  # captions, then the boxes
    assert from_hub.info["files"] == from_dir.info["files"]
    assert from_hub.info["hub"]["rows"] == 90 and from_hub.info["hub"]["rows_differing_from_official"] == []
