"""This machine's speed timed once, right after the models load, before any job has run.

Without it the first job's time left was minutes off (a guess from one job-wide rate) until
its stages had run. The calibration colorizes a small drawn page at two small sizes (the
`SIDES`, a few seconds on a CPU, well under one on a GPU) through `Engine.colorize` itself,
and fits each network stage's seconds as fixed + rate x multiply-adds: small passes are not
run at a page's speed a multiply-add (the layers' weights are read whatever the size, and
threads have less to share), so one rate from a small pass would put a page's shading at
several times its time; the fit's fixed part keeps the first estimate of an A4 page within
about 2x (tests/test_calibration.py prints the figure). The stages without networks (rough colours,
blend, page-size output) are timed per pixel on the larger pass. What it finds goes into
`progress.SPEEDS` as calibrated (a job's own measure replaces it, stage by stage) and is
reported (`Calibration.describe`, the server's `hello`).

It runs on the worker that runs jobs, so never beside one: `stop` (a job is waiting) is
polled before every module's forward pass and ends it at once, keeping nothing: that job
measures this machine itself.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..page.output import render_uint8
from ..rough import RoughRequest, get_provider
from ..runtime import progress
from ..errors import Cancelled
from .pipeline import OUTPUT_STAGE, Engine

log = logging.getLogger(__name__)
SIDES = (128, 256)  #: the calibration page's side, which is also its max size, for the two passes
NETWORK_STAGES = ("shade", "condition", "encode", "decode")


@dataclass
class Calibration:
    """What a calibration found: its state ("not run", "running", "done", "stopped" by a job,
    "failed"), the seconds it took, and per stage its fit (network stages: fixed seconds and
    seconds per multiply-add; the others: seconds per pixel)."""

    state: str = "not run"
    seconds: float | None = None
    stages: dict[str, dict[str, float]] = field(default_factory=dict)

    def describe(self) -> dict:
        return {"state": self.state, "seconds": None if self.seconds is None else round(self.seconds, 3),
                "stages": {stage: dict(fit) for stage, fit in self.stages.items()}}


def calibration_page(side: int) -> tuple[np.ndarray, np.ndarray]:
    """A small drawn page (a frame, a round shape, lines of hatching) and one colour stroke:
    work of the kind a page gives, the same every time."""
    yy, xx = np.mgrid[0:side, 0:side]
    grey = np.full((side, side), 255, np.uint8)
    edge = side // 16
    grey[(np.minimum(np.minimum(yy, xx), np.minimum(side - 1 - yy, side - 1 - xx)) // 2) == edge // 2] = 20
    ring = np.abs(np.hypot(yy - side / 2, xx - side / 2) - side / 4) < max(1.0, side / 128)
    grey[ring] = 20
    grey[(yy > side * 0.7) & ((xx + yy) % 6 == 0)] = 90
    hints = np.zeros((side, side, 4), np.uint8)
    hints[side // 2 - 2:side // 2 + 2, side // 3:side // 2] = (220, 40, 40, 255)
    return np.dstack([grey] * 3), hints


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(fixed seconds, seconds per multiply-add) through two (work, seconds) points; a pure
    rate where they do not rise (noise on a loaded machine)."""
    (w1, t1), (w2, t2) = sorted(points)
    if w2 > w1 and t2 > t1:
        rate = (t2 - t1) / (w2 - w1)
        return max(0.0, t1 - rate * w1), rate
    return 0.0, t2 / w2


def calibrate(engine: Engine, stop: Callable[[], bool], into: Calibration | None = None,
              speeds: progress.Speeds | None = None, sides: tuple[int, ...] = SIDES) -> Calibration:
    """Time the passes, fit, and remember the fits in `speeds` (progress.SPEEDS); `into` is
    updated as it goes (the server shows it). Never raises: a failure is logged and said."""
    found = into if into is not None else Calibration()
    speeds = speeds if speeds is not None else progress.SPEEDS
    found.state, started = "running", time.perf_counter()
    points: dict[str, list[tuple[float, float]]] = {stage: [] for stage in NETWORK_STAGES}
    stages: dict[str, dict[str, float]] = {}  # shown only once complete (the server's I/O thread reads `found`)
    try:
        for side in sides:
            page, hints = calibration_page(side)
            result = engine.colorize(page, get_provider("flats"), RoughRequest(page=page, hints=hints),
                                     max_size=side, cancelled=stop)
            rendering = time.perf_counter()
            render_uint8(result, 0.8, "page")
            rendered = time.perf_counter() - rendering
            work = engine.plan_work((side, side), side)
            for stage in NETWORK_STAGES:
                points[stage].append((work[stage], result.timings[stage]))
            pixels = {"rough": side * side, "blend": float(np.prod(result.working_size)), OUTPUT_STAGE: side * side}
            seconds = {**result.timings, OUTPUT_STAGE: rendered}
            for stage, count in pixels.items():
                stages[stage] = {"per_pixel": seconds[stage] / count}
        for stage, measured in points.items():
            fixed, rate = fit(measured)
            stages[stage] = {"fixed": fixed, "per_work": rate}
            speeds.calibrate_work(stage, fixed, rate)
        for stage in ("rough", "blend", OUTPUT_STAGE):
            speeds.calibrate_pixels(stage, stages[stage]["per_pixel"])
        found.stages, found.state = stages, "done"
    except Cancelled:
        found.state, found.stages = "stopped", {}  # a job came first: it measures this machine itself
    except Exception:  # noqa: BLE001  (the backend serves on without it: estimates wait for a job)
        log.exception("the calibration failed")
        found.state, found.stages = "failed", {}
    found.seconds = time.perf_counter() - started
    log.info("calibration %s in %.1f s", found.state, found.seconds)
    return found
