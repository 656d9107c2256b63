"""`flats`: hint strokes spread into flat colours, region by region, with no network.

What a flatter does: each region the line art encloses takes the colour of the strokes
painted in it, gaps in the lines closed up to about 1% of the page's short side, and every
region without a stroke stays paper (gutters, margins, balloons, the face beside a hinted
sleeve). How, in three steps, each in its own module:

1. page/lineart.py: the walls, i.e. the line art without screentone, washes and hatching, on
   the page at a normalized analysis size (a web scan as it is, a print scan shrunk);
2. regions.py: the page cut along the walls with gaps closed (trapped-ball cores grown back
   by a priority flood), solid black areas as regions of their own;
3. here: which regions each stroke colours (regions.claims), the keep-empty key, then the
   colours at the page's size: the rough colours (`flats`: the page multiplied over them,
   as Style2Paints' outputs show the lines) or the flat layer alone (`flat_layer`: RGBA,
   transparent where paper stays).

The keep-empty key: strokes in white (every channel at least KEEP_EMPTY) mark regions to
leave paper, as the transparent key of Krita's Colorize Mask does; they compete with colour
strokes for a region like any stroke, and `fill_all` never fills them.

Measured on the realistic corpus (tests/corpus.py) by benchmarks/bench_flats.py: on 8 web
scans 0.15% of the page coloured outside the right region (goal <= 0.5%), 0.00% of the unhinted
panels, balloons and gutters (goal <= 1%), 69% of hinted regions right, 17% of hinted pixels
missed (backgrounds a figure splits, with a stroke on one side only).
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from ..errors import InputError
from ..page import lineart
from ..page.imaging import luma
from . import regions
from .base import RoughProvider, RoughRequest, empty_hints_warning, register

log = logging.getLogger(__name__)

PAPER = np.array([255, 255, 255], np.uint8)
#: strokes whose every channel is at least this are the keep-empty key
KEEP_EMPTY = 245


def stroke_labels(hints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected strokes of the hint layer -> (label image, 0 = none; colour per label)."""
    alpha = hints[..., 3]
    count, labels, stats, _ = cv2.connectedComponentsWithStats((alpha > 0).astype(np.uint8), connectivity=8)
    colours = np.zeros((count, 3), np.uint8)
    if count > 1:
        # Each stroke's colour: the median of its opaque-enough pixels (not the soft edges).
        solid = alpha >= 128
        for index in range(1, count):
            x, y, w, h = stats[index, :4]
            window = labels[y:y + h, x:x + w] == index
            pick = window & solid[y:y + h, x:x + w]
            pixels = hints[y:y + h, x:x + w, :3][pick if pick.any() else window]
            colours[index] = np.median(pixels, axis=0)
    return labels, colours


def flat_ids(page: np.ndarray, hints: np.ndarray, fill_all: bool = False,
             reference: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Which colour each pixel of the page takes: (ids H x W at the page's size, palette
    N x 4 RGBA), id 0 and keep-empty ids transparent paper."""
    height, width = page.shape[:2]
    grey = luma(page)
    art = lineart.analyse(grey)
    found = regions.segment(art)
    labels = found.labels
    strokes, colours = stroke_labels(hints)
    keep_empty = (colours >= KEEP_EMPTY).all(axis=1)
    keep_empty[0] = False
    small_strokes = strokes if art.scale == 1.0 else cv2.resize(strokes, art.size, interpolation=cv2.INTER_NEAREST)
    # stroke pixels on thin lines say nothing about the regions on either side
    claimed = regions.claims(labels, small_strokes, len(colours), ignore=art.walls & ~art.solid)
    region_count = labels.max() + 1
    owners = claimed.sum(axis=0)
    region_id = np.zeros(region_count, np.int32)  # the stroke that colours the whole region, if one
    single = owners == 1
    region_id[single] = claimed[:, single].argmax(axis=0)
    region_id = regions.pass_on(found, np.where(owners > 1, -1, region_id))
    region_id[region_id < 0] = 0
    owners = np.where((owners == 0) & (region_id > 0), 1, owners)
    ids = region_id[labels]
    shared = owners > 1
    if shared.any():  # regions claimed by several strokes: shared between them by nearness
        in_shared = shared[labels]
        seeds = in_shared & (small_strokes > 0) & claimed[small_strokes, labels]
        ids = np.where(in_shared, 0, ids)
        pick = regions.nearest(np.where(seeds, small_strokes, 0).astype(np.int32), in_shared, seeds)
        ids = np.where(in_shared, pick, ids)
    palette = np.zeros((len(colours), 4), np.uint8)
    palette[:, :3] = colours
    palette[:, 3] = np.where(keep_empty, 0, 255)
    palette[0] = (255, 255, 255, 0)
    unclaimed = owners == 0
    unclaimed[0] = False
    if fill_all and unclaimed.any():
        ids = _fill_from_neighbours(labels, ids, unclaimed, keep_empty)
    elif reference is not None and unclaimed.any():
        small_grey = grey if art.scale == 1.0 else cv2.resize(grey, art.size, interpolation=cv2.INTER_AREA)
        region_colours = _reference_colours(small_grey, labels, np.flatnonzero(unclaimed), reference)
        first = len(palette)
        extra = np.concatenate([region_colours, np.full((len(region_colours), 1), 255, np.uint8)], axis=1)
        extra[(region_colours == PAPER).all(axis=1), 3] = 0
        palette = np.concatenate([palette, extra])
        lookup = np.zeros(region_count, np.int32)
        lookup[np.flatnonzero(unclaimed)] = first + np.arange(len(region_colours), dtype=np.int32)
        ids = np.where(unclaimed[labels], lookup[labels], ids)
    if art.scale != 1.0:
        ids = cv2.resize(ids.astype(np.int32), (width, height), interpolation=cv2.INTER_NEAREST)
    return ids, palette


def _fill_from_neighbours(labels, ids, unclaimed, keep_empty):
    """Unhinted regions take the colour of the coloured neighbour they share most border with,
    round by round, so colour reaches regions behind regions (never keep-empty ones)."""
    region_count = labels.max() + 1
    colour_of = np.zeros(region_count, np.int64)  # each region's main colour id
    coloured = ~unclaimed
    votes = np.bincount(labels.ravel().astype(np.int64) * (ids.max() + 1) + ids.ravel(),
                        minlength=region_count * (ids.max() + 1)).reshape(region_count, ids.max() + 1)
    colour_of = votes.argmax(axis=1)
    coloured &= ~keep_empty[colour_of] & (colour_of > 0)
    border = regions.adjacency(labels)
    todo = unclaimed.copy()
    while todo.any():
        a, b, length = border[:, 0], border[:, 1], border[:, 2]
        best = np.zeros(region_count, np.int64)
        best_len = np.zeros(region_count, np.int64)
        for x, y in ((a, b), (b, a)):  # x takes from y
            ok = todo[x] & coloured[y]
            order = np.argsort(length[ok], kind="stable")
            best[x[ok][order]] = colour_of[y[ok][order]]
            best_len[x[ok][order]] = length[ok][order]
        reached = todo & (best_len > 0)
        if not reached.any():
            break
        colour_of[reached] = best[reached]
        coloured |= reached
        todo &= ~reached
    fill = unclaimed & coloured
    return np.where(fill[labels], colour_of[labels], ids).astype(np.int32)


def flat_layer(page: np.ndarray, hints: np.ndarray, fill_all: bool = False,
               reference: np.ndarray | None = None) -> np.ndarray:
    """The flat colours alone at the page's size: H x W x 4 RGBA, transparent where paper stays."""
    ids, palette = flat_ids(page, hints, fill_all, reference)
    return palette[ids]


def flats(page: np.ndarray, hints: np.ndarray, fill_all: bool = False, reference: np.ndarray | None = None
          ) -> np.ndarray:
    """Rough colours (H x W x 3 uint8) from a page (RGB) and hint strokes (RGBA, same size):
    the flats on paper, with the page multiplied over them as Style2Paints' outputs (the
    VAE's training input) show the line art and tones through their colours."""
    ids, palette = flat_ids(page, hints, fill_all, reference)
    rgb = np.where(palette[:, 3:] > 0, palette[:, :3], PAPER).astype(np.uint16)
    grey = luma(page).astype(np.uint16)
    out = np.empty(page.shape[:2] + (3,), np.uint8)
    for top in range(0, out.shape[0], 512):  # in bands: no page-sized uint16 temporaries
        band = slice(top, top + 512)
        out[band] = (rgb[ids[band]] * grey[band, :, None] // 255).astype(np.uint8)
    return out


def _reference_colours(grey: np.ndarray, labels: np.ndarray, ids: np.ndarray,
                       reference: np.ndarray) -> np.ndarray:
    """Colours for unhinted regions from the reference's palette, matched by lightness;
    regions touching the page border (margins, gutters) stay paper."""
    from ..page.color import rgb_to_lab

    small = cv2.resize(reference, (128, 128), interpolation=cv2.INTER_AREA)
    samples = rgb_to_lab(small).reshape(-1, 3).astype(np.float32)
    k = 8
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    cv2.setRNGSeed(0)
    _, assignment, centres = cv2.kmeans(samples, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    palette = small.reshape(-1, 3)
    means = np.array([palette[assignment.ravel() == i].mean(axis=0) if (assignment.ravel() == i).any()
                      else PAPER for i in range(k)]).astype(np.uint8)
    order = np.argsort(centres[:, 0])
    region_grey = np.bincount(labels.ravel(), weights=grey.ravel(), minlength=labels.max() + 1)
    region_size = np.maximum(np.bincount(labels.ravel(), minlength=labels.max() + 1), 1)
    lightness = region_grey[ids] / region_size[ids] / 255.0 * 100.0
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    picks = np.abs(centres[order][:, 0][None, :] - lightness[:, None]).argmin(axis=1)
    colours = means[order][picks]
    colours[np.isin(ids, border)] = PAPER
    return colours


def check_hints(hints: np.ndarray | None, page: np.ndarray) -> np.ndarray:
    if hints is None:
        raise InputError("this provider needs hint strokes (--hints HINTS.png: strokes on a transparent layer)")
    if hints.shape[:2] != page.shape[:2]:
        raise InputError(f"the hints are {hints.shape[1]}x{hints.shape[0]} but the page is "
                         f"{page.shape[1]}x{page.shape[0]}: paint them on a layer of the page's size")
    if hints.ndim != 3 or hints.shape[2] != 4:
        raise InputError("the hints have no alpha channel: paint strokes on a transparent layer")
    return hints


@register
class FlatsProvider(RoughProvider):
    name = "flats"
    description = "hint strokes spread into the regions the ink lines enclose (no network, any machine)"
    takes_reference = True

    def validate(self, request: RoughRequest) -> None:
        check_hints(request.hints, request.page)

    def check(self, request: RoughRequest) -> list[str]:
        warnings = empty_hints_warning(request)
        hints = request.hints
        if not warnings and hints is not None and hints.ndim == 3 and hints.shape[2] == 4:
            painted = hints[..., 3] > 0
            if painted.any() and (hints[..., :3][painted] >= KEEP_EMPTY).all():
                warnings.append("Every stroke on the hint layer is white, the keep empty key: the flats are all "
                                "paper. Paint in colour where colour goes.")
        return warnings

    def checked_hints(self, request: RoughRequest) -> np.ndarray:
        return check_hints(request.hints, request.page)

    def rough_colours(self, request: RoughRequest, engine=None) -> np.ndarray:
        return flats(request.page, self.checked_hints(request), fill_all=request.fill_all,
                     reference=request.reference)
