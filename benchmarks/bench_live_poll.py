"""Live colour's look at the hint layer, in a real Krita (Krita 5 and Xvfb, as the e2e tests).

While Live is on, the docker fingerprints the hint layer every quarter second on Krita's
GUI thread (`document.layer_fingerprint`: its exact bounds, and a CRC-32 of its pixels
within them, read in bands). Prints its cost on an A4 page at 300 dpi (2480x3508 BGRA
8-bit, 35 MB) painted all over, and on one painted over a quarter of it, against the
baseline of reading the layer whole and hashing it in one piece, measured in the same run;
and as a share of the poll interval.

    python benchmarks/bench_live_poll.py [--width 2480] [--height 3508]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0:0] = [str(ROOT / "tests"), str(ROOT / "plugin")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=2480)
    parser.add_argument("--height", type=int, default=3508)
    args = parser.parse_args()
    if not (shutil.which("krita") and shutil.which("Xvfb")):
        sys.exit("needs krita and Xvfb (apt-get install krita xvfb xauth python3-zmq)")
    from inknhue_krita.live import POLL_S
    from test_krita_e2e import krita_home, run_krita

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = krita_home(root, with_backend=False, weights=root)
        report = run_krita(root, env, {"mode": "poll_cost", "width": args.width, "height": args.height})
    full, quarter = report["fingerprint_full_ms"], report["fingerprint_quarter_ms"]
    baseline = report["whole_read_crc_ms"]
    print(f"hint layer {args.width}x{args.height} BGRA 8-bit, medians in a real Krita:")
    print(f"  baseline: read whole + CRC-32   {baseline:7.2f} ms (the read alone {report['whole_read_ms']:.2f} ms)")
    print(f"  fingerprint, painted all over   {full:7.2f} ms  = {full / baseline:.2f} x baseline, "
          f"{100 * full / (1000 * POLL_S):.1f}% of the {1000 * POLL_S:.0f} ms poll")
    print(f"  fingerprint, a quarter painted  {quarter:7.2f} ms  = {quarter / baseline:.2f} x baseline")
    print(f"  is Krita idle (tryBarrierLock)  {report['idle_check_ms']:7.2f} ms")


if __name__ == "__main__":
    main()
