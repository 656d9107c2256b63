"""Logging to a rotated file in the user's log dir (platformdirs), one record a line.

Peers of the server send strings that end up in messages: every record is escaped to one
line and truncated (a newline cannot forge a record, a huge tag cannot rotate the log
away), and repeated complaints about broken messages are rate-limited.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import time
from pathlib import Path

LOG_NAME = "inknhue.log"
MAX_RECORD_CHARS = 2000
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]")


def one_line(text: str, limit: int = MAX_RECORD_CHARS) -> str:
    """Control characters escaped (\\n, \\x1b...), at most `limit` characters."""
    text = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


class OneLineFilter(logging.Filter):
    """Formats each record's message now, escaped and truncated (tracebacks stay as they are)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = one_line(record.getMessage()), None
        return True


class RateLimitedLog:
    """At most `burst` records per key in `period` seconds; the rest are counted and
    summed up in the next record that gets through."""

    def __init__(self, logger: logging.Logger, burst: int = 5, period: float = 60.0):
        self.logger, self.burst, self.period = logger, burst, period
        self._windows: dict[str, tuple[float, int, int]] = {}  # key: (window start, logged, suppressed)

    def warning(self, key: str, message: str, *args) -> None:
        now = time.monotonic()
        start, logged, suppressed = self._windows.get(key, (now, 0, 0))
        if now - start > self.period:
            if suppressed:
                self.logger.warning("%d more %r message(s) were not logged in the last %.0f s", suppressed, key,
                                    now - start)
            start, logged, suppressed = now, 0, 0
        if logged < self.burst:
            self.logger.warning(message, *args)
            logged += 1
        else:
            suppressed += 1
        self._windows[key] = (start, logged, suppressed)


def log_dir() -> Path:
    import platformdirs

    return platformdirs.user_log_path("inknhue", appauthor=False)


def setup_logging(level: int = logging.INFO, filename: str = LOG_NAME) -> Path | None:
    """Send the `inknhue` loggers to LOGDIR/filename (1 MB x 3 backups). Returns its path,
    or None if the folder cannot be written (logging must never stop the work)."""
    logger = logging.getLogger("inknhue")
    logger.setLevel(level)
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        # without a log file (the installer's first steps, before platformdirs) records must not
        # reach logging's last resort, which would print every error a second time on stderr
        logger.addHandler(logging.NullHandler())
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
    handler.addFilter(OneLineFilter())
    logger.addHandler(handler)
    return path
