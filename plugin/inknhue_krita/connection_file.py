"""The connection file: how a client finds the backend and proves it may use it.

`inknhue serve` writes it (mode 0600, born private) and removes it when it stops. It
holds everything a peer needs and nobody else has: the address, the token that signs
every message, and the CURVE keys without which the ZeroMQ handshake itself fails (the
server's public key and a client key pair made for this run). docs/protocol.md says why.
Standard library only: the plugin reads it inside Krita.

Whoever can write its folder can put another file there (their own server's address and
keys), so the folder is checked before the file is written (`secure_folder`, POSIX): it is
made 0700 when created; one of this user's that others may write to is fixed (group and
other write taken away) and said so; one of another user's, or inside a folder every user
may write to without the sticky bit, is refused (`UnsafeFolder`). The file is written
under an unpredictable temporary name (`mkstemp`: O_EXCL, 0600), then renamed into place,
or linked there only if no file is there (`replace=False`: a second server that checks
first cannot lose the race to a third). Reading it, a client takes only a regular file of
this user, of at most 1 MiB.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from pathlib import Path

from .paths import connection_file
from .protocol import ProtocolError

CURVE_KEYS = ("server_public", "public", "secret")
MAX_CONNECTION_FILE_BYTES = 1 << 20


class UnsafeFolder(OSError):
    """A folder others could write the connection file into; the message says which and why."""


def _mode(mode: int) -> str:
    return f"{stat.S_IMODE(mode):04o}"


def secure_folder(folder: Path) -> list[str]:
    """Create `folder` (0700) or check it for the connection file; returns what was fixed, one
    line each; raises UnsafeFolder where it cannot be fixed. Nothing to check on Windows
    (the user's profile folders are the user's)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.name != "posix":
        return []
    me = os.geteuid()
    notes = []
    info = os.stat(folder)
    if info.st_uid != me:
        raise UnsafeFolder(f"the folder {folder} for the connection file belongs to another user (uid "
                           f"{info.st_uid}): refusing to use it; give --connection-file in a folder of yours")
    if info.st_mode & 0o022:
        fixed = stat.S_IMODE(info.st_mode) & ~0o022
        os.chmod(folder, fixed)
        notes.append(f"the folder {folder} for the connection file was writable by other users (mode "
                     f"{_mode(info.st_mode)}): made it {fixed:04o}")
    for ancestor in folder.resolve().parents:
        info = os.stat(ancestor)
        if info.st_mode & 0o002 and not info.st_mode & stat.S_ISVTX:
            raise UnsafeFolder(f"{ancestor}, above the folder {folder} of the connection file, may be written by "
                               f"every user (mode {_mode(info.st_mode)}, no sticky bit): anyone could put another "
                               f"folder in its place; refusing it (fix its mode, or give --connection-file elsewhere)")
        if info.st_uid not in (me, 0):
            raise UnsafeFolder(f"{ancestor}, above the folder {folder} of the connection file, belongs to another "
                               f"user (uid {info.st_uid}): refusing it; give --connection-file in a folder of yours")
    return notes


def write_connection_file(path: Path, info: dict, replace: bool = True) -> list[str]:
    """Write the file readable by the user only (0600), atomically, in a folder others cannot
    write (`secure_folder`'s notes are returned). With `replace=False`, FileExistsError if a
    file is there."""
    notes = secure_folder(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # O_EXCL, 0600, an unguessable name
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(info, f, indent=2)
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if a file is there, atomically
            except FileExistsError:
                raise
            except OSError:  # a filesystem without hard links: a look, then the rename
                if os.path.lexists(path):
                    raise FileExistsError(errno.EEXIST, "a connection file is there", str(path)) from None
                os.replace(tmp, path)
    finally:
        try:
            os.unlink(tmp)  # renamed away already, or linked (or failed): the temporary name goes
        except FileNotFoundError:
            pass
    return notes


def _read(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        if os.name == "posix" and info.st_uid != os.geteuid():
            raise OSError(f"{path} belongs to another user (uid {info.st_uid}), not to this one")
        if info.st_size > MAX_CONNECTION_FILE_BYTES:
            raise OSError(f"{path} is {info.st_size} bytes, not a connection file")
        return os.read(fd, MAX_CONNECTION_FILE_BYTES + 1)
    finally:
        os.close(fd)


def read_connection_file(path: Path | None = None) -> dict:
    """The file's contents, checked: address, token and CURVE keys are all there."""
    path = path or connection_file()
    try:
        info = json.loads(_read(Path(path)))
    except FileNotFoundError:
        raise ProtocolError("no_server", f"no backend is running (no connection file at {path}); "
                                         f"start one with `inknhue serve`") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise ProtocolError("no_server", f"cannot read the connection file {path}: {exc}") from None
    if not isinstance(info, dict) or not {"address", "token"} <= set(info):
        raise ProtocolError("no_server", f"the connection file {path} is damaged; restart `inknhue serve`")
    curve = info.get("curve")
    if not isinstance(curve, dict) or not all(isinstance(curve.get(k), str) for k in CURVE_KEYS):
        raise ProtocolError("no_server", f"the connection file {path} has no CURVE keys: it was written by "
                                         f"an older backend; restart `inknhue serve` (or Krita)")
    return info
