"""A stand-in for the model/data-set hub on loopback, speaking the part of its HTTP API that
``huggingface_hub.snapshot_download`` uses: repository info with its file list, and
``HEAD``/``GET`` of a file under ``resolve/<revision>/``. The real hub client code runs
against it unchanged (``HF_ENDPOINT``), so the tests exercise real resolution without a network.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

from flask import Flask, Response, abort, jsonify, request
from werkzeug.serving import make_server


@dataclass
class StandinHub:
    """Repositories keyed by (repo_type, repo_id), each a mapping of file name to content."""

    repos: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def add(self, repo_type: str, repo_id: str, files: dict[str, bytes]) -> None:
        self.repos[(repo_type, repo_id)] = files

    @staticmethod
    def commit(repo_id: str, files: dict[str, bytes]) -> str:
        digest = hashlib.sha1(repo_id.encode())
        for name in sorted(files):
            digest.update(name.encode() + hashlib.sha1(files[name]).digest())
        return digest.hexdigest()

    def app(self) -> Flask:
        app = Flask("hub_standin")

        def repo(repo_type: str, owner: str, name: str) -> tuple[str, dict[str, bytes]]:
            repo_id = f"{owner}/{name}"
            files = self.repos.get((repo_type, repo_id))
            if files is None:
                abort(Response("Repository not found", 404, {"X-Error-Code": "RepoNotFound"}))
            return repo_id, files

        @app.before_request
        def record() -> None:
            self.requests.append(f"{request.method} {request.path}")

        @app.get("/api/<kind>/<owner>/<name>/revision/<path:revision>")
        def info(kind: str, owner: str, name: str, revision: str):  # noqa: ARG001 - one revision only
            repo_type = kind.removesuffix("s")
            repo_id, files = repo(repo_type, owner, name)
            return jsonify(
                id=repo_id,
                sha=self.commit(repo_id, files),
                private=False,
                siblings=[{"rfilename": f} for f in sorted(files)],
            )

        @app.get("/api/<kind>/<owner>/<name>/tree/<path:revision>")
        def tree(kind: str, owner: str, name: str, revision: str):  # noqa: ARG001 - one revision only
            _, files = repo(kind.removesuffix("s"), owner, name)
            folders = sorted({"/".join(f.split("/")[:i]) for f in files for i in range(1, f.count("/") + 1)})
            entries = [{"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0} for d in folders]
            entries += [{"type": "file", "path": f, "oid": hashlib.sha1(b).hexdigest(), "size": len(b)} for f, b in sorted(files.items())]
            return jsonify(entries)

        def serve(repo_type: str, owner: str, name: str, filename: str) -> Response:
            repo_id, files = repo(repo_type, owner, name)
            if filename not in files:
                abort(Response("Entry not found", 404, {"X-Error-Code": "EntryNotFound"}))
            body = files[filename]
            headers = {
                "X-Repo-Commit": self.commit(repo_id, files),
                "ETag": f'"{hashlib.sha256(body).hexdigest()}"',
                "Content-Length": str(len(body)),
                # A HEAD response's own Content-Length is the empty body's; the client reads the size here.
                "X-Linked-Size": str(len(body)),
            }
            return Response(b"" if request.method == "HEAD" else body, 200, headers)

        @app.route("/<owner>/<name>/resolve/<revision>/<path:filename>", methods=["GET", "HEAD"])
        def model_file(owner: str, name: str, revision: str, filename: str):  # noqa: ARG001
            return serve("model", owner, name, filename)

        @app.route("/datasets/<owner>/<name>/resolve/<revision>/<path:filename>", methods=["GET", "HEAD"])
        def dataset_file(owner: str, name: str, revision: str, filename: str):  # noqa: ARG001
            return serve("dataset", owner, name, filename)

        return app


class RunningHub:
    """The stand-in served on a free loopback port in a background thread."""

    def __init__(self, hub: StandinHub):
        self.hub = hub
        self._server = make_server("127.0.0.1", 0, hub.app(), threaded=True)
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> RunningHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
