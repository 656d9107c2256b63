"""Peak memory of one A4 page (2480x3508) through the whole pipeline, banded vs untiled.

Full-size random weights (the released architectures). Each configuration runs in its own
process, so each peak is its own: peak RSS from getrusage (the CPU's memory, torch and the
weights included), and torch.cuda.max_memory_allocated on CUDA. Prints, per max size,
each configuration's peak and time and their ratios to the untiled run of the same
invocation (the baseline).

On the CPU a child may not pass --limit-gb of resident memory: its address space is
capped (RLIMIT_AS) so that a configuration that needs more fails inside the child, and is
reported as "over N GiB", instead of taking the machine down.

    python benchmarks/bench_memory.py [--sizes 768 1536 2048] [--modes untiled banded]
        [--device cpu] [--precision reference] [--limit-gb 16] [--heap reuse default]

Modes: untiled (the reference), banded (the engine's default plan), kept and lean (bands,
intermediates kept or recomputed). Heaps: reuse (freed memory kept for the next tensor on
pages whose VAE runs untiled, as `inknhue colorize` and `serve` set it up: host_memory.py)
and default (glibc's own: fresh pages for every large tensor); each its own configuration.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

GIB = 1 << 30
MODES = ("untiled", "banded", "kept", "lean")


def _status(key: str) -> int:
    """A field of /proc/self/status, in bytes."""
    return int(re.search(rf"{key}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024


class StagePeaks:
    """The largest RSS seen during each stage (sampled; getrusage has the true overall peak)."""

    def __init__(self):
        self.stage, self.peaks = "load", {}
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self):
        while True:
            rss = _status("VmRSS")
            self.peaks[self.stage] = max(self.peaks.get(self.stage, 0), rss)
            time.sleep(0.005)

    def __call__(self, event):
        if event.seconds is None:
            self.stage = event.stage


def child(args) -> dict:
    import torch

    from inknhue.engine.options import EngineOptions
    from inknhue.engine.pipeline import Engine
    from inknhue.errors import DeviceError
    from inknhue.networks.banded import Banding
    from inknhue.rough import RoughRequest, get_provider
    from inknhue.runtime import host_memory

    if args.device == "cpu" and hasattr(resource, "RLIMIT_AS"):
        # the address space may grow by what resident memory may: the limit less what is resident
        allowed = _status("VmSize") + int(args.limit_gb * GIB) - _status("VmRSS")
        resource.setrlimit(resource.RLIMIT_AS, (allowed, allowed))
    if args.heap == ["reuse"]:  # one heap per child
        host_memory.reuse_freed_memory()
    banding = {"untiled": Banding(enabled=False), "banded": Banding(enabled=True),
               "kept": Banding(enabled=True, lean=False), "lean": Banding(enabled=True, lean=True)}[args.mode]
    engine = Engine(args.weights, args.device, options=EngineOptions(precision=args.precision, banding=banding))
    peaks = StagePeaks()
    engine.load()
    loaded = _status("VmRSS")
    page, rough = np.load(Path(args.data) / "page.npy"), np.load(Path(args.data) / "rough.npy")
    report = {"mode": args.mode, "heap": args.heap[0], "loaded": loaded, "threads": torch.get_num_threads()}
    started = time.perf_counter()
    try:
        result = engine.colorize(page, get_provider("image"), RoughRequest(page=page, rough=rough),
                                 max_size=args.max_size, progress=peaks)
        peaks.stage = "output"
        result.final(0.8, "page")
        report.update(seconds=time.perf_counter() - started, timings=result.timings)
    except (DeviceError, MemoryError) as exc:
        report.update(over=True, error=str(exc).splitlines()[0][:200])
    report.update(peak=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, stages=dict(peaks.peaks))
    if engine.device.type == "cuda":
        report["cuda_peak"] = torch.cuda.max_memory_allocated()
    plan = engine.band_plan(*_working(page, args.max_size))
    report["plan"] = None if plan is None else {"lean": plan.lean}
    return report


def _working(page, max_size):
    from inknhue.page.imaging import working_size

    w, h = working_size(page.shape[1], page.shape[0], max_size)
    return h, w


def _gib(value: int) -> str:
    return f"{value / GIB:6.2f} GiB"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[768, 1536, 2048])
    parser.add_argument("--modes", nargs="+", default=["untiled", "banded"], choices=MODES)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("fast", "published", "reference"), default="reference",
                        help="the engine's precision (engine_options.py; default reference: float32, the most memory)")
    parser.add_argument("--limit-gb", type=float, default=16.0, help="GiB of resident memory a CPU child may use")
    parser.add_argument("--heap", nargs="+", default=["reuse"], choices=("reuse", "default"),
                        help="the C heap's settings (host_memory.py; default reuse, as the commands run)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--max-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args)), flush=True)
        return

    import torch
    from bench_page import synthetic_page
    from fullsize_weights import write_fullsize_weights

    with tempfile.TemporaryDirectory() as tmp:
        weights_dir = write_fullsize_weights(Path(tmp) / "weights")
        page, rough = synthetic_page()
        np.save(Path(tmp) / "page.npy", page)
        np.save(Path(tmp) / "rough.npy", rough)
        print(f"A4 page {page.shape[1]}x{page.shape[0]}, device {args.device}, VAE "
              f"{args.precision} precision, torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads, children limited to {args.limit_gb:g} GiB resident", flush=True)
        for max_size in args.sizes:
            runs = {}
            for mode, heap in ((mode, heap) for mode in args.modes for heap in args.heap):
                name = mode if len(args.heap) == 1 else f"{mode}/{heap}"
                command = [sys.executable, __file__, "--child", "--mode", mode, "--max-size", str(max_size),
                           "--weights", str(weights_dir), "--data", tmp, "--device", args.device,
                           "--limit-gb", str(args.limit_gb), "--heap", heap]
                command += ["--precision", args.precision]
                done = subprocess.run(command, capture_output=True, text=True)
                lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
                if not lines:  # killed: by the limit, or otherwise
                    runs[name] = {"mode": name, "over": True, "peak": int(args.limit_gb * GIB),
                                  "error": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1][:200]}
                else:
                    runs[name] = {**json.loads(lines[-1][len("RESULT "):]), "mode": name}
                print(_line(max_size, runs[name], args.limit_gb), flush=True)
            base = next(iter(runs.values()))  # the first mode and heap asked: untiled by default
            for name, run in runs.items():
                if run is not base:
                    print(f"  {max_size:>5} {name} / {base['mode']}: {_ratio(run, base, args.limit_gb)}", flush=True)


def _line(max_size: int, run: dict, limit_gb: float) -> str:
    if run.get("over"):
        text = f"  {max_size:>5} {run['mode']:<15} over {limit_gb:g} GiB ({run.get('error', '')})"
        return text
    stages = " ".join(f"{k} {v / GIB:.1f}" for k, v in run["stages"].items())
    cuda = f", CUDA peak {_gib(run['cuda_peak'])}" if "cuda_peak" in run else ""
    plan = run.get("plan")
    plan = "untiled" if plan is None else ("lean" if plan["lean"] else "kept")
    timings = " ".join(f"{k} {v:.1f}" for k, v in run["timings"].items())
    return (f"  {max_size:>5} {run['mode']:<15} peak RSS {_gib(run['peak'])} (after loading {_gib(run['loaded'])})"
            f"{cuda}, {run['seconds']:7.1f} s ({timings}) [VAE {plan}]; stage peaks GiB: {stages}")


def _ratio(run: dict, base: dict, limit_gb: float) -> str:
    if run.get("over"):
        return "over the limit"
    key = "cuda_peak" if "cuda_peak" in run else "peak"
    if base.get("over"):
        return f"memory < {run[key] / (limit_gb * GIB):.2f} (untiled over {limit_gb:g} GiB)"
    return f"memory {run[key] / base[key]:.2f}, time {run['seconds'] / base['seconds']:.2f}"


if __name__ == "__main__":
    main()
