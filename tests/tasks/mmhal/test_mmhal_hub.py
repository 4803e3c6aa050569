"""MMHal-Bench from the hub: Shengcao1006/MMHal-Bench's response_template.json and images/, in a Hugging Face
cache laid out on disk (support/hub_cache.py), read offline file by file, give the samples and metrics the
same files give through --data-dir (candidate and GPT-4 judge played by a local server), in the template's
order; run.json records what was read, `evalkit data list` shows the source, an empty cache is one line."""

import hashlib
import json
import re
import statistics

import pytest
from support.cli import error_line, run_cli
from support.hub_cache import HubCache, png_bytes
from support.openai_server import FakeOpenAIServer, last_user_text

from evalkit.judges.settings import JudgeSettings
from evalkit.models.base import BackendOptions
from evalkit.models.openai_backend import OpenAIBackend
from evalkit.runner import evaluate
from evalkit.tasks.mmhal.hub import SOURCE
from evalkit.tasks.mmhal.protocol import QUESTION_TYPES

pytestmark = pytest.mark.usefixtures("fast_retries")

COMMIT = "7" * 40  # any commit: the source is not pinned, main names it
N_IMAGES = 12
QUESTION = re.compile(r"### Question\n(.*)\n\n### Standard Human-Generated Answer\n(.*)\n\n### LMM", re.S)


def image_name(i: int) -> str:
    return f"{1000 + i % N_IMAGES}_{'ab' * 4}_o.jpg"


def template() -> list[dict]:
    """96 records in the official schema and type cycle (type = index % 8), 12 images shared round robin."""
    return [
        {
            "question_type": QUESTION_TYPES[i % 8],
            "question_topic": f"topic {i % 12}",
            "image_id": f"img{i % N_IMAGES:04d}",
            "image_src": f"https://c{i % 3}.staticflickr.com/6/{i}/{image_name(i)}",
            "image_content": ["Person", f"Thing {i}"],
            "question": f"Question {i}: what is shown?",
            "gt_answer": f"Thing {i} and a person.",
            "model_answer": "",
        }
        for i in range(96)
    ]


def official_files() -> dict[str, bytes]:
    files = {"response_template.json": json.dumps(template(), indent=2).encode()}
    for k in range(N_IMAGES):
        files[f"images/{image_name(k)}"] = png_bytes((20 * k, 255 - 20 * k, 90))
    return files


def rating(i: int, run: int) -> int:
    return (i + 3 * run) % 7


def play(body):
    text = last_user_text(body)
    if body["model"] == "candidate":
        return f"I see: {text[::-1]}"
    question, _ = QUESTION.search(text).groups()
    i = int(question.split(":")[0].split()[1])
    return f"The response was compared with the image contents.\nRating: {rating(i, body.get('seed') or 0)}"


def run(server, tmp_path, data_dir, name):
    backend = OpenAIBackend("candidate", BackendOptions(base_url=server.base_url, max_retries=3, timeout_s=5))
    judges = JudgeSettings(
        base_url=server.base_url, concurrency=4, timeout_s=5, cache_path=tmp_path / f"{name}-judge.sqlite"
    )
    return evaluate(
        backend, ["mmhal"], data_dir=data_dir, output=tmp_path / name, judges=judges, progress=False
    )


def rows_of(result):
    rows = [json.loads(line) for line in open(result.run_dir / "samples" / "mmhal.jsonl")]
    return sorted(rows, key=lambda r: int(r["id"]))


def test_hub_run_scores_as_the_official_files(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "evalkit"))
    cache = HubCache.install(tmp_path / "hf", monkeypatch)
    files = official_files()
    extra = {"MMHal-Bench.py": b"# loading script, not run\n", "test_data.zip": b"PK not read"}
    snapshot = cache.add(SOURCE.repo_id, COMMIT, {**files, **extra})
    official = tmp_path / "official"
    for name, data in files.items():
        (official / name).parent.mkdir(parents=True, exist_ok=True)
        (official / name).write_bytes(data)
    with FakeOpenAIServer(responder=play) as server:
        from_hub = run(server, tmp_path, None, "hub-run")
        from_dir = run(server, tmp_path, official, "dir-run")
    a = from_hub.metrics["mmhal"]["metrics"]
    assert a == from_dir.metrics["mmhal"]["metrics"]
    assert a["score"]["value"] == pytest.approx(statistics.fmean(rating(i, 0) for i in range(96)))
    for t, name in enumerate(QUESTION_TYPES):  # the type of a record is its position in the template
        want = statistics.fmean(rating(i, 0) for i in range(t, 96, 8))
        assert a[f"type/{name}"]["value"] == pytest.approx(want)

    hub_rows, dir_rows = rows_of(from_hub), rows_of(from_dir)
    assert [r["prompt"] for r in hub_rows] == [r["question"] for r in template()]
    for r, d in zip(hub_rows, dir_rows, strict=True):
        same = ("id", "prompt", "target", "meta", "cluster", "response")
        assert {f: r.get(f) for f in same} == {f: d.get(f) for f in same}
        assert r["judge"]["outputs"] == d["judge"]["outputs"]

    data = json.loads((from_hub.run_dir / "run.json").read_text())["tasks"]["mmhal"]["data"]
    hub = data["hub"]
    assert hub["repo"] == SOURCE.repo_id and hub["revision"] == COMMIT and hub["pinned"] is False
    assert hub["rows"] == 96
    assert hub["files"] == {n: hashlib.sha256((snapshot / n).read_bytes()).hexdigest() for n in files}
    assert data["version"].startswith("hub Shengcao1006/MMHal-Bench (official files, 96 records)")
    assert data["image_dir"] == str(snapshot / "images")
    other = json.loads((from_dir.run_dir / "run.json").read_text())["tasks"]["mmhal"]["data"]
    assert "hub" not in other and other["version"].startswith("MMHal-Bench (96 records)")

    listed = run_cli("data", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (source,) = {e["task"]: e for e in json.loads(listed.stdout)}["mmhal"]["hub"]
    assert source["repo_id"] == "Shengcao1006/MMHal-Bench" and source["revision"] is None
    assert source["pinned"] is False and source["files"] == ["response_template.json", "images/*"]
    assert source["cached"] == {"repo": SOURCE.repo_id, "revision": COMMIT}


def test_an_empty_cache_offline_names_the_fetch_command_and_the_other_ways(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    line = error_line(run_cli("run", "--model", "toy", "--tasks", "mmhal", "--output", str(tmp_path / "run")))
    assert line.startswith("error: mmhal needs data: Shengcao1006/MMHal-Bench")
    assert "`evalkit data fetch mmhal`" in line and "--data toy" in line
    assert "evalkit import --task mmhal" in line


def test_fetch_downloads_the_template_and_images_only(tmp_path, monkeypatch):
    """`evalkit data fetch mmhal` against a stand-in hub on 127.0.0.1: the template and images/ at the
    commit `main` names, not the loading script nor test_data.zip; then read offline in template order."""
    from support.hub_server import HubServer

    from evalkit.runner import load_tasks

    files = official_files()
    extra = {"MMHal-Bench.py": b"# loading script\n", "test_data.zip": b"PK not read", "README.md": b"# c\n"}
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "evalkit"))
    with HubServer({(SOURCE.repo_id, COMMIT): {**files, **extra}}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.base_url)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        fetched = run_cli("data", "fetch", "mmhal")
        downloaded = sorted(p for m, p in hub.requests if m == "GET" and "/resolve/" in p)
    assert fetched.returncode == 0, fetched.stderr
    assert downloaded == sorted(f"/datasets/{SOURCE.repo_id}/resolve/{COMMIT}/{name}" for name in files)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _, loaded = load_tasks("mmhal")
    samples = loaded["mmhal"].samples
    assert [s.meta["question_type"] for s in samples] == [QUESTION_TYPES[i % 8] for i in range(96)]
    assert loaded["mmhal"].info["hub"]["revision"] == COMMIT
    for s in samples:
        assert open(s.messages[0].images[0], "rb").read() == files[f"images/{image_name(int(s.id))}"]
