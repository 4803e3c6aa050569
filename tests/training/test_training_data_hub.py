"""Training data from the Hugging Face hub: `evalkit train --data OWNER/NAME` read offline from a hub cache
laid out as the hub client lays it out (support.hub_cache), holding small files in each set's schema
(RLAIF-V and RLHF-V parquet with embedded images, POVID's JSON naming COCO train2014 images by path,
VLFeedback's parquet copy in refs/pr/2). The same records exported to a local JSONL train to the same
losses; what was read is recorded in train_config.json; an empty cache, a wrong schema or missing COCO
images are one line."""

import hashlib
import json
import os
import sys
import types
from pathlib import Path

import pytest
from PIL import Image
from support.cli import run_cli
from support.data_files import png
from support.hub_cache import HubCache, parquet_bytes
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.training import data_hub
from evalkit.training.data import load_preferences
from evalkit.types import UserError
from evalkit.util.datafiles import sha256_file

REV = "1" * 40
PR_REV = "2" * 40
RLAIFV = "openbmb/RLAIF-V-Dataset"
RLHFV = "openbmb/RLHF-V-Dataset"
POVID = "YiyangAiLab/POVID_preference_data_for_VLLMs"
POVID_FILE = "POVID_preference_data_for_VLLMs_version_1.json"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "evalkit-cache"))
    return HubCache.install(tmp_path / "hf-hub", monkeypatch)


def world_pairs(world: Path) -> list[dict]:
    return [json.loads(line) for line in (world / "pairs.jsonl").read_text().splitlines()]


def image_cell(world: Path, pair: dict) -> dict:
    return {"bytes": (world / pair["image"]).read_bytes(), "path": pair["image"]}


def rlaifv(world: Path) -> tuple[dict[str, bytes], list[dict]]:
    """RLAIF-V's parquet shards (card's fields) and the same records with image files, as local JSONL."""
    rows, local = [], []
    for i, p in enumerate(world_pairs(world)):
        common = {"question": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"], "idx": i}
        meta = {"ds_name": "toy", "origin_dataset": "toy", "origin_split": "train", "image_path": p["image"]}
        rows.append({"ds_name": "toy", "image": image_cell(world, p), **common, **meta})
        local.append({**common, "image": str(world / p["image"])})
    features = {
        "ds_name": "string",
        "image": "Image",
        "question": "string",
        "chosen": "string",
        "rejected": "string",
        "origin_dataset": "string",
        "origin_split": "string",
        "idx": "int64",
        "image_path": "string",
    }
    files = {
        "RLAIF-V-Dataset_000.parquet": parquet_bytes(rows[:9], features),
        "RLAIF-V-Dataset_001.parquet": parquet_bytes(rows[9:], features),
        "README.md": b"# RLAIF-V\n",
    }
    return files, local


def rlhfv(world: Path) -> tuple[dict[str, bytes], list[dict]]:
    """RLHF-V's one parquet file: `text` holds question / chosen / rejected as a JSON string."""
    rows, local = [], []
    for i, p in enumerate(world_pairs(world)):
        text = json.dumps({"question": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]})
        row = {"ds_name": "toy", "text": text, "origin_dataset": "toy", "origin_split": "train", "idx": i}
        rows.append({**row, "image": image_cell(world, p), "image_path": p["image"]})
        local.append({**row, "image": str(world / p["image"])})
    features = {
        "ds_name": "string",
        "image": "Image",
        "text": "string",
        "origin_dataset": "string",
        "origin_split": "string",
        "idx": "int64",
        "image_path": "string",
    }
    return {"RLHF-V-Dataset.parquet": parquet_bytes(rows, features)}, local


def coco_name(i: int) -> str:
    return f"COCO_train2014_{i:012d}.jpg"


def povid(world: Path, coco: Path) -> tuple[dict[str, bytes], list[dict]]:
    """POVID's JSON list (LLaVA conversations + rejected_conversations, images by path) and its COCO
    folder written with the world's images under their train2014 names."""
    coco.mkdir(parents=True, exist_ok=True)
    records, local = [], []
    for i, p in enumerate(world_pairs(world)):
        (coco / coco_name(i)).write_bytes((world / p["image"]).read_bytes())
        human = {"from": "human", "value": f"<image>\n{p['prompt']}"}
        record = {
            "id": coco_name(i)[:-4],
            "image": f"./data/coco/{coco_name(i)}",
            "conversations": [human, {"from": "gpt", "value": p["chosen"]}],
            "rejected_conversations": [human, {"from": "gpt", "value": p["rejected"]}],
        }
        records.append(record)
        local.append({**record, "image": str(coco / coco_name(i))})
    return {POVID_FILE: json.dumps(records, indent=1).encode()}, local


def train(base: Path, data: str, out: Path, *extra: str) -> tuple[list[list[float]], dict]:
    """Two DPO steps (lr high enough to move the rewards); each step's loss and chosen / rejected
    rewards, and train_config.json."""
    args = ["train", "--method", "dpo", "--model", str(base), "--data", data, "--output", str(out)]
    args += ["--max-steps", "2", "--batch-size", "4", "--lora-rank", "4", "--lr", "1e-3", *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    steps = [[r[k] for k in ("loss", "rewards/chosen", "rewards/rejected")] for r in log if "loss" in r]
    return steps, json.loads((out / "train_config.json").read_text())


@pytest.mark.parametrize("name", ["rlaifv", "rlhfv", "povid"])
def test_offline_hub_training_equals_the_same_records_as_local_jsonl(name, hub, world, tmp_path):
    coco = tmp_path / "coco" / "train2014"
    if name == "povid":
        repo, (files, local) = POVID, povid(world, coco)
        extra = ("--image-dir", str(coco))
    else:
        repo, (files, local) = (RLAIFV, rlaifv(world)) if name == "rlaifv" else (RLHFV, rlhfv(world))
        extra = ()
    snapshot = hub.add(repo, REV, files)
    jsonl = tmp_path / "local.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in local))

    hub_steps, config = train(world / "base", repo, tmp_path / "hub", *extra)
    local_steps, local_config = train(world / "base", str(jsonl), tmp_path / "local")
    assert len(hub_steps) == 2 and hub_steps[1][1] > hub_steps[1][2]  # the update moved the rewards
    for hub_step, local_step in zip(hub_steps, local_steps, strict=True):
        assert hub_step == pytest.approx(local_step, rel=1e-5, abs=1e-8)
    data, local_data = config["data"], local_config["data"]
    assert data["format"] == local_data["format"] == {"rlaifv": "rlaifv", "rlhfv": "rlhfv"}.get(name, "povid")
    assert data["items"] == local_data["items"] == 16 and data["skipped"] == local_data["skipped"] == {}
    record = data["hub"]
    expected = {n: sha256_file(snapshot / n) for n in files if not n.endswith(".md")}
    assert record["repo"] == repo and record["revision"] == REV and record["pinned"] is False
    assert record["files"] == expected and record["rows"] == 16 and record["ref"] == "main"
    assert config["config"]["data"] == repo


def test_embedded_images_are_written_once_under_the_commit(hub, world, tmp_path):
    files, _ = rlaifv(world)
    hub.add(RLAIFV, REV, files)
    first = load_preferences(RLAIFV)
    images = {p.image for p in first.items}
    folder = tmp_path / "evalkit-cache" / "hub" / "openbmb--RLAIF-V-Dataset" / REV / "images"
    assert all(Path(i).parent == folder for i in images) and len(images) == 16
    stamps = {i: Path(i).stat().st_mtime_ns for i in images}
    pair = first.items[0]
    assert Path(pair.image).read_bytes() == (world / world_pairs(world)[0]["image"]).read_bytes()
    assert pair.source == f"hf:{RLAIFV}:train:0"
    assert f"16 examples from 16 records of hf://datasets/{RLAIFV}@{REV} (format rlaifv" in first.summary()
    again = load_preferences(RLAIFV)
    assert {p.image: Path(p.image).stat().st_mtime_ns for p in again.items} == stamps


def test_empty_cache_names_the_fetch_command_in_one_line(hub):
    with pytest.raises(UserError) as e:
        load_preferences(RLAIFV)
    msg = str(e.value)
    assert "\n" not in msg and "HF_HUB_OFFLINE=1" in msg
    assert f"evalkit data fetch {RLAIFV}" in msg and "RLAIF-V-Dataset_*.parquet" in msg


def test_wrong_schema_is_one_line(hub, world):
    rows = [{"foo": "a", "bar": 1}]
    hub.add(RLHFV, REV, {"RLHF-V-Dataset.parquet": parquet_bytes(rows, {"foo": "string", "bar": "int64"})})
    with pytest.raises(UserError) as e:
        load_preferences(RLHFV)
    msg = str(e.value)
    assert "\n" not in msg and "unknown preference data schema" in msg and "bar, foo" in msg


def test_povid_without_its_coco_images_says_where_to_get_them(hub, world, tmp_path):
    files, _ = povid(world, tmp_path / "coco")
    hub.add(POVID, REV, files)
    with pytest.raises(UserError, match=r"COCO train2014 \(http://images.cocodataset.org/zips/train2014.zip"):
        load_preferences(POVID)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError) as e:
        load_preferences(POVID, image_root=empty)
    msg = str(e.value)
    assert "\n" not in msg and f"16 of 16 images of {POVID} not found in --image-dir {empty}" in msg
    assert coco_name(0) in msg and "train2014.zip" in msg
    with pytest.raises(UserError, match="no usable preference examples in 16 records"):
        load_preferences(POVID, image_root=empty, skip_missing_images=True)  # each skip counted


def test_vlfeedback_reads_its_parquet_copy_at_refs_pr_2(hub, world):
    rows = []
    for i, p in enumerate(world_pairs(world)[:4]):
        comps = [
            {
                "annotations": {"Helpfulness": {"Rating": r, "Rationale": "-"}},
                "model": m,
                "response": text,
            }
            for r, m, text in (("5", "a", p["chosen"]), ("1", "b", p["rejected"]))
        ]
        rows.append(
            {"id": f"v{i}", "prompt": p["prompt"], "models": ["a", "b"], "completions": comps,
             "image": image_cell(world, p)}
        )  # fmt: skip
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    parquet = {"data/train-00000-of-00001.parquet": buf.getvalue().to_pybytes()}
    hub.add("MMInstruction/VLFeedback", PR_REV, parquet, ref="refs/pr/2")
    hub.add("MMInstruction/VLFeedback", REV, {"VLFeedback.py": b"# loading script\n"})  # main
    out = load_preferences("MMInstruction/VLFeedback")
    assert out.format == "vlfeedback" and len(out.items) == 4
    assert [(p.chosen, p.rejected) for p in out.items] == [
        (p["chosen"], p["rejected"]) for p in world_pairs(world)[:4]
    ]
    assert out.info["hub"]["revision"] == PR_REV and out.info["hub"]["ref"] == "refs/pr/2"


def test_an_undeclared_repository_reads_its_split_files_at_main(hub, world):
    pairs = world_pairs(world)
    feats = {"image": "Image", "prompt": "string", "chosen": "string", "rejected": "string"}

    def rows(ps):
        return [{"image": image_cell(world, p), **{k: p[k] for k in feats if k != "image"}} for p in ps]

    hub.add(
        "someone/prefs",
        REV,
        {
            "data/train-00000-of-00001.parquet": parquet_bytes(rows(pairs[:5]), feats),
            "data/test-00000-of-00001.parquet": parquet_bytes(rows(pairs[5:7]), feats),
        },
    )
    train_split = load_preferences("someone/prefs")
    assert [p.chosen for p in train_split.items] == [p["chosen"] for p in pairs[:5]]
    assert list(train_split.info["hub"]["files"]) == ["data/train-00000-of-00001.parquet"]
    assert "not a training set evalkit declares" in train_split.info["hub"]["note"]
    test_split = load_preferences("someone/prefs", split="test")
    assert [p.chosen for p in test_split.items] == [p["chosen"] for p in pairs[5:7]]


def test_data_fetch_downloads_a_training_set_that_then_trains_offline(tmp_path, monkeypatch, world):
    """`evalkit data fetch OWNER/NAME` against a stand-in hub on 127.0.0.1 downloads the set's declared
    file at the commit `main` names (not the rest of the repository); offline, the set loads from that
    snapshot and records its commit, and `evalkit data verify OWNER/NAME` checks it."""
    from support.hub_server import HubServer

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "evalkit"))
    files, _ = rlhfv(world)
    files["README.md"] = b"# RLHF-V\n"
    with HubServer({(RLHFV, REV): files}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.base_url)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        fetched = run_cli("data", "fetch", RLHFV)
        downloaded = [p for m, p in hub.requests if m == "GET" and "/resolve/" in p]
    assert fetched.returncode == 0, fetched.stderr
    assert downloaded == [f"/datasets/{RLHFV}/resolve/{REV}/RLHF-V-Dataset.parquet"]
    assert f"{RLHFV}: {RLHFV} at {REV}, 1 file(s)" in " ".join(fetched.stdout.split())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = load_preferences(RLHFV)
    assert out.format == "rlhfv" and len(out.items) == 16 and out.info["hub"]["revision"] == REV
    verified = run_cli("data", "verify", RLHFV)
    assert verified.returncode == 0, verified.stderr
    assert f"{RLHFV}: RLHF-V-Dataset.parquet: ok" in verified.stdout


def test_data_fetch_of_a_training_set_offline_is_one_line(hub):
    fetched = run_cli("data", "fetch", RLAIFV)
    assert fetched.returncode == 2 and "HF_HUB_OFFLINE=1 forbids" in fetched.stderr
    assert len(fetched.stderr.strip().splitlines()) == 1


def test_an_align_plan_names_a_hub_training_set_as_the_flag_does(tmp_path):
    """`data: OWNER/NAME` in an align plan stays a hub id (not a path under the plan's folder), as in
    `evalkit train`; a local file and `image_dir` are still relative to the plan."""
    from evalkit.experiments.align import read_plan

    (tmp_path / "pairs.jsonl").write_text("")
    (tmp_path / "coco").mkdir()
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "base: toy\noutput: out\nevaluate: {tasks: pope, data: toy}\ncheckpoints:\n"
        f"  povid: {{method: dpo, data: {POVID}, image_dir: coco, max_steps: 2}}\n"
        "  local: {method: dpo, data: pairs.jsonl, max_steps: 2}\n"
    )
    checkpoints = read_plan(plan).checkpoints
    assert checkpoints["povid"]["data"] == POVID
    assert checkpoints["povid"]["image_dir"] == str(tmp_path / "coco")
    assert checkpoints["local"]["data"] == str(tmp_path / "pairs.jsonl")


def test_a_damaged_cached_file_is_refused_in_one_line(hub, world):
    """A parquet blob (named by its sha256) whose bytes changed is never read as the set."""
    files, _ = rlhfv(world)
    snapshot = hub.add(RLHFV, REV, files)
    blob = (snapshot / "RLHF-V-Dataset.parquet").resolve()
    blob.write_bytes(blob.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(UserError) as e:
        load_preferences(RLHFV)
    msg = str(e.value)
    assert "\n" not in msg and "RLHF-V-Dataset.parquet" in msg and "do not match their hub checksum" in msg
    assert f"evalkit data fetch {RLHFV}" in msg


# ---- hub ids ---------------------------------------------------------------------------------------------


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    for key in ("HF_DATASETS_CACHE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    return home


class FakeDataset(list):
    _fingerprint = "fp123"


def fake_datasets(monkeypatch, rows):
    calls = []
    module = types.ModuleType("datasets")

    def load_dataset(dataset_id, split):
        calls.append((dataset_id, split, os.environ.get("HF_HUB_OFFLINE")))
        return FakeDataset(rows)

    module.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", module)
    return calls


def test_hub_id_not_cached_names_the_fetch_and_the_export(hf_home, monkeypatch):
    """Changed on purpose: evalkit now fetches training data from the hub (issue 14), so the old "never
    downloads" wording and the optional-`datasets` branch are gone; offline with an empty cache the one
    line names the cache, `evalkit data fetch ID` and still the JSONL export."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError) as e:
        load_preferences("openbmb/RLAIF-V-Dataset")
    msg = str(e.value)
    assert "is not in the Hugging Face cache" in msg and str(hf_home / "hub") in msg
    assert "`evalkit data fetch openbmb/RLAIF-V-Dataset`" in msg
    assert "python -m evalkit.training.data_hub openbmb/RLAIF-V-Dataset DIR --split train" in msg
    assert "\n" not in msg
    with pytest.raises(UserError, match="file not found: data/missing.jsonl"):
        load_preferences("data/missing.jsonl")


def test_hub_id_from_the_local_cache_saves_images(hf_home, monkeypatch, tmp_path):
    """Changed on purpose (issue 14): the set is read from the hub cache's parquet files (as the hub
    client lays them out), not through `datasets`' own cache; the fingerprint is that of the files read."""
    from support.hub_cache import HubCache, parquet_bytes

    hub = HubCache.install(hf_home / "hub", monkeypatch)
    row = {
        "image": {"bytes": png(tmp_path / "g.png", (0, 255, 0)).read_bytes(), "path": "g.png"},
        "question": "Q?",
        "chosen": "yes",
        "rejected": "no",
        "idx": "k0",
        "ds_name": "x",
    }
    kinds = {"image": "Image", "question": "string", "chosen": "string", "rejected": "string"}
    features = {**kinds, "idx": "string", "ds_name": "string"}
    snapshot = hub.add(
        "openbmb/RLAIF-V-Dataset", "a" * 40, {"RLAIF-V-Dataset_000.parquet": parquet_bytes([row], features)}
    )
    out = load_preferences("openbmb/RLAIF-V-Dataset", split="train")
    assert out.format == "rlaifv" and out.info["hub_id"] == "openbmb/RLAIF-V-Dataset"
    sums = {"RLAIF-V-Dataset_000.parquet": sha256_file(snapshot / "RLAIF-V-Dataset_000.parquet")}
    assert out.info["hub"]["files"] == sums and out.info["hub"]["revision"] == "a" * 40
    assert out.info["fingerprint"] == hashlib.sha256(json.dumps(sums, sort_keys=True).encode()).hexdigest()
    p = out.items[0]
    assert p.source == "hf:openbmb/RLAIF-V-Dataset:train:0" and p.id == "k0"
    assert p.image.startswith(os.environ["EVALKIT_CACHE"]) and Image.open(p.image).getpixel((0, 0)) == (
        0,
        255,
        0,
    )


def test_export_writes_jsonl_with_relative_images(monkeypatch, tmp_path):
    rows = [
        {
            "image": {"bytes": png(tmp_path / "src.png", (0, 0, 255)).read_bytes(), "path": "orig.png"},
            "prompt": "P",
            "chosen": "c",
            "rejected": "r",
        }
    ]
    fake_datasets(monkeypatch, rows)
    assert data_hub.main(["owner/name", str(tmp_path / "out")]) == 0
    record = json.loads((tmp_path / "out" / "train.jsonl").read_text())
    assert record["image"].startswith("images/") and record["image"].endswith(".png")
    out = load_preferences(tmp_path / "out" / "train.jsonl")
    assert Image.open(out.items[0].image).getpixel((0, 0)) == (0, 0, 255)
