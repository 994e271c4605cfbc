"""A local stand-in for the Hugging Face Hub on 127.0.0.1, for tests: it serves a folder of
repositories (``root/<org>/<name>/<revision>/...``) the way the hub serves dataset repositories:

- ``GET /api/datasets/<org>/<name>/tree/<revision>/<dir>?recursive=true``: the files below
  ``dir`` as the hub's JSON entries (``type``, ``path``, ``size``, ``oid``, ``lfs``), a page of
  ``page_size`` entries at a time with a ``Link: <...>; rel="next"`` header; 404 for a path that
  is not a folder;
- ``GET``/``HEAD /datasets/<org>/<name>/resolve/<revision>/<path>``: the file, with ``Range``
  support; files of ``lfs_above`` bytes or more are redirected (302) to ``/lfs/...``, as the hub
  sends large files to its storage;
- ``GET``/``HEAD /files/<path>``: plain files below ``root/web`` (for ``http://`` URLs).

With ``token`` set, the API and resolve paths answer 401 unless ``Authorization: Bearer
<token>`` is sent. Every request is recorded (method, path, range).
"""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Seen:
    method: str
    path: str
    range: str | None


@dataclass
class HubServer:
    root: Path
    token: str | None = None
    page_size: int = 1000
    lfs_above: int = 1 << 62
    requests: list[Seen] = field(default_factory=list)

    def start(self) -> HubServer:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self.serve(body=False)

            def do_GET(self) -> None:
                self.serve(body=True)

            def reply(self, status: int, payload: bytes = b"", headers: dict | None = None,
                      body: bool = True) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if body:
                    self.wfile.write(payload)

            def serve(self, body: bool) -> None:
                url = urllib.parse.urlsplit(self.path)
                path = urllib.parse.unquote(url.path)
                hub.requests.append(Seen(self.command, self.path, self.headers.get("Range")))
                if path.startswith("/files/"):
                    return self.send_file(hub.root / "web" / path[len("/files/"):], body)
                if path.startswith("/lfs/"):
                    return self.send_file(hub.root / path[len("/lfs/"):], body)
                authorized = hub.token is None or (
                    self.headers.get("Authorization") == f"Bearer {hub.token}"
                )
                if path.startswith("/api/datasets/"):
                    if not authorized:
                        return self.reply(401, b'{"error":"Invalid credentials"}', body=body)
                    return self.tree(path[len("/api/datasets/"):], url.query, body)
                if path.startswith("/datasets/"):
                    if not authorized:
                        return self.reply(401, b"unauthorized", body=body)
                    org, name, rest = path[len("/datasets/"):].split("/", 2)
                    _, revision_and_path = rest.split("/", 1)  # "resolve/<revision>/<path>"
                    revision, file = self.split_revision(revision_and_path)
                    target = Path(org) / name / revision / file
                    local = hub.root / target
                    if local.is_file() and local.stat().st_size >= hub.lfs_above:
                        return self.reply(302, headers={"Location": f"/lfs/{target}"}, body=body)
                    return self.send_file(local, body)
                self.reply(404, b"no such route", body=body)

            def split_revision(self, text: str) -> tuple[str, str]:
                if text.startswith("refs/"):
                    parts = text.split("/", 3)
                    return "/".join(parts[:3]), parts[3] if len(parts) > 3 else ""
                revision, _, rest = text.partition("/")
                return revision, rest

            def tree(self, rest: str, query: str, body: bool) -> None:
                org, name, rest = rest.split("/", 2)
                _, revision_and_dir = rest.split("/", 1)  # "tree/<revision>/<dir>"
                revision, folder = self.split_revision(revision_and_dir)
                repo = hub.root / org / name / revision
                base = repo / folder
                if not base.is_dir():
                    return self.reply(404, b'{"error":"Entry not found"}', body=body)
                params = urllib.parse.parse_qs(query)
                files = sorted(p for p in base.rglob("*") if p.is_file())
                entries = []
                for p in files:
                    data = p.read_bytes()
                    entry = {"type": "file", "path": p.relative_to(repo).as_posix(),
                             "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                    if len(data) >= hub.lfs_above:
                        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(),
                                        "size": len(data), "pointerSize": 134}
                    entries.append(entry)
                dirs = sorted(p.parent.relative_to(repo).as_posix()
                              for p in {f.parent for f in files} - {base})
                entries += [{"type": "directory", "path": d, "oid": "0" * 40, "size": 0}
                            for d in dirs]
                cursor = int(params.get("cursor", ["0"])[0])
                page = entries[cursor:cursor + hub.page_size]
                headers = {"Content-Type": "application/json"}
                if cursor + hub.page_size < len(entries):
                    nxt = f"http://127.0.0.1:{hub.port}{urllib.parse.urlsplit(self.path).path}"
                    nxt += f"?recursive=true&cursor={cursor + hub.page_size}"
                    headers["Link"] = f'<{nxt}>; rel="next"'
                self.reply(200, json.dumps(page).encode(), headers, body)

            def send_file(self, local: Path, body: bool) -> None:
                if not local.is_file():
                    return self.reply(404, b"Entry not found", body=body)
                data = local.read_bytes()
                etag = '"' + hashlib.sha1(data).hexdigest() + '"'
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    first, _, last = rng[len("bytes="):].partition("-")
                    if first == "":
                        start, end = max(0, len(data) - int(last)), len(data)
                    else:
                        start = int(first)
                        end = min(len(data), int(last) + 1) if last else len(data)
                    if start >= len(data):
                        return self.reply(416, b"", body=body)
                    return self.reply(206, data[start:end], {
                        "Content-Range": f"bytes {start}-{end - 1}/{len(data)}",
                        "ETag": etag, "Accept-Ranges": "bytes"}, body)
                self.reply(200, data, {"ETag": etag, "Accept-Ranges": "bytes"}, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
