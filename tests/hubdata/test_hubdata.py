"""The hub data layer on a cache laid out as huggingface_hub lays it out (support/hub_cache.py): locating
a pinned or unpinned source offline, mirrors, the one-line error of an empty cache, and `verify` against
the blob names (sha256 for LFS files, git sha1 for small ones)."""

import hashlib

import pytest
from support.hub_cache import HubCache

from evalkit.hubdata.cache import hub_cache_dir, locate, verify
from evalkit.hubdata.source import HubSource
from evalkit.types import UserError

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"
FILES = {
    "data/test-00000-of-00001.parquet": b"PAR1 rows PAR1",
    "questions.jsonl": b'{"q": 1}\n',
    "README.md": b"# x\n",
}


def source(**kw) -> HubSource:
    args = {"repo_id": "org/bench", "revision": COMMIT, "files": ("data/test-*.parquet", "questions.jsonl")}
    return HubSource(**{**args, **kw})


def test_a_pinned_source_is_read_from_the_cache_offline(tmp_path, monkeypatch):
    cache = HubCache.install(tmp_path / "hf", monkeypatch)
    snapshot = cache.add("org/bench", COMMIT, FILES)
    assert hub_cache_dir() == tmp_path / "hf"
    snap = locate(source(), "bench")
    assert snap.folder == snapshot and snap.revision == COMMIT and snap.repo_id == "org/bench"
    assert snap.files == ("data/test-00000-of-00001.parquet", "questions.jsonl")  # README.md not asked for
    assert snap.path("questions.jsonl").read_bytes() == FILES["questions.jsonl"]
    assert snap.record() == {"repo": "org/bench", "revision": COMMIT, "pinned": True, "config": "default"}


def test_an_unpinned_source_records_the_commit_the_cache_holds_for_main(tmp_path, monkeypatch):
    cache = HubCache.install(tmp_path / "hf", monkeypatch)
    cache.add("org/bench", OTHER, FILES)
    snap = locate(source(revision=None), "bench")
    assert snap.revision == OTHER and snap.record()["pinned"] is False


def test_another_pinned_commit_in_the_cache_is_not_used(tmp_path, monkeypatch):
    cache = HubCache.install(tmp_path / "hf", monkeypatch)
    cache.add("org/bench", OTHER, FILES)
    with pytest.raises(UserError) as err:
        locate(source(), "bench")
    message = str(err.value)
    assert message.startswith("bench needs data: org/bench (default, revision 0123456789ab")
    assert "`evalkit data fetch bench`" in message and "\n" not in message


def test_a_mirror_is_tried_after_the_source(tmp_path, monkeypatch):
    cache = HubCache.install(tmp_path / "hf", monkeypatch)
    cache.add("mirror/bench", COMMIT, FILES)
    snap = locate(source(mirrors=("mirror/bench",)), "bench")
    assert snap.repo_id == "mirror/bench"


def test_no_matching_file_is_not_a_snapshot(tmp_path, monkeypatch):
    cache = HubCache.install(tmp_path / "hf", monkeypatch)
    cache.add("org/bench", COMMIT, {"README.md": b"# x\n"})
    with pytest.raises(UserError, match="bench needs data"):
        locate(source(), "bench")


def test_a_revision_must_be_a_full_commit_sha():
    with pytest.raises(ValueError, match="40-hex commit sha"):
        source(revision="main")
    with pytest.raises(ValueError, match="40-hex commit sha"):
        source(revision="4db1276")


def test_verify_checks_each_file_against_its_blob_name(tmp_path, monkeypatch):
    cache = HubCache.install(tmp_path / "hf", monkeypatch)
    cache.add("org/bench", COMMIT, FILES)
    snap = locate(source(), "bench")
    report = {v["file"]: v for v in verify(snap)}
    parquet, jsonl = report["data/test-00000-of-00001.parquet"], report["questions.jsonl"]
    assert parquet["status"] == jsonl["status"] == "ok"
    assert (
        parquet["hash"] == "sha256"
        and parquet["expected"] == hashlib.sha256(FILES[parquet["file"]]).hexdigest()
    )
    data = FILES["questions.jsonl"]
    assert jsonl["hash"] == "git-sha1" and jsonl["expected"] == hashlib.sha1(b"blob 9\0" + data).hexdigest()

    blob = snap.path("questions.jsonl").resolve()
    blob.write_bytes(b'{"q": 2}\n')  # same size, other bytes
    report = {v["file"]: v for v in verify(snap)}
    assert report["questions.jsonl"]["status"] == "corrupt"
    assert report["data/test-00000-of-00001.parquet"]["status"] == "ok"


def test_the_cache_folder_follows_the_environment_after_huggingface_hub_was_imported(tmp_path, monkeypatch):
    """huggingface_hub fixes its cache path at import; the folder read is the one the environment names
    now (HF_HUB_CACHE, else HF_HOME/hub, else XDG_CACHE_HOME/huggingface/hub, else ~/.cache/...)."""
    import huggingface_hub  # noqa: F401 - imported first, as a run imports it before a test's env changes

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "first"))
    assert hub_cache_dir() == tmp_path / "first"
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert hub_cache_dir() == tmp_path / "user" / ".cache" / "huggingface" / "hub"
