"""A stand-in for the Hugging Face hub that also takes commits: what `HfApi.create_repo` and
`HfApi.upload_folder` ask (`POST /api/validate-yaml`, `/api/repos/create`, `/api/datasets/ORG/NAME/branch/B`,
`.../preupload/REV` answering every file "regular", `.../commit/REV` with the NDJSON payload), on top of
`HubServer`'s
downloads, so a pushed repository can be downloaded again by `snapshot_download`. A new repository starts
with one commit holding `.gitattributes`, as on the hub.

    with CommitHub() as hub:
        subprocess.run([...], env={**os.environ, "HF_ENDPOINT": hub.base_url, "HF_HUB_OFFLINE": "0"})
        hub.files("org/name")            # path -> bytes at main (at a branch: files(repo, branch))
        hub.created                      # repo id -> the create_repo payload
        hub.auth                         # the Authorization headers the client sent
        hub.validated                    # the dataset cards' YAML front matter (`/api/validate-yaml`)
"""

from __future__ import annotations

import base64
import hashlib
import json
from urllib.parse import unquote, urlparse

import yaml

from support.hub_server import HubServer

GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"


class CommitHub(HubServer):
    def __init__(self):
        super().__init__({})
        self.created: dict[str, dict] = {}
        self.auth: list[str] = []
        self.branches: dict[tuple[str, str], str] = {}  # (repo, branch) -> commit, beside `main`
        self.validated: list = []  # the dataset cards' YAML metadata, as validated

    def commit_of(self, repo: str, branch: str = "main") -> str | None:
        return self.main.get(repo) if branch == "main" else self.branches.get((repo, branch))

    def files(self, repo: str, branch: str = "main") -> dict[str, bytes]:
        return dict(self.repos[(repo, self.commit_of(repo, branch))])

    def _files(self, repo: str, rev: str):
        commit = self.branches.get((repo, rev))
        return super()._files(repo, rev) if commit is None else (commit, self.repos[(repo, commit)])

    def _commit(self, repo: str, files: dict[str, bytes], branch: str = "main") -> str:
        listing = sorted((k, hashlib.sha1(v).hexdigest()) for k, v in files.items())
        commit = hashlib.sha1(json.dumps([branch, listing]).encode()).hexdigest()
        self.repos[(repo, commit)] = files
        if branch == "main":
            self.main[repo] = commit
        else:
            self.branches[(repo, branch)] = commit
        return commit

    def _handler(self):
        hub = self
        base = super()._handler()

        class Handler(base):
            def _json(self, status: int, data) -> None:
                self._send(status, json.dumps(data).encode(), {"Content-Type": "application/json"})

            def do_POST(self) -> None:
                path = unquote(urlparse(self.path).path)
                hub.requests.append(("POST", path))
                hub.auth.append(self.headers.get("Authorization", ""))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = path.strip("/").split("/")
                if parts == ["api", "validate-yaml"]:  # the card's front matter, checked before a commit
                    content = json.loads(body)["content"]
                    try:
                        meta = yaml.safe_load(content.split("---")[1]) if content.startswith("---") else None
                    except yaml.YAMLError as exc:
                        return self._json(400, {"errors": [{"message": str(exc)}]})
                    hub.validated.append(meta)
                    return self._json(200, {"warnings": []})
                if parts == ["api", "repos", "create"]:
                    payload = json.loads(body)
                    repo = f"{payload['organization']}/{payload['name']}"
                    url = f"{hub.base_url}/datasets/{repo}"
                    if repo in hub.main:  # the hub's conflict answer names the repository too
                        return self._json(409, {"error": "You already created this dataset repo", "url": url})
                    hub.created[repo] = payload
                    hub._commit(repo, {".gitattributes": GITATTRIBUTES})
                    return self._json(200, {"url": url, "name": repo})
                if parts[:2] != ["api", "datasets"] or len(parts) < 6:
                    return self._json(404, {"error": "not found"})
                repo, action = f"{parts[2]}/{parts[3]}", parts[4]
                if repo not in hub.main:
                    return self._send(404, b'{"error": "no repo"}', {"X-Error-Code": "RepoNotFound"})
                if action == "branch":  # from main
                    hub.branches.setdefault((repo, parts[5]), hub.main[repo])
                    return self._json(200, {})
                if action == "preupload":
                    files = json.loads(body)["files"]
                    modes = [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
                    ]
                    return self._json(200, {"files": modes})
                if action == "commit":
                    branch = parts[5]
                    if hub.commit_of(repo, branch) is None:
                        return self._send(404, b"", {"X-Error-Code": "RevisionNotFound"})
                    files = hub.files(repo, branch)
                    for line in body.splitlines():
                        item = json.loads(line)
                        value = item["value"]
                        if item["key"] == "file":
                            files[value["path"]] = base64.b64decode(value["content"])
                        elif item["key"] == "deletedFile":
                            files.pop(value["path"], None)
                        elif item["key"] != "header":
                            return self._json(400, {"error": f"unsupported operation {item['key']}"})
                    commit = hub._commit(repo, files, branch)
                    url = f"{hub.base_url}/datasets/{repo}/commit/{commit}"
                    return self._json(200, {"commitUrl": url, "commitOid": commit, "pullRequestUrl": None})
                return self._json(404, {"error": "not found"})

        return Handler
