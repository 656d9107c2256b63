"""Colourings out of register with their pages (page/registration.py), on the corpus: how far
the page-size result is from the perfect colouring on paper beside the ink (CIEDE76, within
1-6 page px of the line art) brought as it is and fitted first, against the colouring in
register, in one run; what the fit found, and its time.

The cases: in register; moved by 2, 1 and by 6, -4 working px (a crop, a half-tile); padded
by about 1% at the right and bottom and stretched back (a tool's round-up to a multiple); a
colouring of another page and one with no lines (a broad brush), which must be left as they are.

    python benchmarks/bench_registration.py [--count 2] [--sizes web,a4]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import corpus  # noqa: E402

from inknhue.page import registration  # noqa: E402
from inknhue.page.color import rgb_to_lab  # noqa: E402
from inknhue.page.detail import PageDetail, line_art  # noqa: E402
from inknhue.page.imaging import working_size  # noqa: E402


def u8(values):
    return np.rint(np.clip(values, 0, 1) * 255).astype(np.uint8)


def cases(model, other):
    height, width = model.shape[:2]
    return {"in register": model,
            "moved 2, 1": np.roll(model, (1, 2), axis=(0, 1)),
            "moved 6, -4": np.roll(model, (-4, 6), axis=(0, 1)),
            "padded 1%": cv2.resize(np.pad(model, ((0, height // 100), (0, width // 100), (0, 0)), mode="edge"),
                                    (width, height), interpolation=cv2.INTER_AREA),
            "another page": cv2.resize(other, (width, height), interpolation=cv2.INTER_AREA),
            "broad brush": cv2.GaussianBlur(model, (0, 0), 12)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2)
    parser.add_argument("--sizes", default="web,a4")
    args = parser.parse_args()
    pages = corpus.corpus(tuple(args.sizes.split(",")), count=args.count)
    print(f"{len(pages)} corpus pages, colourings at max size 768 (softened as the VAE's output is); "
          f"dE: CIEDE76 on paper within 1-6 px of the ink against the perfect colouring")
    print(f"{'page':17} {'colouring':13} {'as it is':>8} {'fitted':>7} {'fit':>6}  found")
    for index, page in enumerate(pages):
        height, width = page.grey.shape
        working = working_size(width, height, 768)
        model = corpus.colorized(page, working)
        other = corpus.colorized(pages[(index + 2) % len(pages)], working)
        made = PageDetail.make(page.grey, (width, height), working)
        truth = rgb_to_lab(u8(corpus.painted(page)))
        distance = cv2.distanceTransform((~line_art(page.grey)).view(np.uint8), cv2.DIST_L2, 5)
        beside = (distance >= 1) & (distance < 6)

        def error(colouring, made=made, truth=truth, beside=beside):
            return np.sqrt(((rgb_to_lab(u8(made.full(colouring))) - truth) ** 2).sum(-1))[beside].mean()

        for name, colouring in cases(model, other).items():
            started = time.perf_counter()
            fitted = registration.registered(made.page_w, colouring)
            seconds = time.perf_counter() - started
            found = registration.fit(made.page_w, colouring)
            said = found.note.split(": ", 1)[-1] if found.note else "as it is"
            print(f"{page.name:17} {name:13} {error(colouring):8.2f} {error(fitted):7.2f} {seconds * 1000:4.0f} ms  "
                  f"{said}", flush=True)


if __name__ == "__main__":
    main()
