"""`evalkit data list|verify|fetch` on a task's official files (AMBER's, pinned by sha256), offline: listed
with their URL and checksum, verified against the pin once kept, a damaged copy exits 1 naming the fetch."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from support.cli import run_cli
from support.hub_cache import HubCache

from evalkit.tasks.amber import hub

COMMIT = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty hub cache and an evalkit cache of the test's own (official files kept here stay here)."""
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "ek"))
    return HubCache.install(tmp_path / "hf", monkeypatch)


def test_list_gives_amber_its_hub_source_and_pinned_official_files(cache):
    proc = run_cli("data", "list", "amber", "--json")
    assert proc.returncode == 0, proc.stderr
    (amber,) = json.loads(proc.stdout)
    assert amber["source"] == "hub" and amber["hub"][0]["repo_id"] == "qgallouedec/amber"
    files = {o["name"]: o for o in amber["official"]}
    assert set(files) == {
        "annotations.json",
        "relation.json",
        "safe_words.txt",
        "query_all.json",
        "metrics.txt",
    }
    assert (
        files["metrics.txt"]["sha256"] == "2fbe2ee584d10e7ce0a568a4902d3d2296727d45f761bf091dd35c4e4b5bc6ac"
    )
    assert files["query_all.json"]["url"] == (
        "https://raw.githubusercontent.com/junyangwang0410/AMBER/"
        "534babf6bbfcce2e735c26289dedfb21cef3c939/data/query/query_all.json"
    )
    assert not any(o["cached"] for o in files.values())
    text = run_cli("data", "list", "amber")
    assert text.returncode == 0, text.stderr
    assert "official safe_words.txt: https://raw.githubusercontent.com/" in " ".join(text.stdout.split())


def test_verify_checks_kept_official_files_against_their_pins(cache, shared):
    cache.add(hub.SOURCE.repo_id, COMMIT, {"generative/train-00000-of-00001.parquet": b"PAR1 x PAR1"})
    for name, f in hub.OFFICIAL.items():
        f.path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared / "amber" / "data" / name, f.path)
    ok = run_cli("data", "verify", "amber")
    assert ok.returncode == 0, ok.stderr
    assert "amber: relation.json: ok" in ok.stdout and ok.stdout.count(": ok") == 6  # 5 files + parquet
    listed = json.loads(run_cli("data", "list", "amber", "--json").stdout)[0]
    assert all(o["cached"] for o in listed["official"])
    damaged = hub.OFFICIAL["safe_words.txt"].path
    damaged.write_bytes(damaged.read_bytes() + b"x\n")
    bad = run_cli("data", "verify")  # every cached source
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "amber: safe_words.txt: corrupt" in bad.stdout
    message = " ".join(bad.stderr.split())
    assert "does not match its pinned sha256" in message and "`evalkit data fetch amber`" in message


def test_fetch_of_official_files_refuses_offline_and_verify_names_the_fetch(cache):
    offline = run_cli("data", "fetch", "amber")
    assert offline.returncode == 2 and "HF_HUB_OFFLINE=1 forbids" in offline.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    ours = subprocess.run(
        [sys.executable, "-m", "evalkit", "data", "fetch", "amber"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "EVALKIT_OFFLINE": "1"},
    )
    assert ours.returncode == 2 and "EVALKIT_OFFLINE=1 forbids" in ours.stderr
    missing = run_cli("data", "verify", "amber")
    assert missing.returncode == 2 and "`evalkit data fetch amber`" in " ".join(missing.stderr.split())
    assert "Traceback" not in missing.stderr
