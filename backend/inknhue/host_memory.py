"""The C heap under the CPU's tensors: freed memory reused while pages run, given back after.

PyTorch allocates CPU tensors with malloc. glibc serves any block over its mmap threshold
(32 MiB at most under its own rule) with a fresh mapping, which the kernel faults in and
zeroes page by page, and unmaps again on free: an A4 page at max size 768 faulted 7.5
million pages, 14 s of system time on 2 cores, about a tenth of the page
(benchmarks/bench_page.py). `reuse_freed_memory` lets glibc serve blocks up to 2 GiB from
its heap, where a freed block is handed to the next tensor as it is, in one arena for
every thread (a thread's own arena cannot hold a block over 64 MiB and would map it
anyway). `give_back_freed_memory` returns the heap's free pages to the system at the end
of a pass or a job, so a long-lived backend does not sit on a page's worth of them.

glibc (Linux) only; elsewhere both do nothing (macOS runs on MPS; Windows not measured).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
import threading

log = logging.getLogger(__name__)

# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
#: mallopt takes an int: the largest block served from the heap, and the free top kept
LARGEST_REUSED = 2**31 - 1

_lock = threading.Lock()
_reusing = False


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018  (glibc's; musl has neither)
    except (OSError, AttributeError, TypeError):
        return None
    return libc


_libc = _glibc()


def reuse_freed_memory() -> bool:
    """Serve tensors from the heap from now on (the process's entry point calls this once,
    before its threads start: the arena limit holds for threads created after it).
    Returns whether the heap does so."""
    global _reusing
    with _lock:
        if _libc is None or _reusing:
            return _reusing
        done = all(_libc.mallopt(param, value) == 1 for param, value in
                   ((M_ARENA_MAX, 1), (M_MMAP_THRESHOLD, LARGEST_REUSED), (M_TRIM_THRESHOLD, LARGEST_REUSED)))
        if not done:
            log.warning("the C heap refused its settings: tensors keep fresh mappings")
        _reusing = done
        return done


def give_back_freed_memory() -> None:
    """Return the heap's free pages to the system (after a pass, a job, a blend)."""
    if _libc is not None:
        _libc.malloc_trim(0)
