"""Scratch folders that do not outlive their run: `folder(prefix)` and `sweep(prefix)`.

A scratch folder (e.g. `inknhue style2paints inspect` converting a network of gigabytes)
is named `PREFIX-PID-RANDOM` in the temporary folder, so that it says whose it is. It is
removed when the block ends, also by an exception: the commands that make one turn SIGTERM
and SIGHUP into one (`runtime.termination`). A run killed outright (SIGKILL, a power cut)
leaves its folder behind: the next run's `sweep(prefix)` removes those of this user whose
process is gone (and, from before folders were named so, those older than a day).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .processes import pid_alive

log = logging.getLogger(__name__)

#: unnamed folders of an earlier inkn'hue (PREFIX-RANDOM) older than this are swept too
LEGACY_AGE_S = 24 * 3600


@contextmanager
def folder(prefix: str) -> Iterator[Path]:
    """A fresh private folder PREFIX-PID-RANDOM in the temporary folder, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}-{os.getpid()}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _ours(info: os.stat_result) -> bool:
    getuid = getattr(os, "getuid", None)
    return stat.S_ISDIR(info.st_mode) and (getuid is None or info.st_uid == getuid())


def sweep(prefix: str, directory: str | os.PathLike | None = None) -> list[Path]:
    """Remove the scratch folders PREFIX-* of this user left by runs that are gone; returns them."""
    directory = Path(directory or tempfile.gettempdir())
    named = re.compile(re.escape(prefix) + r"-(?:(\d+)-)?[^/]+$")
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        match = named.match(entry.name)
        if not match:
            continue
        try:
            info = entry.stat(follow_symlinks=False)  # a symlink is nobody's folder
        except OSError:
            continue
        if not _ours(info):
            continue
        if match.group(1) is not None:
            if pid_alive(int(match.group(1))):
                continue
        elif time.time() - info.st_mtime < LEGACY_AGE_S:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        if not os.path.lexists(entry.path):
            log.info("removed %s, left by a run that is gone", entry.path)
            removed.append(Path(entry.path))
    return removed
