"""The ratio slider's preview while it is dragged: made here, on Qt alone, without the backend.

A blend by the backend is a round trip, a blend in CIELAB and a page-size write: 0.5-2 s a
move on a CPU. While the slider is dragged, the docker instead mixes reduced images of the
result at a few ratios (KNOTS, fetched once per result, at `logic.preview_size`): the two
nearest the slider's, in proportion (sRGB, not CIELAB: exact at the knots, close between,
on the docker's test page 16 levels at most at 0.62, 0.75 on average, where the two ends
alone were up to 84 off at 0.5), and
scales the mix to the page quickly; on release the backend's blend of the whole page
replaces it. `benchmarks/bench_slider.py` times a move.
"""

from __future__ import annotations

from .qt import QtCore, QtGui

#: depths a preview is written in (float documents keep the backend's blends)
DEPTHS = ("uint8", "uint16")
#: the ratios fetched: the mixes between neighbours stand for the blends between them
KNOTS = (0.0, 0.25, 0.5, 0.75, 1.0)


class Preview:
    """A result reduced at the KNOTS ratios, and the mixes between them at the page's size."""

    def __init__(self, job: str, width: int, height: int, knots: dict[float, bytes], to_width: int,
                 to_height: int, dtype: str = "uint8"):
        self.job, self.dtype = job, dtype
        self.size = (to_width, to_height)
        self.ratios = sorted(knots)
        fmt = QtGui.QImage.Format.Format_ARGB32
        # converted (so copied: QImage does not own bytes it is given) for painting
        self.images = [QtGui.QImage(knots[r], width, height, width * 4, fmt).convertToFormat(
            QtGui.QImage.Format.Format_ARGB32_Premultiplied) for r in self.ratios]

    def frame(self, ratio: float) -> bytes:
        """The mix at `ratio`, scaled to the page, as Krita's BGRA pixels in this depth."""
        ratio = min(self.ratios[-1], max(self.ratios[0], ratio))
        upper = next(i for i, r in enumerate(self.ratios) if r >= ratio)
        lower = max(0, upper - 1)
        span = self.ratios[upper] - self.ratios[lower]
        mixed = self.images[lower].copy()
        painter = QtGui.QPainter(mixed)
        painter.setOpacity((ratio - self.ratios[lower]) / span if span else 1.0)
        painter.drawImage(0, 0, self.images[upper])
        painter.end()
        # converted while small, then scaled: the page-size image is made once, in its final format
        if self.dtype == "uint16":  # Krita's 16-bit BGRA: R and B swapped, then widened (RGBA64 is R,G,B,A)
            mixed = mixed.rgbSwapped().convertToFormat(QtGui.QImage.Format.Format_RGBA64)
        else:
            mixed = mixed.convertToFormat(QtGui.QImage.Format.Format_ARGB32)
        scaled = mixed.scaled(self.size[0], self.size[1], QtCore.Qt.AspectRatioMode.IgnoreAspectRatio,
                              QtCore.Qt.TransformationMode.SmoothTransformation)
        return bytes(scaled.constBits().asstring(scaled.sizeInBytes()))
