"""A chapter through the local loop and through Ray (batch/cluster.py), in one run.

The same pages (web scans of the realistic corpus, tests/corpus.py), the same full-size
random weights (the released architectures), --precision reference. Prints, for the local
loop and for Ray with 1 and with N actors:

- throughput: pages per minute over the chapter once every engine is warm (from each
  engine's first page done to the last page done), and its growth with actors against 1;
- Ray's overhead per page: the local loop's throughput over Ray's with 1 actor of the same
  CPUs, less 1 (goal on a GPU: under 5% of a page at A4 768);
- seconds per page as the "done" lines say (the median of the warm pages): in the local
  loop a page's whole time; on Ray from sending the page to recording its result, so a
  page waiting in its actor's queue (IN_FLIGHT) counts its wait too.

On a CPU, actors share the machine's cores: with N actors of C/N CPUs each, throughput
shows how well pages in parallel use the cores, not how more GPUs would add up (on GPUs
each actor has its own).

    python benchmarks/bench_cluster.py [--pages 8] [--max-size 384] [--actors 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

import corpus  # noqa: E402
from fullsize_weights import write_fullsize_weights  # noqa: E402

from inknhue import cli  # noqa: E402

DONE = re.compile(r"^done (\S+): .* in ([0-9.]+) s")


class Lines(logging.Handler):
    """The chapter's lines, with when they came."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.seen: list[tuple[float, str]] = []

    def emit(self, record):
        self.seen.append((time.perf_counter(), record.getMessage()))


def chapter(folder: Path, weights: Path, out: Path, args, *extra) -> dict:
    lines = Lines()
    for name in ("inknhue.batch.chapter", "inknhue.batch.cluster"):
        logger = logging.getLogger(name)
        logger.addHandler(lines)
        logger.setLevel(logging.INFO)
    started = time.perf_counter()
    try:
        code = cli.main(["colorize", str(folder / "pages"), "--hints", str(folder / "hints"), "-o", str(out),
                         "--weights", str(weights), "--device", args.device, "--max-size", str(args.max_size),
                         "--precision", "reference", *map(str, extra)])
    finally:
        for name in ("inknhue.batch.chapter", "inknhue.batch.cluster"):
            logging.getLogger(name).removeHandler(lines)
    assert code == 0, f"the chapter failed ({code})"
    done = [(when, float(m.group(2))) for when, text in lines.seen if (m := DONE.match(text))]
    engines = int(extra[extra.index("--actors") + 1]) if "--actors" in extra else 1
    warm = done[engines:]  # each engine's first page loads its models
    span = warm[-1][0] - done[engines - 1][0] if len(warm) else float("nan")
    return {"page": statistics.median(s for _, s in warm), "per_min": 60 * len(warm) / span,
            "total": time.perf_counter() - started}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=8)
    parser.add_argument("--max-size", type=int, default=384)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()

    import ray
    import torch

    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = write_fullsize_weights(tmp / "weights")
        (tmp / "pages").mkdir()
        (tmp / "hints").mkdir()
        for page in corpus.corpus(("web",), count=args.pages):
            (tmp / "pages" / f"{page.name}.jpg").write_bytes(page.encoded)
            Image.fromarray(page.hints, "RGBA").save(tmp / "hints" / f"{page.name}.png")
        gpus = torch.cuda.device_count() if args.device == "cuda" else 0
        ray.init(num_cpus=cpus, num_gpus=gpus, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False)
        try:
            local = chapter(tmp, weights, tmp / "local", args)
            per_actor = cpus if args.device == "cpu" else 1
            one = chapter(tmp, weights, tmp / "ray1", args, "--cluster", "ray", "--actors", 1,
                          *(["--actor-cpus", per_actor] if args.device == "cpu" else []))
            many = chapter(tmp, weights, tmp / f"ray{args.actors}", args, "--cluster", "ray", "--actors", args.actors,
                           *(["--actor-cpus", max(1, cpus // args.actors)] if args.device == "cpu" else []))
        finally:
            ray.shutdown()
        same = all((tmp / "local" / p.name).read_bytes() == (tmp / "ray1" / p.name).read_bytes()
                   for p in (tmp / "local").glob("*.png"))

    kind = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU, {cpus} cores"
    print(f"a chapter of {args.pages} web-scan pages at max size {args.max_size}, --precision reference, on {kind}")
    print(f"{'':24s} {'s / page':>9s} {'pages/min':>10s} {'whole run s':>12s}")
    for name, figures in (("local loop", local), ("Ray, 1 actor", one), (f"Ray, {args.actors} actors", many)):
        print(f"{name:24s} {figures['page']:9.2f} {figures['per_min']:10.1f} {figures['total']:12.1f}")
    overhead = local["per_min"] / one["per_min"] - 1
    print(f"Ray's overhead per page (local loop's pages/min over 1 actor's, - 1): {100 * overhead:+.1f}%")
    print(f"throughput, {args.actors} actors / 1 actor: {many['per_min'] / one['per_min']:.2f}x")
    print(f"Ray's 1-actor files equal the local loop's byte for byte: {same}")


if __name__ == "__main__":
    main()
