"""The `flats` provider on an A4 page (2480x3508, 300 dpi) with three dozen strokes.

Prints seconds per page, default and --fill-all, and the ratio against a baseline measured
in the same run: one connected-components pass over the page's ink (the cheapest
whole-page operation flats is built from), so figures compare across machines.

    python benchmarks/bench_flats.py [--repeat 5] [--strokes 36]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from bench_page import synthetic_page  # noqa: E402

from inknhue.page.imaging import luma  # noqa: E402
from inknhue.rough.flats import flats  # noqa: E402


def strokes(width, height, count, seed=1):
    rng = np.random.default_rng(seed)
    hints = np.zeros((height, width, 4), np.uint8)
    for _ in range(count):
        x, y = int(rng.integers(100, width - 100)), int(rng.integers(100, height - 100))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3)) + (255,)
        end = (x + int(rng.integers(-80, 80)), y + int(rng.integers(-80, 80)))
        cv2.line(hints, (x, y), end, colour, 12)
    return hints


def median_seconds(fn, count: int) -> float:
    """The median wall time of `count` calls."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--strokes", type=int, default=36)
    args = parser.parse_args()

    page, _ = synthetic_page()
    hints = strokes(page.shape[1], page.shape[0], args.strokes)
    ink = (luma(page) < 150).astype(np.uint8)
    flats(page, hints)  # warm-up
    baseline = median_seconds(lambda: cv2.connectedComponentsWithStats(ink, connectivity=8), args.repeat)
    default = median_seconds(lambda: flats(page, hints), args.repeat)
    fill_all = median_seconds(lambda: flats(page, hints, fill_all=True), args.repeat)
    print(f"page {page.shape[1]}x{page.shape[0]}, {args.strokes} strokes, median of {args.repeat}, "
          f"{cv2.getNumThreads()} OpenCV threads")
    print(f"  baseline (one labelling pass) {baseline * 1000:8.1f} ms")
    print(f"  flats                         {default * 1000:8.1f} ms   flats / baseline = {default / baseline:.0f}")
    print(f"  flats --fill-all              {fill_all * 1000:8.1f} ms   fill-all / baseline = "
          f"{fill_all / baseline:.0f}")


if __name__ == "__main__":
    main()
