"""The C heap under the CPU's tensors: freed memory reused while pages run, given back after.

PyTorch allocates CPU tensors with malloc. glibc serves any block over its mmap threshold
(32 MiB at most under its own rule) with a fresh mapping, which the kernel faults in and
zeroes page by page, and unmaps again on free: an A4 page at max size 768 faulted 7.5
million pages, 14 s of system time on 2 cores, about a tenth of the page
(benchmarks/bench_page.py). `reuse_freed_memory` (once, at the entry point) and `for_page`
(before each page) let glibc serve blocks up to 2 GiB from its heap, where a freed block
is handed to the next tensor as it is, in one arena for every thread (a thread's own
arena cannot hold a block over 64 MiB and would map it anyway). `give_back_freed_memory`
returns the heap's free pages to the system at the end of a pass or a job, so a
long-lived backend does not sit on a page's worth of them.

The reuse costs memory: glibc's heap keeps the holes between blocks (an A4 page at 768
peaked at 4.19 GiB against 2.59 with the bf16 VAE, 6.15 against 4.22 in float32;
benchmarks/bench_memory.py --heap). So `for_page` takes it only for a page whose VAE runs
untiled on a machine with REUSE_MIN_AVAILABLE free; pages large enough for the VAE's row
bands (networks/banded.py), whose peak is what the bands bound, and machines short of
memory run on glibc's own limits.

glibc (Linux) only; elsewhere these do nothing (macOS runs on MPS; Windows not measured).
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
#: memory available (MemAvailable) for a page to take the heap's reuse: its cost at 768 is 1.9 GiB
REUSE_MIN_AVAILABLE = 8 << 30
#: where glibc's dynamic thresholds settle (its maximum mmap threshold, twice that for trimming)
GLIBC_MMAP_THRESHOLD, GLIBC_TRIM_THRESHOLD = 32 << 20, 64 << 20

_lock = threading.Lock()
_reusing = False  #: the process set the heap up (reuse_freed_memory)
_large_from_heap = False  #: blocks over glibc's mmap threshold are served from the heap now


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
    """Let pages take the heap's reuse (`for_page`) from now on: the process's entry point
    calls this once, before its threads start (the one-arena limit holds for threads
    created after it). Returns whether the heap can."""
    global _reusing
    with _lock:
        if _libc is None or _reusing:
            return _reusing
        _reusing = _libc.mallopt(M_ARENA_MAX, 1) == 1
        if not _reusing:
            log.warning("the C heap refused its settings: tensors keep fresh mappings")
        return _reusing


def for_page(banded: bool) -> None:
    """Before a page's networks run: large blocks from the heap for a page whose VAE runs
    untiled on a machine with room, glibc's own limits otherwise."""
    with _lock:
        if not _reusing:
            return
        from_heap = not banded and available_bytes() >= REUSE_MIN_AVAILABLE
        if from_heap != _large_from_heap:
            _serve_large_blocks(from_heap)
            if not from_heap:
                _libc.malloc_trim(0)


def available_bytes() -> int:
    """The system's MemAvailable (Linux), 0 where it cannot be read."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _serve_large_blocks(from_heap: bool) -> None:
    global _large_from_heap
    mmap, trim = (LARGEST_REUSED, LARGEST_REUSED) if from_heap else (GLIBC_MMAP_THRESHOLD, GLIBC_TRIM_THRESHOLD)
    done = _libc.mallopt(M_MMAP_THRESHOLD, mmap) == 1 and _libc.mallopt(M_TRIM_THRESHOLD, trim) == 1
    _large_from_heap = from_heap and done


def give_back_freed_memory() -> None:
    """Return the heap's free pages to the system (after a pass, a job, a blend)."""
    if _libc is not None:
        _libc.malloc_trim(0)
