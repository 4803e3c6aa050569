"""`evalkit push` and runs named by hub repositories.

What is tested: the folder `push_run` uploads (built by the same `build_dataset_folder`) read back with
`datasets.load_dataset` from disk (the card's `configs:` give the metrics and the "rows" configs), the
secrets it refuses or redacts, `HfApi`'s own offline refusal turned into one line, `evalkit compare` /
`evalkit leaderboard` reading that folder as a pushed repository from a Hugging Face cache laid out on disk
(`support.hub_cache`) with HF_HUB_OFFLINE=1, and a real `HfApi` upload to a local stand-in of the hub's
commit API (`support.hub_commits`) downloaded back by `snapshot_download`. Not tested: the real hub (its
LFS / Xet upload path for large files, its permission checks)."""

from __future__ import annotations

import json
import math

import pytest
from support.cli import error_line, run_cli
from support.hub_cache import HubCache
from support.runs import pope_items, pope_rows, write_run

from evalkit.analysis.compare import compare_runs
from evalkit.analysis.leaderboard import build_leaderboard
from evalkit.hub.dataset import build_dataset_folder
from evalkit.hub.resolve import hub_reference
from evalkit.store import RunStore
from evalkit.types import UserError

COMMIT = "a" * 40


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    items = pope_items(300)
    right = [sid for sid, *_, c in items if c]
    base = write_run(root / "llava-base", "pope", pope_rows(items))
    new = write_run(root / "llava-dpo", "pope", pope_rows(items, frozenset(right[:30])))
    return base, new


def folder_files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_the_pushed_folder_loads_with_datasets(runs, tmp_path):
    from datasets import load_dataset

    base, _ = runs
    folder = build_dataset_folder(base, tmp_path / "repo", "user/llava-base")
    metrics = load_dataset(str(folder), split="train")
    stored = json.loads((base / "metrics.json").read_text())["pope"]
    assert set(metrics.column_names) == {"task", "metric", "value", "ci_low", "ci_high", "n", "headline"}
    assert len(metrics) == len(stored["metrics"])
    by_name = {r["metric"]: r for r in metrics}
    f1 = stored["metrics"]["f1_mean"]
    assert by_name["f1_mean"]["value"] == pytest.approx(f1["value"])
    assert by_name["f1_mean"]["ci_low"] == pytest.approx(f1["ci_low"]) and by_name["f1_mean"]["headline"]
    assert sum(r["headline"] for r in metrics) == 1

    rows = load_dataset(str(folder), "rows", split="train")
    stored_rows = [json.loads(line) for line in (base / "samples" / "pope.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [r["id"] for r in stored_rows]
    first = rows[0]
    assert first["task"] == "pope" and first["response"] == stored_rows[0]["response"]
    assert json.loads(first["fields"])["meta"] == stored_rows[0]["meta"]
    card = (folder / "README.md").read_text()
    assert 'load_dataset("user/llava-base", "rows")' in card and "| pope | f1_mean |" in card


def test_credentials_are_redacted_and_secrets_refuse_the_push(runs, tmp_path, monkeypatch):
    base, _ = runs
    run = tmp_path / "run"
    for name, data in folder_files(base).items():
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_bytes(data)
    store = RunStore(run)
    header = store.read_header()
    header["command"]["base_url"] = "https://alice:s3cret-pass@llm.example.com/v1?key=abc123"
    header["command"]["api_key_env"] = "MY_LLM_KEY"
    header["model"]["api_key"] = "literal-key-in-header"
    store.write_header(header)
    folder = build_dataset_folder(run, tmp_path / "repo")
    text = (folder / "run.json").read_text()
    pushed = json.loads(text)
    assert pushed["command"]["base_url"] == "https://llm.example.com/v1"
    assert pushed["model"]["api_key"] == "[redacted]"
    assert "s3cret-pass" not in text and "abc123" not in text and "literal-key-in-header" not in text

    # the value of the key variable the run names, found in a stored answer: nothing is built
    monkeypatch.setenv("MY_LLM_KEY", "kx-0123456789abcdef")
    rows = (run / "samples" / "pope.jsonl").read_text().splitlines()
    first = json.loads(rows[0])
    first["response"] = "my key is kx-0123456789abcdef"
    (run / "samples" / "pope.jsonl").write_text("\n".join([json.dumps(first), *rows[1:]]) + "\n")
    with pytest.raises(UserError, match=r"samples/pope.jsonl would publish the value of \$MY_LLM_KEY"):
        build_dataset_folder(run, tmp_path / "repo2")
    monkeypatch.delenv("MY_LLM_KEY")
    first["response"] = "Authorization: Bearer abcdefghijklmnopqrstuvwxyz"
    (run / "samples" / "pope.jsonl").write_text("\n".join([json.dumps(first), *rows[1:]]) + "\n")
    with pytest.raises(UserError, match="a bearer token"):
        build_dataset_folder(run, tmp_path / "repo3")
    for text, what in [
        ("failed: POST https://bob:hunter22@llm.example.com/v1 refused", "a URL with credentials"),
        (
            "GET https://x.openai.azure.com/deploy?api-key=0123456789abcdef: 401",
            "a URL with a key in its query",
        ),
    ]:
        first["response"] = text
        (run / "samples" / "pope.jsonl").write_text("\n".join([json.dumps(first), *rows[1:]]) + "\n")
        with pytest.raises(UserError, match=what):
            build_dataset_folder(run, tmp_path / "repo4")


def test_push_offline_and_bad_input_are_one_line_errors(runs, tmp_path):
    base, _ = runs
    # HF_HUB_OFFLINE=1 (the test environment): HfApi itself refuses the request
    line = error_line(run_cli("push", str(base), "--repo", "user/llava-base"))
    assert "cannot push with HF_HUB_OFFLINE=1" in line
    assert "expected USER/NAME" in error_line(run_cli("push", str(base), "--repo", "no-slash"))
    assert "not a run folder" in error_line(run_cli("push", str(tmp_path), "--repo", "user/x"))


def test_the_reference_rule():
    assert hub_reference("hf://user/name") == ("user/name", None)
    assert hub_reference("hf:/user/name@v1") == ("user/name", "v1")  # what pathlib makes of hf://
    assert hub_reference("user/name") == ("user/name", None)  # no such local path
    assert hub_reference("results") is None and hub_reference("/abs/run") is None
    assert hub_reference("runs/a/b") is None
    with pytest.raises(UserError, match="expected hf://USER/NAME"):
        hub_reference("hf://just-a-name")


def test_compare_and_leaderboard_read_a_pushed_run_from_the_hub_cache(runs, tmp_path, monkeypatch):
    base, new = runs
    cache = HubCache.install(tmp_path / "hub", monkeypatch)
    folder = build_dataset_folder(base, tmp_path / "repo", "user/llava-base")
    cache.add("user/llava-base", COMMIT, folder_files(folder))
    monkeypatch.chdir(tmp_path)  # `user/llava-base` is no local path here

    local = compare_runs(base, new)
    for name in ("hf://user/llava-base", "user/llava-base"):
        pushed = compare_runs(name, new)
        assert pushed.base == "hf://user/llava-base"
        (a,), (b,) = local.metrics, pushed.metrics
        assert (a.base, a.new, a.diff, a.ci_low, a.ci_high) == (b.base, b.new, b.diff, b.ci_low, b.ci_high)
        assert not math.isnan(b.diff) and b.n_samples == 300

    board = build_leaderboard(["hf://user/llava-base", str(new)])
    assert sorted((e.run, e.path) for e in board.entries) == [
        ("llava-base", "hf://user/llava-base"),
        ("llava-dpo", str(new)),
    ]

    proc = run_cli("compare", "hf://user/llava-base", str(new), "--json")
    assert proc.returncode in (0, 1), proc.stderr
    assert json.loads(proc.stdout)["metrics"][0]["diff"] == pytest.approx(a.diff)
    proc = run_cli("leaderboard", "hf://user/llava-base", str(new), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert "llava-base" in proc.stdout and "llava-dpo" in proc.stdout


def test_a_repository_missing_from_the_offline_cache_is_one_line(runs, tmp_path, monkeypatch):
    HubCache.install(tmp_path / "hub", monkeypatch)
    monkeypatch.chdir(tmp_path)
    line = error_line(run_cli("leaderboard", "hf://user/not-fetched"))
    assert "hf://user/not-fetched is not a local run folder and is not in the Hugging Face cache" in line
    line = error_line(run_cli("compare", "results/typo", "results/other"))
    assert line.startswith(
        "error: results/typo is no local path; read as a hub repository: hf://results/typo"
    )


def push_env(hub, cache):
    import os

    return {
        **os.environ,
        "HF_ENDPOINT": hub.base_url,
        "HF_HUB_OFFLINE": "0",
        "HF_TOKEN": "test-write-token",
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }


def test_a_second_push_replaces_the_first_runs_files_and_revision_names_a_branch(runs, tmp_path):
    import subprocess

    from support.cli import EVALKIT
    from support.hub_commits import CommitHub
    from support.scored import scored_rows

    base, _ = runs
    other = write_run(tmp_path / "objhal-run", "objhal", scored_rows("objhal"))
    with CommitHub() as hub:
        env = push_env(hub, tmp_path / "cache")
        for run in (other, base):
            proc = subprocess.run(
                [*EVALKIT, "push", str(run), "--repo", "me/runs"], capture_output=True, text=True, env=env
            )
            assert proc.returncode == 0, proc.stderr
        files = hub.files("me/runs")
        assert sorted(files) == sorted(
            [".gitattributes", *folder_files(build_dataset_folder(base, tmp_path / "expected"))]
        )
        assert "samples/objhal.jsonl" not in files and "data/rows/objhal.parquet" not in files
        proc = subprocess.run(
            [*EVALKIT, "push", str(base), "--repo", "me/runs", "--revision", "ablation"],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        posted = [path for method, path in hub.requests if method == "POST"]
        assert "/api/datasets/me/runs/branch/ablation" in posted
        assert posted[-1] == "/api/datasets/me/runs/commit/ablation"
        assert hub.files("me/runs", "ablation") == files  # the same run: the branch holds the same files


def test_push_commits_through_hfapi_and_the_repository_reads_back_as_a_run(runs, tmp_path, monkeypatch):
    """A real `HfApi` upload to a local stand-in of the hub (support.hub_commits), in a process with the
    network allowed: the repository is created private, holds exactly the folder `build_dataset_folder`
    writes, and, downloaded into an empty cache, is a run `evalkit leaderboard` reads, then offline too."""
    import os
    import subprocess

    from support.cli import EVALKIT
    from support.hub_commits import CommitHub

    base, new = runs
    expected = folder_files(build_dataset_folder(base, tmp_path / "expected", "me/llava-base"))
    cache = tmp_path / "fresh-cache"
    with CommitHub() as hub:
        env = {
            **os.environ,
            "HF_ENDPOINT": hub.base_url,
            "HF_HUB_OFFLINE": "0",
            "HF_TOKEN": "test-write-token",
            "HF_HUB_CACHE": str(cache),
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }
        push = subprocess.run(
            [*EVALKIT, "push", str(base), "--repo", "me/llava-base", "--private"],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
        assert push.returncode == 0, push.stderr
        assert f"{hub.base_url}/datasets/me/llava-base/commit/" in push.stdout
        assert hub.created["me/llava-base"]["visibility"] == "private"
        assert set(hub.auth) == {"Bearer test-write-token"}
        (meta,) = hub.validated
        assert [c["config_name"] for c in meta["configs"]] == ["metrics", "rows"]
        files = hub.files("me/llava-base")
        assert files.pop(".gitattributes") and files == expected

        board = subprocess.run(
            [*EVALKIT, "leaderboard", "hf://me/llava-base", str(new), "--format", "json"],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
        assert board.returncode == 0, board.stderr
    offline = subprocess.run(
        [*EVALKIT, "leaderboard", "hf://me/llava-base", str(new), "--format", "json"],
        capture_output=True, text=True, env={**env, "HF_HUB_OFFLINE": "1"}, timeout=300,
    )  # fmt: skip
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout) == json.loads(board.stdout)
    paths = [e["path"] for e in json.loads(board.stdout)["runs"]]
    assert sorted(paths) == sorted(["hf://me/llava-base", str(new)])
