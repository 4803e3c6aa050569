"""A stand-in for the Hugging Face hub on 127.0.0.1, serving what `huggingface_hub.snapshot_download`
asks of a dataset repository: the tree listing (`/api/datasets/ORG/NAME/tree/REV`), repository info at a
revision (`/api/datasets/ORG/NAME/revision/REV`) and the files (`HEAD`/`GET
/datasets/ORG/NAME/resolve/REV/PATH`, with the commit, etag and size headers the hub sends). Point
`HF_ENDPOINT` at `base_url` in the process that downloads (huggingface_hub reads it at import).

    with HubServer({("org/name", COMMIT): {"data/x.parquet": b"..."}}) as hub:
        subprocess.run([...], env={**os.environ, "HF_ENDPOINT": hub.base_url})
        hub.requests  # (method, path) in arrival order
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

from support.hub_cache import blob_name


class HubServer:
    def __init__(self, repos: dict[tuple[str, str], dict[str, bytes]], main: dict[str, str] | None = None):
        """`repos`: (repo id, commit) → {path: bytes}; `main`: repo id → the commit `main` names (default:
        the repo's only commit)."""
        self.repos = repos
        self.main = main or {repo: commit for repo, commit in repos}
        self.requests: list[tuple[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> HubServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _files(self, repo: str, rev: str) -> tuple[str, dict[str, bytes]] | None:
        commit = self.main.get(repo) if rev == "main" else rev
        files = self.repos.get((repo, commit))
        return None if files is None else (commit, files)

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _route(self) -> None:
                path = unquote(urlparse(self.path).path)
                hub.requests.append((self.command, path))
                parts = path.strip("/").split("/")
                if parts[:2] == ["api", "datasets"] and len(parts) >= 6 and parts[4] in ("tree", "revision"):
                    found = hub._files(f"{parts[2]}/{parts[3]}", parts[5])
                    if found is None:
                        return self._send(
                            404, b'{"error": "not found"}', {"X-Error-Code": "RevisionNotFound"}
                        )
                    commit, files = found
                    if parts[4] == "revision":
                        siblings = [{"rfilename": name} for name in files]
                        info = {"id": f"{parts[2]}/{parts[3]}", "sha": commit, "siblings": siblings}
                        return self._send(
                            200, json.dumps(info).encode(), {"Content-Type": "application/json"}
                        )
                    tree = []
                    for name, data in files.items():
                        entry = {"type": "file", "path": name, "size": len(data), "oid": blob_name("x", data)}
                        if blob_name(name, data) != entry["oid"]:
                            entry["lfs"] = {
                                "oid": blob_name(name, data),
                                "size": len(data),
                                "pointerSize": 130,
                            }
                        tree.append(entry)
                    return self._send(200, json.dumps(tree).encode(), {"Content-Type": "application/json"})
                if parts[0] == "datasets" and len(parts) >= 6 and parts[3] == "resolve":
                    found = hub._files(f"{parts[1]}/{parts[2]}", parts[4])
                    name = "/".join(parts[5:])
                    if found is None or name not in found[1]:
                        return self._send(404, b"", {"X-Error-Code": "EntryNotFound"})
                    commit, files = found
                    data = files[name]
                    headers = {"X-Repo-Commit": commit, "ETag": f'"{blob_name(name, data)}"'}
                    return self._send(200, data, headers)
                return self._send(404)

            do_GET = do_HEAD = _route

        return Handler
