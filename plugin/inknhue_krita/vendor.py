"""Importing pyzmq inside Krita, whose Python has none of its own.

The installer puts pyzmq wheels for Krita's Python in `vendor/<python tag>/` next to this
file (e.g. vendor/cp310, vendor/cp311); a distribution's Krita can use the system's
python3-zmq instead. Whichever is found first is used.
"""

from __future__ import annotations

import sys
from pathlib import Path

VENDOR = Path(__file__).parent / "vendor"


def python_tag() -> str:
    return f"cp{sys.version_info.major}{sys.version_info.minor}"


def add_vendored_path() -> Path | None:
    folder = VENDOR / python_tag()
    if folder.is_dir() and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
        return folder
    return folder if folder.is_dir() else None


def import_zmq():
    """Returns (zmq module or None, a message saying what to do when it is None)."""
    add_vendored_path()
    try:
        import zmq

        return zmq, ""
    except ImportError as exc:
        return None, (f"pyzmq is missing for Krita's Python {sys.version_info.major}.{sys.version_info.minor} "
                      f"({exc}). Run the inkn'hue installer again (it puts pyzmq in {VENDOR / python_tag()}), "
                      f"or install your distribution's python3-zmq.")
