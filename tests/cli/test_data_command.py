"""`evalkit data list|fetch|verify`, offline, on a Hugging Face cache (support/hub_cache.py)."""

import json

import pytest
from support.cli import run_cli
from support.hub_cache import HubCache

from evalkit.registry import task_names
from evalkit.tasks.pope.hub import SOURCE

PARQUETS = {
    f"Full/{s}-00000-of-00001.parquet": f"PAR1 {s} PAR1".encode()
    for s in ("random", "popular", "adversarial")
}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    return HubCache.install(tmp_path / "hf", monkeypatch)


def test_list_json_gives_every_task_its_source(cache):
    proc = run_cli("data", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    entries = {e["task"]: e for e in json.loads(proc.stdout)}
    assert sorted(entries) == task_names()
    pope = entries["pope"]
    assert pope["source"] == "hub" and pope["needs"] is None
    (hub,) = pope["hub"]
    assert hub["repo_id"] == "lmms-lab/POPE" and hub["mirrors"] == ["lmms-lab-encoder/POPE"]
    assert hub["revision"] == "4db1276663dfa5eb8ad16a52d24c31a09e470896" and hub["pinned"] is True
    assert hub["files"] == ["Full/random-*.parquet", "Full/popular-*.parquet", "Full/adversarial-*.parquet"]
    assert hub["config"] == "Full" and hub["rows"] == 9000 and "8,910" in hub["note"]
    assert hub["cached"] is None and hub["repo_type"] == "dataset"
    assert entries["mt_bench"]["source"] == "bundled" and entries["toy_language"]["source"] == "toy only"
    objhal = entries["objhal"]  # no hub copy exists: its files are supplied by hand
    assert objhal["source"] == "by hand" and objhal["hub"] == [] and "obj_halbench" in objhal["needs"]


def test_list_says_what_is_cached(cache):
    cache.add(SOURCE.repo_id, SOURCE.revision, PARQUETS)
    entries = {e["task"]: e for e in json.loads(run_cli("data", "list", "--json").stdout)}
    assert entries["pope"]["hub"][0]["cached"] == {"repo": "lmms-lab/POPE", "revision": SOURCE.revision}
    text = " ".join(run_cli("data", "list").stdout.split())
    assert "hub lmms-lab/POPE @ 4db1276663dfa5eb8ad16a52d24c31a09e470896" in text
    assert "cached at 4db1276663df" in text and "by hand: --data-dir" in text


def test_verify_passes_then_finds_a_damaged_blob(cache):
    snapshot = cache.add(SOURCE.repo_id, SOURCE.revision, PARQUETS)
    ok = run_cli("data", "verify", "pope")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count(": ok") == 3
    blob = (snapshot / "Full/popular-00000-of-00001.parquet").resolve()
    blob.write_bytes(blob.read_bytes()[:-1] + b"X")
    bad = run_cli("data", "verify")  # every cached source
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "pope: Full/popular-00000-of-00001.parquet: corrupt" in bad.stdout
    assert "error: pope: 1 cached file(s) of lmms-lab/POPE" in bad.stderr
    assert "evalkit data fetch pope" in " ".join(bad.stderr.split())


def test_verify_of_a_task_not_cached_names_the_fetch_command(cache):
    proc = run_cli("data", "verify", "pope")
    assert proc.returncode == 2 and "`evalkit data fetch pope`" in " ".join(proc.stderr.split())
    quiet = run_cli("data", "verify")  # nothing cached: a warning, not an error
    assert quiet.returncode == 0 and "no hub data in the cache" in quiet.stderr


def test_fetch_refuses_offline_and_says_what_a_task_without_hub_source_needs(cache):
    offline = run_cli("data", "fetch", "pope")
    assert offline.returncode == 2 and "HF_HUB_OFFLINE=1 forbids" in offline.stderr
    by_hand = run_cli("data", "fetch", "objhal,mt_bench")
    assert by_hand.returncode == 2
    message = " ".join(by_hand.stderr.split())
    assert "nothing to fetch from the hub for objhal (by hand: --data-dir" in message
    assert "mt_bench (bundled: none" in message
    unknown = run_cli("data", "frob")
    assert unknown.returncode == 2 and "expected one of list, fetch, verify" in unknown.stderr
