"""Page-size output at print resolution: the detail-preserving method against a plain
LANCZOS upscale (and the alternatives weighed in inknhue/detail.py), in one run.

1. The synthetic case: an A4 page at 300 dpi (2480x3508) with 1-2 px ink, lettering and a
   tone patch on white paper; its true region colours; the working-size result a perfect
   model would give at max size 768 (the truth brought down and softened as the VAE's
   output is). For each method: the time to make the page-size image (first call on a
   page, and each further ratio), how well the result keeps the page's fine detail
   (correlation of the Laplacians of L*), how much colour crosses the lines (a*/b* error on
   paper within 6 px of ink), and the ink's lightness.
2. The corpus (tests/corpus.py: toned and washed pages made from coloured ground truth,
   web scans as JPEG and A4 at 300 dpi): a perfect working-size colorization of each
   (corpus.colorized: the truth under the page's ink, tone and washes painted over,
   softened as the VAE's output is), brought to the page's size by LANCZOS, by the colour x
   page of before (kept here as it was) and by ours; beside them the perfect colouring at the
   page's size it was made from (corpus.painted), to show what each reading can tell.
   Brought back to the working size without aliasing (corpus.brought_back, the goal's
   reading), how far from the model's result: CIEDE76 mean and 95th percentile, the chroma
   kept (mean C*ab, against the model's); at the page's size the detail (as above) and the
   ink's L* (the corpus's lines; the page's own in brackets); off the ink (working pixels
   further than 2 from it). Then by the box mean alone (INTER_AREA), against the soft
   result and the sharp one: the perfect colouring is p95 9-12 from the soft result there
   (the VAE's softness, which no crisp line has), and the dots kept at page size alias in it;
   what fading them would buy there, and cost in detail, is printed last. Timings at A4:
   first call on a page and each further ratio, against colour x page's in the same run.

    python benchmarks/bench_page_output.py [--repeat 5] [--count 2] [--skip-synthetic]
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

import corpus  # noqa: E402
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


def synthetic(args):
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


# --- the corpus ------------------------------------------------------------------------------

class ColourTimesPage:
    """The method before this one, as it was: the model over the whole page (tone and washes
    included) as a local ratio, sampled beside every dark pixel, multiplied by the page."""

    SIGMAS = (0.8, 3.0, 10.0, 40.0)

    def __init__(self, grey, working):
        self.grey, self.working = grey, working
        self.page_w = cv2.resize(grey, working, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        self.maps = detail._sampling_maps(grey < 128, working)

    def ratio(self, model):
        num, den = model * self.page_w[..., None], self.page_w * self.page_w
        colour, trusted = None, np.zeros(den.shape, bool)
        for sigma in self.SIGMAS:
            n, d = cv2.GaussianBlur(num, (0, 0), sigma), cv2.GaussianBlur(den, (0, 0), sigma)
            ratio = n / np.maximum(d, 1e-6)[..., None]
            colour = ratio if colour is None else np.where(trusted[..., None], colour, ratio)
            trusted |= d > detail.MIN_PAPER
            if trusted.all():
                break
        return np.clip(np.where(trusted[..., None], colour, model), 0, 1).astype(np.float32)

    def full(self, model):
        layer = cv2.remap(self.ratio(model.astype(np.float32) / 255), *self.maps, cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
        for top in range(0, layer.shape[0], 256):
            band = slice(top, top + 256)
            layer[band] *= (self.grey[band].astype(np.float32) * np.float32(1 / 255))[..., None]
        return layer


def delta_e(image, model, antialias=True):
    """CIEDE76 of image brought back to model's size (corpus.brought_back) against model, per pixel."""
    back = corpus.brought_back(image, (model.shape[1], model.shape[0]), antialias)
    return np.sqrt(((rgb_to_lab(back) - rgb_to_lab(model)) ** 2).sum(axis=-1)), back


def off_ink(grey, working, band=2.0):
    """Working pixels further than `band` from the page's ink (line_art, brought down)."""
    ink = cv2.resize(detail.line_art(grey).view(np.uint8), working, interpolation=cv2.INTER_AREA) > 0
    return cv2.distanceTransform((~ink).view(np.uint8), cv2.DIST_L2, 5) > band


def chroma(rgb):
    lab = rgb_to_lab(rgb)
    return float(np.hypot(lab[..., 1], lab[..., 2]).mean())


def brought_up(page, model):
    """The model's result at the page's size, each way; and the perfect colouring (corpus.painted)."""
    grey = page.grey
    size, working = (grey.shape[1], grey.shape[0]), (model.shape[1], model.shape[0])
    return {"perfect": u8(corpus.painted(page)),
            "LANCZOS": cv2.resize(model, size, interpolation=cv2.INTER_LANCZOS4),
            "colour x page": u8(ColourTimesPage(grey, working).full(model)),
            "ours": u8(detail.PageDetail.make(grey, size, working).full(model))}


def faded(made, model, keep):
    """Ours with the dots, where the model painted the tone over lighter, kept at `keep` of their
    contrast around the same mean (1: ours): the price of the detail goal in a box bring-down."""
    fields = cv2.remap(made._fields(model), *made.maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    level = cv2.remap(made.tone_w, *made.maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[..., None]
    offset, amplitude = fields[..., :3], fields[..., 3:]
    page = (made.page.astype(np.float32) / 255)[..., None]
    lighter = offset.max(axis=-1, keepdims=True) > 1e-4  # offset is 0 where the tone is multiplied as drawn
    off = np.where(lighter, offset + amplitude * (level + keep * (page - level)), offset + amplitude * page)
    return u8(np.where(made.ink[..., None], (offset + amplitude) * page, off))


def multiply_gap(page, full, model):
    """--layer colour as a Multiply layer under the page, against --layer full: where they differ
    (full lighter than the page: tone the colouring painted over), how much (CIEDE76)."""
    made = detail.PageDetail.make(page.grey, (page.grey.shape[1], page.grey.shape[0]), (model.shape[1], model.shape[0]))
    multiplied = u8(made.colour_layer(model) * (page.grey.astype(np.float32) / 255)[..., None])
    gap = np.sqrt(((rgb_to_lab(multiplied) - rgb_to_lab(full)) ** 2).sum(axis=-1))
    styles = np.array([r.style for r in page.regions])[page.labels]
    toned = np.isin(styles, ["tone", "gradient", "wash"])
    differs = gap > 2
    print(f"{'':17} {'colour layer':15} Multiply under the page vs full: differs (dE > 2) on "
          f"{100 * differs.mean():.0f}% of the page ({100 * differs[toned].mean():.0f}% of toned and washed "
          f"areas), dE there "
          f"{gap[differs].mean() if differs.any() else 0:.1f}; on toned areas mean {gap[toned].mean():.1f}")


def corpus_report(args):
    pages = corpus.corpus(("web", "a4"), count=args.count)
    print(f"\nthe corpus: {len(pages)} pages (web scans and A4 at 300 dpi), a perfect colorization of each at max "
          f"size 768, softened 0.7 px as the VAE's output is ('sharp': the same unsoftened). Brought back to the "
          f"working size without aliasing (corpus.brought_back: the goal's reading), and by the box mean alone. "
          f"'perfect': the perfect colouring at the page's size (tone painted over, no dots), what the softened "
          f"colorization was made from")
    print(f"{'page':17} {'method':15} {'dE mean':>7} {'p95':>5} {'chroma':>6} {'detail':>6} {'ink L*':>12}  "
          f"{'off ink: dE':>11} {'p95':>5}  {'box: dE':>7} {'p95':>5} {'sharp':>5} {'p95':>5}")
    rows = {}
    for page in pages:
        height, width = page.grey.shape
        working = working_size(width, height, 768)
        model, sharp = corpus.colorized(page, working), corpus.colorized(page, working, soften=0)
        page_l = rgb_to_lab(page.rgb)[..., 0]
        ink = page.lines & (page.grey < 128)
        away = off_ink(page.grey, working)
        for name, image in brought_up(page, model).items():
            smooth_e, back = delta_e(image, model)
            box_e, _ = delta_e(image, model, antialias=False)
            sharp_e, _ = delta_e(image, sharp, antialias=False)
            lightness = rgb_to_lab(image)[..., 0]
            row = (smooth_e.mean(), np.percentile(smooth_e, 95), chroma(back) / chroma(model),
                   laplacian_correlation(lightness, page_l), lightness[ink].mean(),
                   smooth_e[away].mean(), np.percentile(smooth_e[away], 95),
                   box_e.mean(), np.percentile(box_e, 95), sharp_e.mean(), np.percentile(sharp_e, 95))
            rows.setdefault(("a4" if page.jpeg is None else "web", name), []).append(row)
            print(f"{page.name:17} {name:15} {row[0]:7.2f} {row[1]:5.1f} {row[2]:6.3f} {row[3]:6.3f} {row[4]:5.1f} "
                  f"({page_l[ink].mean():4.1f})  {row[5]:11.2f} {row[6]:5.1f}  {row[7]:7.2f} {row[8]:5.1f} "
                  f"{row[9]:5.2f} {row[10]:5.1f}", flush=True)
            if name == "ours":
                multiply_gap(page, image, model)
    print("range over the pages (min-max):")
    for (kind, name), values in rows.items():
        low, high = np.min(values, axis=0), np.max(values, axis=0)
        print(f"  {kind:4} {name:15} dE {low[0]:.1f}-{high[0]:.1f}, p95 {low[1]:.1f}-{high[1]:.1f}; chroma "
              f"{low[2]:.2f}-{high[2]:.2f}; detail {low[3]:.3f}-{high[3]:.3f}; off ink {low[5]:.1f}-{high[5]:.1f}, "
              f"p95 {low[6]:.0f}-{high[6]:.0f}; box {low[7]:.1f}-{high[7]:.1f}, p95 {low[8]:.0f}-{high[8]:.0f}; "
              f"sharp, box {low[9]:.1f}-{high[9]:.1f}, p95 {low[10]:.0f}-{high[10]:.0f}")
    print("the dots' price in a box bring-down (ours with the painted-over tone's dots faded; first page, each size):")
    for page in (next(p for p in pages if p.jpeg is not None), next(p for p in pages if p.jpeg is None)):
        height, width = page.grey.shape
        working = working_size(width, height, 768)
        model, sharp = corpus.colorized(page, working), corpus.colorized(page, working, soften=0)
        made = detail.PageDetail.make(page.grey, (width, height), working)
        page_l = rgb_to_lab(page.rgb)[..., 0]
        for keep in (1.0, 0.5, 0.25, 0.0):
            image = faded(made, model, keep)
            smooth_e, _ = delta_e(image, model)
            box_e, _ = delta_e(image, model, antialias=False)
            sharp_e, _ = delta_e(image, sharp, antialias=False)
            print(f"  {page.name:17} dots kept {keep:4.2f}: detail "
                  f"{laplacian_correlation(rgb_to_lab(image)[..., 0], page_l):.3f}; dE {smooth_e.mean():.2f} "
                  f"p95 {np.percentile(smooth_e, 95):.1f}; box {box_e.mean():.2f} p95 {np.percentile(box_e, 95):.1f}; "
                  f"sharp, box {sharp_e.mean():.2f} p95 {np.percentile(sharp_e, 95):.1f}", flush=True)
    # timings at A4: the first corpus A4 page
    page = next(p for p in pages if p.jpeg is None)
    height, width = page.grey.shape
    working = working_size(width, height, 768)
    model = corpus.colorized(page, working)
    before = ColourTimesPage(page.grey, working)
    made = detail.PageDetail.make(page.grey, (width, height), working)
    times = {
        "LANCZOS": median_seconds(lambda: cv2.resize(model, (width, height), interpolation=cv2.INTER_LANCZOS4),
                                  args.repeat),
        "colour x page, first call": median_seconds(lambda: ColourTimesPage(page.grey, working).full(model),
                                                    args.repeat),
        "colour x page, each ratio": median_seconds(lambda: before.full(model), args.repeat),
        "ours, first call": median_seconds(
            lambda: detail.PageDetail.make(page.grey, (width, height), working).full(model), args.repeat),
        "ours, each ratio": median_seconds(lambda: made.full(model), args.repeat),
    }
    print(f"time at A4 ({page.name}, {cv2.getNumThreads()} OpenCV threads, median of {args.repeat}):")
    for name, seconds in times.items():
        print(f"  {name:26} {seconds * 1000:6.0f} ms")
    print(f"  ours / colour x page: first call {times['ours, first call'] / times['colour x page, first call']:.2f}, "
          f"each ratio {times['ours, each ratio'] / times['colour x page, each ratio']:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--count", type=int, default=2, help="corpus pages, each as a web scan and at A4")
    parser.add_argument("--skip-synthetic", action="store_true")
    args = parser.parse_args()
    if not args.skip_synthetic:
        synthetic(args)
    corpus_report(args)


if __name__ == "__main__":
    main()
