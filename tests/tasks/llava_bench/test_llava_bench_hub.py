"""LLaVA-Bench (In-the-Wild) from the hub: the official files of liuhaotian/llava-bench-in-the-wild at the
pinned commit, in a Hugging Face cache laid out on disk (support/hub_cache.py), read offline, give the
samples and metrics the same files give through --data-dir (candidate and GPT-4 judge played by a local
server); run.json records what was read, and `evalkit data list` shows the source."""

import hashlib
import json

import pytest
from support.cli import error_line, run_cli
from support.hub_cache import HubCache, png_bytes
from support.openai_server import last_user_text

from evalkit.tasks.llava_bench.hub import SOURCE

pytestmark = pytest.mark.usefixtures("fast_retries")

CAPTIONS = {"001.png": "A red apple next to a blue cup.", "002.png": "A brown dog chases a yellow ball."}
COLORS = {"001.png": (200, 30, 30), "002.png": (30, 200, 30)}
QUESTIONS = [  # (question_id, image, category, question, GPT-4 reference)
    (0, "001.png", "conv", "What fruit is on the table?", "There is a red apple."),
    (1, "001.png", "detail", "Describe the image in detail.", "A red apple and a blue cup."),
    (2, "002.png", "complex", "Why might the dog be running?", "It is chasing the ball."),
]
#: the judge's review pair per question (reference, candidate)
PAIRS = {0: (8, 6), 1: (9, 9), 2: (6, 3)}


def official_files() -> dict[str, bytes]:
    def jsonl(rows):
        return "".join(json.dumps(r) + "\n" for r in rows).encode()

    files = {f"images/{name}": png_bytes(color) for name, color in COLORS.items()}
    files["questions.jsonl"] = jsonl(
        [{"question_id": q, "image": im, "text": t, "category": c} for q, im, c, t, _ in QUESTIONS]
    )
    files["context.jsonl"] = jsonl([{"image": im, "caption": cap} for im, cap in CAPTIONS.items()])
    files["answers_gpt4.jsonl"] = jsonl(
        [{"question_id": q, "prompt": t, "answer_id": f"r{q}", "text": ref} for q, _, _, t, ref in QUESTIONS]
    )
    return files


def play(body):
    text = last_user_text(body)
    for qid, _, _, question, _ in QUESTIONS:
        if body["model"] == "candidate" and text == question:
            return f"My answer to question {qid}."
        if body["model"] == "judge" and f"\n[Question]\n{question}\n\n" in text:
            assert f"[Assistant 2]\nMy answer to question {qid}.\n\n" in text
            return "{} {}\nBoth answers are fine.".format(*PAIRS[qid])
    raise AssertionError(f"unexpected request: {body['model']} {text[:80]!r}")


def test_hub_run_scores_as_the_official_files(tmp_path, monkeypatch, openai_server):
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "evalkit"))
    cache = HubCache.install(tmp_path / "hf", monkeypatch)
    files = official_files()
    snapshot = cache.add(SOURCE.repo_id, SOURCE.revision, files)
    official = tmp_path / "official"
    for name, data in files.items():
        (official / name).parent.mkdir(parents=True, exist_ok=True)
        (official / name).write_bytes(data)
    server = openai_server(responder=play)
    common = ["--model", "openai:candidate", "--base-url", server.base_url, "--tasks", "llava_bench"]
    common += ["--judge", "openai:judge", "--judge-base-url", server.base_url, "--json"]
    from_hub = run_cli("run", *common, "--output", str(tmp_path / "hub-run"))
    assert from_hub.returncode == 0, from_hub.stderr
    from_dir = run_cli("run", *common, "--data-dir", str(official), "--output", str(tmp_path / "dir-run"))
    assert from_dir.returncode == 0, from_dir.stderr
    a = json.loads(from_hub.stdout)["metrics"]["llava_bench"]["metrics"]
    b = json.loads(from_dir.stdout)["metrics"]["llava_bench"]["metrics"]
    assert {k: v["value"] for k, v in a.items()} == {k: v["value"] for k, v in b.items()}
    # relative score: 100 × mean candidate score / mean reference score (every judge run alike)
    want = 100 * sum(p[1] for p in PAIRS.values()) / sum(p[0] for p in PAIRS.values())
    assert a["relative"]["value"] == pytest.approx(round(want, 1), abs=0.051)

    rows = {}
    for name in ("hub-run", "dir-run"):
        stored = [json.loads(line) for line in open(tmp_path / name / "samples" / "llava_bench.jsonl")]
        rows[name] = {r["id"]: r for r in stored}
    assert rows["hub-run"].keys() == rows["dir-run"].keys() == {str(q[0]) for q in QUESTIONS}
    for sid, r in rows["hub-run"].items():
        d = rows["dir-run"][sid]
        same = ("prompt", "target", "meta", "cluster", "response")
        assert {f: r.get(f) for f in same} == {f: d.get(f) for f in same}
        assert r["judge"]["outputs"] == d["judge"]["outputs"]
        assert r["meta"]["context"] == CAPTIONS[r["meta"]["image"]]

    data = json.loads((tmp_path / "hub-run" / "run.json").read_text())["tasks"]["llava_bench"]["data"]
    hub = data["hub"]
    assert hub["repo"] == SOURCE.repo_id and hub["revision"] == SOURCE.revision and hub["pinned"] is True
    assert hub["rows"] == 3
    assert hub["files"] == {n: hashlib.sha256((snapshot / n).read_bytes()).hexdigest() for n in files}
    label = "hub liuhaotian/llava-bench-in-the-wild (official files, 3 questions) #"
    assert data["version"].startswith(label)
    other = json.loads((tmp_path / "dir-run" / "run.json").read_text())["tasks"]["llava_bench"]["data"]
    assert other["version"] != data["version"]

    listed = run_cli("data", "list", "--json")
    entries = {e["task"]: e for e in json.loads(listed.stdout)}
    (source,) = entries["llava_bench"]["hub"]
    assert source["repo_id"] == "liuhaotian/llava-bench-in-the-wild" and source["pinned"] is True
    assert source["files"] == ["questions.jsonl", "context.jsonl", "answers_gpt4.jsonl", "images/*"]
    assert source["cached"] == {"repo": SOURCE.repo_id, "revision": SOURCE.revision}
    # the hub copy lacks the boxes of the judge context: its images with the official files from GitHub
    coco = entries["llava_bench_coco"]
    assert coco["source"] == "hub" and [h["repo_id"] for h in coco["hub"]] == ["lmms-lab/llava-bench-coco"]
    assert [f["name"] for f in coco["official"]][-1] == "caps_boxes_coco2014_val_80.jsonl"


def test_an_empty_cache_offline_names_the_fetch_command_and_the_other_ways(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    line = error_line(
        run_cli("run", "--model", "toy", "--tasks", "llava_bench", "--output", str(tmp_path / "run"))
    )
    assert line.startswith("error: llava_bench needs data: liuhaotian/llava-bench-in-the-wild")
    assert "`evalkit data fetch llava_bench`" in line and "evalkit import --task llava_bench" in line


def test_fetch_downloads_the_pinned_official_files_only(tmp_path, monkeypatch):
    """`evalkit data fetch llava_bench` against a stand-in hub on 127.0.0.1: the three jsonl files and
    images/ at the pinned commit, not the other files of the repository; then read offline."""
    from support.hub_server import HubServer

    files = official_files()
    extra = {"images.zip": b"PK not read", "bard_0718.jsonl": b"{}\n", "README.md": b"# card\n"}
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "evalkit"))
    with HubServer({(SOURCE.repo_id, SOURCE.revision): {**files, **extra}}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.base_url)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        fetched = run_cli("data", "fetch", "llava_bench")
        downloaded = sorted(p for m, p in hub.requests if m == "GET" and "/resolve/" in p)
    assert fetched.returncode == 0, fetched.stderr
    prefix = f"/datasets/{SOURCE.repo_id}/resolve/{SOURCE.revision}/"
    assert downloaded == sorted(prefix + name for name in files)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from evalkit.runner import load_tasks

    _, loaded = load_tasks("llava_bench")
    samples = loaded["llava_bench"].samples
    assert [s.target for s in samples] == [q[4] for q in QUESTIONS]
    assert all(
        open(s.messages[0].images[0], "rb").read() == png_bytes(COLORS[s.meta["image"]]) for s in samples
    )
