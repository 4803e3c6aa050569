"""Official files fetched with a pinned checksum (`evalkit.hubdata.official`), against a local HTTP server on
127.0.0.1: a good file is downloaded once and kept under its sha256 prefix, a wrong checksum is one line and
nothing is kept, offline mode downloads nothing and names `evalkit data fetch TASK`."""

import hashlib
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from evalkit.hubdata.official import OfficialFile, fetch, verify
from evalkit.types import UserError

BODY = b'{"dog": ["cat", "puppy"]}\n'


@contextmanager
def serve(files: dict[str, bytes]):
    """`files` (path → bytes) served on 127.0.0.1; yields (base url, the paths requested in order)."""
    requested: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            requested.append(self.path)
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requested
    finally:
        server.shutdown()
        server.server_close()


def declared(base: str, body: bytes = BODY, sha: str | None = None) -> OfficialFile:
    sha = sha or hashlib.sha256(body).hexdigest()
    return OfficialFile(f"{base}/data/relation.json", sha, len(body), "relation.json", "test file")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "ek"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("EVALKIT_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    return tmp_path / "ek"


def test_a_good_file_is_downloaded_once_and_kept_under_its_sha256_prefix(cache):
    with serve({"/data/relation.json": BODY}) as (base, requested):
        f = declared(base)
        path = fetch(f, "amber")
        assert path == cache / "official" / hashlib.sha256(BODY).hexdigest()[:16] / "relation.json"
        assert path.read_bytes() == BODY
        assert fetch(f, "amber") == path  # kept: not downloaded again
        assert requested == ["/data/relation.json"]
    assert verify(f)["status"] == "ok"
    assert [p.name for p in path.parent.iterdir()] == ["relation.json"]  # no temporary file left


def test_a_wrong_checksum_is_one_line_and_the_file_is_not_kept(cache):
    with serve({"/data/relation.json": BODY + b" "}) as (base, _):
        f = declared(base)
        with pytest.raises(UserError) as err:
            fetch(f, "amber")
    message = str(err.value)
    assert "\n" not in message and "not the pinned" in message and f.sha256 in message
    assert f"{len(BODY) + 1} bytes" in message
    assert not f.path.exists() and list(f.path.parent.iterdir()) == []
    assert verify(f)["status"] == "missing"


def test_a_damaged_copy_is_replaced_when_online_and_named_when_offline(cache, monkeypatch):
    with serve({"/data/relation.json": BODY}) as (base, requested):
        f = declared(base)
        f.path.parent.mkdir(parents=True)
        f.path.write_bytes(b"other bytes")
        assert verify(f)["status"] == "corrupt"
        monkeypatch.setenv("EVALKIT_OFFLINE", "1")
        with pytest.raises(UserError, match=r"does not match its pinned sha256 .*`evalkit data fetch amber`"):
            fetch(f, "amber")
        assert requested == []
        monkeypatch.delenv("EVALKIT_OFFLINE")
        assert fetch(f, "amber").read_bytes() == BODY
        assert requested == ["/data/relation.json"]


@pytest.mark.parametrize("switch", ["HF_HUB_OFFLINE", "EVALKIT_OFFLINE"])
def test_offline_nothing_is_downloaded_and_the_error_names_the_fetch(cache, monkeypatch, switch):
    monkeypatch.setenv(switch, "1")
    with serve({"/data/relation.json": BODY}) as (base, requested):
        f = declared(base)
        with pytest.raises(UserError) as err:
            fetch(f, "amber")
        assert requested == []
    message = str(err.value)
    assert "\n" not in message and "`evalkit data fetch amber`" in message and str(f.path) in message
    assert message.startswith("amber needs the official file relation.json")


def test_an_unreachable_url_is_one_line(cache):
    with serve({}) as (base, _):
        f = declared(base)
        with pytest.raises(UserError) as err:
            fetch(f, "amber")
    assert "\n" not in str(err.value) and "HTTPError" in str(err.value) and not f.path.exists()


def test_declarations_are_checked():
    sha = hashlib.sha256(BODY).hexdigest()
    with pytest.raises(ValueError, match="https"):
        OfficialFile("http://example.org/x.json", sha, 1, "x.json")
    with pytest.raises(ValueError, match="sha256"):
        OfficialFile("https://example.org/x.json", sha[:40], 1, "x.json")
    with pytest.raises(ValueError, match="plain file name"):
        OfficialFile("https://example.org/x.json", sha, 1, "query/x.json")
