"""POPE from the hub: lmms-lab/POPE's `Full` parquet files in a Hugging Face cache laid out on disk
(support/hub_cache.py), read offline, give the samples and metrics the same items give as official files
through --data-dir; run.json records what was read."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import error_line, run_cli
from support.hub_cache import HubCache, parquet_bytes, png_bytes
from support.openai_server import last_user_text

from evalkit.tasks.pope.hub import SOURCE
from evalkit.tasks.pope.protocol import SPLITS

OBJECTS = ("dog", "cat", "car", "tree", "cup", "bus")
#: the absent object asked about in each split: OBJECTS[(image + offset) % 6]
OFFSETS = {"random": 1, "popular": 2, "adversarial": 5}
#: the stand-in model says yes to these objects, no to the rest
SAYS_YES = {"dog", "car", "cup"}
FEATURES = {
    "id": "string",
    "question_id": "string",
    "question": "string",
    "answer": "string",
    "image_source": "string",
    "image": "Image",
    "category": "string",
}
COLORS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]


def pope_items() -> dict[str, list[dict]]:
    """Per split: question_id, image stem, object, label (image i shows OBJECTS[i] only)."""
    items = {}
    for split in SPLITS:
        rows = []
        for i in range(len(COLORS)):
            for obj, label in ((OBJECTS[i], "yes"), (OBJECTS[(i + OFFSETS[split]) % 6], "no")):
                rows.append(
                    {"qid": len(rows) + 1, "stem": f"COCO_val2014_{i + 1:012d}", "obj": obj, "label": label}
                )
        items[split] = rows
    return items


def image_of(stem: str) -> bytes:
    return png_bytes(COLORS[int(stem[-12:]) - 1])


def question(obj: str) -> str:
    return f"Is there a {obj} in the image?"


def hub_files(items, flip_first: bool = False) -> dict[str, bytes]:
    """The hub's parquet files of `items` (`flip_first`: the first answer of each split flipped)."""
    files, n = {}, 0
    for split in SPLITS:
        rows = []
        for it in items[split]:
            image = {"bytes": image_of(it["stem"]), "path": it["stem"] + ".jpg"}
            rows.append(
                {
                    "id": str(n),
                    "question_id": str(it["qid"]),
                    "question": question(it["obj"]),
                    "answer": it["label"] if not (flip_first and it["qid"] == 1) else "no",
                    "image_source": it["stem"],
                    "image": image,
                    "category": split,
                }
            )
            n += 1
        files[f"Full/{split}-00000-of-00001.parquet"] = parquet_bytes(rows, FEATURES)
    return files


def write_official(folder, items) -> None:
    """The same items as the official files: coco_pope_<split>.json lines and the images in val2014/."""
    (folder / "val2014").mkdir(parents=True)
    for split in SPLITS:
        lines = []
        for it in items[split]:
            name = it["stem"] + ".png"
            (folder / "val2014" / name).write_bytes(image_of(it["stem"]))
            record = {
                "question_id": it["qid"],
                "image": name,
                "text": question(it["obj"]),
                "label": it["label"],
            }
            lines.append(json.dumps(record))
        (folder / f"coco_pope_{split}.json").write_text("\n".join(lines) + "\n")


def expected_f1(items) -> dict[str, float]:
    """Per split F1 in percent ("yes" positive) of the stand-in model's answers, and their mean."""
    out = {}
    for split in SPLITS:
        pred = [it["obj"] in SAYS_YES for it in items[split]]
        gold = [it["label"] == "yes" for it in items[split]]
        tp = sum(p and g for p, g in zip(pred, gold, strict=True))
        fp = sum(p and not g for p, g in zip(pred, gold, strict=True))
        fn = sum(g and not p for p, g in zip(pred, gold, strict=True))
        out[split] = 100 * 2 * tp / (2 * tp + fp + fn)
    out["mean"] = sum(out[s] for s in SPLITS) / 3
    return out


def answer(body) -> str:
    text = last_user_text(body)
    return "Yes" if any(f" {obj} " in text for obj in SAYS_YES) else "No, there is not."


@pytest.fixture
def hub(tmp_path, monkeypatch):
    cache = HubCache.install(tmp_path / "hf", monkeypatch)
    items = pope_items()
    snapshot = cache.add(SOURCE.repo_id, SOURCE.revision, hub_files(items))
    return cache, items, snapshot


def test_hub_run_scores_as_the_official_files(tmp_path, hub, openai_server):
    _, items, snapshot = hub
    official = tmp_path / "official"
    write_official(official, items)
    server = openai_server(responder=answer)
    common = ["--model", "openai:m", "--base-url", server.base_url, "--tasks", "pope", "--json"]
    from_hub = run_cli("run", *common, "--output", str(tmp_path / "hub-run"))
    assert from_hub.returncode == 0, from_hub.stderr
    from_dir = run_cli("run", *common, "--data-dir", str(official), "--output", str(tmp_path / "dir-run"))
    assert from_dir.returncode == 0, from_dir.stderr
    a = json.loads(from_hub.stdout)["metrics"]["pope"]["metrics"]
    b = json.loads(from_dir.stdout)["metrics"]["pope"]["metrics"]
    assert {k: v["value"] for k, v in a.items()} == {k: v["value"] for k, v in b.items()}
    want = expected_f1(items)
    assert a["f1_mean"]["value"] == pytest.approx(want["mean"])
    for split in SPLITS:
        assert a[f"{split}/f1"]["value"] == pytest.approx(want[split])
        assert a[f"{split}/f1"]["n"] == len(items[split])
    assert 0 < want["mean"] < 100  # the answers are neither all right nor all wrong

    # the same samples: ids, prompts, labels, clusters; images with the same bytes
    rows = {}
    for name in ("hub-run", "dir-run"):
        stored = [json.loads(line) for line in open(tmp_path / name / "samples" / "pope.jsonl")]
        rows[name] = {r["id"]: r for r in stored}
    assert (
        rows["hub-run"].keys()
        == rows["dir-run"].keys()
        == {f"{s}-{it['qid']}" for s in SPLITS for it in items[s]}
    )
    for sid, r in rows["hub-run"].items():
        d = rows["dir-run"][sid]
        assert (r["target"], r["meta"], r["response"]) == (d["target"], d["meta"], d["response"])

    # run.json records the repository, the commit, the config, the rows and the files' checksums
    data = json.loads((tmp_path / "hub-run" / "run.json").read_text())["tasks"]["pope"]["data"]
    hub_info = data["hub"]
    assert hub_info["repo"] == "lmms-lab/POPE" and hub_info["revision"] == SOURCE.revision
    assert hub_info["config"] == "Full" and hub_info["rows"] == 24
    assert hub_info["split"] == {s: 8 for s in SPLITS}
    assert hub_info["files"] == {
        f"Full/{s}-00000-of-00001.parquet": hashlib.sha256(
            (snapshot / f"Full/{s}-00000-of-00001.parquet").read_bytes()
        ).hexdigest()
        for s in SPLITS
    }
    assert (
        data["version"].startswith("hub Full (3 × 8 questions; not the 2023-08-10 8,910")
        and " #" in data["version"]
    )
    other = json.loads((tmp_path / "dir-run" / "run.json").read_text())["tasks"]["pope"]["data"]["version"]
    assert other != data["version"]  # different files: never compared or merged as one data version


def test_other_hub_bytes_are_another_data_version(tmp_path, monkeypatch):
    """Two caches whose files differ in one label give different data versions; a limit writes only the
    images of the samples it keeps."""
    from evalkit.runner import load_tasks

    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "evalkit"))
    items = pope_items()
    versions = []
    for flip in (False, True):
        if flip:
            items["random"][0]["label"] = "no"
        cache = HubCache.install(tmp_path / f"hf{flip}", monkeypatch)
        cache.add(SOURCE.repo_id, SOURCE.revision, hub_files(items))
        _, loaded = load_tasks("pope", limit=3)
        versions.append(loaded["pope"].info["version"])
        assert [s.id for s in loaded["pope"].samples] == ["random-1", "popular-1", "adversarial-1"]
        assert loaded["pope"].samples[0].target == items["random"][0]["label"]
    assert versions[0] != versions[1]
    paths = {Path(p) for s in loaded["pope"].samples for m in s.messages for p in m.images}
    assert len(paths) == 1
    (path,) = paths
    assert path.is_relative_to(tmp_path / "evalkit" / "hub") and path.read_bytes() == image_of(path.stem)
    assert [p.name for p in path.parent.iterdir()] == ["COCO_val2014_000000000001.png"]


def test_the_mirror_is_read_when_only_it_is_cached(tmp_path, monkeypatch):
    from evalkit.runner import load_tasks

    cache = HubCache.install(tmp_path / "hf", monkeypatch)
    cache.add("lmms-lab-encoder/POPE", SOURCE.revision, hub_files(pope_items()))
    _, loaded = load_tasks("pope")
    assert loaded["pope"].info["hub"]["repo"] == "lmms-lab-encoder/POPE"
    assert len(loaded["pope"].samples) == 24


def test_an_empty_cache_offline_is_one_line_naming_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    line = error_line(run_cli("run", "--model", "toy", "--tasks", "pope", "--output", str(tmp_path / "run")))
    assert line.startswith("error: pope needs data: lmms-lab/POPE")
    assert "`evalkit data fetch pope`" in line and "HF_HUB_OFFLINE=1" in line
    assert not (tmp_path / "run").exists()


def test_a_damaged_cache_is_never_read_as_the_pinned_data(tmp_path, monkeypatch):
    from evalkit.runner import load_tasks
    from evalkit.types import UserError

    cache = HubCache.install(tmp_path / "hf", monkeypatch)
    snapshot = cache.add(SOURCE.repo_id, SOURCE.revision, hub_files(pope_items()))
    blob = (snapshot / "Full/random-00000-of-00001.parquet").resolve()
    blob.write_bytes(hub_files(pope_items(), flip_first=True)["Full/random-00000-of-00001.parquet"])
    with pytest.raises(UserError) as err:
        load_tasks("pope")
    message = str(err.value)
    assert message.startswith(
        "pope: 1 cached file(s) of lmms-lab/POPE at 4db1276663dfa5eb8ad16a52d24c31a09e470896"
    )
    assert "(Full/random-00000-of-00001.parquet)" in message and "`evalkit data fetch pope`" in message


def test_a_damaged_parquet_file_is_a_user_error(tmp_path, monkeypatch):
    from evalkit.runner import load_tasks
    from evalkit.types import UserError

    cache = HubCache.install(tmp_path / "hf", monkeypatch)
    files = hub_files(pope_items())
    files["Full/popular-00000-of-00001.parquet"] = b"not parquet"
    cache.add(SOURCE.repo_id, SOURCE.revision, files)
    with pytest.raises(UserError, match="popular-00000-of-00001.parquet: not a readable parquet file"):
        load_tasks("pope")


def test_fetch_on_a_login_node_then_an_offline_run(tmp_path, monkeypatch, openai_server):
    """The cluster recipe against a stand-in hub on 127.0.0.1: `evalkit data fetch pope` downloads the
    pinned files into an empty cache; with HF_HUB_OFFLINE=1 the run reads them and asks the hub nothing."""
    from support.hub_server import HubServer

    items = pope_items()
    files = {**hub_files(items), "data/test-00000-of-00001.parquet": b"the default config, not read"}
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    server = openai_server(responder=answer)
    with HubServer({(SOURCE.repo_id, SOURCE.revision): files}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.base_url)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        fetched = run_cli("data", "fetch", "pope")
        assert fetched.returncode == 0, fetched.stderr
        downloaded = sorted(p for m, p in hub.requests if m == "GET" and "/resolve/" in p)
        asked = len(hub.requests)

        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        args = ["--model", "openai:m", "--base-url", server.base_url, "--tasks", "pope", "--json"]
        proc = run_cli("run", *args, "--output", str(tmp_path / "run"))
        assert proc.returncode == 0, proc.stderr
        verified = run_cli("data", "verify", "pope")
        assert len(hub.requests) == asked  # offline: not one request reached the hub
    want = sorted(f"/datasets/lmms-lab/POPE/resolve/{SOURCE.revision}/{n}" for n in hub_files(items))
    assert downloaded == want  # the pinned commit, only the files the task reads
    assert f"pope: lmms-lab/POPE at {SOURCE.revision}, 3 file(s)" in " ".join(fetched.stdout.split())
    snapshot = tmp_path / "hf" / "datasets--lmms-lab--POPE" / "snapshots" / SOURCE.revision
    assert sorted(p.name for p in (snapshot / "Full").iterdir()) == sorted(
        Path(n).name for n in hub_files(items)
    )
    metrics = json.loads(proc.stdout)["metrics"]["pope"]["metrics"]
    assert metrics["f1_mean"]["value"] == pytest.approx(expected_f1(items)["mean"])
    assert verified.returncode == 0 and verified.stdout.count(": ok") == 3


def test_a_run_fetches_from_the_mirror_when_the_first_id_is_gone(tmp_path, monkeypatch):
    from support.hub_server import HubServer

    from evalkit.runner import load_tasks

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with HubServer({("lmms-lab-encoder/POPE", SOURCE.revision): hub_files(pope_items())}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.base_url)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        code = (
            "import json; from evalkit.runner import load_tasks; _, d = load_tasks('pope');"
            "print(json.dumps([len(d['pope'].samples), d['pope'].info['hub']['repo']]))"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == [24, "lmms-lab-encoder/POPE"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # now cached: read offline in this process too
    _, loaded = load_tasks("pope")
    assert loaded["pope"].info["hub"]["repo"] == "lmms-lab-encoder/POPE"
