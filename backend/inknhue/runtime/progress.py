"""Progress within the network stages, and the time left, from this machine's own speed.

A stage's work is counted in convolution multiply-adds (nearly all of a network's time):
a forward hook adds each convolution's as it finishes, against the stage's total, which
a pass of the same network on the meta device (shapes only, no arithmetic, milliseconds)
gives before the stage runs. The time left is each stage's work left times its seconds per
multiply-add: measured in this job once the stage runs, else as this process last measured
it (`SPEEDS`: a shading network and a VAE run at different speeds a multiply-add, so one
job-wide rate was minutes off early on), else this job's rate so far; plus the stages
without networks still to come (the rough colours, the blend, the page-size output), at the
seconds per pixel last measured. Nothing known yet: None (the docker says "estimating").
Before any job, a calibration (engine/calibration.py) times small passes when the models
load: a network stage then costs its fixed seconds plus its work at the calibrated rate (small
passes do not run at a page's speed a multiply-add), until a job measures it. Each estimate
says what it stands on (`JobProgress.basis`).
Cached stages change nothing; row-band execution
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


class Speeds:
    """What this process measured: seconds per multiply-add of each network stage, seconds
    per pixel of each stage without networks; for a calibrated stage, its fixed seconds too."""

    def __init__(self):
        self.per_work: dict[str, float] = {}
        self.per_pixel: dict[str, float] = {}
        self.fixed: dict[str, float] = {}  #: a calibrated network stage's seconds besides its work
        self.calibrated: set[str] = set()  #: the stages known from the calibration alone (no job yet)
        self._lock = threading.Lock()

    def remember_work(self, stage: str, seconds: float, work: float) -> None:
        if work > 0 and seconds > 0:
            with self._lock:
                self.per_work[stage] = seconds / work
                self.fixed.pop(stage, None)
                self.calibrated.discard(stage)

    def remember_pixels(self, stage: str, seconds: float, pixels: float) -> None:
        if pixels > 0 and seconds > 0:
            with self._lock:
                self.per_pixel[stage] = seconds / pixels
                self.calibrated.discard(stage)

    def calibrate_work(self, stage: str, fixed: float, per_work: float) -> None:
        """A calibration's fit for a network stage; a job's measure, if any, stands."""
        with self._lock:
            if stage not in self.per_work or stage in self.calibrated:
                self.per_work[stage], self.fixed[stage] = per_work, max(0.0, fixed)
                self.calibrated.add(stage)

    def calibrate_pixels(self, stage: str, per_pixel: float) -> None:
        with self._lock:
            if stage not in self.per_pixel or stage in self.calibrated:
                self.per_pixel[stage] = per_pixel
                self.calibrated.add(stage)


SPEEDS = Speeds()


class JobProgress:
    """The work of a job's stages, the part done, and the speed measured on the way."""

    def __init__(self, work: dict[str, float], report: Callable[[str, float], None],
                 tail: dict[str, float] | None = None, speeds: Speeds | None = None):
        self.work = dict(work)                  #: stage -> multiply-adds still to run
        self.report = report                    #: called with (stage, fraction of the stage) while it runs
        self.tail = dict(tail or {})            #: stage without networks -> its pixels, still to run
        self.speeds = speeds or SPEEDS          # looked up now: a test can give the process a fresh one
        self.done_work = 0.0
        self.busy_seconds = 0.0
        self._stage: str | None = None
        self._tail_stage: str | None = None
        self._tail_started = 0.0
        self._stage_done = 0.0
        self._stage_started = 0.0
        self._last_report = time.perf_counter()
        #: what the last `seconds_left` stood on: "calibration" (any stage known from it alone),
        #: "measured" (earlier jobs' stages, this one's), or None (nothing known)
        self.basis: str | None = None

    def skip(self, stage: str) -> None:
        """A stage came from the cache: its work is not to be done."""
        self.work.pop(stage, None)
        self.tail.pop(stage, None)

    @contextmanager
    def stage(self, name: str):
        """Count the convolutions of `name` in this thread while it runs (a stage without
        networks is timed, for the next job's estimate)."""
        if name not in self.work:
            started, pixels = time.perf_counter(), self.tail.get(name)
            self._tail_stage, self._tail_started = name, started
            try:
                yield
            finally:
                self._tail_stage = None
                if pixels is not None:
                    self.speeds.remember_pixels(name, time.perf_counter() - started, pixels)
                    self.tail.pop(name, None)
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
            self.speeds.remember_work(name, time.perf_counter() - self._stage_started, self._stage_done)
            self.work.pop(name, None)
            self._stage, self._stage_done = None, 0.0

    def fraction_done(self) -> float | None:
        """Of the job's network work (stages from the cache not counted), None without any."""
        done = self.done_work + self._stage_done
        total = self.done_work + sum(self.work.values())
        return min(1.0, done / total) if total > 0 else None

    def seconds_left(self) -> float | None:
        """The time left (see the module's docstring); None while nothing tells it."""
        now = time.perf_counter()
        job_rate = self.busy_seconds / self.done_work if self.done_work > 0 else None
        left, known, calibrated = 0.0, False, False
        for stage, work in self.work.items():
            rate = self.speeds.per_work.get(stage, job_rate)
            remaining, fixed = work, self.speeds.fixed.get(stage, 0.0)
            from_calibration = stage in self.speeds.calibrated
            if stage == self._stage:
                remaining -= self._stage_done
                fixed = max(0.0, fixed - (now - self._stage_started))
                if self._stage_done > 0:  # this stage's own speed from now on
                    rate, fixed, from_calibration = (now - self._stage_started) / self._stage_done, 0.0, False
            if rate is not None:
                left, known = left + fixed + max(0.0, remaining) * rate, True
                calibrated = calibrated or from_calibration
        for stage, pixels in self.tail.items():
            rate = self.speeds.per_pixel.get(stage)
            if rate is not None:
                running = now - self._tail_started if stage == self._tail_stage else 0.0
                left, known = left + max(0.0, pixels * rate - running), True
                calibrated = calibrated or stage in self.speeds.calibrated
        known = known or (not self.work and self.done_work > 0)  # the networks are done: what is known is left
        self.basis = ("calibration" if calibrated else "measured") if known else None
        return max(0.0, left) if known else None

    def _maybe_report(self) -> None:
        total = self.work.get(self._stage, 0.0)
        fraction = min(0.999, self._stage_done / total) if total else 0.0
        now = time.perf_counter()
        if now - self._last_report >= REPORT_EVERY_S:
            self._last_report = now
            self.report(self._stage, fraction)
