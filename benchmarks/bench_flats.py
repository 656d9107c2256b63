"""The `flats` provider on the realistic corpus (tests/corpus.py): how right, and how fast.

For each page of the corpus (web scans 1000-1700 px tall as JPEG, and with --sizes a4 the
same pages at A4 300 dpi), made from coloured ground truth with hint strokes in the regions'
colours, prints:

- outside: the share of the page coloured outside the right region (goal <= 0.5%);
- quiet: the share of unhinted panels, balloons and gutters coloured (goal <= 1%);
- right: the share of hinted regions coloured right (>= 95% of their pixels);
- missed: the share of hinted regions' pixels left paper;
- seconds per page (median of --repeat), and against a baseline measured in the same run:
  one connected-components pass over the page's dark pixels (the cheapest whole-page
  operation flats are built from), so the figures compare across machines.

    python benchmarks/bench_flats.py [--count 8] [--sizes web a4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

import corpus  # noqa: E402

from inknhue.rough.flats import flat_layer  # noqa: E402


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
    parser.add_argument("--count", type=int, default=8, help="pages of the corpus (default 8)")
    parser.add_argument("--sizes", nargs="+", default=["web", "a4"], choices=["web", "a4"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    print(f"flats on the corpus: {args.count} pages x {', '.join(args.sizes)}; "
          f"{cv2.getNumThreads()} OpenCV threads; median of {args.repeat} runs")
    print(f"{'page':18s} {'size':>10s} {'outside':>8s} {'quiet':>7s} {'right':>6s} {'missed':>7s} "
          f"{'seconds':>8s} {'/ baseline':>10s}")
    by_size: dict[str, list] = {}
    for page in corpus.corpus(tuple(args.sizes), count=args.count):
        dark = (page.grey < 150).astype(np.uint8)
        baseline = median_seconds(lambda d=dark: cv2.connectedComponentsWithStats(d, connectivity=8), args.repeat)
        layer = flat_layer(page.rgb, page.hints)
        seconds = median_seconds(lambda p=page: flat_layer(p.rgb, p.hints), args.repeat)
        score = corpus.evaluate(page, layer)
        kind = "a4" if page.jpeg is None else "web"
        by_size.setdefault(kind, []).append((score, seconds, seconds / baseline))
        print(f"{page.name:18s} {page.grey.shape[1]:>4d}x{page.grey.shape[0]:<5d} "
              f"{100 * score.wrong_share:7.2f}% {100 * score.unhinted_coloured:6.2f}% "
              f"{100 * score.regions_right:5.0f}% {100 * score.missed:6.1f}% {seconds:8.2f} {seconds / baseline:10.0f}",
              flush=True)
    for kind, rows in by_size.items():
        scores = [r[0] for r in rows]
        print(f"mean {kind:13s} {'':10s} {100 * np.mean([s.wrong_share for s in scores]):7.2f}% "
              f"{100 * np.mean([s.unhinted_coloured for s in scores]):6.2f}% "
              f"{100 * np.mean([s.regions_right for s in scores]):5.0f}% "
              f"{100 * np.mean([s.missed for s in scores]):6.1f}% "
              f"{np.mean([r[1] for r in rows]):8.2f} {np.mean([r[2] for r in rows]):10.0f}")


if __name__ == "__main__":
    main()
