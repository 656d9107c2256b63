"""A colouring's position fitted to its page's lines, before it is brought to the page's size.

Another tool's colouring is rarely in register with the page to the pixel: tools pad a page
to a multiple of 8 or 32 and crop or stretch it back, round sizes, or shift it by half a
pixel in a resize. Brought to the page's size off by two working pixels, its colours sit
across the page's own lines (dark halos beside them, a region's colour in its neighbour:
CIEDE76 on paper beside the ink 1.2 in register, 2.7 one pixel off, 11.8 two off, p95 39,
on the corpus's web scans).

The fit: the page's ink at the colouring's size (detail.PageDetail.page_w, tone left out)
against the colouring's luminance, both high-passed (lines, not colours or shading); the
translation by phase correlation, then an affine refinement (cv2.findTransformECC) coarse to
fine, at 1/4, 1/2 and the full working size. What the fit may do is bounded (a few percent
of scale and side, no rotation to speak of) and it must clearly raise the correlation with
the page's lines; otherwise, and within REGISTERED_PX everywhere, the colouring stays as it
is. A colouring of another page, or one without lines (flat colours, a hand colouring with
a broad brush: its edges are steps where the page's lines are ridges), finds no fit and is
used as it is, off by as much as it was (benchmarks/bench_registration.py, tests/test_registration.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: within this many working pixels everywhere the colouring is in register (a fit's own noise
#: on a colouring in register is 0.2-0.5 px)
REGISTERED_PX = 0.75
#: what a fit may do: scale by at most this fraction, shear by this much, move by this share of a side
MAX_SCALE, MAX_SHEAR, MAX_SHIFT = 0.03, 0.01, 0.04
#: the fit's correlation with the page's lines: at least this, and this much more than before
MIN_CORRELATION, MIN_GAIN = 0.5, 0.05
#: the pyramid, coarse to fine (factors of the working size)
LEVELS = (4, 2, 1)
#: a colouring with a longer side (one at print size) is fitted at this size, its move scaled back
FIT_SIDE = 1536
#: the high-pass (working pixels at full size): lines kept, colours and shading left out
HIGH_PASS_SIGMA = 4.0


@dataclass
class Fit:
    """How the colouring was moved: `warp` (2 x 3, page coordinates to the colouring's) or None
    where it was used as it is; `note`, what the artist is told (empty when nothing was done)."""

    warp: np.ndarray | None = None
    note: str = ""


def _high_pass(image: np.ndarray, sigma: float) -> np.ndarray:
    return image - cv2.GaussianBlur(image, (0, 0), sigma)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / norm if norm > 0 else 0.0


def _within_bounds(warp: np.ndarray, size: tuple[int, int]) -> bool:
    linear, shift = warp[:, :2], warp[:, 2]
    # the move at the page's centre, where a scale about a corner shows as a shift
    centre = np.array(size, np.float64) / 2
    moved = linear @ centre + shift - centre
    return (np.abs(np.diag(linear) - 1).max() <= MAX_SCALE and abs(linear[0, 1]) <= MAX_SHEAR
            and abs(linear[1, 0]) <= MAX_SHEAR and (np.abs(moved) <= MAX_SHIFT * np.array(size)).all())


def _largest_move(warp: np.ndarray, size: tuple[int, int]) -> float:
    """The farthest any pixel moves: at a corner, for an affine map."""
    width, height = size
    corners = np.array([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]], np.float64)
    moved = corners @ warp[:, :2].T + warp[:, 2]
    return float(np.hypot(*(moved - corners).T).max())


def _ecc(template: np.ndarray, moving: np.ndarray, warp: np.ndarray) -> np.ndarray | None:
    """The affine refinement, coarse to fine; None where it does not converge."""
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 60, 1e-5)
    height, width = template.shape
    for factor in LEVELS:
        size = (max(8, width // factor), max(8, height // factor))
        scale = np.array([size[0] / width, size[1] / height])
        fixed, loose = (_high_pass(cv2.resize(x, size, interpolation=cv2.INTER_AREA), HIGH_PASS_SIGMA / factor)
                        for x in (template, moving))
        level = warp.copy()
        level[:, 2] *= scale
        try:
            _, level = cv2.findTransformECC(fixed, loose, level, cv2.MOTION_AFFINE, criteria, None, 3)
        except cv2.error:  # it diverged (no lines in common): no fit
            return None
        warp = level.copy()
        warp[:, 2] /= scale
    return warp


def fit(page_w: np.ndarray, coloured: np.ndarray) -> Fit:
    """Where the colouring (h x w x 3 uint8) sits on the page's ink at its size (page_w:
    float32 [0, 1], ink dark, tone as paper)."""
    height, width = page_w.shape
    if max(width, height) > FIT_SIDE:  # a colouring at print size: fitted at a working size
        reduce = FIT_SIDE / max(width, height)
        size = (max(1, round(width * reduce)), max(1, round(height * reduce)))
        found = fit(*(cv2.resize(x, size, interpolation=cv2.INTER_AREA) for x in (page_w, coloured)))
        if found.warp is not None:
            found.warp = found.warp.copy()
            found.warp[:, 2] *= (width / size[0], height / size[1])
            found.note = _describe(found.warp, (width, height))
        return found
    if min(width, height) < 32 * LEVELS[0]:  # too small to fit anything reliably
        return Fit()
    template = (1.0 - page_w).astype(np.float32)
    luminance = cv2.cvtColor(coloured, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    moving = 1.0 - luminance
    fixed_hp, moving_hp = (_high_pass(x, HIGH_PASS_SIGMA) for x in (template, moving))
    before = _correlation(fixed_hp, moving_hp)
    window = cv2.createHanningWindow((width, height), cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(fixed_hp, moving_hp, window)
    warp = _ecc(template, moving, np.float32([[1, 0, dx], [0, 1, dy]]))
    if warp is None or not _within_bounds(warp.astype(np.float64), (width, height)):
        return Fit()
    if _largest_move(warp, (width, height)) <= REGISTERED_PX:
        return Fit()
    after = _correlation(fixed_hp, _high_pass(_warped(moving, warp), HIGH_PASS_SIGMA))
    if after < MIN_CORRELATION or after < before + MIN_GAIN:
        return Fit()
    return Fit(warp, _describe(warp, (width, height)))


def _describe(warp: np.ndarray, size: tuple[int, int]) -> str:
    """The fit in the artist's words: the move at the page's centre, the scale."""
    centre = np.array(size, np.float64) / 2
    shift = warp[:, :2].astype(np.float64) @ centre + warp[:, 2] - centre
    scale = (float(warp[0, 0]) + float(warp[1, 1])) / 2
    return (f"the colouring was out of register with the page's lines: moved by {-shift[0]:+.1f}, {-shift[1]:+.1f} "
            f"px" + (f" and scaled by {100 * (1 / scale - 1):+.1f}%" if abs(scale - 1) >= 0.001 else "")
            + f" at its {size[0]}x{size[1]} to meet them")


def _warped(image: np.ndarray, warp: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    return cv2.warpAffine(image, warp, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def registered(page_w: np.ndarray, coloured: np.ndarray, notes: list[str] | None = None) -> np.ndarray:
    """The colouring moved into register with the page's lines where it is out of it (said in
    `notes`); as it is otherwise (the same array)."""
    found = fit(page_w, coloured)
    if found.warp is None:
        return coloured
    if notes is not None:
        notes.append(found.note)
    return _warped(coloured, found.warp)
