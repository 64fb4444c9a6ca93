"""A Hugging Face Hub on the loopback interface, for tests: the part of its HTTP interface that
huggingface_hub uses to download a file and to commit files, nothing else.

Downloads: ``HEAD``/``GET {endpoint}/{org}/{name}/resolve/{revision}/{filename}`` answer with
``ETag``, ``X-Repo-Commit`` and ``Content-Length`` (and the file on ``GET``), or ``404`` with
the ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) from which
huggingface_hub picks its exception. Uploads: ``POST /api/repos/create``,
``/api/models/{repo}/branch/{branch}``, ``/api/validate-yaml``,
``/api/models/{repo}/preupload/{revision}`` (every file "regular": its content travels in
the commit) and ``/api/models/{repo}/commit/{revision}`` (NDJSON: a header line, then one
line per file, base64). Writes need ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit


class FakeHub:
    """Repositories in memory, served on ``http://127.0.0.1:<port>`` until ``close()``."""

    def __init__(self, token: str = "hf_test_token") -> None:
        self.token = token
        self.repos: dict[str, dict[str, Any]] = {}  # repo_id -> {"refs": {branch: sha}, "commits": {sha: files}}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    # -- the repositories --------------------------------------------------------------
    def commit(self, repo_id: str, files: dict[str, bytes], branch: str = "main", *, replace: bool = False) -> str:
        """Commit ``files`` on ``branch`` (on top of its files unless ``replace``); returns the commit hash."""
        with self.lock:
            repo = self.repos.setdefault(repo_id, {"refs": {}, "commits": {}})
            parent = repo["refs"].get(branch) or repo["refs"].get("main")
            base = {} if replace or parent is None else dict(repo["commits"][parent])
            base.update(files)
            sha = hashlib.sha1(f"{repo_id}{branch}{len(repo['commits'])}{sorted(base)}".encode()
                               + b"".join(base[k] for k in sorted(base))).hexdigest()
            repo["commits"][sha] = base
            repo["refs"][branch] = sha
            return sha

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        repo = self.repos[repo_id]
        return repo["commits"][repo["refs"].get(revision, revision)]

    def count(self, method: str, part: str) -> int:
        """How many ``method`` requests had ``part`` in their path."""
        return sum(1 for m, p in self.requests if m == method and part in p)


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        # -- plumbing ------------------------------------------------------------------
        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                  *, head: bool = False) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(value).encode(), {"Content-Type": "application/json", **(headers or {})})

        def _error(self, status: int, code: str | None, message: str, *, head: bool = False,
                   extra: dict[str, str] | None = None) -> None:
            headers = {"Content-Type": "application/json", "X-Error-Message": message, **(extra or {})}
            if code:
                headers["X-Error-Code"] = code
            self._send(status, json.dumps({"error": message}).encode(), headers, head=head)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _authorised(self) -> bool:
            return self.headers.get("Authorization") == f"Bearer {hub.token}"

        # -- downloads -----------------------------------------------------------------
        def do_HEAD(self) -> None:
            self._resolve(head=True)

        def do_GET(self) -> None:
            self._resolve(head=False)

        def _resolve(self, *, head: bool) -> None:
            path = urlsplit(self.path).path
            hub.requests.append((self.command, path))
            parts = path.lstrip("/").split("/")
            if len(parts) < 5 or parts[2] != "resolve":
                return self._error(404, None, "Not found", head=head)
            repo_id, revision, filename = f"{parts[0]}/{parts[1]}", unquote(parts[3]), unquote("/".join(parts[4:]))
            repo = hub.repos.get(repo_id)
            if repo is None:
                return self._error(401, "RepoNotFound", "Repository not found", head=head)
            sha = repo["refs"].get(revision, revision if revision in repo["commits"] else None)
            if sha is None:
                return self._error(404, "RevisionNotFound", "Invalid rev id: " + revision, head=head)
            content = repo["commits"][sha].get(filename)
            if content is None:
                return self._error(404, "EntryNotFound", "Entry not found", head=head, extra={"X-Repo-Commit": sha})
            etag = hashlib.sha256(content).hexdigest()
            self._send(200, content, {"ETag": f'"{etag}"', "X-Repo-Commit": sha,
                                      "Content-Type": "application/octet-stream"}, head=head)

        # -- uploads -------------------------------------------------------------------
        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            hub.requests.append(("POST", path))
            body = self._body()
            if not self._authorised():
                return self._error(401, None, "Invalid credentials in Authorization header")
            parts = path.lstrip("/").split("/")
            if path == "/api/validate-yaml":
                return self._json(200, {"errors": [], "warnings": []})
            if path == "/api/repos/create":
                payload = json.loads(body)
                repo_id = f"{payload['organization']}/{payload['name']}"
                if repo_id in hub.repos:
                    return self._error(409, None, "You already created this model repo")
                hub.commit(repo_id, {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"})
                return self._json(200, {"url": f"{hub.endpoint}/{repo_id}"})
            if len(parts) >= 6 and parts[:2] == ["api", "models"]:
                repo_id, action, revision = f"{parts[2]}/{parts[3]}", parts[4], unquote("/".join(parts[5:]))
                repo = hub.repos.get(repo_id)
                if repo is None:
                    return self._error(404, "RepoNotFound", "Repository not found")
                if action == "branch":
                    if revision in repo["refs"]:
                        return self._error(409, None, "Branch already exists")
                    repo["refs"][revision] = repo["refs"]["main"]
                    return self._json(200, {})
                if action == "preupload":
                    files = json.loads(body)["files"]
                    return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                       "shouldIgnore": False, "oid": None} for f in files]})
                if action == "commit":
                    files: dict[str, bytes] = {}
                    for line in body.splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            value = item["value"]
                            assert value.get("encoding") == "base64", value
                            files[value["path"]] = base64.b64decode(value["content"])
                        elif item["key"] != "header":
                            return self._error(400, None, f"this fake hub does not do {item['key']}")
                    if revision not in repo["refs"]:
                        return self._error(404, "RevisionNotFound", "Invalid rev id: " + revision)
                    sha = hub.commit(repo_id, files, branch=revision)
                    return self._json(200, {"commitUrl": f"{hub.endpoint}/{repo_id}/commit/{sha}",
                                            "commitOid": sha, "pullRequestUrl": None})
            return self._error(404, None, "Not found")

    return Handler
