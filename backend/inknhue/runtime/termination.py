"""SIGTERM and SIGHUP as an exception, so that a command stopped by them cleans up.

By default SIGTERM (a `timeout`, a service manager, `kill`) ends Python at once: no
`finally` runs and temporary files stay. Within `signals_raise()`, the main thread gets
`Terminated` instead, at the next bytecode (a long torch operation finishes first), and the
command line answers it like Ctrl-C: what was made is cleaned up, the exit status is
128 + the signal's number.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


class Terminated(BaseException):
    """The process was asked to stop (SIGTERM, SIGHUP); not an Exception, so that handlers
    of a page's or a file's failure let it through."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}"


SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None)


@contextmanager
def signals_raise() -> Iterator[None]:
    """SIGTERM and SIGHUP raise Terminated in the main thread within the block (elsewhere: no change)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_terminated(signum, frame):
        raise Terminated(signum)

    previous = {}
    for signum in SIGNALS:
        if signal.getsignal(signum) is signal.SIG_IGN:
            continue  # nohup: stays ignored
        previous[signum] = signal.signal(signum, raise_terminated)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
