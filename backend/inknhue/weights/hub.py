"""Downloading the released weights from the Hugging Face hub, resumably, and verifying them.

Each file is checked against the hub's own record of it: the sha256 of LFS files
(the checkpoints) or the git blob id of small files (kl-f8.yaml). A verified file is
recorded in `inknhue-weights.json` in the folder it was downloaded to (size, mtime,
digest), so later runs skip files that are already there and unchanged.

`download` fetches inkn'hue's own weights; `download_files` any files of any hub repo
(a model repo, or a Space with `repo_type="space"`), e.g. Style2Paints' networks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import weights
from ..errors import WeightsError

log = logging.getLogger(__name__)

RECORD = "inknhue-weights.json"
DOWNLOADS = ".downloads"  #: partial downloads, continued by the next run
_CHUNK = 1 << 20


class DownloadError(WeightsError):
    """The hub did not deliver: unreachable, refusing, or a file arrived damaged."""

    def __init__(self, message: str, host: str, reason: str):
        super().__init__(message)
        self.host, self.reason = host, reason


def _endpoint() -> str:
    """The hub's address, read at each call (huggingface_hub reads HF_ENDPOINT once, at import)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _host() -> str:
    from urllib.parse import urlsplit

    return urlsplit(_endpoint()).netloc or _endpoint()


@dataclass(frozen=True)
class Expected:
    path: str
    size: int
    algorithm: str  # "sha256" (LFS) or "git-blob" (git's sha1 of "blob SIZE\0" + content)
    digest: str


def file_digest(path: Path, algorithm: str) -> str:
    if algorithm == "sha256":
        h = hashlib.sha256()
    elif algorithm == "git-blob":
        h = hashlib.sha1()
        h.update(b"blob %d\0" % path.stat().st_size)
    else:
        raise ValueError(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _download_command() -> str:
    return f"{weights.inknhue_command()} weights download"


def _hub_error(exc: Exception, what: str, again: str | None = None) -> DownloadError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "no detail"
    return DownloadError(f"could not {what} from {_endpoint()} ({type(exc).__name__}: {detail}); "
                         f"check the connection and run `{again or _download_command()}` again "
                         f"(it resumes), or copy the files in by hand",
                         _host(), f"{type(exc).__name__}: {detail}, trying to {what.split(' (')[0]}")


def expected_files(revision: str | None = None, repo: str = weights.HF_REPO,
                   files: tuple[str, ...] = weights.FILES, repo_type: str = "model",
                   again: str | None = None) -> list[Expected]:
    """Ask the hub for the size and digest of each file (by default inkn'hue's released ones)."""
    from huggingface_hub import HfApi

    try:
        infos = HfApi(endpoint=_endpoint()).get_paths_info(repo, list(files), revision=revision,
                                                           repo_type=repo_type)
    except Exception as exc:
        raise _hub_error(exc, f"list the weights of {repo}", again) from exc
    by_path = {info.path: info for info in infos}
    expected = []
    for name in files:
        info = by_path.get(name)
        if info is None or not hasattr(info, "blob_id"):
            raise DownloadError(f"the hub repo {repo} has no file {name} (at revision {revision or 'main'})",
                                _host(), f"it has no file {name} at revision {revision or 'main'}")
        if info.lfs is not None:
            expected.append(Expected(name, info.size, "sha256", info.lfs.sha256))
        else:
            expected.append(Expected(name, info.size, "git-blob", info.blob_id))
    return expected


class Record:
    """The weights folder's record of verified files."""

    def __init__(self, weights_dir: Path, repo: str = weights.HF_REPO):
        self.path, self.repo = weights_dir / RECORD, repo
        try:
            self.entries = json.loads(self.path.read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError):
            self.entries = {}

    def matches(self, target: Path, expected: Expected) -> bool:
        """True if the file is the expected one: by the record when unchanged, else by hashing."""
        try:
            stat = target.stat()
        except OSError:
            return False
        if stat.st_size != expected.size:
            return False
        entry = self.entries.get(expected.path, {})
        if (entry.get("digest") == expected.digest and entry.get("size") == stat.st_size
                and entry.get("mtime_ns") == stat.st_mtime_ns):
            return True
        if file_digest(target, expected.algorithm) != expected.digest:
            return False
        self.add(target, expected)
        return True

    def add(self, target: Path, expected: Expected) -> None:
        stat = target.stat()
        self.entries[expected.path] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                                       "algorithm": expected.algorithm, "digest": expected.digest}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"repo": self.repo, "files": self.entries}, indent=2))
        os.replace(tmp, self.path)


def _fetch(url: str, part: Path, expected: Expected, timeout: float = 60.0) -> None:
    """Download url into `part`, continuing from what is already there (HTTP Range)."""
    import http.client
    import urllib.error
    import urllib.request

    from tqdm import tqdm

    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if have >= expected.size:
        return  # complete (or too long: verification will reject it)
    request = urllib.request.Request(url, headers={"User-Agent": "inknhue"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416:  # nothing left to send: verification decides
            return
        raise
    with response:
        if have and response.status != 206:  # the server ignored the Range: start over
            have = 0
        with open(part, "ab" if have else "wb") as out, tqdm(
                total=expected.size, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                desc=Path(expected.path).name, leave=False) as bar:
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
            except http.client.IncompleteRead as exc:
                out.write(exc.partial)  # keep every byte that arrived, for the next run
                raise
    received = part.stat().st_size
    if received < expected.size:  # http.client reads an early close as a normal end
        raise ConnectionError(f"the connection closed after {received} of {expected.size} bytes")


def download(weights_dir: Path, revision: str | None = None,
             report: Callable[[str], None] = print) -> Path:
    """Fetch every missing or damaged file of inkn'hue's weights into weights_dir and verify it."""
    return download_files(weights_dir, weights.HF_REPO, weights.FILES, revision, report=report)


def download_files(directory: Path, repo: str, files: tuple[str, ...], revision: str | None = None,
                   repo_type: str = "model", report: Callable[[str], None] = print,
                   again: str | None = None) -> Path:
    """Fetch every missing or damaged file of `repo` into directory (in the repo's layout) and
    verify it against the hub.

    Partial downloads are kept in `.downloads/` and continued by the next run; a file
    reaches its place only once its digest matches, so an interruption never leaves a
    truncated checkpoint where the loader looks. `again` is the command that retries (for
    the messages; default `inknhue weights download`).
    """
    from huggingface_hub import hf_hub_url

    directory.mkdir(parents=True, exist_ok=True)
    record = Record(directory, repo)
    for expected in expected_files(revision, repo, files, repo_type, again):
        target = directory / expected.path
        if record.matches(target, expected):
            report(f"{expected.path}: present and verified")
            continue
        part = directory / DOWNLOADS / (expected.path + ".part")
        resumed = part.stat().st_size if part.exists() else 0
        report(f"{expected.path}: downloading {expected.size / 1e6:.1f} MB"
               + (f" (resuming at {resumed / 1e6:.1f} MB)" if resumed else ""))
        url = hf_hub_url(repo, expected.path, revision=revision, repo_type=repo_type, endpoint=_endpoint())
        try:
            _fetch(url, part, expected)
        except Exception as exc:
            raise _hub_error(exc, f"download {expected.path} (run again to resume)", again) from exc
        actual = file_digest(part, expected.algorithm)
        if part.stat().st_size != expected.size or actual != expected.digest:
            part.unlink()
            damage = (f"{expected.path} arrived damaged ({expected.algorithm} {actual[:12]}..., the hub says "
                      f"{expected.digest[:12]}...); it was deleted")
            raise DownloadError(f"{damage}: run `{again or _download_command()}` again", _host(),
                                damage)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, target)
        record.add(target, expected)
        report(f"{expected.path}: verified ({expected.algorithm} {expected.digest[:12]}...)")
    return directory
