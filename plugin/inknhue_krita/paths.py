"""Where inkn'hue keeps its files for this user (standard library only: runs inside Krita)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def user_data_dir() -> Path:
    """platformdirs' user_data_dir("inknhue", appauthor=False), without platformdirs
    (Krita's Python has none)."""
    home = Path.home()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(home / "AppData" / "Local")
        return Path(base) / "inknhue"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "inknhue"
    base = os.environ.get("XDG_DATA_HOME", "").strip() or str(home / ".local" / "share")
    return Path(base) / "inknhue"


def connection_file() -> Path:
    """The running backend's connection file (docs/protocol.md, "Connection")."""
    return user_data_dir() / "server.json"
