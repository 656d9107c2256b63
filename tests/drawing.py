"""Synthetic manga pages and hint layers, drawn by the tests."""

from __future__ import annotations

import cv2
import numpy as np

INK = 0
LINE = 3  # px, a typical pen line at 300 dpi


class Page:
    """A white page to draw ink on, with a transparent hint layer of the same size."""

    def __init__(self, width: int = 600, height: int = 800):
        self.grey = np.full((height, width), 255, np.uint8)
        self.hints = np.zeros((height, width, 4), np.uint8)

    @property
    def rgb(self) -> np.ndarray:
        return np.repeat(self.grey[:, :, None], 3, axis=2)

    def rectangle(self, x0, y0, x1, y1, width=LINE):
        cv2.rectangle(self.grey, (x0, y0), (x1, y1), INK, width)
        return self

    def circle(self, cx, cy, r, width=LINE):
        cv2.circle(self.grey, (cx, cy), r, INK, width)
        return self

    def erase(self, x0, y0, x1, y1):
        """Cut a gap in the ink (inclusive box)."""
        self.grey[y0:y1 + 1, x0:x1 + 1] = 255
        return self

    def dots(self, x0, y0, x1, y1, pitch=6, radius=1):
        """Light screentone: isolated round dots."""
        for y in range(y0 + pitch // 2, y1, pitch):
            for x in range(x0 + pitch // 2, x1, pitch):
                cv2.circle(self.grey, (x, y), radius, 40, -1)
        return self

    def mesh(self, x0, y0, x1, y1, pitch=6, hole=3):
        """Dense screentone: a dark mesh around small paper cells, cut off at the box's edges."""
        yy, xx = np.mgrid[y0:y1, x0:x1]
        cell = ((yy - y0) % pitch < hole) & ((xx - x0) % pitch < hole)
        self.grey[y0:y1, x0:x1] = np.where(cell, 255, 40)
        return self

    def stroke(self, points, colour, width=8):
        pts = np.array(points, np.int32)
        cv2.polylines(self.hints, [pts], False, tuple(int(c) for c in colour) + (255,), width)
        return self


def rectangle_interior(shape, x0, y0, x1, y1, margin=LINE):
    mask = np.zeros(shape, bool)
    mask[y0 + margin:y1 - margin + 1, x0 + margin:x1 - margin + 1] = True
    return mask


def circle_interior(shape, cx, cy, r, margin=LINE):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= (r - margin) ** 2


def share(rgb: np.ndarray, mask: np.ndarray, colour, tolerance=3) -> float:
    """The fraction of the masked pixels that are `colour`."""
    close = (np.abs(rgb.astype(int) - np.array(colour)) <= tolerance).all(axis=-1)
    return float(close[mask].mean())


def print_page(width: int = 2480, height: int = 3508, seed: int = 0) -> np.ndarray:
    """An A4 page at 300 dpi as an artist inks it: panels and figures in 1-2 px lines,
    small lettering, and a screentone patch. H x W uint8 grey."""
    rng = np.random.default_rng(seed)
    grey = np.full((height, width), 255, np.uint8)
    for x0, y0, x1, y1 in ((100, 100, 2380, 1700), (100, 1800, 1200, 3400), (1280, 1800, 2380, 3400)):
        cv2.rectangle(grey, (x0, y0), (x1, y1), INK, 2)
    for _ in range(80):
        centre = (int(rng.integers(200, width - 200)), int(rng.integers(200, height - 200)))
        cv2.circle(grey, centre, int(rng.integers(30, 300)), INK, int(rng.integers(1, 3)), lineType=cv2.LINE_AA)
    for i in range(30):  # speech-balloon lettering, about 20 px tall
        cv2.putText(grey, "INK AND HUE 123", (150 + (i % 3) * 700, 300 + (i // 3) * 120),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.9, INK, 2, cv2.LINE_AA)
    yy, xx = np.mgrid[0:600, 0:800]
    grey[2000:2600, 1400:2200][((yy % 8) < 3) & ((xx % 8) < 3)] = 60
    return grey


def region_colours(grey: np.ndarray, seed: int = 0) -> np.ndarray:
    """A colourist's flats for a page: each paper region between the lines its own colour,
    each ink pixel that of the nearest paper. H x W x 3 float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    paper = (grey > 128).astype(np.uint8)
    count, labels = cv2.connectedComponents(paper, connectivity=4)
    palette = rng.integers(90, 256, (count, 3)).astype(np.float32) / 255
    _, nearest = cv2.distanceTransformWithLabels(1 - paper, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    source = np.flatnonzero(paper)[nearest.ravel() - 1].reshape(grey.shape)
    return palette[labels.ravel()[source]]
