"""Local stand-ins for package indexes, for the installer's tests (no network).

- `make_wheel` writes a minimal wheel (a fake `torch` or `filelock`);
- `repack` makes a wheel of a distribution installed here (setuptools, for pip's build
  isolation when the test's index has nothing else);
- `simple_index` writes a PEP 503 index of wheels as files (`file://` URL);
- `IndexServer` serves such an index over HTTP, answering 403 for every project it is not
  told to allow (with none allowed, it refuses everything);
- `closed_port` gives a localhost URL where nothing listens (connection refused).
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import distribution
from pathlib import Path


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _write_wheel(path: Path, files: dict[str, bytes], dist_info: str) -> Path:
    record = [_record_line(name, data) for name, data in files.items()] + [f"{dist_info}/RECORD,,"]
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return path


def make_wheel(folder: Path, name: str, version: str, modules: dict[str, str], requires=()) -> Path:
    """A pure-Python wheel of `modules` (path in the wheel -> source)."""
    folder.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires)
    files = {path: source.encode() for path, source in modules.items()}
    files[f"{dist_info}/METADATA"] = metadata.encode()
    files[f"{dist_info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: fakeindex\nRoot-Is-Purelib: true\n"
                                   b"Tag: py3-none-any\n")
    return _write_wheel(folder / f"{name}-{version}-py3-none-any.whl", files, dist_info)


def repack(name: str, folder: Path) -> Path:
    """A wheel of the pure-Python distribution `name` as installed in this Python."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = distribution(name)
    files, dist_info = {}, None
    for item in dist.files or []:
        if item.suffix == ".pyc" or ".." in item.parts or item.name in ("RECORD", "INSTALLER", "REQUESTED"):
            continue
        if item.parts[0].endswith(".dist-info"):
            dist_info = item.parts[0]
        files[item.as_posix()] = Path(item.locate()).read_bytes()
    version = dist.version
    return _write_wheel(folder / f"{name}-{version}-py3-none-any.whl", files, dist_info)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def simple_index(root: Path, wheels) -> Path:
    """A PEP 503 index of `wheels` under root/simple (pip reads file:// indexes' index.html)."""
    for wheel in wheels:
        project = _normal(Path(wheel).name.split("-")[0])
        page = root / "simple" / project
        page.mkdir(parents=True, exist_ok=True)
        target = root / "files" / Path(wheel).name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(Path(wheel).read_bytes())
        links = "".join(f'<a href="../../files/{w.name}">{w.name}</a>\n'
                        for w in sorted((root / "files").iterdir()) if _normal(w.name.split("-")[0]) == project)
        (page / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
    return root / "simple"


class IndexServer:
    """Serves `root` (an index from simple_index) over HTTP: project pages at any one-level
    prefix (/simple/NAME/, /cpu/NAME/), wheels at /files/; projects not in `allow`, and their
    files, are answered with 403 Forbidden, as is everything when `root` is None."""

    def __init__(self, root: Path | None = None, allow=()):
        self.root, self.allow = root, {_normal(a) for a in allow}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append(self.path)
                parts = [p for p in self.path.split("?")[0].split("/") if p]
                last = parts[-1] if parts else ""
                if last.endswith(".whl"):  # a file: /files/NAME
                    project, path = _normal(last.split("-")[0]), (server.root or Path()) / "files" / last
                else:  # a project page at any prefix (/simple/NAME/, /cpu/NAME/)
                    project = _normal(last)
                    path = (server.root or Path()) / "simple" / project / "index.html"
                if server.root is None or project not in server.allow:
                    return self.send_error(403)
                if not path.is_file():
                    return self.send_error(404)
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "text/html" if path.suffix == ".html" else "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> str:
    """http://127.0.0.1:PORT where nothing listens: every connection is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
