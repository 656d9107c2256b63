"""`inknhue serve` on an A4 page (2480x3508): the ratio slider and a hint-only re-run.

A real server process on the CPU with full-size random weights; the client sends BGRA,
as Krita does. Prints, against baselines measured in the same run:
  - blend round trips at full resolution and at a screen-size preview (updates per
    second; the slider aims at >= 10 while dragging), over a `ping` round trip;
  - a job after a hint-only change over the first, full job of the page.

    python benchmarks/bench_server.py [--max-size 768] [--blends 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from inknhue_krita.client import Client
from inknhue_krita.protocol import RawImage

sys.path.insert(0, str(Path(__file__).parent))

from bench_flats import median_seconds, strokes  # noqa: E402
from bench_page import synthetic_page  # noqa: E402
from fullsize_weights import write_fullsize_weights  # noqa: E402


def bgra(rgba: np.ndarray) -> RawImage:
    return RawImage(rgba.shape[1], rgba.shape[0], "BGRA", np.ascontiguousarray(rgba[..., [2, 1, 0, 3]]).tobytes())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-size", type=int, default=768)
    parser.add_argument("--blends", type=int, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_fullsize_weights(tmp / "weights")
        connection = tmp / "server.json"
        server = subprocess.Popen([sys.executable, "-m", "inknhue", "serve", "--port", "0", "--device", "cpu",
                                   "--weights", str(tmp / "weights"), "--connection-file", str(connection)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            server.stdout.readline()
            with Client("auto", connection_file=connection, timeout=30) as client:
                while client.hello()["models"] != "ready":
                    time.sleep(0.2)
                page, _ = synthetic_page()
                hints = strokes(page.shape[1], page.shape[0], 36)
                page_bgra = bgra(np.dstack([page, np.full(page.shape[:2], 255, np.uint8)]))
                output = {"channels": "BGRA"}

                ping = median_seconds(client.ping, 50)
                print(f"page {page.shape[1]}x{page.shape[0]}, max size {args.max_size}, CPU; "
                      f"ping round trip {ping * 1000:.2f} ms")

                def job(hint_layer):
                    started = time.perf_counter()
                    job_id = client.colorize(page_bgra, bgra(hint_layer), provider="flats",
                                             max_size=args.max_size, output=output)
                    header, _ = client.wait(job_id)
                    return job_id, time.perf_counter() - started, header["ran"]

                first, full, ran = job(hints)
                print(f"full job          {full:7.2f} s  (ran {', '.join(ran)})")
                more = hints.copy()
                cv2.line(more, (300, 3000), (500, 3100), (250, 200, 40, 255), 12)
                second, hint_only, ran = job(more)
                print(f"hint-only change  {hint_only:7.2f} s  (ran {', '.join(ran)}); "
                      f"hint-only / full = {hint_only / full:.2f}")

                ratios = iter(np.linspace(0, 1, 1000))
                full_res = median_seconds(lambda: client.blend(second, next(ratios), channels="BGRA"), args.blends)
                preview_size = [round(1280 * page.shape[1] / page.shape[0]), 1280]
                preview = median_seconds(lambda: client.blend(second, next(ratios), size=preview_size,
                                                              channels="BGRA"), args.blends * 2)
                print(f"blend, full page  {full_res * 1000:7.1f} ms  {1 / full_res:5.1f} updates/s  "
                      f"blend / ping = {full_res / ping:.0f}")
                print(f"blend, {preview_size[0]}x{preview_size[1]} {preview * 1000:6.1f} ms  "
                      f"{1 / preview:5.1f} updates/s  blend / ping = {preview / ping:.0f}")
                client.shutdown()
        finally:
            server.wait(30)


if __name__ == "__main__":
    main()
