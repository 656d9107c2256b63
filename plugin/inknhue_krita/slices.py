"""Pixels read and written in row slices of a bounded size.

One `pixelData` of a whole A4 page at 16 bits is over 100 MB, copied while Krita's UI
thread waits; in slices the copies stay small, a reader can stop at the first slice that
answers its question (document.covers), and the run's flow can let Qt draw between slices
(controller.py steps through them).
"""

from __future__ import annotations

from typing import Callable, Iterator

from .logic import Rect

SLICE_BYTES = 2 << 20  #: about this many bytes a slice
#: what a stepped reader or writer yields to have Qt's event loop turn at once (before one long
#: Krita call, so that it does not add to the steps before it)
TURN = "turn"


def rows(rect: Rect, pixel_bytes: int, budget: int = SLICE_BYTES) -> list[Rect]:
    """`rect` cut into full-width bands of at most `budget` bytes (one row at least)."""
    if rect.empty:
        return []
    step = max(1, budget // max(1, rect.width * pixel_bytes))
    return [Rect(rect.x, y, rect.width, min(step, rect.y + rect.height - y))
            for y in range(rect.y, rect.y + rect.height, step)]


def read(pixel_data: Callable, rect: Rect, pixel_bytes: int, budget: int = SLICE_BYTES) -> Iterator[bytes]:
    """`pixel_data(x, y, w, h)`'s bytes over `rect`, a band at a time, top to bottom."""
    for band in rows(rect, pixel_bytes, budget):
        yield bytes(pixel_data(band.x, band.y, band.width, band.height))


def write(set_pixel_data: Callable, wrap: Callable, data: bytes, rect: Rect, pixel_bytes: int,
          budget: int = SLICE_BYTES) -> Iterator[Rect]:
    """Write `data` (all of `rect`) a band at a time, yielding each band once written;
    `wrap` makes the binding's byte array of a band."""
    view = memoryview(data)
    row = rect.width * pixel_bytes
    for band in rows(rect, pixel_bytes, budget):
        start = (band.y - rect.y) * row
        set_pixel_data(wrap(view[start:start + band.height * row].tobytes()), band.x, band.y, band.width,
                       band.height)
        yield band
