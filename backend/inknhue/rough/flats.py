"""`flats`: hint strokes spread into flat colours, region by region, with no network.

The ink lines are walls; each region they enclose takes the colour of the strokes inside
it. How it works, at the page's full resolution:

1. Walls: dark pixels, less the screentone. Isolated dots are too small to enclose
   anything; dense tones (a dark mesh around tiny paper cells) are recognised by those
   cells, and the ink around them is not a wall. Cross-hatching counts as tone too.
2. Elevation: pixels within `gap` px of a wall are raised, the closer the higher, so a
   gap narrower than about twice `gap` is a pass that floods only after both sides have
   been claimed from their own interiors.
3. Priority flood, level by level: at each level the connected components of what is
   at or below it take the label of the strokes they contain (split by nearest stroke
   when several compete). Regions without strokes become paper (white), unless
   `fill_all`, when they wait to be reached through gaps, and finally through walls.
4. Ink and remaining pixels take the nearest region's colour; then the page is multiplied
   over the flats, as Style2Paints' outputs (the VAE's training input) show the lines.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import InputError
from ..page.imaging import luma
from .base import RoughProvider, RoughRequest, empty_hints_warning, register

log = logging.getLogger(__name__)

PAPER = np.array([255, 255, 255], np.uint8)


@dataclass(frozen=True)
class FlatsSettings:
    ink_threshold: int = 150      #: grey below this is ink
    gap: int = 2                  #: px; gaps up to about twice this are closed (at 2480 px wide)
    dot_area: int = 60            #: px; smaller isolated ink specks are tone dots (at 2480 px)
    cell_reach: int = 4           #: px; tone cells have ink this close in three directions (at 2480 px)
    bridge: float = 2.5           #: px; ink this close to a tone cell is tone, not wall (at 2480 px)
    min_region: int = 400         #: px; smaller unhinted regions join a neighbour (at 2480 px)
    stroke_share: float = 0.1     #: a stroke seeds a region only with this share of its pixels there

    def scaled(self, short_side: int) -> "FlatsSettings":
        """Given for an A4 page at 300 dpi. Larger scans scale everything up; smaller ones keep
        the pixel sizes of lines, gaps and tones (nothing finer survives as dots) and scale
        only the smallest region that stays paper."""
        s = short_side / 2480.0
        up = max(1.0, s)
        return FlatsSettings(self.ink_threshold, round(self.gap * up), round(self.dot_area * up * up),
                             round(self.cell_reach * up), self.bridge * up,
                             max(16, round(self.min_region * s * s)), self.stroke_share)


def _components(mask: np.ndarray, connectivity: int):
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=connectivity)
    return count, labels, stats


def _ink_within(ink: np.ndarray, reach: int) -> list[np.ndarray]:
    """For each of the four directions, whether ink lies within `reach` px that way."""
    u8 = ink.astype(np.uint8)
    found = []
    for shape, anchor in (((1, reach + 1), (reach, 0)), ((1, reach + 1), (0, 0)),
                          ((reach + 1, 1), (0, reach)), ((reach + 1, 1), (0, 0))):
        kernel = np.ones(shape, np.uint8)
        found.append(cv2.dilate(u8, kernel, anchor=anchor).astype(bool))
    return found


def find_walls(grey: np.ndarray, settings: FlatsSettings) -> np.ndarray:
    """Ink that separates regions: dark pixels without the screentone."""
    ink = grey < settings.ink_threshold
    count, labels, stats = _components(ink, 8)
    specks = stats[:, cv2.CC_STAT_AREA] < settings.dot_area
    specks[0] = False
    walls = ink & ~specks[labels]
    # Dense tone: a dark mesh around small paper cells. Cells (and the half-open cells
    # where a tone is cut off) are paper with ink close by in at least three of the four
    # directions; a gap in a line has ink on two sides only, paper beside a line on one.
    sides = np.zeros(ink.shape, np.uint8)
    for direction in _ink_within(ink, settings.cell_reach):
        sides += direction
    cells = ~ink & (sides >= 3)
    if cells.any():
        # The mesh's bridges lie within a couple of pixels of a cell; an outline along the
        # tone keeps its far side as a wall.
        to_cell = cv2.distanceTransform((~cells).astype(np.uint8), cv2.DIST_L2, 3)
        walls &= to_cell > settings.bridge
    return walls


def stroke_labels(hints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected strokes of the hint layer -> (label image, 0 = none; colour per label)."""
    alpha = hints[..., 3]
    count, labels, stats = _components(alpha > 0, 8)
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


def _nearest(labels: np.ndarray, targets: np.ndarray, seeds: np.ndarray | None = None) -> np.ndarray:
    """For each pixel in `targets`, the label of the nearest pixel of `seeds` (default: all
    labelled pixels), by straight-line distance."""
    seeds = labels > 0 if seeds is None else seeds & (labels > 0)
    if not seeds.any():
        return labels
    _, nearest = cv2.distanceTransformWithLabels((~seeds).astype(np.uint8), cv2.DIST_L2, 5,
                                                 labelType=cv2.DIST_LABEL_PIXEL)
    lookup = np.zeros(nearest.max() + 1, labels.dtype)
    lookup[nearest[seeds]] = labels[seeds]
    out = labels.copy()
    out[targets] = lookup[nearest[targets]]
    return out


def _flood(labels: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """One level: every component of `allowed` takes the labels inside it (nearest if several)."""
    count, components, _ = _components(allowed, 4)
    inside = (labels > 0) & allowed
    comp_in, label_in = components[inside], labels[inside]
    # One label per component, unless any labelled pixel disagrees with it.
    single = np.zeros(count, labels.dtype)
    single[comp_in] = label_in
    contested_component = np.zeros(count, bool)
    contested_component[comp_in[label_in != single[comp_in]]] = True
    single[contested_component] = 0
    single[0] = 0
    open_pixels = allowed & (labels == 0)
    fill = single[components]
    labels = np.where(open_pixels & (fill > 0), fill, labels)
    in_contested = contested_component[components]
    contested = open_pixels & in_contested
    if contested.any():
        # Only strokes of the contested regions compete, not the labels of other regions.
        labels = _nearest(labels, contested, seeds=in_contested)
    return labels


def flats(page: np.ndarray, hints: np.ndarray, fill_all: bool = False, reference: np.ndarray | None = None,
          settings: FlatsSettings = FlatsSettings()) -> np.ndarray:
    """Flat colours (H x W x 3 uint8) from a page (RGB) and hint strokes (RGBA, same size)."""
    settings = settings.scaled(min(page.shape[:2]))
    grey = luma(page)
    walls = find_walls(grey, settings)
    strokes, colours = stroke_labels(hints)
    strokes[walls] = 0

    distance = cv2.distanceTransform((~walls).astype(np.uint8), cv2.DIST_L2, 5)
    # level 0: interiors; level k: within gap + 1 - k px of a wall
    level = np.clip(settings.gap + 1 - np.floor(distance), 0, settings.gap).astype(np.int16)
    level[walls] = settings.gap + 1

    # Level 0 decides regions: strokes with a real share of their pixels seed them.
    count, regions, stats = _components(level == 0, 4)
    seeded = (strokes > 0) & (regions > 0)
    stroke_sizes = np.bincount(strokes.ravel(), minlength=len(colours))
    pair_keys, pair_counts = np.unique(np.stack([regions[seeded], strokes[seeded]]), axis=1, return_counts=True)
    keep = pair_counts >= settings.stroke_share * stroke_sizes[pair_keys[1]]
    labels = np.zeros_like(regions)
    valid = np.zeros((count, len(colours)), bool)
    valid[pair_keys[0][keep], pair_keys[1][keep]] = True
    labels[seeded] = np.where(valid[regions[seeded], strokes[seeded]], strokes[seeded], 0)

    palette = list(colours)
    hinted = np.zeros(count, bool)
    hinted[pair_keys[0][keep]] = True
    unhinted = ~hinted & (stats[:, cv2.CC_STAT_AREA] >= settings.min_region)
    unhinted[0] = False
    if not fill_all and unhinted.any():
        # Each unhinted region becomes a paper label of its own, competing like a stroke.
        first = len(palette)
        ids = np.flatnonzero(unhinted)
        region_label = np.zeros(count, labels.dtype)
        region_label[ids] = first + np.arange(len(ids))
        paper_colours = _reference_colours(grey, regions, ids, reference) if reference is not None \
            else np.repeat(PAPER[None], len(ids), axis=0)
        palette.extend(paper_colours)
        paper = region_label[regions]
        labels = np.where((labels == 0) & (paper > 0), paper, labels)

    for current in range(settings.gap + 1):
        labels = _flood(labels, level <= current)
    remaining = labels == 0
    if remaining.any():
        labels = _nearest(labels, remaining)  # ink, and (fill_all) regions sealed by walls
    if fill_all and unhinted.any():
        # An unhinted region takes one colour: the one that reached most of it.
        inside = unhinted[regions]
        votes = np.bincount(regions[inside].astype(np.int64) * len(colours) + labels[inside],
                            minlength=count * len(colours)).reshape(count, len(colours))
        winner = votes.argmax(axis=1)
        labels[inside] = winner[regions[inside]]

    palette_array = np.array(palette, np.uint8) if palette else PAPER[None]
    palette_array[0] = PAPER  # label 0 only survives on a page without strokes
    # Multiply the page over the flats, as Style2Paints' outputs (the VAE's training input)
    # show the line art and tones through their colours.
    flat = palette_array[labels].astype(np.uint16)
    return (flat * grey[:, :, None].astype(np.uint16) // 255).astype(np.uint8)


def _reference_colours(grey: np.ndarray, regions: np.ndarray, ids: np.ndarray,
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
    means = np.array([palette[assignment.ravel() == i].mean(axis=0) for i in range(k)]).astype(np.uint8)
    order = np.argsort(centres[:, 0])
    region_grey = np.bincount(regions.ravel(), weights=grey.ravel(), minlength=regions.max() + 1)
    region_size = np.maximum(np.bincount(regions.ravel(), minlength=regions.max() + 1), 1)
    lightness = region_grey[ids] / region_size[ids] / 255.0 * 100.0
    border = np.unique(np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]]))
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

    def check(self, request: RoughRequest) -> list[str]:
        return empty_hints_warning(request)

    def rough_colours(self, request: RoughRequest, engine=None) -> np.ndarray:
        hints = check_hints(request.hints, request.page)
        return flats(request.page, hints, fill_all=request.fill_all, reference=request.reference)
