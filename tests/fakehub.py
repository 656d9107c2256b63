"""A local stand-in for the Hugging Face hub's file endpoints (point HF_ENDPOINT at it).

Serves a folder as the repo: `POST /api/models/{repo}/paths-info/{rev}` (sizes and digests,
*.ckpt as LFS files) and `GET /{repo}/resolve/{rev}/{path}` with HTTP Range support; as a
Space (`repo_type="space"`), `/api/spaces/{repo}/...` and `/spaces/{repo}/resolve/...`.
It can cut a transfer short (`cut_after`) or serve damaged bytes (`corrupt`).
"""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class FakeHub:
    def __init__(self, root: Path, repo: str, repo_type: str = "model", lfs: tuple[str, ...] = (".ckpt",)):
        self.root, self.repo, self.lfs = root, repo, lfs
        info_prefix = f"/api/{repo_type}s/{repo}/paths-info/"
        resolve_prefix = f"/{repo}/resolve/" if repo_type == "model" else f"/{repo_type}s/{repo}/resolve/"
        self.cut_after: dict[str, int] = {}   # path -> bytes to send before dropping the connection
        self.corrupt: set[str] = set()        # paths served with a flipped byte
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                hub.requests.append(("POST", self.path, None))
                if not self.path.startswith(info_prefix):
                    return self.send_error(404)
                body = json.dumps([hub.info(p) for p in form.get("paths", []) if (hub.root / p).is_file()])
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def do_GET(self):
                prefix = resolve_prefix
                hub.requests.append(("GET", self.path, self.headers.get("Range")))
                if not self.path.startswith(prefix):
                    return self.send_error(404)
                rel = urllib.parse.unquote(self.path[len(prefix):]).split("/", 1)[1]
                path = hub.root / rel
                if not path.is_file():
                    return self.send_error(404)
                data = bytearray(path.read_bytes())
                if rel in hub.corrupt:
                    data[len(data) // 2] ^= 0xFF
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    if start >= len(data):
                        return self.send_error(416)
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = bytes(data[start:])
                cut = hub.cut_after.pop(rel, None)
                if cut is not None:
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def info(self, rel: str) -> dict:
        data = (self.root / rel).read_bytes()
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        entry = {"type": "file", "path": rel, "size": len(data), "oid": blob}
        if rel.endswith(self.lfs):
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return entry

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
