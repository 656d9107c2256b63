"""Is a process still there? For files a process leaves behind (a lock, a scratch folder)
that name it by pid and host, so that another run can tell a live owner from a dead one.

A pid alone can be reused: where the system says when a process started (Linux's
/proc/PID/stat), the owner's start is recorded with its pid and compared, so a new process
that happens to get a dead owner's pid is not taken for it.
"""

from __future__ import annotations

import os
import socket
import sys


def this_host() -> str:
    return socket.gethostname()


def process_start(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (Linux), or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode("ascii", "replace")
        return int(text[text.rindex(")") + 2:].split()[19])  # field 22, after the command in parentheses
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: int, started: int | None = None) -> bool:
    """Whether the process `pid` of this host exists (and, when `started` is given and the
    system tells, started then: otherwise the pid was reused)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if sys.platform == "win32":
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, another user's
    except OSError:
        return False
    if started is not None:
        now = process_start(pid)
        if now is not None and now != started:
            return False
    return True


def _windows_pid_alive(pid: int) -> bool:  # pragma: no cover (Windows)
    import ctypes

    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.GetLastError() == 5  # access denied: it exists
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)
