"""AlpacaEval 2.0 and 1.0 from the hub: tatsu-lab/alpaca_eval's reference outputs (and df_gamed.csv for the
2.0 length-controlled refit), in a Hugging Face cache laid out on disk (support/hub_cache.py), read offline
file by file, give the samples and metrics the same records give as a checkout's
results/<reference>/model_outputs.json through --data-dir (candidate and both official judges played by a
local server, support/alpaca_eval.py); run.json records what was read, `evalkit data list` shows it."""

import hashlib
import json

import pytest
from support.alpaca_eval import (
    INSTRUCTIONS,
    REFERENCE,
    TASKS,
    N,
    hand_preference,
    play,
    reference_output,
    rows_of,
    write_data,
)
from support.alpaca_eval import run as run_judged
from support.cli import error_line, run_cli
from support.hub_cache import HubCache
from support.openai_server import FakeOpenAIServer

from evalkit.tasks.alpaca_eval.hub import SOURCES

pytestmark = pytest.mark.usefixtures("fast_retries")

COMMIT = "5aaf4b4" + "0" * 33  # any commit: the 2.0 source is not pinned, main names it
PINNED = "0cd24d711fe90d0c1aae5bde03fe98ee48ae52f8"  # 1.0's alpaca_eval.json, as public code links it
HUB_FILE = {"alpaca_eval": "alpaca_eval_gpt4_baseline.json", "alpaca_eval_v1": "alpaca_eval.json"}


def df_gamed() -> str:
    """A small df_gamed.csv (two gamed baselines over the N instructions), columns as the hub's file."""
    lines = ["model,index,preference,std_delta_len,instruction_difficulty,not_gamed_baseline,annotator"]
    for k, model in enumerate(("verbose", "concise")):
        for i in range(N):
            pref = (0.15 + 0.1 * i + 0.2 * k) % 1
            delta = (-1) ** k * (0.3 + 0.25 * i)
            lines.append(f"{model},{i},{pref!r},{delta!r},{0.1 * i - 0.4!r},False,weighted")
    return "\n".join(lines) + "\n"


def commit_of(task: str) -> str:
    return COMMIT if task == "alpaca_eval" else PINNED


def hub_files() -> dict[str, bytes]:
    """The reference outputs as the hub's json files hold them (same records, the hub's indentation)."""
    files = {
        HUB_FILE[task]: json.dumps(
            [
                {"instruction": i, "output": reference_output(task, i), "generator": REFERENCE[task]}
                | {"dataset": "selfinstruct"}
                for i in INSTRUCTIONS
            ],
            indent=4,
        ).encode()
        for task in TASKS
    }
    files["df_gamed.csv"] = df_gamed().encode()
    return files


def test_hub_run_scores_as_the_official_files(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "evalkit"))
    cache = HubCache.install(tmp_path / "hf", monkeypatch)
    files = hub_files()
    snapshots = {  # main names the newer commit; 1.0 reads the pinned one
        PINNED: cache.add("tatsu-lab/alpaca_eval", PINNED, {"alpaca_eval.json": files["alpaca_eval.json"]}),
        COMMIT: cache.add("tatsu-lab/alpaca_eval", COMMIT, files),
    }
    official = write_data(tmp_path / "official")  # a checkout's results/<reference>/model_outputs.json
    (official / "df_gamed.csv").write_text(df_gamed())
    with FakeOpenAIServer(responder=play) as server:
        from_hub = run_judged(server, tmp_path, None, name="hub-run")
        from_dir = run_judged(server, tmp_path, official, name="dir-run")
    for task in TASKS:
        a = from_hub.metrics[task]["metrics"]
        assert a == from_dir.metrics[task]["metrics"]
        prefs = [hand_preference(task, i) for i in INSTRUCTIONS]
        valid = [p - 1 for p in prefs if p is not None]
        assert a["win_rate"]["value"] == pytest.approx(100 * sum(valid) / len(valid), abs=1e-9)
        hub_rows, dir_rows = rows_of(from_hub, task), rows_of(from_dir, task)
        assert [r["prompt"] for r in hub_rows] == INSTRUCTIONS
        for r, d in zip(hub_rows, dir_rows, strict=True):
            same = ("id", "prompt", "target", "response", "preference")
            assert {f: r[f] for f in same} == {f: d[f] for f in same}
            assert r["judge"]["outputs"] == d["judge"]["outputs"]
    lc = from_hub.metrics["alpaca_eval"]["metrics"]["length_controlled_win_rate"]
    assert lc["value"] is not None  # refitted on the hub's df_gamed.csv, as on the official folder's

    for task in TASKS:
        data = json.loads((from_hub.run_dir / "run.json").read_text())["tasks"][task]["data"]
        hub = data["hub"]
        assert hub["repo"] == "tatsu-lab/alpaca_eval" and hub["revision"] == commit_of(task)
        assert hub["pinned"] is (task == "alpaca_eval_v1") and hub["rows"] == N
        read, snapshot = SOURCES["2.0" if task == "alpaca_eval" else "1.0"].files, snapshots[commit_of(task)]
        assert hub["files"] == {n: hashlib.sha256((snapshot / n).read_bytes()).hexdigest() for n in read}
        assert data["version"].startswith(f"hub tatsu-lab/alpaca_eval ({HUB_FILE[task]}, {N} instructions)")
        other = json.loads((from_dir.run_dir / "run.json").read_text())["tasks"][task]["data"]
        assert "hub" not in other and other["version"].startswith("AlpacaEval ")

    listed = run_cli("data", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    entries = {e["task"]: e for e in json.loads(listed.stdout)}
    for task, files_read, revision in (
        ("alpaca_eval", ["alpaca_eval_gpt4_baseline.json", "df_gamed.csv"], None),
        ("alpaca_eval_v1", ["alpaca_eval.json"], PINNED),
    ):
        (source,) = entries[task]["hub"]
        assert source["repo_id"] == "tatsu-lab/alpaca_eval" and source["revision"] == revision
        assert source["pinned"] is (revision is not None) and source["files"] == files_read
        assert source["cached"] == {"repo": "tatsu-lab/alpaca_eval", "revision": commit_of(task)}


@pytest.mark.parametrize("task", TASKS)
def test_an_empty_cache_offline_names_the_fetch_command_and_the_other_ways(tmp_path, monkeypatch, task):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    line = error_line(run_cli("run", "--model", "toy", "--tasks", task, "--output", str(tmp_path / "run")))
    assert line.startswith(f"error: {task} needs data: tatsu-lab/alpaca_eval")
    assert HUB_FILE[task] in line and f"`evalkit data fetch {task}`" in line
    assert f"results/{REFERENCE[task]}/model_outputs.json" in line
    assert f"--task-option {task}.reference=PATH" in line and f"evalkit import --task {task}" in line


def test_fetch_downloads_each_versions_files_only(tmp_path, monkeypatch):
    """`evalkit data fetch alpaca_eval alpaca_eval_v1` against a stand-in hub on 127.0.0.1: 2.0's reference
    outputs and df_gamed.csv at the commit `main` names, 1.0's at its pinned commit, not the repository's
    other files (loading script, annotations); then read offline."""
    from support.hub_server import HubServer

    from evalkit.runner import load_tasks

    files = hub_files()
    extra = {
        "alpaca_eval.py": b"# loading script\n",
        "alpaca_eval_annotations_claude.json": b"[]",
        "instruction_difficulty.csv": b",0\n",
    }
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "evalkit"))
    repos = {("tatsu-lab/alpaca_eval", c): {**files, **extra} for c in (COMMIT, PINNED)}
    with HubServer(repos, main={"tatsu-lab/alpaca_eval": COMMIT}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.base_url)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        fetched = run_cli("data", "fetch", "alpaca_eval", "alpaca_eval_v1")
        downloaded = sorted(p for m, p in hub.requests if m == "GET" and "/resolve/" in p)
    assert fetched.returncode == 0, fetched.stderr
    base = "/datasets/tatsu-lab/alpaca_eval/resolve"
    assert downloaded == sorted(
        [f"{base}/{COMMIT}/alpaca_eval_gpt4_baseline.json", f"{base}/{COMMIT}/df_gamed.csv"]
        + [f"{base}/{PINNED}/alpaca_eval.json"]  # 1.0 at its pinned commit, whatever main names
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _, loaded = load_tasks("alpaca_eval,alpaca_eval_v1")
    for task in TASKS:
        assert [s.target for s in loaded[task].samples] == [reference_output(task, i) for i in INSTRUCTIONS]
        assert loaded[task].info["hub"]["revision"] == commit_of(task)
    assert loaded["alpaca_eval"].info["length_controlled"]["computed"] is True
