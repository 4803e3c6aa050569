"""MM-Vet from the hub: lmms-lab/MMVet's parquet file in a Hugging Face cache laid out on disk
(support/hub_cache.py), read offline, gives the samples and metrics the same items give as the official
mm-vet.json and images/ through --data-dir (candidate and gpt-4-0613 judge played by a local server);
run.json records what was read, and `evalkit data list` shows the source."""

import hashlib
import json

import pytest
from support.cli import error_line, run_cli
from support.hub_cache import HubCache, parquet_bytes, png_bytes
from support.openai_server import last_user_text

from evalkit.tasks.mmvet.hub import SOURCE
from evalkit.tasks.mmvet.protocol import GRADER_PROMPT

pytestmark = pytest.mark.usefixtures("fast_retries")

#: the cache's main (the source is not pinned to a commit)
MAIN = "5" * 40
FEATURES = {"question_id": "string", "question": "string", "answer": "string", "capability": "string"}
FEATURES["image"] = "Image"
COLORS = {"eq": (250, 0, 0), "dots": (0, 250, 0), "desk": (0, 0, 250)}
#: key → (image, question, ground truth, capabilities, the candidate's answer, the judge's score)
ITEMS = {
    "v1_0": ("eq", "What is x in the equation?", "-1<AND>-5", ["ocr", "math"], "x = 3", "0.0"),
    "v1_1": ("eq", "What colour is the square?", "red<OR>crimson", ["rec"], "It is red.", "1.0"),
    "v1_2": ("dots", "How many dots are there?", "3", ["rec", "ocr"], "Three.", "0.5"),
    "v1_3": ("desk", "What is to the left of the cup?", "apple", ["rec", "spat"], "A pear.", "0.3"),
}
#: the official file name of each image: named after the first item that shows it
OFFICIAL_NAMES = {"eq": "v1_0.png", "dots": "v1_2.png", "desk": "v1_3.png"}


def hub_file(items=ITEMS, *, with_paths: bool = False, numeric_ids: bool = False) -> bytes:
    """The hub's parquet file: capabilities comma-joined; image cells with or without a file name."""
    rows = []
    for key, (image, question, answer, caps, _, _) in items.items():
        cell = {"bytes": png_bytes(COLORS[image]), "path": f"{image}.png" if with_paths else None}
        qid = key[3:] if numeric_ids else key
        rows.append(
            {"question_id": qid, "question": question, "answer": answer, "capability": ",".join(caps)}
            | {"image": cell}
        )
    return parquet_bytes(rows, FEATURES)


def write_official(folder, items=ITEMS):
    (folder / "images").mkdir(parents=True)
    meta = {}
    for key, (image, question, answer, caps, _, _) in items.items():
        (folder / "images" / OFFICIAL_NAMES[image]).write_bytes(png_bytes(COLORS[image]))
        meta[key] = {"imagename": OFFICIAL_NAMES[image], "question": question, "answer": answer}
        meta[key]["capability"] = caps
    (folder / "mm-vet.json").write_text(json.dumps(meta, indent=4))


def play(body):
    """The candidate answers from the question; the judge grades from the item line after the prompt."""
    text = last_user_text(body)
    for _, question, _, _, answer, score in ITEMS.values():
        if body["model"] == "candidate" and text == question:
            return answer
        if body["model"] == "judge" and text.startswith(GRADER_PROMPT + "\n" + question + " | "):
            return score
    raise AssertionError(f"unexpected request: {body['model']} {text[-80:]!r}")


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "evalkit"))
    cache = HubCache.install(tmp_path / "hf", monkeypatch)
    return cache, cache.add(SOURCE.repo_id, MAIN, {"data/test-00000-of-00001.parquet": hub_file()})


def test_hub_run_scores_as_the_official_files(tmp_path, hub, openai_server):
    _, snapshot = hub
    write_official(tmp_path / "official")
    server = openai_server(responder=play)
    common = ["--model", "openai:candidate", "--base-url", server.base_url, "--tasks", "mmvet", "--json"]
    common += ["--judge", "openai:judge", "--judge-base-url", server.base_url]
    from_hub = run_cli("run", *common, "--output", str(tmp_path / "hub-run"))
    assert from_hub.returncode == 0, from_hub.stderr
    official = ["--data-dir", str(tmp_path / "official")]
    from_dir = run_cli("run", *common, *official, "--output", str(tmp_path / "dir-run"))
    assert from_dir.returncode == 0, from_dir.stderr
    a = json.loads(from_hub.stdout)["metrics"]["mmvet"]["metrics"]
    b = json.loads(from_dir.stdout)["metrics"]["mmvet"]["metrics"]
    assert {k: v["value"] for k, v in a.items()} == {k: v["value"] for k, v in b.items()}
    scores = {k: float(it[5]) for k, it in ITEMS.items()}
    assert a["total"]["value"] == pytest.approx(round(100 * sum(scores.values()) / 4, 1))
    rec = [scores[k] for k, it in ITEMS.items() if "rec" in it[3]]
    assert a["cap/rec"]["value"] == pytest.approx(round(100 * sum(rec) / len(rec), 1))

    rows = {}
    for name in ("hub-run", "dir-run"):
        stored = [json.loads(line) for line in open(tmp_path / name / "samples" / "mmvet.jsonl")]
        rows[name] = {r["id"]: r for r in stored}
    assert rows["hub-run"].keys() == rows["dir-run"].keys() == ITEMS.keys()
    for key, r in rows["hub-run"].items():
        d = rows["dir-run"][key]
        same = ("prompt", "target", "meta", "cluster", "response", "judge_scores")
        assert {f: r.get(f) for f in same} == {f: d.get(f) for f in same}
        assert r["judge"]["outputs"] == d["judge"]["outputs"] == [ITEMS[key][5]]
        assert r["meta"]["capability"] == ITEMS[key][3] and r["target"] == ITEMS[key][2]

    data = json.loads((tmp_path / "hub-run" / "run.json").read_text())["tasks"]["mmvet"]["data"]
    assert data["hub"]["repo"] == "lmms-lab/MMVet" and data["hub"]["revision"] == MAIN
    assert data["hub"]["pinned"] is False and data["hub"]["rows"] == 4
    name = "data/test-00000-of-00001.parquet"
    assert data["hub"]["files"] == {name: hashlib.sha256((snapshot / name).read_bytes()).hexdigest()}
    other = json.loads((tmp_path / "dir-run" / "run.json").read_text())["tasks"]["mmvet"]["data"]
    assert data["version"].startswith("hub MM-Vet (4 items) #") and other["version"] != data["version"]

    listed = run_cli("data", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (entry,) = [e for e in json.loads(listed.stdout) if e["task"] == "mmvet"]
    (source,) = entry["hub"]
    assert (source["repo_id"], source["revision"], source["pinned"]) == ("lmms-lab/MMVet", None, False)
    assert source["mirrors"] == ["lmms-lab-encoder/MMVet"] and source["rows"] == 218
    assert source["cached"] == {"repo": "lmms-lab/MMVet", "revision": MAIN}


def test_image_names_numeric_ids_and_a_limit(tmp_path, monkeypatch):
    """A cell's file name names the image; numeric question ids become v1_<n>; a limit writes only the
    images of the items it keeps; without file names, items showing the same bytes share one file."""
    from evalkit.runner import load_tasks

    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "evalkit"))
    cache = HubCache.install(tmp_path / "hf", monkeypatch)
    files = {"data/test-00000-of-00001.parquet": hub_file(with_paths=True, numeric_ids=True)}
    cache.add("lmms-lab-encoder/MMVet", MAIN, files)
    _, loaded = load_tasks("mmvet", limit=2)
    samples = loaded["mmvet"].samples
    assert [s.id for s in samples] == ["v1_0", "v1_1"]
    assert [s.cluster for s in samples] == ["eq.png", "eq.png"]
    assert loaded["mmvet"].info["hub"]["repo"] == "lmms-lab-encoder/MMVet"
    folder = tmp_path / "evalkit" / "hub" / "lmms-lab-encoder--MMVet" / MAIN / "images"
    assert [p.name for p in folder.iterdir()] == ["eq.png"]
    assert samples[0].messages[0].images == (str(folder / "eq.png"),)


def test_an_empty_cache_offline_names_the_fetch_command_and_the_official_files(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    line = error_line(run_cli("run", "--model", "toy", "--tasks", "mmvet", "--output", str(tmp_path / "run")))
    assert line.startswith("error: mmvet needs data: lmms-lab/MMVet")
    assert "`evalkit data fetch mmvet`" in line and "mm-vet.json and images/" in line


def test_fetch_resolves_main_and_a_run_records_its_commit(tmp_path, monkeypatch):
    """The source is not pinned: `evalkit data fetch mmvet` (stand-in hub on 127.0.0.1) downloads what
    `main` names; offline, a load reads that snapshot and records its commit."""
    from support.hub_server import HubServer

    from evalkit.runner import load_tasks

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "evalkit"))
    files = {"data/test-00000-of-00001.parquet": hub_file(), "README.md": b"# card\n"}
    with HubServer({(SOURCE.repo_id, MAIN): files}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.base_url)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        fetched = run_cli("data", "fetch", "mmvet")
        downloaded = [p for m, p in hub.requests if m == "GET" and "/resolve/" in p]
    assert fetched.returncode == 0, fetched.stderr
    assert downloaded == [f"/datasets/lmms-lab/MMVet/resolve/{MAIN}/data/test-00000-of-00001.parquet"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _, loaded = load_tasks("mmvet")
    info = loaded["mmvet"].info["hub"]
    assert (info["repo"], info["revision"], info["pinned"], info["rows"]) == (
        "lmms-lab/MMVet",
        MAIN,
        False,
        4,
    )
