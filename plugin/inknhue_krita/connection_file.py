"""The connection file: how a client finds the backend and proves it may use it.

`inknhue serve` writes it (mode 0600, born private) and removes it when it stops. It
holds everything a peer needs and nobody else has: the address, the token that signs
every message, and the CURVE keys without which the ZeroMQ handshake itself fails (the
server's public key and a client key pair made for this run). docs/protocol.md says why.
Standard library only: the plugin reads it inside Krita.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .paths import connection_file
from .protocol import ProtocolError

CURVE_KEYS = ("server_public", "public", "secret")


def write_connection_file(path: Path, info: dict) -> None:
    """Write the file readable by the user only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    if tmp.exists():
        tmp.unlink()  # O_EXCL below: the file is born private, never widened afterwards
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f, indent=2)
    os.replace(tmp, path)


def read_connection_file(path: Path | None = None) -> dict:
    """The file's contents, checked: address, token and CURVE keys are all there."""
    path = path or connection_file()
    try:
        info = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ProtocolError("no_server", f"no backend is running (no connection file at {path}); "
                                         f"start one with `inknhue serve`") from None
    except (OSError, ValueError) as exc:
        raise ProtocolError("no_server", f"cannot read the connection file {path}: {exc}") from None
    if not isinstance(info, dict) or not {"address", "token"} <= set(info):
        raise ProtocolError("no_server", f"the connection file {path} is damaged; restart `inknhue serve`")
    curve = info.get("curve")
    if not isinstance(curve, dict) or not all(isinstance(curve.get(k), str) for k in CURVE_KEYS):
        raise ProtocolError("no_server", f"the connection file {path} has no CURVE keys: it was written by "
                                         f"an older backend; restart `inknhue serve` (or Krita)")
    return info
