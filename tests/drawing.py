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
