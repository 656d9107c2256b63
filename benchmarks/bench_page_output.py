"""Page-size output at print resolution: the detail-preserving method against a plain
LANCZOS upscale (and the alternatives weighed in inknhue/detail.py), in one run.

An A4 page at 300 dpi (2480x3508) with 1-2 px ink, lettering and a tone patch; its true
region colours; the working-size result a perfect model would give at max size 768
(the truth brought down and softened as the VAE's output is). For each method: the time
to make the page-size image (first call on a page, and each further ratio), how well the
result keeps the page's fine detail (correlation of the Laplacians of L*), how much colour
crosses the lines (a*/b* error on paper within 6 px of ink), and the ink's lightness.

    python benchmarks/bench_page_output.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

from bench_flats import median_seconds  # noqa: E402
from drawing import print_page, region_colours  # noqa: E402

from inknhue.page import detail  # noqa: E402
from inknhue.page.color import lab_to_rgb, rgb_to_lab  # noqa: E402
from inknhue.page.imaging import working_size  # noqa: E402

A4 = (2480, 3508)


def u8(values):
    return np.rint(np.clip(values, 0, 1) * 255).astype(np.uint8)


def lanczos(model, grey):
    return cv2.resize(model, A4, interpolation=cv2.INTER_LANCZOS4)


def lab_detail(model, grey):
    """The page's L* high frequencies added to the model's upscaled L*; a*/b* upscaled."""
    working = (model.shape[1], model.shape[0])
    lab = cv2.resize(rgb_to_lab(model), A4, interpolation=cv2.INTER_LINEAR)
    page_l = rgb_to_lab(np.repeat(grey[..., None], 3, axis=2))[..., 0]
    low = cv2.resize(cv2.resize(page_l, working, interpolation=cv2.INTER_AREA), A4, interpolation=cv2.INTER_LINEAR)
    lab[..., 0] += page_l - low
    return lab_to_rgb(lab)


def guided(model, grey, radius=2, eps=1e-3):
    """Guided-filter upsampling: per channel a local linear model in the page's grey."""
    working = (model.shape[1], model.shape[0])
    guide = cv2.resize(grey.astype(np.float32) / 255, working, interpolation=cv2.INTER_AREA)
    full = grey.astype(np.float32) / 255
    box = (2 * radius + 1,) * 2
    mean_i = cv2.blur(guide, box)
    var_i = cv2.blur(guide * guide, box) - mean_i * mean_i
    out = []
    for channel in range(3):
        p = model[..., channel].astype(np.float32) / 255
        mean_p = cv2.blur(p, box)
        a = (cv2.blur(guide * p, box) - mean_i * mean_p) / (var_i + eps)
        b = mean_p - a * mean_i
        a, b = (cv2.resize(cv2.blur(v, box), A4, interpolation=cv2.INTER_LINEAR) for v in (a, b))
        out.append(a * full + b)
    return u8(np.dstack(out))


def multiply_bilinear(model, grey):
    """This module's colour layer, brought up without the edge-aware sampling."""
    working = (model.shape[1], model.shape[0])
    page_w = cv2.resize(grey.astype(np.float32) / 255, working, interpolation=cv2.INTER_AREA)
    colour = cv2.resize(detail.colour_over_page(model.astype(np.float32) / 255, page_w), A4,
                        interpolation=cv2.INTER_LINEAR)
    return u8(colour * (grey.astype(np.float32) / 255)[..., None])


def ours(model, grey):
    return u8(detail.page_detail(grey, A4, (model.shape[1], model.shape[0])).full(model))


def first_call(model, grey):
    detail._made.clear()
    return ours(model, grey)


def laplacian_correlation(a, b):
    la, lb = (cv2.Laplacian(np.ascontiguousarray(x, np.float32), cv2.CV_32F).ravel() for x in (a, b))
    return float(np.corrcoef(la, lb)[0, 1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    grey = print_page(*A4)
    truth = u8(region_colours(grey) * (grey.astype(np.float32) / 255)[..., None])
    working = working_size(*A4, 768)
    model = u8(cv2.GaussianBlur(cv2.resize(truth.astype(np.float32) / 255, working, interpolation=cv2.INTER_AREA),
                                (0, 0), 0.7))
    page_l = rgb_to_lab(np.repeat(grey[..., None], 3, axis=2))[..., 0]
    truth_ab = rgb_to_lab(truth)[..., 1:]
    ink = grey < 128
    distance = cv2.distanceTransform((~ink).view(np.uint8), cv2.DIST_L2, 5)
    beside = (distance > 0) & (distance < 6)
    print(f"A4 page {A4[0]}x{A4[1]}, working size {working[0]}x{working[1]} (max size 768), "
          f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads, median of {args.repeat}")
    methods = {"LANCZOS upscale (before)": lanczos, "L* detail transfer": lab_detail, "guided filter": guided,
               "colour x page, bilinear": multiply_bilinear, "ours, first call on a page": first_call,
               "ours, each further ratio": ours}
    baseline = None
    print(f"{'method':28} {'time':>9} {'/LANCZOS':>8}  {'detail':>6}  {'bleed':>5}  {'ink L*':>6} (page's "
          f"{page_l[ink].mean():.1f})")
    for name, method in methods.items():
        ours(model, grey)  # warm up (the further-ratio case finds its page made)
        seconds = median_seconds(lambda method=method: method(model, grey), args.repeat)
        baseline = baseline or seconds
        image = method(model, grey)
        lab = rgb_to_lab(image)
        bleed = np.hypot(*(lab[..., 1:] - truth_ab).transpose(2, 0, 1))[beside].mean()
        print(f"{name:28} {seconds * 1000:7.0f} ms {seconds / baseline:8.2f}  "
              f"{laplacian_correlation(lab[..., 0], page_l):6.3f}  {bleed:5.2f}  {lab[..., 0][ink].mean():6.1f}")
    print("detail: correlation of the Laplacians of L* with the page's (1 = every line as drawn); "
          "bleed: a*/b* error on paper within 6 px of ink")


if __name__ == "__main__":
    main()
