"""A corpus of manga pages made the way manga is made, from coloured ground truth.

Each page starts as regions with known colours (panels' backgrounds and floors, windows and
their panes, figures' faces, hair, mouths, eyes, shirts and sleeves, speech balloons; the
paper of the margins and gutters), then is inked and toned as an artist inks and tones:

- every boundary between regions is a pen line (width varying along it), with gaps of 2-12 px
  at 1200 px tall (scaled with the page) here and there;
- hair strands and other open strokes end inside regions (bangs on the face, strands in hair);
- panel frames with 10-30 px gutters; one panel bleeds off the page, one is borderless;
  speech balloons with lettering cross the frames (the frame stops at the balloon);
- window panes are divided by grey bars, not black lines;
- regions are filled with screentone (45 degree dot halftones at 50-85 LPI for the page's
  dpi, flat or as a gradient), grey washes, solid black or cross-hatching; shading patches
  of tone or wash lie inside regions without a line around them;
- web scans are the 300 dpi page brought to 800-1700 px and saved as JPEG at quality 75-90.

Hint strokes are placed as an artist places them (short scribbles inside most regions of
most panels, some touching a line; some panels and the regions beside hinted ones left
unhinted), in the regions' own colours, so the right flats are known: hinted regions in
their colour, everything else paper. `evaluate` scores flats against that.

    python tests/corpus.py OUT_DIR [--sizes web a4] [--count N]   # writes pages, truth, hints

tests/data/corpus/ holds the small web-scan set the tests use (`write_test_set`); the
benchmarks make the larger set (A4 at 300 dpi too) with the same code.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

A4 = (2480, 3508)                      #: 300 dpi
PAPER = (255, 255, 255)
KINDS = ("paper", "background", "object", "face", "hair", "mouth", "eye", "clothes", "balloon")
DATA = Path(__file__).parent / "data" / "corpus"


@dataclass
class Region:
    id: int
    kind: str                     #: one of KINDS ("paper": margins, gutters, borderless panels)
    panel: int                    #: the panel it lies in, -1 outside every panel
    colour: tuple[int, int, int]  #: its colour in the coloured ground truth
    style: str = "plain"          #: plain, wash, tone, gradient, black, hatch
    hinted: bool = False


@dataclass
class CorpusPage:
    name: str
    grey: np.ndarray              #: H x W uint8, the page as scanned
    labels: np.ndarray            #: H x W int32, the region of every pixel
    lines: np.ndarray             #: H x W bool, where a pen line or lettering lies (ambiguous pixels)
    hints: np.ndarray             #: H x W x 4 uint8 RGBA strokes
    regions: list[Region]
    dpi: float
    jpeg: int | None = None       #: the JPEG quality it was saved at
    encoded: bytes | None = field(default=None, repr=False)  #: the JPEG file itself

    @property
    def rgb(self) -> np.ndarray:
        return np.repeat(self.grey[:, :, None], 3, axis=2)

    def expected(self) -> np.ndarray:
        """The right flats: hinted regions in their colour, everything else paper (H x W x 3)."""
        palette = np.array([r.colour if r.hinted else PAPER for r in self.regions], np.uint8)
        return palette[self.labels]

    def truth(self) -> np.ndarray:
        """The coloured ground truth: every region in its colour (H x W x 3)."""
        return np.array([r.colour for r in self.regions], np.uint8)[self.labels]


# --- geometry ------------------------------------------------------------------------------

class _Painter:
    """Regions painted in order onto a label image; the last paint wins."""

    def __init__(self, width: int, height: int, rng: np.random.Generator):
        self.labels = np.zeros((height, width), np.int32)
        self.regions = [Region(0, "paper", -1, PAPER)]
        self.rng = rng

    def add(self, kind: str, panel: int, mask_fn, clip: np.ndarray | None = None, colour=None) -> Region:
        region = Region(len(self.regions), kind, panel, colour or self.colour())
        mask = np.zeros(self.labels.shape, np.uint8)
        mask_fn(mask)
        mask = mask.astype(bool)
        if clip is not None:
            mask &= clip
        self.labels[mask] = region.id
        self.regions.append(region)
        return region

    def colour(self) -> tuple[int, int, int]:
        hue = self.rng.uniform(0, 180)
        sat = self.rng.uniform(90, 230)
        val = self.rng.uniform(150, 250)
        hsv = np.array([[[hue, sat, val]]], np.uint8)
        return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def _layout(width, height, s, rng):
    """Panel rectangles (x0, y0, x1, y1) with gutters of 10-30 px at 1200 px tall; which bleeds."""
    margin_x, margin_y = round(0.07 * width), round(0.06 * height)
    rows = int(rng.integers(3, 5))
    cuts = np.sort(rng.uniform(0.2, 0.8, rows - 1)) if rows > 1 else np.array([])
    heights = np.diff(np.concatenate([[0], cuts, [1]]))
    heights = 0.5 * heights + 0.5 / rows  # no sliver rows
    edges = np.concatenate([[0], np.cumsum(heights) / heights.sum()])
    panels = []
    inner_h = height - 2 * margin_y
    for row in range(rows):
        gutter = rng.uniform(10, 30) * s
        y0 = margin_y + edges[row] * inner_h + (gutter / 2 if row else 0)
        y1 = margin_y + edges[row + 1] * inner_h - (gutter / 2 if row < rows - 1 else 0)
        columns = int(rng.integers(1, 4))
        splits = np.sort(rng.uniform(0.25, 0.75, columns - 1))
        xs = np.concatenate([[0], splits, [1]])
        for col in range(columns):
            gutter_x = rng.uniform(10, 30) * s
            x0 = margin_x + xs[col] * (width - 2 * margin_x) + (gutter_x / 2 if col else 0)
            x1 = margin_x + xs[col + 1] * (width - 2 * margin_x) - (gutter_x / 2 if col < columns - 1 else 0)
            panels.append([int(x0), int(y0), int(x1), int(y1)])
    bleed = int(rng.integers(len(panels)))
    x0, y0, x1, y1 = panels[bleed]
    if y0 <= margin_y + 1:
        y0 = 0
    if y1 >= height - margin_y - 1:
        y1 = height - 1
    if x0 <= margin_x + 1:
        x0 = 0
    if x1 >= width - margin_x - 1:
        x1 = width - 1
    panels[bleed] = [x0, y0, x1, y1]
    borderless = int(rng.integers(len(panels)))
    if borderless == bleed:
        borderless = (borderless + 1) % len(panels)
    return panels, bleed, borderless


def _poly(points):
    return [np.round(np.array(points)).astype(np.int32)]


def _figure(painter: _Painter, panel: int, box, clip, s, rng, strands: list):
    """A figure: shirt and sleeves, a face with eyes and mouth, hair over the top of the head."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cx = x0 + rng.uniform(0.3, 0.7) * w
    head_r = min(w, h) * rng.uniform(0.13, 0.2)
    cy = y0 + rng.uniform(0.3, 0.45) * h
    body_top, body_bottom = cy + head_r * 0.9, y1 + 10 * s
    shoulder = head_r * rng.uniform(1.3, 1.8)
    body = [(cx - shoulder, body_top + head_r * 0.3), (cx + shoulder, body_top + head_r * 0.3),
            (cx + shoulder * 1.2, body_bottom), (cx - shoulder * 1.2, body_bottom)]
    painter.add("clothes", panel, lambda m: cv2.fillPoly(m, _poly(body), 1), clip)
    for side in (-1, 1):
        arm = [(cx + side * shoulder, body_top + head_r * 0.3),
               (cx + side * (shoulder + head_r * 0.8), body_top + head_r * 0.5),
               (cx + side * (shoulder + head_r * 1.1), body_bottom),
               (cx + side * (shoulder * 1.2), body_bottom)]
        painter.add("clothes", panel, lambda m, a=arm: cv2.fillPoly(m, _poly(a), 1), clip)
    rx, ry = head_r * rng.uniform(0.85, 1.0), head_r
    face = painter.add("face", panel, lambda m: cv2.ellipse(m, (int(cx), int(cy)), (int(rx), int(ry)), 0, 0, 360,
                                                            1, -1), clip)
    for side in (-1, 1):  # eyes: small closed shapes
        ex, ey = cx + side * rx * 0.4, cy + ry * 0.05
        painter.add("eye", panel, lambda m, ex=ex, ey=ey: cv2.ellipse(
            m, (int(ex), int(ey)), (max(3, int(rx * 0.16)), max(2, int(ry * 0.1))), 0, 0, 360, 1, -1), clip)
    mx, my = cx + rng.uniform(-0.1, 0.1) * rx, cy + ry * 0.55
    painter.add("mouth", panel, lambda m: cv2.ellipse(m, (int(mx), int(my)), (max(3, int(rx * 0.22)),
                                                                              max(2, int(ry * 0.1))),
                                                      0, 0, 180 if rng.random() < 0.5 else 360, 1, -1), clip)
    # hair: a cap over the top of the head, with a jagged fringe
    fringe = []
    teeth = int(rng.integers(4, 8))
    for i in range(teeth + 1):
        t = math.pi + i * math.pi / teeth
        depth = 0.25 if i % 2 else rng.uniform(-0.25, 0.05)
        fringe.append((cx + rx * 1.08 * math.cos(t), cy + ry * (depth + 0.0) + ry * 0.05 * math.sin(t)))
    cap = [(cx + rx * 1.15 * math.cos(t), cy + ry * 1.15 * math.sin(t)) for t in np.linspace(0, -math.pi, 12)]
    hair_poly = cap + fringe[::-1][1:]
    hair = painter.add("hair", panel, lambda m: cv2.fillPoly(m, _poly(hair_poly), 1), clip)
    # strands: open strokes from the fringe into the face, and inside the hair
    for _ in range(int(rng.integers(2, 5))):
        start = fringe[int(rng.integers(1, len(fringe) - 1))]
        length = ry * rng.uniform(0.25, 0.5)
        angle = math.pi / 2 + rng.uniform(-0.5, 0.5)
        end = (start[0] + length * math.cos(angle), start[1] + length * math.sin(angle))
        mid = ((start[0] + end[0]) / 2 + rng.uniform(-4, 4) * s, (start[1] + end[1]) / 2)
        strands.append([start, mid, end])
    for _ in range(int(rng.integers(2, 5))):
        t = rng.uniform(-math.pi * 0.9, -math.pi * 0.1)
        start = (cx + rx * 1.1 * math.cos(t), cy + ry * 1.1 * math.sin(t))
        end = (cx + rx * 0.5 * math.cos(t), cy + ry * 0.45 * math.sin(t) - ry * 0.1)
        strands.append([start, ((start[0] + end[0]) / 2 + 3 * s, (start[1] + end[1]) / 2), end])
    return face, hair


def _panel_content(painter: _Painter, panel: int, box, clip, s, rng, strands: list, bars: list):
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    painter.add("background", panel, lambda m: cv2.rectangle(m, (x0, y0), (x1, y1), 1, -1), clip)
    if rng.random() < 0.6:  # a floor below a slanted horizon
        ya, yb = y0 + h * rng.uniform(0.55, 0.8), y0 + h * rng.uniform(0.55, 0.8)
        floor = [(x0 - 5, ya), (x1 + 5, yb), (x1 + 5, y1 + 5), (x0 - 5, y1 + 5)]
        painter.add("background", panel, lambda m: cv2.fillPoly(m, _poly(floor), 1), clip)
    if rng.random() < 0.6 and w > 200 * s and h > 200 * s:  # a window with four panes, divided by grey bars
        wx0 = x0 + w * rng.uniform(0.05, 0.5)
        wy0 = y0 + h * rng.uniform(0.05, 0.2)
        ww, wh = w * rng.uniform(0.25, 0.4), h * rng.uniform(0.25, 0.4)
        midx, midy = wx0 + ww / 2, wy0 + wh / 2
        panes = []
        for px0, py0, px1, py1 in ((wx0, wy0, midx, midy), (midx, wy0, wx0 + ww, midy),
                                   (wx0, midy, midx, wy0 + wh), (midx, midy, wx0 + ww, wy0 + wh)):
            panes.append(painter.add("object", panel, lambda m, b=(px0, py0, px1, py1): cv2.rectangle(
                m, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), 1, -1), clip).id)
        grey = int(rng.integers(110, 175))
        bars.append(([(midx, wy0), (midx, wy0 + wh)], grey, panes))
        bars.append(([(wx0, midy), (wx0 + ww, midy)], grey, panes))
    if w > 120 * s and h > 150 * s:
        _figure(painter, panel, box, clip, s, rng, strands)


def _balloons(painter: _Painter, panels, s, rng, width, height):
    """Speech balloons over the frames: an ellipse with a tail; returns their lettering boxes."""
    boxes = []
    for index in rng.choice(len(panels), size=min(len(panels), int(rng.integers(2, 4))), replace=False):
        x0, y0, x1, y1 = panels[index]
        bw = min((x1 - x0) * 0.45, 260 * s)
        bh = bw * rng.uniform(0.5, 0.8)
        edge = rng.integers(0, 2)
        cx = x0 + rng.uniform(0.25, 0.75) * (x1 - x0) if edge == 0 else (x1 if rng.random() < 0.5 else x0)
        cy = y0 if edge == 0 else y0 + rng.uniform(0.2, 0.5) * (y1 - y0)
        cx = float(np.clip(cx, bw / 2 + 4, width - bw / 2 - 4))
        cy = float(np.clip(cy, bh / 2 + 4, height - bh / 2 - 4))
        tail = _poly([(cx - bw * 0.1, cy + bh * 0.35), (cx + bw * 0.05, cy + bh * 0.4),
                      (cx + bw * 0.15, cy + bh * 0.85)])

        def shape(m, cx=cx, cy=cy, bw=bw, bh=bh, tail=tail):
            cv2.ellipse(m, (int(cx), int(cy)), (int(bw / 2), int(bh / 2)), 0, 0, 360, 1, -1)
            cv2.fillPoly(m, tail, 1)

        painter.add("balloon", -1, shape, colour=PAPER)
        boxes.append((cx - bw * 0.3, cy - bh * 0.25, cx + bw * 0.3, cy + bh * 0.25))
    return boxes


# --- ink and tone --------------------------------------------------------------------------

def _halftone(shape, density, pitch, offset=0.0):
    """45 degree dot screen: ink where a dot of the local density covers the pixel."""
    height, width = shape
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    u = (xx + yy) / (pitch * math.sqrt(2)) + offset
    v = (xx - yy) / (pitch * math.sqrt(2))
    du, dv = u - np.floor(u) - 0.5, v - np.floor(v) - 0.5
    dist = np.sqrt(du * du + dv * dv)  # 0 at a dot's centre, 0.71 at the cell's corner
    radius = np.sqrt(np.clip(density, 0, 1) / math.pi)  # the dot's area is the density
    return dist < radius


def render(seed: int, width: int = A4[0], height: int = A4[1], dpi: float = 300.0, hint_panels: float = 0.75,
           hint_regions: float = 0.65) -> CorpusPage:
    """One page at its print size (A4 at 300 dpi by default), its truth and its hints."""
    rng = np.random.default_rng(seed)
    s = height / 1200.0  # the sizes are given at 1200 px tall
    painter = _Painter(width, height, rng)
    panels, bleed, borderless = _layout(width, height, s, rng)
    strands: list = []
    bars: list = []
    for index, (x0, y0, x1, y1) in enumerate(panels):
        clip = np.zeros((height, width), bool)
        clip[y0:y1 + 1, x0:x1 + 1] = True
        if index == borderless:  # floating figures on the page's paper
            _figure(painter, index, (x0, y0, x1, y1), clip, s, rng, strands)
        else:
            _panel_content(painter, index, (x0, y0, x1, y1), clip, s, rng, strands, bars)
    lettering = _balloons(painter, panels, s, rng, width, height)
    labels, regions = painter.labels, painter.regions

    # fills: the regions' styles, drawn as tone, wash, black or hatching
    grey = np.full((height, width), 255.0, np.float32)
    tone_pitch = dpi / rng.uniform(50, 85)
    for region in regions[1:]:
        if region.kind in ("balloon", "eye", "mouth"):
            continue
        roll = rng.random()
        if region.kind == "hair":
            region.style = "black" if roll < 0.4 else ("tone" if roll < 0.8 else "plain")
        elif region.kind == "background":
            region.style = next(style for limit, style in ((0.3, "tone"), (0.5, "gradient"), (0.7, "wash"),
                                                           (0.8, "hatch"), (1.1, "plain")) if roll < limit)
        elif region.kind == "clothes":
            region.style = "tone" if roll < 0.35 else ("wash" if roll < 0.55 else "plain")
    for region in regions[1:]:
        if region.style == "plain":
            continue
        mask = labels == region.id
        if region.style == "black":
            grey[mask] = rng.uniform(5, 30)
        elif region.style == "wash":
            grey[mask] = rng.uniform(150, 215)
        elif region.style in ("tone", "gradient"):
            density = np.full((height, width), rng.uniform(0.12, 0.6), np.float32)
            if region.style == "gradient":
                yy = np.arange(height, dtype=np.float32)[:, None] / height
                density = np.clip(np.broadcast_to(rng.uniform(0.05, 0.2) + yy * rng.uniform(0.6, 1.4),
                                                  (height, width)), 0, 0.85).astype(np.float32)
            dots = _halftone((height, width), density, tone_pitch, rng.random())
            grey[mask & dots] = 25
        elif region.style == "hatch":
            spacing = rng.uniform(6, 10) * s
            yy, xx = np.mgrid[0:height, 0:width]
            lines = ((xx + yy) % spacing) < max(1.0, 0.9 * s)
            if rng.random() < 0.5:
                lines |= ((xx - yy) % spacing) < max(1.0, 0.9 * s)
            grey[mask & lines] = 30
    # shading patches inside regions, with no line around them (tone or wash: not walls)
    for _ in range(int(rng.integers(2, 5))):
        candidates = [r for r in regions[1:] if r.kind in ("face", "clothes", "background") and r.style == "plain"]
        if not candidates:
            break
        region = candidates[int(rng.integers(len(candidates)))]
        ys, xs = np.nonzero(labels == region.id)
        if len(xs) < 400:
            continue
        pick = int(rng.integers(len(xs)))
        patch = np.zeros((height, width), np.uint8)
        cv2.ellipse(patch, (int(xs[pick]), int(ys[pick])), (int(rng.uniform(20, 60) * s), int(rng.uniform(10, 40) * s)),
                    rng.uniform(0, 180), 0, 360, 1, -1)
        patch = patch.astype(bool) & (labels == region.id)
        if rng.random() < 0.5:
            grey[patch] = np.minimum(grey[patch], rng.uniform(160, 210))
        else:
            grey[patch & _halftone((height, width), np.float32(rng.uniform(0.1, 0.35)), tone_pitch)] = 25

    # lines: every boundary between regions, inside the frames and around balloons
    # (panes of one window meet under its grey bars, not under a black line)
    pane = np.isin(labels, [r.id for r in regions if r.kind == "object"])
    boundary = np.zeros((height, width), bool)
    boundary[:, 1:] |= (labels[:, 1:] != labels[:, :-1]) & ~(pane[:, 1:] & pane[:, :-1])
    boundary[1:, :] |= (labels[1:, :] != labels[:-1, :]) & ~(pane[1:, :] & pane[:-1, :])
    width_field = cv2.resize(rng.uniform(1.4, 3.4, (8, 6)).astype(np.float32), (width, height),
                             interpolation=cv2.INTER_CUBIC) * s
    to_boundary = cv2.distanceTransform((~boundary).astype(np.uint8), cv2.DIST_L2, 5)
    ink = to_boundary < width_field / 2
    # gaps of 2-12 px at 1200 px tall, scattered along the lines, each on its own (two gaps
    # that overlap would make one wider than that)
    by, bx = np.nonzero(boundary)
    count = int(len(bx) / (260 * s))
    placed: list[tuple[int, int]] = []
    for pick in rng.choice(len(bx), size=min(count, len(bx)), replace=False):
        y, x = int(by[pick]), int(bx[pick])
        if any((y - py) ** 2 + (x - px) ** 2 < (40 * s) ** 2 for py, px in placed):
            continue
        placed.append((y, x))
        radius = max(rng.uniform(1, 6) * s, width_field[y, x] / 2 + 0.5)  # half the gap's length
        r = int(math.ceil(radius))
        yy, xx = np.mgrid[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1]
        hole = (yy - y) ** 2 + (xx - x) ** 2 <= radius ** 2
        window = ink[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1]
        window[hole[: window.shape[0], : window.shape[1]]] = False
    lines_mask = ink.copy()
    stroke = np.zeros((height, width), np.uint8)
    for points in strands:
        cv2.polylines(stroke, _poly(points), False, 1, max(1, round(1.3 * s)), cv2.LINE_AA)
    for points, bar_grey, panes in bars:  # only where the panes still show (not behind a head)
        bar = np.zeros((height, width), np.uint8)
        cv2.polylines(bar, _poly(points), False, 1, max(2, round(rng.uniform(3, 5) * s)))
        bar = bar.astype(bool) & np.isin(labels, panes)
        grey[bar] = bar_grey
        lines_mask |= bar
    lines_mask |= stroke.astype(bool)
    for bx0, by0, _, by1 in lettering:  # lettering: rows of short glyph strokes
        rows = 3
        text = np.zeros((height, width), np.uint8)
        scale = max(0.4, (by1 - by0) / rows / 30.0)
        for row in range(rows):
            y = int(by0 + (row + 0.8) * (by1 - by0) / rows)
            word = "".join(chr(int(c)) for c in rng.integers(65, 91, int(rng.integers(5, 10))))
            cv2.putText(text, word, (int(bx0), y), cv2.FONT_HERSHEY_SIMPLEX, scale, 1, max(1, round(1.5 * s)),
                        cv2.LINE_AA)
        text = text.astype(bool) & np.isin(labels, [r.id for r in regions if r.kind == "balloon"])
        grey[text] = 10
        lines_mask |= text
    line_grey = rng.uniform(0, 25)
    grey[ink | stroke.astype(bool)] = line_grey
    page = np.clip(grey + rng.normal(0, 2.0, grey.shape), 0, 255).astype(np.uint8)
    page = cv2.GaussianBlur(page, (0, 0), 0.5 * max(1.0, s / 2.9))  # the scanner's softness

    for region in regions:  # balloons and paper stay paper in the truth
        if region.kind in ("paper", "balloon"):
            region.colour = PAPER
    hints = _hints(labels, regions, panels, lines_mask | (page < 100), s, rng, hint_panels, hint_regions)
    return CorpusPage(f"page{seed:03d}", page, labels, lines_mask, hints, regions, dpi)


def _hints(labels, regions, panels, avoid, s, rng, hint_panels, hint_regions):
    """Scribbles inside most regions of most panels, in the regions' colours; some sloppy."""
    height, width = labels.shape
    hints = np.zeros((height, width, 4), np.uint8)
    hinted_panels = set(rng.choice(len(panels), size=max(1, round(hint_panels * len(panels))), replace=False)
                        .tolist())
    for region in regions[1:]:
        if region.panel not in hinted_panels or region.kind in ("paper", "balloon"):
            continue
        if rng.random() > hint_regions and region.kind not in ("eye",):
            continue
        if region.kind == "eye" and rng.random() < 0.5:
            continue
        mask = (labels == region.id).astype(np.uint8)
        depth = cv2.distanceTransform(np.pad(mask, 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
        margin = min(depth.max() * 0.5, 8 * s)
        ys, xs = np.nonzero(depth >= max(margin, 3 * s))
        if len(xs) < 5:
            continue
        pick = int(rng.integers(len(xs)))
        x, y = float(xs[pick]), float(ys[pick])
        length = min(rng.uniform(15, 60) * s, depth.max() * 3)
        angle = rng.uniform(0, math.pi)
        pts = [(x - math.cos(angle) * length / 2, y - math.sin(angle) * length / 2),
               (x + rng.uniform(-3, 3) * s, y + rng.uniform(-3, 3) * s),
               (x + math.cos(angle) * length / 2, y + math.sin(angle) * length / 2)]
        brush = max(2, round(min(rng.uniform(5, 12) * s, depth.max())))
        layer = np.zeros((height, width), np.uint8)
        cv2.polylines(layer, _poly(pts), False, 255, brush, cv2.LINE_AA)
        if rng.random() < 0.8:  # most strokes stay inside the region; some spill over a line
            layer[depth < 2 * s] = 0
        else:
            layer[cv2.dilate(mask, np.ones((int(6 * s) | 1, int(6 * s) | 1), np.uint8)) == 0] = 0
        if not (layer > 0).any():
            continue
        painted = layer > 0
        hints[painted, :3] = region.colour
        hints[painted, 3] = np.maximum(hints[painted, 3], layer[painted])
        region.hinted = True
    return hints


def web_scan(page: CorpusPage, height: int, quality: int) -> CorpusPage:
    """The print page as a web scan: brought to `height` px tall, JPEG at `quality`."""
    width = round(page.grey.shape[1] * height / page.grey.shape[0])
    grey = cv2.resize(page.grey, (width, height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, quality])
    grey = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    labels = cv2.resize(page.labels, (width, height), interpolation=cv2.INTER_NEAREST)
    lines = cv2.resize(page.lines.astype(np.uint8) * 255, (width, height), interpolation=cv2.INTER_AREA) > 40
    hints = cv2.resize(page.hints, (width, height), interpolation=cv2.INTER_AREA)
    hints[hints[..., 3] < 64] = 0
    hinted_ids = set(np.unique(labels[hints[..., 3] > 0]).tolist())
    regions = [Region(r.id, r.kind, r.panel, r.colour, r.style, r.hinted and r.id in hinted_ids)
               for r in page.regions]
    return CorpusPage(f"{page.name}-web{height}", grey, labels, lines, hints, regions,
                      page.dpi * height / page.grey.shape[0], quality, data.tobytes())


def corpus(sizes=("web",), count: int = 4, first_seed: int = 1) -> list[CorpusPage]:
    """Pages of the corpus: 'a4' (2480x3508 at 300 dpi), 'web' (800-1700 px tall JPEGs)."""
    pages = []
    for seed in range(first_seed, first_seed + count):
        print_page = render(seed)
        if "a4" in sizes:
            pages.append(print_page)
        if "web" in sizes:
            rng = np.random.default_rng(1000 + seed)
            pages.append(web_scan(print_page, int(rng.choice([1000, 1200, 1400, 1700])), int(rng.integers(75, 91))))
    return pages


# --- scoring -------------------------------------------------------------------------------

@dataclass
class Score:
    wrong_share: float            #: of the page's judged pixels, coloured but not with their region's hint colour
    unhinted_coloured: float      #: of unhinted panels', balloons' and gutters' judged pixels, coloured
    regions_right: float          #: of hinted regions, the share coloured right (>= 95% of their pixels)
    missed: float                 #: of hinted regions' judged pixels, left paper
    details: dict = field(default_factory=dict)

    def line(self) -> str:
        return (f"outside the right region {100 * self.wrong_share:.2f}%, unhinted panels/balloons/gutters "
                f"coloured {100 * self.unhinted_coloured:.2f}%, hinted regions right {100 * self.regions_right:.0f}%, "
                f"hinted pixels missed {100 * self.missed:.1f}%")


def evaluate(page: CorpusPage, flats: np.ndarray, tolerance: int = 24) -> Score:
    """Scores flats (H x W x 3, paper where unhinted; or H x W x 4 with alpha 0 there) against
    the truth. Pixels on or within 1 px of a line are not judged (where under a line one
    region ends and the next begins is nobody's to say)."""
    if flats.shape[2] == 4:
        coloured = flats[..., 3] > 0
    else:
        coloured = (np.abs(flats.astype(np.int16) - 255) > tolerance // 2).any(axis=2)
    judged = ~cv2.dilate(page.lines.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    expected = page.expected()
    hinted = np.array([r.hinted for r in page.regions])[page.labels]
    close = (np.abs(flats[..., :3].astype(np.int16) - expected.astype(np.int16)) <= tolerance).all(axis=2)
    wrong = judged & coloured & ~(hinted & close)
    kinds = np.array([r.kind for r in page.regions])
    panel_of = np.array([r.panel for r in page.regions])
    hinted_panels = {r.panel for r in page.regions if r.hinted}
    unhinted_panel = np.array([p >= 0 and p not in hinted_panels for p in panel_of])
    quiet = (np.isin(kinds, ["paper", "balloon"]) | unhinted_panel) & ~np.array([r.hinted for r in page.regions])
    quiet_px = quiet[page.labels] & judged
    right = 0
    hinted_ids = [r.id for r in page.regions if r.hinted]
    judged_labels = page.labels[judged]
    good_labels = page.labels[judged & hinted & close & coloured]
    sizes = np.bincount(judged_labels, minlength=len(page.regions))
    good = np.bincount(good_labels, minlength=len(page.regions))
    for rid in hinted_ids:
        if sizes[rid] and good[rid] >= 0.95 * sizes[rid]:
            right += 1
    hinted_judged = judged & hinted
    return Score(wrong_share=float(wrong.sum() / max(1, judged.sum())),
                 unhinted_coloured=float((quiet_px & coloured).sum() / max(1, quiet_px.sum())),
                 regions_right=right / max(1, len(hinted_ids)),
                 missed=float((hinted_judged & ~coloured).sum() / max(1, hinted_judged.sum())),
                 details={"hinted_regions": len(hinted_ids), "regions": len(page.regions) - 1})


def painted(page: CorpusPage) -> np.ndarray:
    """A perfect colouring at the page's own size: the truth's colours under the page's ink (its
    lines, lettering, solid blacks and hatching, as dark as drawn), its tone and washes painted
    over in colour (no dots left). H x W x 3 float32 in [0, 1]."""
    styles = np.array([r.style for r in page.regions])
    inked = (page.lines | np.isin(styles, ["black"])[page.labels]
             | (np.isin(styles, ["hatch"])[page.labels] & (page.grey < 128)))
    inked = cv2.dilate(inked.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)  # the lines' soft edges
    grey = page.grey.astype(np.float32) / 255
    return page.truth().astype(np.float32) / 255 * np.where(inked, grey, 1.0)[..., None]


def colorized(page: CorpusPage, working: tuple[int, int], soften: float = 0.7) -> np.ndarray:
    """What a perfect colorization gives at the working size (width, height): `painted` brought
    down, softened by `soften` working pixels as the VAE's output is (0: as sharp as a clean
    downscale). H x W x 3 uint8."""
    small = cv2.resize(painted(page), tuple(working), interpolation=cv2.INTER_AREA)
    if soften:
        small = cv2.GaussianBlur(small, (0, 0), soften)
    return np.rint(np.clip(small, 0, 1) * 255).astype(np.uint8)


def brought_back(image: np.ndarray, working: tuple[int, int], antialias: bool = True) -> np.ndarray:
    """A page-size result as it looks at the working size (width, height), to set beside the
    colorization made there: a Gaussian of half the scale, then the box mean (INTER_AREA): the
    dots averaged, as a zoomed-out view shows them, not aliased. antialias=False: the box mean alone, in which a
    tone's dots kept at the page's size alias (and `painted` itself is p95 9-12 from the
    softened colorization: benchmarks/bench_page_output.py)."""
    if antialias:
        image = cv2.GaussianBlur(image, (0, 0), image.shape[1] / working[0] / 2)
    return cv2.resize(image, tuple(working), interpolation=cv2.INTER_AREA)


# --- files ---------------------------------------------------------------------------------

def save(page: CorpusPage, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if page.jpeg:  # the web scan's own JPEG file, as a reader downloads it
        (folder / f"{page.name}.jpg").write_bytes(page.encoded)
    else:
        cv2.imwrite(str(folder / f"{page.name}.png"), page.grey)
    cv2.imwrite(str(folder / f"{page.name}.hints.png"), cv2.cvtColor(page.hints, cv2.COLOR_RGBA2BGRA))
    cv2.imwrite(str(folder / f"{page.name}.labels.png"), page.labels.astype(np.uint16))
    cv2.imwrite(str(folder / f"{page.name}.lines.png"), page.lines.astype(np.uint8) * 255)
    (folder / f"{page.name}.json").write_text(json.dumps({
        "name": page.name, "dpi": page.dpi, "jpeg": page.jpeg,
        "regions": [[r.id, r.kind, r.panel, list(r.colour), r.style, r.hinted] for r in page.regions]}))


def load(folder: Path, name: str) -> CorpusPage:
    meta = json.loads((folder / f"{name}.json").read_text())
    image = folder / (f"{name}.jpg" if meta["jpeg"] else f"{name}.png")
    grey = cv2.imread(str(image), cv2.IMREAD_GRAYSCALE)
    hints = cv2.cvtColor(cv2.imread(str(folder / f"{name}.hints.png"), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
    labels = cv2.imread(str(folder / f"{name}.labels.png"), cv2.IMREAD_UNCHANGED).astype(np.int32)
    lines = cv2.imread(str(folder / f"{name}.lines.png"), cv2.IMREAD_GRAYSCALE) > 0
    regions = [Region(i, k, p, tuple(c), st, h) for i, k, p, c, st, h in meta["regions"]]
    return CorpusPage(name, grey, labels, lines, hints, regions, meta["dpi"], meta["jpeg"])


def test_set() -> list[CorpusPage]:
    """The committed web-scan pages (tests/data/corpus)."""
    names = sorted(p.stem for p in DATA.glob("*.json"))
    return [load(DATA, name) for name in names]


def write_test_set(folder: Path = DATA) -> None:
    for page in corpus(("web",), count=4, first_seed=1):
        save(page, folder)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, nargs="?", default=DATA)
    parser.add_argument("--sizes", nargs="+", default=["web"], choices=["web", "a4"])
    parser.add_argument("--count", type=int, default=4)
    args = parser.parse_args()
    if args.out == DATA and args.sizes == ["web"] and args.count == 4:
        write_test_set()
    else:
        for page in corpus(tuple(args.sizes), args.count):
            save(page, args.out)
    print(f"wrote to {args.out}")


if __name__ == "__main__":
    main()
