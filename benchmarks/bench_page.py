"""One A4 page (2480x3508, 300 dpi) through the whole pipeline at max size 768.

Full-size random weights (the released architectures), CPU by default. For each engine
precision asked (engine_options.py) prints the time of each stage, and, measured in the
same run:
  - page / yardstick: the page's time over a fixed float32 matmul workload, so figures
    from different machines can be compared;
  - engine / published form: this engine (channels-last tensors, fused attention, its
    precision, activations and sums in place, the C heap reusing freed memory as
    `inknhue colorize` sets it up: host_memory.py) against the same networks run as the
    published code runs them on this device (float32 on a CPU, default tensor layout, the
    einsum attention that materialises the hw x hw matrix, a fresh tensor for every
    activation and sum), in a process of its own on glibc's default heap;
  - each precision's deviation from the float32 reference, in 8-bit levels (max and 99th
    percentile of |difference|) of the VAE output and the result at ratio 0.8, on the
    full-size random weights and on the parity weights (tests/data/parity).

    python benchmarks/bench_page.py [--max-size 768] [--repeat 2] [--device cpu]
        [--precision reference fast]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
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

from inknhue.engine.options import EngineOptions  # noqa: E402
from inknhue.engine.pipeline import STAGES, Engine  # noqa: E402
from inknhue.networks import alignment  # noqa: E402
from inknhue.rough import RoughRequest, get_provider  # noqa: E402
from inknhue.runtime import host_memory  # noqa: E402


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
    """Run as the published code does: default layout, explicit softmax(QK^T / sqrt(c)) V,
    a fresh tensor for each activation and sum of the ResNet blocks."""
    def attention(self, x):
        b, c, h, w = x.shape
        x_norm = self.norm(x)
        q, k, v = (conv(x_norm).view(b, c, h * w) for conv in (self.q, self.k, self.v))
        attn = F.softmax(torch.einsum("bci,bcj->bij", q, k) * c ** -0.5, dim=2)
        return x + self.proj_out(torch.einsum("bij,bcj->bci", attn, v).view(b, c, h, w))

    def resnet_block(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.nin_shortcut(x) + h

    original = (alignment.AttnBlock.forward, alignment.ResnetBlock.forward, engine.memory_format,
                engine.vae_memory_format)
    alignment.AttnBlock.forward, alignment.ResnetBlock.forward = attention, resnet_block
    engine.memory_format = engine.vae_memory_format = torch.contiguous_format
    try:
        yield
    finally:
        (alignment.AttnBlock.forward, alignment.ResnetBlock.forward, engine.memory_format,
         engine.vae_memory_format) = original


def published_child(args) -> None:
    """The published form's page time, printed for the parent (a process on glibc's default heap)."""
    page, rough = np.load(Path(args.data) / "page.npy"), np.load(Path(args.data) / "rough.npy")
    engine = Engine(args.weights, args.device, EngineOptions("published"))
    with published_form(engine):
        engine.load()
        run(engine, page, rough, args.max_size, 1)  # warm-up
        print(f"PUBLISHED {run(engine, page, rough, args.max_size, 1)[0][0]}", flush=True)


def published_time(weights_dir: Path, page, rough, args) -> float:
    with tempfile.TemporaryDirectory() as data:
        np.save(Path(data) / "page.npy", page)
        np.save(Path(data) / "rough.npy", rough)
        done = subprocess.run([sys.executable, __file__, "--published-child", "--weights", str(weights_dir),
                               "--data", data, "--device", args.device, "--max-size", str(args.max_size)],
                              capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("PUBLISHED ")]
    if not lines:
        raise SystemExit(f"the published form failed: {done.stderr.strip()[-2000:]}")
    return float(lines[-1].split()[1])


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


def levels(a: np.ndarray, b: np.ndarray) -> str:
    difference = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return f"max {difference.max()}, p99 {np.percentile(difference, 99):.0f}"


def deviation(results: dict, precision: str) -> str:
    got, reference = results[precision], results["reference"]
    return (f"VAE output {levels(got.generated, reference.generated)}; "
            f"ratio 0.8 {levels(got.final(0.8, 'working'), reference.final(0.8, 'working'))}")


def parity_deviations(precisions, device) -> None:
    """The same on the parity weights and page (tests/data/parity), at max size 64."""
    sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
    from parity import case, write_released_layout

    with tempfile.TemporaryDirectory() as tmp:
        weights_dir = write_released_layout(Path(tmp))
        page = case("page_rgb_uint8")
        request = RoughRequest(page=page, rough=case("app_rough_uint8"))
        results = {p: Engine(weights_dir, device, EngineOptions(p)).colorize(page, get_provider("image"), request,
                                                                              max_size=64) for p in precisions}
        for precision in precisions:
            if precision != "reference":
                print(f"  parity weights, {precision} vs reference: {deviation(results, precision)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-size", type=int, default=768)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", nargs="+", default=["reference", "fast"],
                        choices=("reference", "published", "fast"))
    parser.add_argument("--published-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.published_child:
        return published_child(args)
    host_memory.reuse_freed_memory()  # as the commands that run pages do
    precisions = list(dict.fromkeys(["reference", *args.precision]))  # the reference, for the deviations

    with tempfile.TemporaryDirectory() as tmp:
        weights_dir = write_fullsize_weights(Path(tmp))
        page, rough = synthetic_page()
        times, results = {}, {}
        for precision in precisions:
            engine = Engine(weights_dir, args.device, EngineOptions(precision))
            load = engine.load()
            if precision == precisions[0]:
                print(f"device {engine.device} ({engine.describe()['name']}), torch {torch.__version__}, "
                      f"{torch.get_num_threads()} threads; page {page.shape[1]}x{page.shape[0]}, "
                      f"max size {args.max_size}")
            print(f"precision {precision}: {engine.precision_why}; weights loaded in {load:.2f} s")
            run(engine, page, rough, args.max_size, 1)  # warm-up
            runs = run(engine, page, rough, args.max_size, args.repeat)
            times[precision] = total = statistics.median(t for t, _ in runs)
            for stage in STAGES:
                seconds = statistics.median(timings[stage] for _, timings in runs)
                print(f"  {stage:<10} {seconds:8.3f} s  {seconds / total:6.1%}")
            print(f"  {'page':<10} {total:8.3f} s  (median of {args.repeat}, incl. the page-size result)")
            results[precision] = engine.colorize(page, get_provider("image"), RoughRequest(page=page, rough=rough),
                                                 max_size=args.max_size)

        unit = yardstick()
        print(f"yardstick (2048^3 matmul) {unit * 1000:.1f} ms; page / yardstick = "
              + ", ".join(f"{p} {t / unit:.0f}" for p, t in times.items()))

        baseline = published_time(weights_dir, page, rough, args)
        print(f"published form {baseline:.3f} s; engine / published form = "
              + ", ".join(f"{p} {t / baseline:.2f}" for p, t in times.items()))
        for precision in precisions:
            if precision != "reference":
                print(f"  full-size weights, {precision} vs reference: {deviation(results, precision)}")
        parity_deviations(precisions, args.device)


if __name__ == "__main__":
    main()
