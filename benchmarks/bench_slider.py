"""The ratio slider's time a move on an A4 page, on the CPU: the drag's preview mixed in the
plugin (preview.py) against the backend's blend per move as the docker did it before.

Per move, in the same run and process (PyQt5 offscreen, as in Krita 5):
  - before, 8-bit: the backend's blend at the preview size (output.render), the plugin's smooth
    upscale to the page (document.scale_bgra) and the page's bytes for Krita;
  - before, 16-bit: the backend's blend of the whole page in 16 bits and its bytes;
  - now: the preview's mix at the slider's ratio, scaled to the page, and its bytes, in 8 and 16 bits.
Krita's own write of the page (setPixelData, then the projection) comes on top of both:
about 30-60 ms for an 8-bit A4 page under Xvfb here. The socket's transfer of the
backend's blend is not counted (it favours "before"). Parity weights: the networks' size
does not enter a blend.

    python benchmarks/bench_slider.py [--moves 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).parent.parent
sys.path[:0] = [str(Path(__file__).parent), str(ROOT / "tests"), str(ROOT / "tests/fakekrita"), str(ROOT / "plugin")]

import krita  # noqa: E402  (the fake module: a QApplication and PyQt5, nothing of Krita's)
from bench_page import synthetic_page  # noqa: E402
from parity import write_released_layout  # noqa: E402

from inknhue.engine.options import EngineOptions  # noqa: E402
from inknhue.engine.pipeline import Engine  # noqa: E402
from inknhue.page.output import render  # noqa: E402
from inknhue.rough import RoughRequest, get_provider  # noqa: E402
from inknhue_krita import document  # noqa: E402
from inknhue_krita.logic import preview_size  # noqa: E402
from inknhue_krita.messages import OutputSpec  # noqa: E402
from inknhue_krita.preview import KNOTS, Preview  # noqa: E402
from inknhue_krita.qt import QtCore  # noqa: E402


def per_move(fn, moves) -> float:
    times = []
    for i in range(moves):
        ratio = 0.1 + 0.8 * i / max(1, moves - 1)
        started = time.perf_counter()
        fn(ratio)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--moves", type=int, default=5)
    args = parser.parse_args()
    krita.application()
    page, rough = synthetic_page()
    height, width = page.shape[:2]
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(write_released_layout(Path(tmp)), "cpu", EngineOptions("reference"))
        result = engine.colorize(page, get_provider("image"), RoughRequest(page=page, rough=rough), max_size=64)
    size = preview_size(width, height)
    small = OutputSpec(size=tuple(size), channels="BGRA")

    def before_8(ratio):
        image = render(result, small, ratio)
        data = document.scale_bgra(bytes(image.data), image.width, image.height, width, height)
        QtCore.QByteArray(data)

    def before_16(ratio):
        QtCore.QByteArray(bytes(render(result, OutputSpec(channels="BGRA", dtype="uint16"), ratio).data))

    knots = {r: bytes(render(result, small, r).data) for r in KNOTS}
    previews = {dtype: Preview("j", size[0], size[1], knots, width, height, dtype) for dtype in ("uint8", "uint16")}
    figures = {}
    for name, fn in (("before, 8-bit", before_8), ("before, 16-bit", before_16),
                     ("now, 8-bit", lambda r: QtCore.QByteArray(previews["uint8"].frame(r))),
                     ("now, 16-bit", lambda r: QtCore.QByteArray(previews["uint16"].frame(r)))):
        fn(0.5)  # warm-up
        figures[name] = per_move(fn, args.moves)
    print(f"page {width}x{height}, preview {size[0]}x{size[1]}, median of {args.moves} moves, plugin side "
          f"(Krita's write comes on top):")
    for name, seconds in figures.items():
        print(f"  {name:<15} {1000 * seconds:7.1f} ms a move")
    for depth in ("8-bit", "16-bit"):
        print(f"  {depth}: now / before = {figures['now, ' + depth] / figures['before, ' + depth]:.3f}")


if __name__ == "__main__":
    main()
