"""What on a page is a wall for colour: its line art, apart from screentone, washes and hatching.

Flats (flats.py) colour the regions the line art encloses, so they need the lines and
nothing else. A real page also holds screentone (dot halftones), grey washes, solid blacks,
lettering and JPEG noise. The page is looked at in one normalized size, its short side at
most ANALYSIS_SIDE px: a web scan as it is, a 300 or 600 dpi scan shrunk (INTER_AREA), so
screentone at 50-85 LPI falls to a pitch of about 1.4-2.4 px whatever the scan, where a
Gaussian of one pixel turns it into a flat grey and leaves the lines. Then:

- walls are what is dark (solid black, lines) or line-like: darker than its surroundings
  within a few pixels (a black top-hat), so grey window bars and light pencil count, a
  wash or a toned area does not (its edge is a step, not a ridge);
- coarse dots that survive the blur (tone on small pages) and the paper cells of a dense
  tone or cross-hatching are found and taken out, as before: isolated specks are too small
  to enclose anything, and ink around small paper cells is texture, not an outline;
- solid areas (a black coat, hair) are walls too, and also regions of their own: their
  core (further than a line's half width from light pixels) can take a stroke's colour.

Measured on the corpus (tests/corpus.py): benchmarks/bench_flats.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: the short side, in px, of the size the page is looked at in
ANALYSIS_SIDE = 1000


@dataclass(frozen=True)
class LineArtSettings:
    blur: float = 1.0             #: px at the analysis size; turns fine screentone into flat grey
    black: int = 80               #: blurred grey below this is solid ink, whatever around it
    contrast: int = 38            #: a ridge this much darker than its surroundings is a line
    ridge: int = 9                #: px; lines narrower than this are found as ridges
    dot_area: float = 0.00004     #: of the page's area: smaller isolated specks are tone dots
    cell_reach: int = 4           #: px; tone cells have ink this close in three directions
    texture_blur: float = 1.6     #: px; where texture lies, the blur that flattens its thin strokes
    texture_window: int = 25      #: px; ... or where walls begin and end this often in a window:
    texture_edges: float = 0.3    #: edges per pixel (a lone line makes about 0.08, hatching 0.4)
    dense_tone: float = 0.5       #: a texture with this share of ink around its cells is a dense tone
    crowd: int = 5                #: tone cells come this many together (within 3 cell reaches)
    solid: float = 3.5            #: px; ink further than this from paper is a solid area (not a line)


@dataclass
class LineArt:
    """The page at the analysis size: its walls, and the cores of its solid areas."""

    scale: float                  #: analysis size / page size
    size: tuple[int, int]         #: (width, height) at the analysis size
    grey: np.ndarray              #: uint8, blurred
    walls: np.ndarray             #: bool
    solid: np.ndarray             #: bool: cores of solid dark areas (within walls)


def analysis_scale(width: int, height: int) -> float:
    return min(1.0, ANALYSIS_SIDE / min(width, height))


def analyse(grey: np.ndarray, settings: LineArtSettings = LineArtSettings()) -> LineArt:
    """grey: H x W uint8 at the page's size."""
    height, width = grey.shape
    scale = analysis_scale(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = grey if scale == 1.0 else cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    # paper is what most of a page is: a scan's grey paper has its lines darker than it
    paper = float(np.percentile(small, 90)) if small.size else 255.0
    soft = cv2.GaussianBlur(small, (0, 0), settings.blur) if settings.blur else small
    ink = _ink(soft, paper, settings, settings.ridge)
    walls, cells = _without_tone(ink, settings, small.size)
    # hatching in one direction has no cells, but as many edges as a tone
    edges = np.zeros(walls.shape, np.float32)
    edges[:, 1:] += walls[:, 1:] != walls[:, :-1]
    edges[1:, :] += walls[1:, :] != walls[:-1, :]
    window = settings.texture_window
    busy = cv2.boxFilter(edges, -1, (window, window)) >= settings.texture_edges
    mesh = cells
    cells = cells | (busy & ~walls)
    if cells.any():
        # Where hatching or a coarse tone lies, the page is looked at once more, blurred a little
        # more: the texture's thin strokes fade, the outlines through and around it stay.
        reach = 2 * settings.cell_reach + 1
        texture = cv2.dilate(cells.astype(np.uint8), np.ones((reach, reach), np.uint8)).astype(bool)
        # The least blur that flattens the texture: its cells' pixels no longer ink (a dense
        # coarse tone needs more than a light hatching, whose thin strokes fade at once).
        coarse = cv2.GaussianBlur(small, (0, 0), settings.texture_blur)
        # what is left of a dense coarse tone's grain after that blur must not pass for a line:
        # in and around its cells, where most is ink, a line must stand out of the grain's spread
        mean = cv2.blur(coarse.astype(np.float32), (window, window))
        spread = np.sqrt(np.maximum(cv2.blur(coarse.astype(np.float32) ** 2, (window, window)) - mean ** 2, 0))
        around = cv2.dilate(mesh.astype(np.uint8), np.ones((reach, reach), np.uint8)).astype(bool)
        dense = cv2.blur(ink.astype(np.float32), (window, window)) >= settings.dense_tone
        contrast = np.where(around & dense, np.maximum(settings.contrast, 3.0 * spread), settings.contrast)
        coarse_ink = _ink(coarse, paper, settings, settings.ridge + 4, contrast)
        walls = np.where(texture, coarse_ink, walls)
        count, labels, stats = _components(walls, 8)
        specks = stats[:, cv2.CC_STAT_AREA] < max(4, settings.dot_area * small.size)
        specks[0] = False
        walls &= ~specks[labels]
    # cores of solid areas: ink far from anything light
    to_light = cv2.distanceTransform(walls.astype(np.uint8), cv2.DIST_L2, 3)
    solid = to_light > settings.solid
    return LineArt(scale, size, soft, walls, solid)


def _ink(soft: np.ndarray, paper: float, settings: LineArtSettings, ridge_size: int, contrast=None) -> np.ndarray:
    """Dark pixels, and pixels darker than their surroundings within `ridge_size` (a black top-hat)."""
    black = min(settings.black, paper * 0.45)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (ridge_size, ridge_size))
    ridge = cv2.morphologyEx(soft, cv2.MORPH_BLACKHAT, kernel)
    contrast = settings.contrast if contrast is None else contrast
    return (soft < black) | ((ridge > contrast) & (soft < paper - settings.contrast))


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


def _without_tone(ink: np.ndarray, settings: LineArtSettings, area: int) -> tuple[np.ndarray, np.ndarray]:
    """Ink without isolated dots, and the cells of dense tone or cross-hatching (crowds of
    small paper cells: where the ink is texture, not outlines)."""
    count, labels, stats = _components(ink, 8)
    specks = stats[:, cv2.CC_STAT_AREA] < max(4, settings.dot_area * area)
    specks[0] = False
    walls = ink & ~specks[labels]
    # Dense tone and cross-hatching: a dark mesh around small paper cells. Cells (and the
    # half-open cells where a tone is cut off) are paper with ink close by in at least three
    # of the four directions; a gap in a line has ink on two sides only, paper beside a line
    # on one.
    sides = np.zeros(ink.shape, np.uint8)
    for direction in _ink_within(walls, settings.cell_reach):
        sides += direction
    cells = ~walls & (sides >= 3)
    if cells.any():
        # A tone's cells are small and many together; the closed end of a narrow region
        # between lines is one "cell" alone, and its outline stays a wall.
        count, labels, stats, centres = cv2.connectedComponentsWithStats(cells.astype(np.uint8), connectivity=4)
        small = stats[:, cv2.CC_STAT_AREA] <= (2 * settings.cell_reach) ** 2
        small[0] = False
        points = np.zeros(cells.shape, np.float32)
        ids = np.flatnonzero(small)
        cy = np.clip(np.round(centres[ids, 1]).astype(int), 0, cells.shape[0] - 1)
        cx = np.clip(np.round(centres[ids, 0]).astype(int), 0, cells.shape[1] - 1)
        np.add.at(points, (cy, cx), 1.0)
        window = 6 * settings.cell_reach + 1
        crowd = cv2.boxFilter(points, -1, (window, window), normalize=False)
        crowded = np.zeros(count, bool)
        crowded[ids] = crowd[cy, cx] >= settings.crowd
        cells = crowded[labels]
    return walls, cells
