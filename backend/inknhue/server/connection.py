"""The connection file from the server's side: one running backend per file.

A second `inknhue serve` with the same connection file (the same home: the default place)
used to write over the first one's and delete it when it stopped, leaving the first running
and unreachable. Now:

- `refuse_if_taken(path)`, before the socket is bound, and `claim(path, info)`, after: a file
  whose backend answers a ping (with the file's own address, token and keys, within
  `PING_TIMEOUT_S`) belongs to that backend, and this one refuses to start, naming it.
  A file whose process is gone, or whose backend does not answer, is stale and replaced;
  where there is none, this server's is linked into place only if none appeared meanwhile.
- The folder is checked on the way (`inknhue_krita.connection_file.secure_folder`): unsafe
  modes of this user's folder are fixed and logged, another user's folder is refused.
- The server removes the file when it stops only while it still holds its own token
  (service.py's `close`).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from inknhue_krita.connection_file import UnsafeFolder, read_connection_file, write_connection_file
from inknhue_krita.protocol import ProtocolError, shown

from ..errors import InknhueError
from ..runtime.processes import pid_alive

log = logging.getLogger(__name__)

#: how long a backend named by an existing connection file has to answer a ping
PING_TIMEOUT_S = 3.0


def running_backend(path: Path) -> dict | None:
    """The connection file's contents if the backend it names answers, else None (no file,
    a damaged one, its process gone, no answer)."""
    try:
        info = read_connection_file(path)
    except ProtocolError:
        return None
    pid = info.get("pid")
    if isinstance(pid, int) and not isinstance(pid, bool) and not pid_alive(pid):
        return None
    from inknhue_krita.client import Client, ServerError

    try:
        with Client(str(info["address"]), str(info["token"]), timeout=PING_TIMEOUT_S, curve=info["curve"]) as client:
            client.ping()
    except (ServerError, ProtocolError, OSError, ValueError, TypeError) as exc:
        log.info("the connection file %s names a backend that does not answer (%s): replacing it", path,
                 shown(exc, 200))
        return None
    except Exception as exc:  # noqa: BLE001  (whatever the file holds, this server starts or says why)
        log.info("the connection file %s names no reachable backend (%s): replacing it", path, shown(exc, 200))
        return None
    return info


def _said(value) -> str:
    """A value from the file, for a message: escaped and short, a string without quotes."""
    text = shown(value, 120)
    return text[1:-1] if isinstance(value, str) and text[:1] in "'\"" and text[-1:] == text[:1] else text


def _refusal(path: Path, info: dict) -> InknhueError:
    started = info.get("started")
    when = (time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(started))
            if isinstance(started, (int, float)) and not isinstance(started, bool) else "")
    return InknhueError(f"another backend is running with the connection file {path} (pid {_said(info.get('pid'))}, "
                        f"{_said(info.get('address'))}{when}): stop it first, or give this one its own "
                        f"--connection-file")


def refuse_if_taken(path: Path) -> None:
    """InknhueError if a backend that answers holds the connection file."""
    info = running_backend(path)
    if info is not None:
        raise _refusal(path, info)


def claim(path: Path, info: dict) -> list[str]:
    """Write this server's connection file, unless a backend that answers holds it (InknhueError).
    Returns what was fixed in its folder on the way (logged as warnings too), one line each."""
    for _ in range(3):
        refuse_if_taken(path)
        try:
            notes = write_connection_file(path, info, replace=os.path.lexists(path))
        except FileExistsError:
            continue  # another backend wrote one meanwhile: look at it
        except UnsafeFolder as exc:
            raise InknhueError(str(exc)) from None
        except OSError as exc:
            raise InknhueError(f"cannot write the connection file {path}: {exc.strerror or exc}") from None
        for note in notes:
            log.warning("%s", note)
        return notes
    raise InknhueError(f"the connection file {path} keeps being written by other backends starting: give this one "
                       f"its own --connection-file")
