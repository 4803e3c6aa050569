"""AMBER without --data-dir: the images from qgallouedec/amber's `generative` parquet in a Hugging Face cache
laid out on disk (support/hub_cache.py), the data files as official files kept under their pinned sha256;
an offline run gives the samples and metrics the same files and images give through --data-dir, and
records what it read. The data files here are the toy set's, declared with their own sha256 in place of
the real pins (the real files are not part of the tests)."""

import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from support.hub_cache import HubCache, parquet_bytes
from support.openai_server import last_user_text

from evalkit.hubdata.official import OfficialFile
from evalkit.models.base import BackendOptions
from evalkit.models.openai_backend import OpenAIBackend
from evalkit.runner import evaluate
from evalkit.tasks.amber import hub
from evalkit.tasks.amber.data import DATA_FILES
from evalkit.tasks.amber.toy import write_amber
from evalkit.types import UserError

pytestmark = pytest.mark.usefixtures("fast_retries")

COMMIT = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
PARQUET = "generative/train-00000-of-00001.parquet"
FEATURES = {"image": "Image", "id": "int32", "query": "string", "type": "string"}
FEATURES |= {"truth": "list[string]", "hallu": "list[string]"}
OPTIONS = {"amber.nlp": "basic", "amber.answers": "exact"}
N_IMAGES = 6


@pytest.fixture
def world(tmp_path, monkeypatch):
    """The toy files as the official release (declared and kept in the official cache), the same files
    with their images as a --data-dir folder, and the hub cache with the generative parquet."""
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "ek"))
    toy = write_amber(tmp_path / "toy", n_images=N_IMAGES)
    official = tmp_path / "official"
    for name in (*DATA_FILES, "metrics.txt"):
        (official / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(toy / name, official / name)
    shutil.copytree(toy / "images", official / "image")
    declared = {}
    for name in (*DATA_FILES, "metrics.txt"):
        data = (official / name).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        f = OfficialFile(f"https://example.invalid/AMBER/data/{name}", sha, len(data), name.split("/")[-1])
        declared[name] = f
    monkeypatch.setattr(hub, "OFFICIAL", declared)
    cache = HubCache.install(tmp_path / "hf", monkeypatch)
    annotations = json.loads((toy / "annotations.json").read_text())
    queries = json.loads((toy / "query" / "query_all.json").read_text())
    return {
        "toy": toy,
        "official": official,
        "declared": declared,
        "cache": cache,
        "ann": annotations,
        "queries": queries,
    }


def keep_official(world) -> None:
    for name, f in world["declared"].items():
        f.path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(world["official"] / name, f.path)


def add_hub(world, change=None) -> None:
    rows = []
    for q in world["queries"]:
        ann = world["ann"][q["id"] - 1]
        if ann["type"] != "generative":
            continue
        image = (world["toy"] / "images" / q["image"]).read_bytes()
        row = {
            "image": {"bytes": image, "path": None},
            "id": q["id"],
            "query": q["query"],
            "type": "generative",
            "truth": ann["truth"],
            "hallu": ann["hallu"],
        }
        rows.append(change(row) if change else row)
    world["cache"].add(hub.SOURCE.repo_id, COMMIT, {PARQUET: parquet_bytes(rows, FEATURES)})


def responder(world):
    """Describes an image by its pixels (its first truth object and first hallu object of the toy files)
    and answers a question by its wording: what it says depends on the image the request carries."""
    by_pixels = {}
    for q in world["queries"]:
        if world["ann"][q["id"] - 1]["type"] == "generative":
            pixels = Image.open(world["toy"] / "images" / q["image"]).convert("RGB").tobytes()
            by_pixels[pixels] = world["ann"][q["id"] - 1]

    def play(body):
        import base64

        text = last_user_text(body)
        if text != "Describe this image.":
            return "Yes" if " one " in text or "left" in text else "No"
        url = body["messages"][0]["content"][0]["image_url"]["url"]
        pixels = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB").tobytes()
        ann = by_pixels[pixels]
        return f"There is a {ann['truth'][0]} next to a {ann['hallu'][-1]}."

    return play


def run(server, tmp_path, name, **kw):
    backend = OpenAIBackend("candidate", BackendOptions(base_url=server.base_url, max_retries=3, timeout_s=5))
    return evaluate(
        backend, ["amber"], limit=40, output=tmp_path / name, task_options=OPTIONS, progress=False, **kw
    )


def samples(result) -> list[tuple]:
    rows = [json.loads(line) for line in open(result.run_dir / "samples" / "amber.jsonl")]
    keys = ("id", "prompt", "prompt_hash", "target", "cluster", "meta", "response", "kind")
    return [tuple(r[k] for k in keys) for r in rows]


def test_an_offline_hub_run_equals_a_data_dir_run(world, tmp_path, openai_server):
    keep_official(world)
    add_hub(world)
    server = openai_server(responder=responder(world))
    from_hub = run(server, tmp_path, "hub")
    from_dir = run(server, tmp_path, "dir", data_dir=world["official"])
    a = from_hub.metrics["amber"]["metrics"]
    b = from_dir.metrics["amber"]["metrics"]
    assert {k: v["value"] for k, v in a.items()} == {k: v["value"] for k, v in b.items()}
    assert samples(from_hub) == samples(from_dir)
    assert 0 < a["chair"]["value"] < 100 and 0 < a["f1"]["value"] < 100  # neither all right nor all wrong
    info = json.loads((from_hub.run_dir / "run.json").read_text())["tasks"]["amber"]["data"]
    assert info["hub"]["repo"] == "qgallouedec/amber" and info["hub"]["revision"] == COMMIT
    assert info["hub"]["pinned"] is False and info["hub"]["rows"] == N_IMAGES
    parquet = world["cache"].repo_folder(hub.SOURCE.repo_id) / "snapshots" / COMMIT / PARQUET
    assert info["hub"]["files"] == {PARQUET: hashlib.sha256(parquet.read_bytes()).hexdigest()}
    assert info["hub"]["rows_differing_from_official"] == []
    assert {n: o["sha256"] for n, o in info["official"].items()} == {
        n: f.sha256 for n, f in world["declared"].items()
    }
    dir_info = json.loads((from_dir.run_dir / "run.json").read_text())["tasks"]["amber"]["data"]
    assert info["files"] == dir_info["files"]  # the same data files, by checksum


def test_hub_rows_that_differ_from_the_official_files_are_recorded(world, tmp_path, openai_server):
    keep_official(world)

    def change(row):
        return {**row, "truth": row["truth"][:1]} if row["id"] == 2 else row

    add_hub(world, change)
    server = openai_server(responder=responder(world))
    result = run(server, tmp_path, "hub")
    info = json.loads((result.run_dir / "run.json").read_text())["tasks"]["amber"]["data"]
    assert info["hub"]["rows_differing_from_official"] == [2]


def test_an_empty_cache_is_one_line_naming_the_fetch(world, tmp_path, openai_server):
    server = openai_server(responder=responder(world))
    with pytest.raises(UserError) as err:
        run(server, tmp_path, "hub")
    assert "\n" not in str(err.value) and "`evalkit data fetch amber`" in str(err.value)
    assert "qgallouedec/amber" in str(err.value)
    add_hub(world)  # the images are there, the official files are not
    with pytest.raises(UserError) as err:
        run(server, tmp_path, "hub2")
    message = str(err.value)
    assert "\n" not in message and message.startswith("amber needs the official file annotations.json")
    assert "`evalkit data fetch amber`" in message


def test_amber_declares_its_sources():
    from evalkit.registry import get_task

    task = get_task("amber")
    assert task.hub_sources == (hub.SOURCE,)
    pins = {f.url.rsplit("/data/", 1)[1]: f.sha256 for f in task.official_files}
    assert pins["relation.json"] == "c4c1491e9bbc3209abc1888c12a1bf8413bdbab8a0d8be04b990a2e7680cf23e"
    assert all(
        hub.COMMIT in f.url and f.url.startswith("https://raw.githubusercontent.com/")
        for f in task.official_files
    )
    assert set(pins) == {*DATA_FILES, "metrics.txt"}


def test_the_pins_are_the_official_files_and_give_their_samples(shared, tmp_path, monkeypatch):
    """With the verbatim official files (kept under the real pins) and a hub parquet of test-made images
    for ids 1–1,004, the hub path gives the samples the official data folder gives through --data-dir."""
    from support.hub_cache import png_bytes

    from evalkit.registry import get_task
    from evalkit.task import DataSpec

    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "ek"))
    data = shared / "amber" / "data"
    for name, f in hub.OFFICIAL.items():
        assert f.sha256 == hashlib.sha256((data / name).read_bytes()).hexdigest()
        assert (data / name).stat().st_size == f.size
        f.path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data / name, f.path)
    annotations = json.loads((data / "annotations.json").read_text())
    queries = {q["id"]: q for q in json.loads((data / "query" / "query_all.json").read_text())}
    folder = tmp_path / "official"
    shutil.copytree(data, folder / "data")
    (folder / "image").mkdir()
    rows = []
    for a in annotations[:1004]:
        image = png_bytes((a["id"] % 256, a["id"] // 256, 7), size=4)
        (folder / "image" / queries[a["id"]]["image"]).write_bytes(image)
        row = {"image": {"bytes": image, "path": None}, "id": a["id"], "query": queries[a["id"]]["query"]}
        rows.append({**row, "type": "generative", "truth": a["truth"], "hallu": a["hallu"]})
    cache = HubCache.install(tmp_path / "hf", monkeypatch)
    cache.add(hub.SOURCE.repo_id, COMMIT, {PARQUET: parquet_bytes(rows, FEATURES)})
    task = get_task("amber")
    spec = {"limit": 30, "options": {"amber.nlp": "basic"}}
    from_hub = task.load(DataSpec(**spec))
    from_dir = task.load(DataSpec(data_dir=folder, **spec))

    def plain(s):
        (message,) = s.messages
        (image,) = message.images
        return (s.id, message.text, s.target, s.cluster, s.meta, Path(image).read_bytes())

    assert [plain(s) for s in from_hub.samples] == [plain(s) for s in from_dir.samples]
    assert len({s.meta["type"] for s in from_hub.samples}) > 3  # generative and each yes/no dimension
    assert from_hub.info["files"] == from_dir.info["files"]
    assert from_hub.info["version"] == "official (15,220 items; 1,004 generative)"
    assert from_hub.info["hub"]["rows_differing_from_official"] == []
