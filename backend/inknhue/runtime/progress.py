"""Progress within the network stages, and the time left, from this machine's own speed.

A stage's work is counted in convolution multiply-adds (nearly all of a network's time):
a forward hook adds each convolution's as it finishes, against the stage's total, which
a pass of the same network on the meta device (shapes only, no arithmetic, milliseconds)
gives before the stage runs. The time left is the work left times the seconds per
multiply-add measured so far in this job, so it adapts to the machine, the device and
whatever else it is doing. Cached stages change nothing; row-band execution
(networks/banded.py), which runs the modules' convolutions functionally, reports each
through `count_convolution`, so bands count as the untiled modules would.
"""

from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager
from typing import Callable

import torch
from torch import nn

_CONVOLUTIONS = (nn.Conv2d, nn.ConvTranspose2d)
#: report at most this often (seconds)
REPORT_EVERY_S = 0.25
#: the counter of the stage running in this thread, for convolutions run functionally
_current = threading.local()


def convolution_work(module: nn.Module, output: torch.Tensor) -> float:
    """Multiply-adds of one convolution call, from its output's size."""
    kernel = math.prod(module.kernel_size)
    if isinstance(module, nn.ConvTranspose2d):  # every input pixel meets the whole kernel
        per_output = module.in_channels * kernel / module.groups / math.prod(module.stride)
    else:
        per_output = module.in_channels * kernel / module.groups
    return per_output * output.numel()


def count_convolution(module: nn.Module, output: torch.Tensor) -> None:
    """Count `module`'s work as if it had been called and made `output` (for code that
    runs a module's weights with `F.conv2d` itself, e.g. on row bands)."""
    counter = getattr(_current, "counter", None)
    if counter is not None:
        counter(module, (), output)


def measure_work(forward: Callable[[], object]) -> float:
    """The multiply-adds `forward` makes; run it on meta tensors for free."""
    total = 0.0
    thread = threading.get_ident()

    def count(module, args, output):
        nonlocal total
        if isinstance(module, _CONVOLUTIONS) and threading.get_ident() == thread:
            total += convolution_work(module, output)

    handle = nn.modules.module.register_module_forward_hook(count)
    outer, _current.counter = getattr(_current, "counter", None), count
    try:
        forward()
    finally:
        handle.remove()
        _current.counter = outer
    return total


class JobProgress:
    """The work of a job's stages, the part done, and the speed measured on the way."""

    def __init__(self, work: dict[str, float], report: Callable[[str, float], None]):
        self.work = dict(work)                  #: stage -> multiply-adds still to run
        self.report = report                    #: called with (stage, fraction of the stage) while it runs
        self.done_work = 0.0
        self.busy_seconds = 0.0
        self._stage: str | None = None
        self._stage_done = 0.0
        self._stage_started = 0.0
        self._last_report = time.perf_counter()

    def skip(self, stage: str) -> None:
        """A stage came from the cache: its work is not to be done."""
        self.work.pop(stage, None)

    @contextmanager
    def stage(self, name: str):
        """Count the convolutions of `name` in this thread while it runs."""
        if name not in self.work:
            yield
            return
        self._stage, self._stage_done, self._stage_started = name, 0.0, time.perf_counter()
        thread = threading.get_ident()

        def count(module, args, output):
            if isinstance(module, _CONVOLUTIONS) and threading.get_ident() == thread:
                self._stage_done += convolution_work(module, output)
                self._maybe_report()

        handle = nn.modules.module.register_module_forward_hook(count)
        outer, _current.counter = getattr(_current, "counter", None), count
        try:
            yield
        finally:
            handle.remove()
            _current.counter = outer
            self.done_work += self._stage_done
            self.busy_seconds += time.perf_counter() - self._stage_started
            self.work.pop(name, None)
            self._stage, self._stage_done = None, 0.0

    def fraction_done(self) -> float | None:
        """Of the job's network work (stages from the cache not counted), None without any."""
        done = self.done_work + self._stage_done
        total = self.done_work + sum(self.work.values())
        return min(1.0, done / total) if total > 0 else None

    def seconds_left(self) -> float | None:
        """The work left, at the speed measured so far (None before any is measured)."""
        elapsed = self.busy_seconds + (time.perf_counter() - self._stage_started if self._stage else 0.0)
        done = self.done_work + self._stage_done
        if done <= 0 or elapsed <= 0:
            return None
        left = sum(self.work.values()) - self._stage_done
        return max(0.0, left * elapsed / done)

    def _maybe_report(self) -> None:
        total = self.work.get(self._stage, 0.0)
        fraction = min(0.999, self._stage_done / total) if total else 0.0
        now = time.perf_counter()
        if now - self._last_report >= REPORT_EVERY_S:
            self._last_report = now
            self.report(self._stage, fraction)
