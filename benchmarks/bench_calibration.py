"""How far the first time left is from the run it estimates, from the backend's calibration
alone (engine/calibration.py), on the CPU (issue: about 10 min shown for a 139 s run).

Full-size random weights, the engine's default precision; the A4 synthetic page of
bench_page.py. The calibration runs once (its seconds printed); then, for each max size, a
page colorized with nothing but the calibration known (its speeds copied fresh each time: a
job replaces them), its first estimate (the first progress event that says a time left, at
the rough colours' start) against the run, the page-size output included as the server
makes it. A ratio above 1 is an estimate too long.

    python benchmarks/bench_calibration.py [--max-size 384 768]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_page import synthetic_page  # noqa: E402
from fullsize_weights import write_fullsize_weights  # noqa: E402

from inknhue.engine.calibration import calibrate  # noqa: E402
from inknhue.engine.pipeline import Engine, output_made  # noqa: E402
from inknhue.page.output import render_uint8  # noqa: E402
from inknhue.rough import RoughRequest, get_provider  # noqa: E402
from inknhue.runtime import host_memory, progress  # noqa: E402


def fresh(speeds: progress.Speeds) -> progress.Speeds:
    copied = progress.Speeds()
    copied.per_work, copied.per_pixel = dict(speeds.per_work), dict(speeds.per_pixel)
    copied.fixed, copied.calibrated = dict(speeds.fixed), set(speeds.calibrated)
    return copied


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-size", type=int, nargs="+", default=[384, 768])
    args = parser.parse_args()
    host_memory.reuse_freed_memory()
    page, rough = synthetic_page()
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(write_fullsize_weights(Path(tmp)), "cpu")
        engine.load()
        calibrated = progress.Speeds()
        found = calibrate(engine, lambda: False, speeds=calibrated)
        print(f"calibration: {found.state} in {found.seconds:.1f} s")
        for max_size in args.max_size:
            progress.SPEEDS = fresh(calibrated)  # what a backend knows before its first job
            estimates = []

            def heard(event, estimates=estimates):
                if event.eta is not None and not estimates:
                    estimates.append((event.eta, event.eta_from))

            started = time.perf_counter()
            result = engine.colorize(page, get_provider("image"), RoughRequest(page=page, rough=rough),
                                     max_size=max_size, progress=heard)
            rendering = time.perf_counter()
            render_uint8(result, 0.8, "page")
            output_made(time.perf_counter() - rendering, result.page_size)
            seconds = time.perf_counter() - started
            eta, basis = estimates[0] if estimates else (float("nan"), None)
            print(f"max size {max_size}: first estimate {eta:.1f} s ({basis}), the run {seconds:.1f} s: "
                  f"{eta / seconds:.2f}x")
            work = engine.plan_work(result.page_size, max_size)
            pixels = {"rough": page.shape[0] * page.shape[1], "blend": result.working_size[0] * result.working_size[1]}
            stages = []
            for stage, seconds in result.timings.items():
                fitted = found.stages.get(stage, {})
                said = fitted.get("fixed", 0.0) + fitted.get("per_work", 0.0) * work.get(stage, 0.0) + \
                    fitted.get("per_pixel", 0.0) * pixels.get(stage, 0.0)
                stages.append(f"{stage} {said:.1f}/{seconds:.1f}")
            print("  per stage, estimated/run (s): " + ", ".join(stages))


if __name__ == "__main__":
    main()
