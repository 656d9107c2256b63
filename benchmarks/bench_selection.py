"""What a selection box costs against the whole page, on the CPU (issue: a 400x300 box at Max
size 256 took twice the page).

Full-size random weights; the A4 synthetic page of bench_page.py. Times, in the same run:
the whole page at --max-size; a 400x300 box at that Max size (as the docker sent it before),
and the box at the page's working scale (logic.box_max_size, as the docker sends it now),
each as a ratio of the page's time. The plugin side of a box (Krita's selection outline
animating while a job runs, about 0.23 CPU-s a second under Xvfb, measured in Krita 5.1.5)
scales with the run's length, so it shrinks with it.

    python benchmarks/bench_selection.py [--max-size 256] [--repeat 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "plugin"))

from bench_page import synthetic_page  # noqa: E402
from fullsize_weights import write_fullsize_weights  # noqa: E402

from inknhue.engine.options import EngineOptions  # noqa: E402
from inknhue.engine.pipeline import Engine  # noqa: E402
from inknhue.rough import RoughRequest, get_provider  # noqa: E402
from inknhue.runtime import host_memory  # noqa: E402
from inknhue_krita.logic import Rect, box_max_size  # noqa: E402


def timed(engine, page, rough, max_size, repeat) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        engine.colorize(page, get_provider("image"), RoughRequest(page=page, rough=rough), max_size=max_size)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    host_memory.reuse_freed_memory()
    page, rough = synthetic_page()
    box = Rect(800, 1200, 400, 300)
    crop = (slice(box.y, box.y + box.height), slice(box.x, box.x + box.width))
    scaled = box_max_size(args.max_size, (page.shape[1], page.shape[0]), box)
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(write_fullsize_weights(Path(tmp)), "cpu", EngineOptions("fast"))
        engine.load()
        timed(engine, page[crop], rough[crop], 64, 1)  # warm-up
        whole = timed(engine, page, rough, args.max_size, args.repeat)
        before = timed(engine, page[crop], rough[crop], args.max_size, args.repeat)
        now = timed(engine, page[crop], rough[crop], scaled, args.repeat)
    print(f"page {page.shape[1]}x{page.shape[0]} at max size {args.max_size}: {whole:.2f} s")
    print(f"box {box.width}x{box.height} at max size {args.max_size} (before): {before:.2f} s = "
          f"{before / whole:.2f} x the page")
    print(f"box at the page's scale, max size {scaled} (now): {now:.2f} s = {now / whole:.2f} x the page "
          f"(its share of the page's area: {box.width * box.height / page.shape[0] / page.shape[1]:.3f})")


if __name__ == "__main__":
    main()
