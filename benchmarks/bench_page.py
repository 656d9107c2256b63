"""One A4 page (2480x3508, 300 dpi) through the whole pipeline at max size 768.

Full-size random weights (the released architectures), CPU by default. Prints the time
of each stage and two ratios measured in the same run:
  - page / yardstick: the page's time over a fixed float32 matmul workload, so figures
    from different machines can be compared;
  - engine / published form: this engine (channels-last tensors, fused attention) against
    the same networks run as the published code runs them (default tensor layout, the
    einsum attention that materialises the hw x hw matrix).

    python benchmarks/bench_page.py [--max-size 768] [--repeat 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))

from fullsize_weights import write_fullsize_weights  # noqa: E402
from inknhue.networks import alignment  # noqa: E402
from inknhue.pipeline import STAGES, Engine  # noqa: E402
from inknhue.rough import RoughRequest, get_provider  # noqa: E402


def synthetic_page(width=2480, height=3508, seed=0):
    """Panels, ink strokes and a screentone patch on white; and blotchy rough colours."""
    rng = np.random.default_rng(seed)
    page = np.full((height, width), 255, np.uint8)
    for x0, y0, x1, y1 in ((100, 100, 2380, 1700), (100, 1800, 1200, 3400), (1280, 1800, 2380, 3400)):
        cv2.rectangle(page, (x0, y0), (x1, y1), 0, 8)
    for _ in range(60):
        centre = (int(rng.integers(200, width - 200)), int(rng.integers(200, height - 200)))
        cv2.circle(page, centre, int(rng.integers(30, 300)), 0, int(rng.integers(2, 7)))
    yy, xx = np.mgrid[0:600, 0:800]
    page[2000:2600, 1400:2200][((yy % 8) < 3) & ((xx % 8) < 3)] = 60
    rough = cv2.GaussianBlur(rng.integers(0, 256, (height // 64, width // 64, 3), dtype=np.uint8), (3, 3), 0)
    rough = cv2.resize(rough, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.repeat(page[:, :, None], 3, axis=2), rough


def yardstick(seconds=1.0) -> float:
    """Seconds per fixed workload: 2048^3 float32 multiply-adds."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        runs += 1
    return (time.perf_counter() - started) / runs


@contextmanager
def published_form(engine):
    """Run as the published code does: default layout, explicit softmax(QK^T / sqrt(c)) V."""
    def forward(self, x):
        b, c, h, w = x.shape
        x_norm = self.norm(x)
        q, k, v = (conv(x_norm).view(b, c, h * w) for conv in (self.q, self.k, self.v))
        attn = F.softmax(torch.einsum("bci,bcj->bij", q, k) * c ** -0.5, dim=2)
        return x + self.proj_out(torch.einsum("bij,bcj->bci", attn, v).view(b, c, h, w))

    original = alignment.AttnBlock.forward, engine.memory_format
    alignment.AttnBlock.forward = forward
    engine.memory_format = torch.contiguous_format
    try:
        yield
    finally:
        alignment.AttnBlock.forward, engine.memory_format = original


def run(engine, page, rough, max_size, repeat):
    request = RoughRequest(page=page, rough=rough)
    provider = get_provider("image")
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = engine.colorize(page, provider, request, max_size=max_size)
        result.final(0.8, "page")
        runs.append((time.perf_counter() - started, result.timings))
    return runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-size", type=int, default=768)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        weights_dir = write_fullsize_weights(Path(tmp))
        engine = Engine(weights_dir, args.device)
        load = engine.load()
        page, rough = synthetic_page()
        print(f"device {engine.device} ({engine.describe()['name']}), torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads; page {page.shape[1]}x{page.shape[0]}, "
              f"max size {args.max_size}; weights loaded in {load:.2f} s")

        run(engine, page, rough, args.max_size, 1)  # warm-up
        runs = run(engine, page, rough, args.max_size, args.repeat)
        total = statistics.median(t for t, _ in runs)
        for stage in STAGES:
            seconds = statistics.median(timings[stage] for _, timings in runs)
            print(f"  {stage:<10} {seconds:8.3f} s  {seconds / total:6.1%}")
        print(f"  {'page':<10} {total:8.3f} s  (median of {args.repeat}, incl. resize to page size)")

        unit = yardstick()
        print(f"yardstick (2048^3 matmul) {unit * 1000:.1f} ms; page / yardstick = {total / unit:.0f}")

        with published_form(engine):
            engine.load()
            run(engine, page, rough, args.max_size, 1)  # warm-up
            baseline = run(engine, page, rough, args.max_size, 1)[0][0]
        print(f"published form {baseline:.3f} s; engine / published form = {total / baseline:.2f}")

if __name__ == "__main__":
    main()
