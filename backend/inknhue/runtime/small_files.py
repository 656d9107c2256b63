"""Reading small files that someone else may have put there (manifests, converted graphs).

`read_small_file` reads a regular file only, and at most `limit` bytes of it: a FIFO is
refused without blocking (it is opened non-blocking, then looked at), a symlink to
/dev/zero or to a device is refused for what it points at, a file larger than `limit` is
refused before a byte is read. `parse_json` parses JSON nested at most `max_depth` deep
(a document nested 100,000 deep is refused, never a RecursionError).

The errors are OSError and ValueError subclasses, so callers that already treat an
unreadable file or a bad document as one case keep doing so; each names the file or the
depth in one line.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

#: a JSON document nested deeper than this is refused (inkn'hue's files nest under 10 deep,
#: Keras's model configs under 20)
MAX_JSON_DEPTH = 64


class NotARegularFile(OSError):
    """A FIFO, a device, a socket or a folder where a file was expected."""


class FileTooLarge(OSError):
    """More bytes than the reader accepts."""


class TooDeep(ValueError):
    """JSON nested deeper than the reader accepts."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def check_regular(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = _kind(info.st_mode)
        raise NotARegularFile(f"{path} is {kind}, not a regular file" if kind.startswith("a ") else
                              f"{path} is not a regular file")


def read_small_file(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of the regular file `path` (symlinks followed to what they point at), at most
    `limit` of them: NotARegularFile, FileTooLarge, or the OSError of opening it."""
    path = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        check_regular(path, info)
        if info.st_size > limit:
            raise FileTooLarge(f"{path} is {info.st_size} bytes, more than the {limit} this file may have")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # it grew while being read
                raise FileTooLarge(f"{path} is more than the {limit} bytes this file may have")
        return b"".join(chunks)
    finally:
        os.close(fd)


def json_depth(value: Any) -> int:
    """How deep lists and objects nest in a parsed JSON value (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def parse_json(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads, refusing documents nested deeper than `max_depth` (TooDeep); other bad
    documents raise ValueError (json.JSONDecodeError, UnicodeDecodeError) as json.loads does."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise TooDeep(f"nested too deeply (more than {max_depth} levels)") from None
    depth = json_depth(value)
    if depth > max_depth:
        raise TooDeep(f"nested {depth} levels deep, more than the {max_depth} allowed")
    return value
