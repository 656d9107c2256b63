"""Every speed figure of the GPU goals in one command: this engine against the published
path, measured in the same run, on one A4 page (2480x3508) with full-size random weights.

Prints the device and torch version, then:
  - page in to result out at max size 768: the published path (the published app's code
    path: float32 shader, bf16 VAE on CUDA, default layout, einsum attention) to its
    working-size result, and this engine (each precision asked) to the working-size and
    the page-size result, with each stage's time; ratios engine / published;
  - a re-run with new rough colours (shading and conditioning from the cache), and with
    new flats strokes (the flats provider included);
  - a slider blend: a new ratio of a finished page at the page size and at the working size;
  - max sizes 768, 1536, 2048: time and peak memory (torch.cuda.max_memory_allocated on
    CUDA, peak RSS on a CPU), published path and engine;
  - first start and later start: a fresh process loading the networks and running its
    first and second page, twice (what caches across runs, e.g. cuDNN's or a compiler's,
    shows as the second start being faster);
  - each precision's deviation from the float32 reference (max, 99th percentile, levels).

    python benchmarks/bench_gpu.py [--device cuda] [--sizes 768 1536 2048] [--repeat 5]
        [--precision fast published]

Runs on any CUDA machine with only the project's dependencies; on a CPU (--device cpu
--sizes 128) it checks itself in minutes.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from bench_page import levels, published_form, synthetic_page  # noqa: E402
from fullsize_weights import write_fullsize_weights  # noqa: E402

from inknhue.engine.options import EngineOptions  # noqa: E402
from inknhue.engine.pipeline import STAGES, Engine  # noqa: E402
from inknhue.rough import RoughRequest, get_provider  # noqa: E402
from inknhue.runtime.cache import StageCache  # noqa: E402

GIB = 1 << 30


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeat: int):
    """Median seconds of `repeat` calls after one warm-up; the last call's value."""
    value = fn()
    seconds = []
    for _ in range(repeat):
        sync(device)
        started = time.perf_counter()
        value = fn()
        sync(device)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), value


def peak_memory(device, fn) -> tuple[float, int]:
    """Seconds of one call and its peak memory (CUDA: allocated; CPU: the process's peak RSS so far)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    started = time.perf_counter()
    fn()
    sync(device)
    seconds = time.perf_counter() - started
    if device.type == "cuda":
        return seconds, torch.cuda.max_memory_allocated(device)
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def strokes_page(page: np.ndarray, seed: int) -> np.ndarray:
    """RGBA hint strokes for flats: a few coloured lines."""
    import cv2

    rng = np.random.default_rng(seed)
    hints = np.zeros((*page.shape[:2], 4), np.uint8)
    for _ in range(24):
        p0 = (int(rng.integers(150, page.shape[1] - 150)), int(rng.integers(150, page.shape[0] - 150)))
        p1 = (p0[0] + int(rng.integers(-120, 120)), p0[1] + int(rng.integers(-120, 120)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3)) + (255,)
        cv2.line(hints, p0, p1, colour, 12)
    return hints


def start_child(args) -> None:
    """A fresh process: load, first page, second page (printed as JSON)."""
    device = torch.device(args.device)
    page, rough = synthetic_page()
    request = RoughRequest(page=page, rough=rough)
    started = time.perf_counter()
    engine = Engine(args.weights, args.device, EngineOptions(args.precision[0]))
    engine.load()
    loaded = time.perf_counter() - started
    pages = []
    for _ in range(2):
        sync(device)
        started = time.perf_counter()
        engine.colorize(page, get_provider("image"), request, max_size=args.sizes[0]).final(0.8, "page")
        sync(device)
        pages.append(time.perf_counter() - started)
    print("RESULT " + json.dumps({"load": loaded, "first": pages[0], "second": pages[1]}), flush=True)


def engine_figures(precision, engine, page, rough, size, device, repeat, base):
    """Page in to result out, the cached re-runs and the slider, for one engine."""
    image, request = get_provider("image"), RoughRequest(page=page, rough=rough)
    engine.load()
    working, _ = timed(lambda: engine.colorize(page, image, request, max_size=size).final(0.8, "working"),
                       device, repeat)
    full, _ = timed(lambda: engine.colorize(page, image, request, max_size=size).final(0.8, "page"), device, repeat)
    result = engine.colorize(page, image, request, max_size=size)
    stages = ", ".join(f"{s} {result.timings[s] * 1000:.1f}" for s in STAGES)
    print(f"  engine {precision:<9} working-size result {working * 1000:9.1f} ms ({working / base:.2f}); "
          f"page-size result {full * 1000:9.1f} ms ({full / base:.2f}); stages ms: {stages}")

    cache = StageCache()
    engine.colorize(page, image, request, max_size=size, cache=cache)
    shifts = iter(range(1, 4 * repeat + 4))

    def new_rough():
        other = RoughRequest(page=page, rough=np.roll(rough, 37 * next(shifts), axis=1))
        return engine.colorize(page, image, other, max_size=size, cache=cache).final(0.8, "page")

    rerun, _ = timed(new_rough, device, repeat)
    flats = get_provider("flats")
    strokes = iter([strokes_page(page, seed) for seed in range(repeat + 2)])
    engine.colorize(page, flats, RoughRequest(page=page, hints=next(strokes)), max_size=size, cache=cache)

    def new_strokes():
        hinted = RoughRequest(page=page, hints=next(strokes))
        return engine.colorize(page, flats, hinted, max_size=size, cache=cache).final(0.8, "page")

    rerun_flats, _ = timed(new_strokes, device, repeat)
    ratios = iter(np.linspace(0.05, 0.95, 4 * repeat + 4))
    slider_page, _ = timed(lambda: result.final(float(next(ratios)), "page"), device, repeat)
    slider_working, _ = timed(lambda: result.final(float(next(ratios)), "working"), device, repeat)
    print(f"    re-run, new rough colours (shading cached): {rerun * 1000:.1f} ms; new flats strokes: "
          f"{rerun_flats * 1000:.1f} ms; slider blend at page size {slider_page * 1000:.1f} ms, "
          f"at working size {slider_working * 1000:.1f} ms")
    return result


def published_result(engine, page, request, max_size) -> np.ndarray:
    """The published path's result: the networks, then the CIELAB blend in numpy on the host
    at the working size, as app.py does."""
    result = engine.colorize(page, get_provider("image"), request, max_size=max_size)
    result.device = None
    return result.final(0.8, "working")


def size_figures(published, engines, page, request, max_size, device) -> str:
    image = get_provider("image")
    with published_form(published):
        try:
            seconds, peak = peak_memory(device, lambda: published_result(published, page, request, max_size))
            line = f"published {seconds:7.2f} s, {peak / GIB:5.1f} GiB"
        except Exception as exc:  # the published decoder fails at some sizes
            line = f"published fails ({type(exc).__name__}: {str(exc).splitlines()[0][:80]})"
    for precision, engine in engines.items():
        seconds, peak = peak_memory(device, lambda: engine.colorize(  # noqa: B023  (called at once)
            page, image, request, max_size=max_size).final(0.8, "page"))
        line += f"; engine {precision} {seconds:7.2f} s, {peak / GIB:5.1f} GiB"
    return line


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sizes", type=int, nargs="+", default=[768, 1536, 2048])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--precision", nargs="+", default=["fast"], choices=("fast", "published", "reference"))
    parser.add_argument("--start-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.start_child:
        return start_child(args)

    device = torch.device(args.device)
    size = args.sizes[0]
    with tempfile.TemporaryDirectory() as tmp:
        weights_dir = write_fullsize_weights(Path(tmp))
        page, rough = synthetic_page()
        request = RoughRequest(page=page, rough=rough)
        image = get_provider("image")
        engines = {p: Engine(weights_dir, args.device, EngineOptions(p)) for p in args.precision}
        published = Engine(weights_dir, args.device, EngineOptions("published"))
        name = next(iter(engines.values())).describe()["name"]
        print(f"device {device} ({name}), torch {torch.__version__}, CUDA {torch.version.cuda}, "
              f"cuDNN {torch.backends.cudnn.version() if device.type == 'cuda' else '-'}; "
              f"page {page.shape[1]}x{page.shape[0]}, full-size random weights, median of {args.repeat}")

        print(f"\npage in, result out, max size {size}:")
        with published_form(published):
            published.load()
            base, _ = timed(lambda: published_result(published, page, request, size), device, args.repeat)
        print(f"  published path, working-size result {base * 1000:9.1f} ms (1.00)")
        results = {precision: engine_figures(precision, engine, page, rough, size, device, args.repeat, base)
                   for precision, engine in engines.items()}

        print("\nmax sizes (one run each, peak memory of that run):")
        for max_size in args.sizes:
            print(f"  {max_size:>5}: {size_figures(published, engines, page, request, max_size, device)}")

        print("\nstarts (fresh processes, one after the other):")
        for start in ("first", "later"):
            command = [sys.executable, __file__, "--start-child", "--weights", str(weights_dir), "--device",
                       args.device, "--sizes", str(size), "--precision", args.precision[0]]
            done = subprocess.run(command, capture_output=True, text=True)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if not lines:
                print(f"  {start} start failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
                continue
            run = json.loads(lines[-1][len("RESULT "):])
            print(f"  {start} start: load {run['load']:.2f} s, first page {run['first'] * 1000:.0f} ms, "
                  f"second page {run['second'] * 1000:.0f} ms")

        reference = Engine(weights_dir, args.device, EngineOptions("reference"))
        expected = reference.colorize(page, image, request, max_size=size)
        print(f"\ndeviation from the float32 reference at {size}:")
        for precision, result in results.items():
            print(f"  {precision}: VAE output {levels(result.generated, expected.generated)}; ratio 0.8 working "
                  f"{levels(result.final(0.8, 'working'), expected.final(0.8, 'working'))}; page "
                  f"{levels(result.final(0.8, 'page'), expected.final(0.8, 'page'))}")


if __name__ == "__main__":
    main()
