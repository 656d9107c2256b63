"""`style2paints`: Style2Paints V4.5's colours from the strokes and a reference.

inkn'hue's alignment VAE was trained on Style2Paints V4.5's `blended_smoothed_careless`
image (rossiyareich/inknhue, `create_style2paints_dataset.py`, keeps exactly that one of
the server's outputs). This provider makes that image without TensorFlow: four of the
author's Keras networks, converted to torch by `inknhue.networks.keras` (fetched only with
the user's agreement: `inknhue weights download --style2paints`), and the server's pre- and
post-processing written here in numpy, OpenCV (no contrib) and torch, one small function
per step. The original is `V4.5/s2p_v45_server/Style2PaintsV45_source.py` in
lllyasviel/style2paints; its names are given in brackets.

    page --flatten_alpha [from_png_to_jpg]--> BGR (the server works in OpenCV's order)
      sketch: min_resize 512 [min_resize] -> channel minimum -> cli_norm -> tail on 64-px tiles
              with 20 px of context [go_tail], which doubles the size (short side 1024) ->
              channel mean, rounded to 8 bits (the server stores it as sketch.png)
      page:   grey (OpenCV's BGR2GRAY, as inkn'hue's dataset script; the server re-reads its
              origin.png as greyscale) -> normalise_page at the sketch's size [request_result]
    reference (or the page) --flatten_alpha--> saturate x2 [s_enhance] -> k_resize 14: short
              side 224, long side a multiple of 64 -> reader; feature maps averaged to vectors
    strokes --stroke_hint_map--> 5x5 squares on the head's grid [opreate_normal_hint]
    head([1 - sketch_1024 / 255, hints, vectors...]) at k_resize(sketch, 64) (short side
              1024, long side a multiple of 64) -> neck, its first input replaced by
              1 - grey(head's colours) resized TF1-bilinear [make_graph, go_head]
    refine [refine_image]: diffuse (64 sketch-weighted 5-point steps) -> unsharp -> guided
              filter (r=1, eps=0.01, guided by the sketch) x4 -> match_tones (to the head's
              output) -> yuv_blend: Y = min(Y, normalised page) -> RGB

Channel order: the server decodes every image with OpenCV (BGR) and builds the hint map
as B, G, R, A. Its `VGG2RGB(x) = (x + [103.939, 116.779, 123.68])[..., ::-1]` gives an
array that `cv2.imwrite` stores with the hints' colours in the right channels: in the
example room `game/rooms/H18M40S38` of the repository, the points of colour (R, G, B) =
(158, 139, 130) come out as about (152, 133, 138) in `H18M41S44.smoothed_careless.png`,
and the skin point (255, 230, 200) as (254, 254, 211). So what `decode_vgg` returns is in
the pipeline's BGR order, whatever the name VGG2RGB says; `to_grey` weighs it as the
original's `ToGray` does (0.30 on the first channel).
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from .. import weights
from ..errors import InknhueError, WeightsError
from .base import RoughProvider, RoughRequest, register
from .flats import check_hints

log = logging.getLogger(__name__)

NETWORKS = weights.STYLE2PAINTS_NETWORKS
#: the module that reads converted Keras networks (written separately; may be absent)
KERAS_MODULE = "inknhue.networks.keras"
#: Caffe VGG's channel means, as the server adds them [VGG2RGB]
VGG_MEANS = np.array([103.939, 116.779, 123.68], np.float32)
SKETCH_SHORT_SIDE = 512     #: [upload_sketch] min_resize(origin, 512)
TILE, TILE_CONTEXT, TILE_CROP = 64, 20, 41  #: [go_tail]
REFERENCE_K, SKETCH_K = 14, 64  #: [request_result] k_resize(face, 14), k_resize(sketch, 64)
HINT_LENGTH = 2             #: [request_result] opreate_normal_hint(..., length=2): 5x5 squares
#: a stroke pixel, averaged down to the head's grid, is a hint point from this opacity on
HINT_THRESHOLD = 0.5
DIFFUSION_STEPS = 64        #: [tf_sparse_op_H] build_repeat_mulsep(..., 64)
GUIDED_RADIUS, GUIDED_EPS, GUIDED_PASSES = 1, 0.01, 4  #: [refine_image] createGuidedFilter(sketch, 1, 0.01), 4 x
TAIL_BATCH = 16             #: tiles of one shape run through the tail together


# --- resizing rules ----------------------------------------------------------------------

def _interpolation(new_short: int, old_short: int) -> int:
    """The server's rule everywhere: area-averaging when the short side shrinks, else Lanczos."""
    return cv2.INTER_AREA if new_short < old_short else cv2.INTER_LANCZOS4


def min_resize(image: np.ndarray, short: int) -> np.ndarray:
    """The short side to `short`, the long side in proportion, truncated [min_resize]."""
    h, w = image.shape[:2]
    if h < w:
        rows, cols = short, int(float(short) / float(h) * float(w))
    else:
        rows, cols = int(float(short) / float(w) * float(h)), short
    return cv2.resize(image, (cols, rows), interpolation=_interpolation(min(rows, cols), min(h, w)))


def k_resize(image: np.ndarray, k: int) -> np.ndarray:
    """The short side to 16 k, the long side in proportion rounded to the nearest multiple of 64
    (half-way rounds up) [k_resize]. The short side is a multiple of 64 only when k is a
    multiple of 4: 1024 for the sketch (k 64), 224 for the reference (k 14)."""
    h, w = image.shape[:2]
    if h < w:
        rows = 16 * k
        cols = int(w * (rows / h))
        cols = (cols + 32) - (cols + 32) % 64
    else:
        cols = 16 * k
        rows = int(h * (cols / w))
        rows = (rows + 32) - (rows + 32) % 64
    return cv2.resize(image, (cols, rows), interpolation=_interpolation(min(rows, cols), min(h, w)))


def d_resize(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """To the height and width of `shape` [d_resize with fac 1]."""
    rows, cols = int(shape[0]), int(shape[1])
    return cv2.resize(image, (cols, rows), interpolation=_interpolation(min(rows, cols), min(image.shape[:2])))


def resize_bilinear_tf1(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """TensorFlow 1's `tf.image.resize_bilinear` (align_corners and half_pixel_centers off):
    output pixel i samples the input at i * in / out (no half-pixel shift), between the pixel
    below and the next one (clamped at the last); computed in float32 as TF does.
    H x W x C -> height x width x C."""
    image = np.asarray(image, np.float32)

    def weights_for(out_size: int, in_size: int):
        scale = np.float32(in_size) / np.float32(out_size)
        position = np.arange(out_size, dtype=np.float32) * scale
        lower = np.floor(position)
        upper = np.minimum(np.ceil(position), in_size - 1).astype(np.int64)
        return lower.astype(np.int64), upper, (position - lower).astype(np.float32)

    y0, y1, dy = weights_for(height, image.shape[0])
    x0, x1, dx = weights_for(width, image.shape[1])
    dx = dx[None, :, None]
    top = image[y0][:, x0] + (image[y0][:, x1] - image[y0][:, x0]) * dx
    bottom = image[y1][:, x0] + (image[y1][:, x1] - image[y1][:, x0]) * dx
    return top + (bottom - top) * dy[:, None, None]


# --- the sketch ----------------------------------------------------------------------------

def flatten_alpha(image: np.ndarray) -> np.ndarray:
    """RGBA (or BGRA) over white, RGB as it is [from_png_to_jpg]: 255 - (255 - c) * alpha,
    truncated to 8 bits."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 3:
        return image
    colour = image[:, :, :3].astype(np.float64) / 255.0
    alpha = image[:, :, 3:4].astype(np.float64) / 255.0
    return (255.0 - (1.0 - colour) * alpha * 255.0).clip(0, 255).astype(np.uint8)


def channel_minimum(image: np.ndarray) -> np.ndarray:
    """The darkest channel of each pixel [np.min(sketch, axis=2)]: coloured ink counts as ink."""
    return np.min(image, axis=2)


def cli_norm(sketch: np.ndarray) -> np.ndarray:
    """Normalise the line intensity [cli_norm]: the paper level is the brightest pixel of the
    sketch shrunk to short side 64; a pixel's ink is how far below it lies; the ink of the
    darkest 10% of line pixels (ink above 16) maps to 90% black, the rest in proportion,
    truncated to 8 bits.

    A sketch with no line pixel at all makes the original fail (an index error; inkn'hue's
    dataset script then skips the division, which turns every pixel with any ink black):
    here it comes back white."""
    light = np.max(min_resize(sketch, 64), axis=(0, 1), keepdims=True)
    intensity = (light - sketch.astype(np.float32)).clip(0, 255)
    lines = np.sort(intensity[intensity > 16])[::-1]
    if lines.size == 0:
        return np.full(sketch.shape, 255, np.uint8)
    intensity /= lines[int(float(lines.size) * 0.1)]
    intensity *= 0.9
    return (255.0 - intensity * 255.0).clip(0, 255).astype(np.uint8)


def tiles(length: int, size: int = TILE) -> list[tuple[int, int]]:
    """Spans of `size` px, the last one taking the remainder (64 to 127 px) [srange]. The
    original fails below one tile; a shorter side (never the case at short side 512) is
    one span here."""
    count = max(1, length // size)
    spans = [(i * size, (i + 1) * size) for i in range(count)]
    spans[-1] = (spans[-1][0], length)
    return spans


def run_tail(sketch: np.ndarray, tail) -> np.ndarray:
    """The line-cleaning network over the sketch, tile by tile [go_tail]; H x W uint8 -> 2H x 2W.

    The sketch is copied to three channels, padded by 20 px (edge-inclusive mirror,
    numpy's 'symmetric'), scaled to [0, 1] and cut into the spans of `tiles` with 20 px of
    context each side. `tail` (NHWC float32 -> NHWC float32) returns 2 n + 2 px for n (as
    V4.5's example room shows: a 600 x 512 page gives a 1200 x 1024 sketch); 41 px are cut
    from each edge, which leaves twice the tile. The outputs are joined,
    scaled to 8 bits (truncated), and averaged over the channels; the server then stores
    the mean as sketch.png, which rounds it to 8 bits (kept here; inkn'hue's dataset script
    keeps the float mean, a difference below one level)."""
    height, width = sketch.shape[:2]
    image = np.repeat(sketch[:, :, None], 3, axis=2)
    c = TILE_CONTEXT
    padded = np.pad(image, ((c, c), (c, c), (0, 0)), "symmetric").astype(np.float32) / 255.0
    rows, cols = tiles(height), tiles(width)
    items: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for r, (hs, he) in enumerate(rows):
        for k, (ws, we) in enumerate(cols):
            items.setdefault((he - hs, we - ws), []).append((r, k))
    done: dict[tuple[int, int], np.ndarray] = {}
    for (th, tw), places in items.items():
        for start in range(0, len(places), TAIL_BATCH):
            batch = places[start:start + TAIL_BATCH]
            inputs = np.stack([padded[rows[r][0]:rows[r][1] + 2 * c, cols[k][0]:cols[k][1] + 2 * c]
                               for r, k in batch])
            outputs = tail(inputs)
            for (r, k), out in zip(batch, outputs, strict=True):
                piece = out[TILE_CROP:-TILE_CROP, TILE_CROP:-TILE_CROP]
                if piece.shape[:2] != (2 * th, 2 * tw):
                    raise WeightsError(f"the Style2Paints tail network returned {out.shape[1]}x{out.shape[0]} "
                                       f"for a {tw + 2 * c}x{th + 2 * c} tile, not twice the size plus 2: "
                                       f"is it V4.5's tail.net?")
                done[(r, k)] = piece
    joined = np.concatenate([np.concatenate([done[(r, k)] for k in range(len(cols))], axis=1)
                             for r in range(len(rows))], axis=0)
    cleaned = (joined * 255.0).clip(0, 255).astype(np.uint8)
    return np.round(cleaned.mean(axis=2)).astype(np.uint8)


def normalise_page(grey: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The page's grey at the sketch's size with its paper level brought to white
    [request_result's `origin`]: the low frequencies (Gaussian, sigma 3) divided by their
    median and scaled to 255, the high frequencies (the lines) added back.

    A page whose median is black (zero) makes the original divide by zero; its low
    frequencies are kept as they are here."""
    page = d_resize(grey, shape).astype(np.float32)
    low = cv2.GaussianBlur(page, (0, 0), 3.0)
    high = page - low
    median = float(np.median(low))
    if median > 0:
        low = (low / median * 255.0).clip(0, 255)
    return (low + high).clip(0, 255).astype(np.uint8)


# --- the reference and the hints -----------------------------------------------------------

def saturate(bgr: np.ndarray, k: float = 2.0) -> np.ndarray:
    """Saturation times k, clipped [s_enhance]. The original converts its BGR image with
    OpenCV's RGB<->HSV codes; saturation does not depend on the channel order and the
    round trip restores it, so the same call is made here on the same BGR data."""
    hsv = cv2.cvtColor(bgr, cv2.COLOR_RGB2HSV).astype(np.float64)
    hsv[:, :, 1] *= k
    hsv = hsv.clip(0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def hint_map(points, height: int, width: int, length: int = HINT_LENGTH) -> np.ndarray:
    """The head's local hints from clicked points [opreate_normal_hint]: each point (x, y in
    [0, 1] from the top left, r, g, b) fills the square of side 2 length + 1 around
    (int(x W), int(y H)), cut at the edges, with B, G, R and alpha 255; later points paint
    over earlier ones. The grid is the head's own input (the sketch at short side 1024),
    not a smaller one. (The server's client sends y from the bottom; it flips it first.)"""
    grid = np.zeros((height, width, 4), np.uint8)
    for x, y, r, g, b in points:
        x, y = int(x * width), int(y * height)
        left, top = max(0, x - length), max(0, y - length)
        right, bottom = min(width, x + length + 1), min(height, y + length + 1)
        grid[top:bottom, left:right] = (b, g, r, 255)
    return grid


def stroke_hint_map(hints: np.ndarray, height: int, width: int, length: int = HINT_LENGTH,
                    threshold: float = HINT_THRESHOLD) -> np.ndarray:
    """Page-sized RGBA strokes -> the hint map of `hint_map`, every stroke pixel a point.

    The strokes are brought to the head's grid (stretched like the original's normalised
    point coordinates), averaging colour weighted by opacity so thin strokes keep their hue;
    grid pixels at least `threshold` opaque are the points, taken in row-major order (so
    where two squares overlap, the later point's colour wins, as in `hint_map`). A stroke
    thus becomes itself widened by `length` px at the grid. Style2Paints' own client places
    single points; strokes are the Krita artist's way to place many."""
    alpha = hints[:, :, 3:4].astype(np.float32) / 255.0
    premultiplied = hints[:, :, :3].astype(np.float32) / 255.0 * alpha
    alpha_small = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_AREA).reshape(height, width)
    colour_small = cv2.resize(premultiplied, (width, height), interpolation=cv2.INTER_AREA)
    colour = np.clip(colour_small / np.maximum(alpha_small, 1e-6)[:, :, None], 0.0, 1.0)
    colour = np.round(colour * 255.0).astype(np.uint8)
    points = alpha_small >= threshold
    order = np.zeros((height, width), np.float64)  # float64: exact for any grid size
    flat = np.flatnonzero(points)
    order.flat[flat] = np.arange(1, flat.size + 1)
    # The point drawn last over each pixel: the greatest order within `length` px (Chebyshev).
    side = 2 * length + 1
    winner = cv2.dilate(order, np.ones((side, side), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    winner = winner.astype(np.int64)
    grid = np.zeros((height, width, 4), np.uint8)
    hit = winner > 0
    source = flat[winner[hit] - 1]
    rgb = colour.reshape(-1, 3)[source]
    grid[hit] = np.column_stack([rgb[:, 2], rgb[:, 1], rgb[:, 0], np.full(len(source), 255, np.uint8)])
    return grid


def encode_hints(grid: np.ndarray) -> np.ndarray:
    """The hint map as the head reads it [make_graph's feed]: (BGR / 127.5 - 1) * alpha / 255,
    H x W x 3 float32 (zero where nothing was hinted)."""
    grid = grid.astype(np.float32)
    return (grid[:, :, :3] / 127.5 - 1.0) * grid[:, :, 3:4] / 255.0


def decode_vgg(raw: np.ndarray) -> np.ndarray:
    """A head or neck output to 0-255 colours [VGG2RGB]: the VGG means added, the channels
    reversed. The result is in the pipeline's BGR order (see the module's docstring)."""
    return (raw + VGG_MEANS)[..., ::-1]


def to_grey(image: np.ndarray) -> np.ndarray:
    """0.30, 0.59, 0.11 times the first, second, third channel [ToGray], keeping a channel axis."""
    return 0.30 * image[..., 0:1] + 0.59 * image[..., 1:2] + 0.11 * image[..., 2:3]


# --- refine_image --------------------------------------------------------------------------

def sketch_weights(sketch: np.ndarray) -> np.ndarray:
    """Each pixel's weights for itself and its four neighbours (up, left, self, right, down)
    [build_sketch_sparse with abs]: 8 - |difference in sketch grey|, at least 0, normalised to
    sum to 1; so colour flows between pixels of like grey and stops at the lines. Edges
    mirror (numpy's 'symmetric'). H x W -> H x W x 5 float32."""
    x = sketch.astype(np.float32)
    p = np.pad(x, 1, "symmetric")
    neighbours = np.stack([p[:-2, 1:-1], p[1:-1, :-2], x, p[1:-1, 2:], p[2:, 1:-1]], axis=2)
    weight = 8.0 - np.abs(x[:, :, None] - neighbours)
    weight[weight < 0] = 0.0
    return weight / weight.sum(axis=2, keepdims=True)


def diffuse(image: np.ndarray, weight: np.ndarray, steps: int = DIFFUSION_STEPS,
            device: torch.device | str = "cpu") -> np.ndarray:
    """`steps` rounds of y = up a + left b + y c + right d + down e with the weights of
    `sketch_weights` and mirrored edges (one pixel deep: the edge pixel repeated)
    [build_repeat_mulsep, 64 steps in tf_sparse_op_H]. H x W x C float32; the sums run in
    the original's order, in place."""
    with torch.inference_mode():
        y = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), np.float32)).to(device)
        w = torch.from_numpy(np.ascontiguousarray(weight.transpose(2, 0, 1), np.float32)).to(device)
        a, b, c, d, e = (w[i:i + 1] for i in range(5))
        channels, height, width = y.shape
        p = torch.empty(channels, height + 2, width + 2, device=y.device)
        out = torch.empty_like(y)
        for _ in range(steps):
            p[:, 1:-1, 1:-1] = y
            p[:, 0, 1:-1], p[:, -1, 1:-1] = y[:, 0], y[:, -1]
            p[:, :, 0], p[:, :, -1] = p[:, :, 1], p[:, :, -2]
            torch.mul(p[:, :-2, 1:-1], a, out=out)
            out.addcmul_(p[:, 1:-1, :-2], b)
            out.addcmul_(y, c)
            out.addcmul_(p[:, 1:-1, 2:], d)
            out.addcmul_(p[:, 2:, 1:-1], e)
            y, out = out, y
        return y.permute(1, 2, 0).cpu().numpy().copy()


def unsharp(image: np.ndarray) -> np.ndarray:
    """x + 2 (x - Gaussian(x, sigma 1)) [go_guide's first line]."""
    return image + (image - cv2.GaussianBlur(image, (0, 0), 1)) * 2.0


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int = GUIDED_RADIUS,
                  eps: float = GUIDED_EPS) -> np.ndarray:
    """He et al.'s guided filter with a grey guide, as OpenCV contrib's ximgproc computes it
    [createGuidedFilter(sketch, 1, 0.01).filter]: the guide as float32 *without* rescaling
    (0-255, so eps 0.01 is tiny and the filter keeps every line), means over
    (2 r + 1)^2 boxes with mirrored edges (BORDER_REFLECT), a = cov(I, p) / (var(I) + eps),
    b = mean(p) - a mean(I), output mean(a) I + mean(b); each channel of `src` alone."""
    size = (2 * radius + 1, 2 * radius + 1)

    def box(x):
        return cv2.boxFilter(x, cv2.CV_32F, size, normalize=True, borderType=cv2.BORDER_REFLECT)

    guide = guide.astype(np.float32)
    mean_i = box(guide)
    inverse = 1.0 / (box(guide * guide) - mean_i * mean_i + np.float32(eps))
    src = np.asarray(src, np.float32)
    channels = src[:, :, None] if src.ndim == 2 else src
    out = np.empty(channels.shape, np.float32)
    for k in range(channels.shape[2]):
        p = np.ascontiguousarray(channels[:, :, k])
        mean_p = box(p)
        a = (box(p * guide) - mean_p * mean_i) * inverse
        b = mean_p - a * mean_i
        out[:, :, k] = box(b) + box(a) * guide
    return out.reshape(src.shape)


def tone_points(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each channel's dark, mean and bright levels [get_hdr]: the mean; the bright level the
    mean of what lies at or above it, twice; the dark level the mean of what lies at or below
    it, four times. Returns three 1 x 1 x 3 float32 arrays."""
    points = [np.zeros((1, 1, 3), np.float32) for _ in range(3)]
    for c in range(3):
        x = image[:, :, c].astype(np.float32)
        mean = np.mean(x)
        high = low = mean
        for _ in range(2):
            high = np.mean(x[x >= high])
            low = np.mean(x[x <= low])
        for _ in range(2):
            low = np.mean(x[x <= low])
        points[0][0, 0, c], points[1][0, 0, c], points[2][0, 0, c] = low, mean, high
    return points[0], points[1], points[2]


def tone_curve(x: np.ndarray, source, target) -> np.ndarray:
    """Each channel through the parabola that takes the three `source` levels to the three
    `target` levels (three-point Lagrange interpolation) [f2]; levels are 1 x 1 x 3.

    Where a channel's source levels are not distinct (a flat channel) the original divides
    by zero; such a channel is shifted so its mean level lands on the target's instead."""
    x1, x2, x3 = source
    y1, y2, y3 = target
    x = np.asarray(x, np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        mapped = (y1 * ((x - x2) * (x - x3)) / ((x1 - x2) * (x1 - x3))
                  + y2 * ((x - x1) * (x - x3)) / ((x2 - x1) * (x2 - x3))
                  + y3 * ((x - x1) * (x - x2)) / ((x3 - x1) * (x3 - x2)))
    flat = ((x1 == x2) | (x2 == x3) | (x1 == x3)).reshape(-1)
    for c in np.flatnonzero(flat):
        mapped[..., c] = x[..., c] - x2.reshape(-1)[c] + y2.reshape(-1)[c]
    return mapped


def match_tones(image: np.ndarray, target) -> np.ndarray:
    """The image's own dark, mean and bright levels taken to `target`'s (the head's), clipped
    to 0-255 [go_hdr]."""
    return tone_curve(image, tone_points(image), target).clip(0, 255)


def yuv_blend(bgr: np.ndarray, page: np.ndarray) -> np.ndarray:
    """The colours under the page's lines [go_blend without multiply]: both to 8 bits
    (truncated), the colours to OpenCV's YUV, Y = min(Y, page), back to BGR."""
    yuv = cv2.cvtColor(bgr.clip(0, 255).astype(np.uint8), cv2.COLOR_BGR2YUV)
    lightness = np.minimum(yuv[:, :, 0].astype(np.float32), page.clip(0, 255).astype(np.uint8).astype(np.float32))
    yuv[:, :, 0] = lightness.clip(0, 255).astype(np.uint8)
    return cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR)


def refine(image: np.ndarray, sketch: np.ndarray, page: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
    """[refine_image]'s `blended_smoothed`: the head's colours (BGR uint8, any size) at the
    sketch's size, smoothed along the sketch, tones matched back to the head's, and the page's
    normalised grey as the lightness ceiling."""
    targets = tone_points(image)
    smoothed = d_resize(image, sketch.shape).astype(np.float32)
    smoothed = diffuse(smoothed, sketch_weights(sketch), DIFFUSION_STEPS, device)
    smoothed = unsharp(smoothed)
    guide = sketch.clip(0, 255).astype(np.uint8)
    for _ in range(GUIDED_PASSES):
        smoothed = guided_filter(guide, smoothed)
    smoothed = match_tones(smoothed, targets)
    return yuv_blend(smoothed, page)


# --- the networks --------------------------------------------------------------------------

@dataclass
class Networks:
    """The four converted networks on one device; each takes NHWC float tensors, one per
    model input in the model's input order, and returns a list of NHWC outputs."""

    tail: torch.nn.Module
    reader: torch.nn.Module
    head: torch.nn.Module
    neck: torch.nn.Module
    device: torch.device

    def run(self, network: torch.nn.Module, *inputs: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode():
            tensors = [torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(self.device) for x in inputs]
            outputs = network(*tensors)
        if isinstance(outputs, torch.Tensor):
            outputs = [outputs]
        return [o.float().cpu().numpy() for o in outputs]


def keras_module():
    """`inknhue.networks.keras` (imported by name, so a test can stand one in)."""
    return importlib.import_module(KERAS_MODULE)


def unavailable_reason(weights_dir: Path) -> str | None:
    """Why the provider cannot run with this weights folder, or None when it can."""
    try:
        keras_module()
    except ImportError as exc:
        return f"this inkn'hue cannot read converted Keras networks ({KERAS_MODULE}: {exc})"
    missing = weights.missing_style2paints(weights_dir)
    if missing:
        return (f"the Style2Paints V4.5 networks are not in {weights_dir / weights.STYLE2PAINTS} "
                f"(missing: {', '.join(missing)}); get them, under their author's terms, with "
                f"`{weights.inknhue_command()} weights download --style2paints`")
    return None


_networks: dict[tuple[str, str], Networks] = {}
_networks_lock = threading.Lock()


def _networks_key(weights_dir: Path, device) -> tuple[str, str]:
    return str(Path(weights_dir).resolve()), str(device)


def load_networks(weights_dir: Path, device: torch.device) -> Networks:
    """The converted networks, loaded once per process and device (each module's `warnings`
    says what `networks.keras.load` found wrong with its weights)."""
    key = _networks_key(weights_dir, device)
    with _networks_lock:
        if key not in _networks:
            reason = unavailable_reason(weights_dir)
            if reason:
                raise WeightsError(reason)
            keras = keras_module()
            loaded = {}
            for name in NETWORKS:
                path = weights.style2paints_file(weights_dir, name)
                try:
                    module = keras.load(path)
                except InknhueError:
                    raise
                except Exception as exc:  # noqa: BLE001  (a damaged file is one line for the user)
                    raise WeightsError(f"{path} could not be loaded ({type(exc).__name__}: {exc}); convert it again "
                                       f"with `{weights.inknhue_command()} weights download --style2paints`") from exc
                loaded[name] = module.to(device=device, dtype=torch.float32).eval()
            _networks[key] = Networks(device=torch.device(device), **loaded)
            log.info("loaded the Style2Paints networks from %s on %s", weights_dir, device)
        return _networks[key]


def colourise(page: np.ndarray, hints: np.ndarray | None, reference: np.ndarray | None,
              networks: Networks) -> np.ndarray:
    """The page (RGB or RGBA uint8), strokes (RGBA, the page's size, or None) and reference
    (RGB or RGBA, any size; None: the page itself, as inkn'hue's dataset script passes each
    image as its own reference) -> `blended_smoothed_careless`, RGB uint8, the sketch's size
    (short side 1024)."""
    origin = np.ascontiguousarray(flatten_alpha(page)[:, :, ::-1])
    sketch = cli_norm(channel_minimum(min_resize(origin, SKETCH_SHORT_SIDE)))
    sketch = run_tail(sketch, lambda batch: networks.run(networks.tail, batch)[0])
    page_grey = normalise_page(cv2.cvtColor(origin, cv2.COLOR_BGR2GRAY), sketch.shape)

    face = origin if reference is None else np.ascontiguousarray(flatten_alpha(reference)[:, :, ::-1])
    face = k_resize(saturate(face), REFERENCE_K)
    vectors = [f.mean(axis=(1, 2)) for f in networks.run(networks.reader, face[None].astype(np.float32) / 255.0)]

    sketch_1024 = k_resize(sketch, SKETCH_K)
    height, width = sketch_1024.shape
    grid = (stroke_hint_map(hints, height, width) if hints is not None
            else np.zeros((height, width, 4), np.uint8))
    feed = [1.0 - sketch_1024[None, :, :, None].astype(np.float32) / 255.0, encode_hints(grid)[None], *vectors]
    first = networks.run(networks.head, *feed)[-1]
    grey = to_grey(decode_vgg(first[0]) / 255.0)
    feed[0] = np.clip(1.0 - resize_bilinear_tf1(grey, height, width), 0.0, 1.0)[None]
    careless = decode_vgg(networks.run(networks.neck, *feed)[-1][0]).clip(0, 255).astype(np.uint8)
    blended = refine(np.ascontiguousarray(careless), sketch, page_grey, networks.device)
    return np.ascontiguousarray(blended[:, :, ::-1])


@register
class Style2PaintsProvider(RoughProvider):
    name = "style2paints"
    description = ("Style2Paints V4.5's colours from the strokes and the reference (its author's networks, "
                   "fetched with your agreement)")
    takes_reference = True

    @classmethod
    def unavailable(cls, weights_dir: Path) -> str | None:
        return unavailable_reason(weights_dir)

    def check(self, request: RoughRequest) -> list[str]:
        hints = request.hints
        empty = hints is None or (hints.ndim == 3 and hints.shape[2] == 4 and not (hints[..., 3] > 0).any())
        if empty and request.reference is None:
            return ["No strokes and no reference: Style2Paints picks every colour itself "
                    "(paint strokes, or give a reference)."]
        return []

    def weights_warnings(self, weights_dir: Path, device) -> list[str]:
        networks = _networks.get(_networks_key(weights_dir, device))
        if networks is None:
            return []
        return [w for name in NETWORKS for w in getattr(getattr(networks, name), "warnings", [])]

    def rough_colours(self, request: RoughRequest, engine) -> np.ndarray:
        hints = check_hints(request.hints, request.page)
        networks = load_networks(engine.weights_dir, engine.device)
        return colourise(request.page, hints, request.reference, networks)
