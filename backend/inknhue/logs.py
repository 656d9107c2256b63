"""Logging to a rotated file in the user's log dir (platformdirs)."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

LOG_NAME = "inknhue.log"


def log_dir() -> Path:
    import platformdirs

    return platformdirs.user_log_path("inknhue", appauthor=False)


def setup_logging(level: int = logging.INFO, filename: str = LOG_NAME) -> Path | None:
    """Send the `inknhue` loggers to LOGDIR/filename (1 MB x 3 backups). Returns its path,
    or None if the folder cannot be written (logging must never stop the work)."""
    logger = logging.getLogger("inknhue")
    logger.setLevel(level)
    for old in [h for h in logger.handlers if isinstance(h, logging.handlers.RotatingFileHandler)]:
        logger.removeHandler(old)
        old.close()
    try:
        path = log_dir() / filename
    except ImportError:  # platformdirs not installed yet (the installer's first steps)
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=1_000_000, backupCount=3,
                                                       encoding="utf-8")
    except OSError:
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    return path
