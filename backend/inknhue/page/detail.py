"""Results at the page's own size: the model's colours, the page's own ink and tone.

The networks work at the working size (768 px on the short side by default); a printed
page is 2480x3508 or more. A plain upscale of the working-size result softens every line,
letter and screentone dot. Instead, the result is built the way a colourist builds a
page, from a colour layer and the page:

    full = (B + A) x P on the ink    (P: the page's grey at the output size, in [0, 1])
    full = B + A x P off it          (B, A: tone_gain, per channel, from the colours and the tone)

1. The ink (line_art): lineart.py's walls (lines, lettering, solid blacks; not screentone,
   washes or hatching's paper) where the page is darker than LINE_LEVEL, and any black area
   wider than a tone's dots. A colorization keeps ink as drawn but reads tone and washes
   as shading and repaints them, usually lighter: multiplying the page back over its
   colours (what this module did before) made toned pages muddy and dark.
2. C at the working size is the model's result M over the page's ink as the model saw it
   (P_w: the page with its tone as paper, brought down), a local weighted least-squares
   ratio sum(M P_w) / sum(P_w^2) over a small Gaussian window: ink carries no weight, so C
   holds the colours around the lines; off the ink C = M. Windows holding only ink (a
   solid black) are filled from wider ones, computed at a smaller size (wide_blur).
3. The tone off the ink (tone_gain) is laid back as texture around C: B = C - A x T, T the
   page's tone level there (tone_mean), so that a working pixel whose page averages T
   averages C, the model's own result. Where the model kept the tone as shading, A = C / T
   and B = 0: the tone multiplied as drawn. Where it made an area lighter than the tone (it
   read the tone as shading and painted it over), each channel keeps as much of the tone's
   contrast as its mean leaves room for: A = C / T where the channel is still no lighter than
   the tone, else (1 - C) / (1 - T), which takes the paper between the dots to white and no
   further (a white colour carries none). Before, the tone faded by the colour's brightest
   channel in all three, so that under a pale colour the dots all but vanished (a pale blue
   over a 36% tone: 4 L* between dots and paper, now 31; tests/test_page_output.py).
4. B and A are brought to the output size edge-aware: every pixel samples them a little
   inside its own region. A paper pixel closer than `reach` to ink samples at `reach` from
   it, moved along the distance field's gradient (at most as far as the distance keeps
   growing, so narrow regions sample their middle); an ink pixel takes the sample of its
   nearest paper pixel. The working-size colours blur across a line over about two working
   pixels; pulling samples out of that band keeps each region's colour up to its own ink.
5. The colour layer (`colour_layer`, for a Multiply layer under the artist's ink) is
   full / P, at most 1 (A + B / P off the ink, B + A on it): under Multiply it gives `full`
   wherever `full` is no lighter than the page, and the page's dots as drawn where the model
   painted tone over lighter.

Measured in benchmarks/bench_page_output.py (2 shared cores, loaded). On a synthetic A4 page
on white paper with known region colours: the Laplacian of L* correlates with the page's at
0.99 (LANCZOS upscale: 0.22); the a*/b* error on paper within 6 px of ink is 1.4 (LANCZOS
5.3; the colour layer brought up bilinearly, without the edge-aware sampling, 4.8); ink
keeps L* 7 where the page has 11 (LANCZOS: 43). On the corpus (tests/corpus.py: toned and
washed pages, web scans and A4), against a perfect colorization at 768 that painted tone
and washes over: detail 0.95-0.98 (the tone faded as before: 0.91-0.94; the tone's dots
are about three quarters of a page's Laplacian); chroma 0.99-1.00 (colour x page of before:
0.78-0.84); ink at least as dark as drawn. Brought back to the working size as a zoomed-out
view shows it (tests/corpus.py's brought_back: a Gaussian of half the scale, then the box
mean), CIEDE76 mean 1.3-1.6, p95 6-6.5 (the tone faded as before: 1.0-1.4, p95 5-6; colour x
page: 8-10, p95 36-45; the perfect page-size colouring: 0.5-0.6, p95 3.3-3.9). By the box mean
alone (INTER_AREA) 2.6 on web scans and 3.5 at A4, p95 11-15, for two reasons no colour
explains: within 2 working px of the ink (15-18% of the page) crisp lines against the VAE's
softness across them (dE 7-8.5 there; by the box the perfect colouring is p95 8-12 too);
and the tone's dots, kept at page size, alias in a box wherever their period is not a whole
number of boxes (in the tone and gradient areas the error is zero-mean, |dL*| 4.6-5.8).
Fading the dots where the model painted over buys the box reading what the detail goal
pays: half their contrast, box against the unsoftened colorization 2.6 -> 1.7 (p95 12.6 ->
7.8) at A4 and detail 0.95 -> 0.86; none of it, 0.9 and 0.46. At A4 each
further ratio takes 0.8x the time colour x page took, the first call on a page 0.9x
(quiet machine, median of 5; the tone faded as before, in the same process: 0.7x and
1.0-1.3x; the sampling maps' gradient by one Sobel pass, 5% of the first call).
Alternatives measured there: a detail transfer in L* (the page's L* minus its low-pass,
added to the model's upscaled L*) keeps lines as crisp but mixes colours across lines as
LANCZOS does (6.1) and needs CIELAB at page size (18x LANCZOS); guided-filter upsampling
blurs colours across thin lines, since paper on both sides has the same grey (10.8), and
leaves ink lighter than drawn (L* 33). Taking T as each working pixel's own box mean (what
a box bring-down averages) brings the A4 mean to 2.5-2.7 with the same detail, but a box
mean follows a tone's dots wherever they are coarse for the working size, and the texture
around it then erases them: dots of a tone the model kept came out up to 68 L* lighter than
drawn (tests/test_page_output.py's synthetic page), so that is not done. Where the model
painted the tone over, taking T at the page's size instead (the page off its ink under a
normalized Gaussian of 0.7 working px) lowers the A4 page's error from 1.34 to 1.08 (box:
3.52 to 3.38) at the same detail, for one more page-sized blur a page: not done yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import Cancelled
from ..runtime.cache import StageCache, digest
from . import lineart

#: ink (line_art) is no lighter than this (0-255): a line's soft edge, not the paper beside it
LINE_LEVEL = 230
#: solid areas lighter than this (0-255, blurred) are a dense tone, not solid black
SOLID_LEVEL = 50
#: how far (in working-size pixels, plus one page pixel) samples move from the ink
REACH_WORKING_PX = 2.0
#: the window (in working pixels) the page's tone level is taken over
TONE_SIGMA = 1.0
#: windows (in working pixels) of the colour-over-page ratio; wider ones fill solid black areas
RATIO_SIGMAS = (0.8, 3.0, 10.0, 40.0)
#: a window needs at least this much paper (sum of P^2 weights, relative) to be trusted
MIN_PAPER = 0.05


def pyramid_factor(sigma: float) -> int:
    """Wide windows are blurred at 1/f the size (f a power of two, the blur there 2.5 px or more):
    they only fill solid black areas, whose colour hardly shows, at a fraction of the cost."""
    return 1 << max(0, int(np.floor(np.log2(sigma / 2.5))))


def wide_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """cv2.GaussianBlur(image, (0, 0), sigma), wide ones at a smaller size (pyramid_factor):
    edges replicated to a multiple of f, box-averaged, blurred, brought back bilinearly."""
    factor = pyramid_factor(sigma)
    if factor == 1:
        return cv2.GaussianBlur(image, (0, 0), sigma)
    height, width = image.shape[:2]
    pad = ((0, -height % factor), (0, -width % factor)) + ((0, 0),) * (image.ndim - 2)
    padded = np.pad(image, pad, mode="edge")
    small = cv2.resize(padded, (padded.shape[1] // factor, padded.shape[0] // factor), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / factor)
    big = cv2.resize(small, (padded.shape[1], padded.shape[0]), interpolation=cv2.INTER_LINEAR)
    return big[:height, :width]


def colour_over_page(model: np.ndarray, page_w: np.ndarray) -> np.ndarray:
    """C at the working size: model (H x W x 3, [0, 1]) over the page at the same size."""
    num = model * page_w[..., None]
    den = page_w * page_w
    colour = None
    trusted = np.zeros(den.shape, bool)
    for sigma in RATIO_SIGMAS:
        n = wide_blur(num, sigma)
        d = wide_blur(den, sigma)
        ratio = n / np.maximum(d, 1e-6)[..., None]
        if colour is None:
            colour = ratio
        else:
            colour = np.where(trusted[..., None], colour, ratio)
        trusted |= d > MIN_PAPER
        if trusted.all():
            break
    # where even the widest window is all ink (a black page), the model's own colour
    colour = np.where(trusted[..., None], colour, model)
    return np.clip(colour, 0.0, 1.0, out=colour).astype(np.float32, copy=False)


def _lookup(image: np.ndarray, x: np.ndarray, y: np.ndarray, row: int = 4096) -> np.ndarray:
    """Bilinear samples of a one-channel image at points (remap wants sides under 32767)."""
    count = len(x)
    rows = -(-count // row)
    pad = rows * row - count
    xs, ys = (np.pad(v, (0, pad)).reshape(rows, row) for v in (x, y))
    return cv2.remap(image, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).ravel()[:count]


def _fixed(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates -> cv2.remap's fixed-point maps (what cv2.convertMaps makes, 1/32 px):
    integer x, integer y, and the index of the fractional parts."""
    vx, vy = np.rint(x * 32).astype(np.int32), np.rint(y * 32).astype(np.int32)
    return (vx >> 5).astype(np.int16), (vy >> 5).astype(np.int16), ((vy & 31) * 32 + (vx & 31)).astype(np.uint16)


def _nearest_paper(ink: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each ink pixel (flat indices), the flat index of its nearest paper pixel (the
    distance transform's labels number paper pixels in raster order). The paper's indices
    are a transient page-sized array, no larger than what a ratio's render holds."""
    _, nearest = cv2.distanceTransformWithLabels(ink.view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5,
                                                 labelType=cv2.DIST_LABEL_PIXEL)
    at_ink = np.flatnonzero(ink)
    rank = nearest.ravel()[at_ink] - 1
    del nearest
    return at_ink, np.flatnonzero(~ink.ravel())[rank]


def _step_out(distance: np.ndarray, gradient: tuple[np.ndarray, np.ndarray], near: np.ndarray,
              reach: float) -> tuple[np.ndarray, np.ndarray]:
    """Where paper pixels (flat indices) closer than `reach` to ink sample instead: along the
    distance field's gradient, as far as the distance keeps growing (a narrow region's middle)."""
    width = distance.shape[1]
    gx, gy = gradient[0].ravel()[near], gradient[1].ravel()[near]
    y, x = np.divmod(near, np.int32(width))
    start = distance.ravel()[near]
    x, y = x.astype(np.float32), y.astype(np.float32)
    push = (reach - start) / np.maximum(np.hypot(gx, gy), 1e-6)
    step_x, step_y = gx * push, gy * push
    best_x, best_y, best = x.copy(), y.copy(), start
    for fraction in (0.25, 0.5, 1.0):
        tx, ty = x + step_x * fraction, y + step_y * fraction
        reached = _lookup(distance, tx, ty)
        better = reached > best + 1e-3
        best[better], best_x[better], best_y[better] = reached[better], tx[better], ty[better]
    return best_x, best_y


def _sampling_maps(ink: np.ndarray, working: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """For each output pixel, where to sample the working-size colour layer, as cv2.remap's
    fixed-point maps. ink: bool at the output size (line_art)."""
    height, width = ink.shape
    scale_x, scale_y = working[0] / width, working[1] / height

    def to_working(x, y):  # output pixel centres -> working pixel coordinates
        return (x + 0.5) * scale_x - 0.5, (y + 0.5) * scale_y - 0.5

    column_x, _, column_frac = _fixed(*to_working(np.arange(width, dtype=np.float64), np.zeros(width)))
    _, row_y, row_frac = _fixed(*to_working(np.zeros(height), np.arange(height, dtype=np.float64)))
    xy = np.empty((height, width, 2), np.int16)
    xy[..., 0], xy[..., 1] = column_x[None, :], row_y[:, None]
    frac = (row_frac[:, None] & np.uint16(~31 & 0xFFFF)) | (column_frac[None, :] & np.uint16(31))
    if not ink.any() or ink.all():
        return xy, frac
    reach = REACH_WORKING_PX / max(scale_x, scale_y) + 1.0
    # distance to the nearest ink; only paper pixels within `reach` of it move
    distance = cv2.distanceTransform((~ink).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)
    near = np.flatnonzero((distance > 0) & (distance < reach)).astype(np.int32)
    flat_xy, flat_frac = xy.reshape(-1, 2), frac.ravel()
    # the field's Sobel gradient once (threaded): cheaper than its taps gathered pixel by pixel
    gradient = tuple(cv2.Sobel(distance, cv2.CV_32F, dx, 1 - dx, ksize=3, borderType=cv2.BORDER_REPLICATE)
                     for dx in (1, 0))
    for chunk in np.array_split(near, max(1, len(near) >> 20)):  # about a million at a time: bounded memory
        flat_xy[chunk, 0], flat_xy[chunk, 1], flat_frac[chunk] = _fixed(
            *to_working(*_step_out(distance, gradient, chunk, reach)))
    del distance, near, gradient
    # ink pixels take the sample of their nearest paper pixel
    at_ink, source = _nearest_paper(ink)
    flat_xy[at_ink], flat_frac[at_ink] = flat_xy[source], flat_frac[source]
    return xy, frac


def line_art(grey: np.ndarray) -> np.ndarray:
    """The page's ink (H x W uint8 -> bool): its lines, lettering and solid blacks, not its
    screentone, washes or hatching' paper (lineart.py's walls, which flats stand on too), at
    the grey's own size; a line's soft edge included, so that it stays as drawn."""
    art = lineart.analyse(grey)
    # a dense dark tone can look solid at the analysis size: only the really black stays ink
    walls = art.walls & ~(art.solid & (art.grey > SOLID_LEVEL))
    height, width = grey.shape
    if art.size != (width, height):
        walls = cv2.resize(walls.view(np.uint8), (width, height), interpolation=cv2.INTER_LINEAR) > 0
    walls = cv2.dilate(walls.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool)
    # black areas wider than a tone's dots are ink whatever the page's paper (a page all black
    # has no paper for lineart.py to find its lines against)
    dark = (grey < SOLID_LEVEL).view(np.uint8)
    solid = cv2.morphologyEx(dark, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
    return (walls & (grey < LINE_LEVEL)) | solid.view(bool)


def tone_mean(page: np.ndarray, ink: np.ndarray, working: tuple[int, int]) -> np.ndarray:
    """What the page is off its ink (its paper, tone and washes) around each working pixel:
    the level the model saw there (float32 [0, 1]; 1 where there is only ink). Over a window
    of TONE_SIGMA working pixels: a screentone's period is about a working pixel or two, and
    one pixel's share of dots is the screen's aliasing, not its level."""
    paper = (~ink).astype(np.float32)
    tone = page.astype(np.float32) * np.float32(1 / 255) * paper
    area = cv2.resize(paper, tuple(working), interpolation=cv2.INTER_AREA)
    level = cv2.resize(tone, tuple(working), interpolation=cv2.INTER_AREA)
    for sigma in (TONE_SIGMA, 4 * TONE_SIGMA):  # the wider window reaches into wide solid blacks
        share = cv2.GaussianBlur(area, (0, 0), sigma)
        if (share > 1e-3).all():
            break
    mean = np.where(share > 1e-3, cv2.GaussianBlur(level, (0, 0), sigma) / np.maximum(share, 1e-6), 1.0)
    return np.clip(mean, 0.0, 1.0).astype(np.float32)


def tone_gain(colour: np.ndarray, tone: np.ndarray) -> np.ndarray:
    """How the page's tone is laid over the model's colours, in each channel: full = B + A x P
    off the ink, with B = colour - A x tone, so that it averages `colour` over a working pixel
    whose page averages `tone` off the ink (the model's own working-size result): the tone as
    texture around the model's colour. colour: H x W x 3, tone: H x W -> H x W x 6 (B, A).

    Where the model made an area lighter than the page (it read the tone as shading and
    painted it over), each channel keeps as much of the tone's contrast as the mean leaves
    room for: A = colour / tone (as drawn) where the channel is no lighter than the tone, else
    (1 - colour) / (1 - tone), which takes the paper between the dots to white and no further
    (nothing is clipped, so the mean is kept; a white colour carries none). Lighter means
    lighter than the page anywhere in a working pixel's 3 x 3 neighbourhood (both over
    TONE_SIGMA's window), by the colour's brightest channel: a model's softness beside a line
    the line art missed is not a lighter area (that line stays as drawn). Elsewhere (the model
    kept the tone as shading) the tone is multiplied as drawn: B = 0, A = colour / tone, at most
    colour / its brightest channel (nothing the page has dark comes out lighter; on white paper
    full is the colours times the page). B + A x P lies in [0, 1] for every P in [0, 1], and
    so does any blend of two, as the remap makes."""
    value = np.maximum(colour.max(axis=-1), 1e-3)
    # both over the tone's window: a screen's ripple in the model's result is not lighter either
    lighter = (cv2.GaussianBlur(value, (0, 0), TONE_SIGMA) > cv2.dilate(tone, np.ones((3, 3), np.uint8)))[..., None]
    level = np.clip(tone, 1e-3, 1.0)[..., None]
    amplitude = np.where(lighter, np.minimum(colour / level, (1.0 - colour) / np.maximum(1.0 - level, 1e-6)),
                         colour / np.maximum(level, value[..., None]))
    offset = np.where(lighter, np.maximum(colour - amplitude * level, 0.0), 0.0)
    return np.concatenate([offset, amplitude], axis=2).astype(np.float32)


@dataclass
class PageDetail:
    """One page at one output size: its grey, its ink, its tone, and where each pixel samples
    the colours. Made once per page and size (about 0.4 s for an A4 page), then every ratio is cheap."""

    page: np.ndarray      #: the page's grey at the output size, uint8
    ink: np.ndarray       #: its ink at the output size (line_art), bool
    page_w: np.ndarray    #: the page at the working size with its ink only, tone as paper, float32 [0, 1]
    tone_w: np.ndarray    #: the page off its ink at the working size (tone_mean), float32 [0, 1]
    maps: tuple[np.ndarray, np.ndarray]  #: cv2.remap's fixed-point maps (6 bytes a pixel)

    @classmethod
    def make(cls, page_grey: np.ndarray, size: tuple[int, int], working: tuple[int, int]) -> "PageDetail":
        """page_grey: H x W uint8 at the page's size; size and working: (width, height)."""
        grey = page_grey
        if (grey.shape[1], grey.shape[0]) != tuple(size):
            shrink = size[0] < grey.shape[1] and size[1] < grey.shape[0]
            grey = cv2.resize(grey, tuple(size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        ink = line_art(grey)
        # the ink as the model saw it (the colour under the ink is the model's result over it)
        inked = np.where(ink, grey, np.uint8(255))
        page_w = cv2.resize(inked, tuple(working), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        return cls(grey, ink, page_w, tone_mean(grey, ink, working), _sampling_maps(ink, tuple(working)))

    def __post_init__(self):
        self.twins: dict = {}  # device -> detail_gpu.DevicePageDetail, made on first use there

    @property
    def nbytes(self) -> int:  # host memory (what the cache's budget counts)
        return sum(a.nbytes for a in (self.page, self.ink, self.page_w, self.tone_w, *self.maps))

    def _fields(self, model: np.ndarray) -> np.ndarray:
        """tone_gain's B and A at the working size: H x W x 6 float32."""
        return tone_gain(colour_over_page(model.astype(np.float32) / 255.0, self.page_w), self.tone_w)

    def layers(self, model: np.ndarray) -> np.ndarray:
        """The colours and the tone's amplitude at the output size: H x W x 6 float32."""
        return cv2.remap(self._fields(model), *self.maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def _render(self, model: np.ndarray, under_ink: bool, cancelled=None) -> np.ndarray:
        fields = self._fields(model)
        height, width = self.page.shape
        out = np.empty((height, width, 3), np.float32)
        levels = np.arange(256, dtype=np.float32) / 255
        inverse = 1 / np.maximum(levels, np.float32(1e-3))
        rows = 32  # bands that stay in the cache: no page-sized float temporaries
        made = np.empty((rows, width, 6), np.float32)
        scratch = np.empty((3, rows, width), np.float32)
        for top in range(0, height, rows):
            if cancelled is not None and cancelled():  # polled a band at a time: a job's Cancel stops it
                raise Cancelled()
            band = slice(top, top + rows)
            ink, page = self.ink[band], self.page[band]
            count = len(page)
            cv2.remap(fields, self.maps[0][band], self.maps[1][band], cv2.INTER_LINEAR, dst=made[:count],
                      borderMode=cv2.BORDER_REPLICATE)
            # planes first (strided views): numpy's loops then run along rows, not over three channels
            done, offset, amplitude = out[band].transpose(2, 0, 1), *np.split(made[:count].transpose(2, 0, 1), 2)
            if under_ink:  # what multiplied by the page gives `full`, where it can: A + B / P, on the ink A + B
                np.multiply(offset, np.where(ink, np.float32(1), cv2.LUT(page, inverse)), out=done)
                done += amplitude
            else:  # B + A x P; on the ink, as drawn, the paper's colour times the page: (B + A) x P
                level = cv2.LUT(page, levels)
                np.multiply(offset, np.where(ink, level, np.float32(1)), out=done)
                done += np.multiply(amplitude, level, out=scratch[:, :count])
            np.minimum(done, 1.0, out=done)
        return out

    def colour_layer(self, model: np.ndarray, cancelled=None) -> np.ndarray:
        """The colours without the line art, at the output size: H x W x 3 float32 in [0, 1]; as a
        Multiply layer under the page it gives `full` wherever a Multiply can (not where `full`
        is lighter than the page: the tone's dots where the model painted the tone over lighter).
        `cancelled`: polled between row bands (errors.Cancelled when it says so)."""
        return self._render(model, True, cancelled)

    def full(self, model: np.ndarray, cancelled=None) -> np.ndarray:
        """The colours with the page's own ink and tone: H x W x 3 float32 in [0, 1]."""
        return self._render(model, False, cancelled)


#: made per page and size, kept for the next ratio, the next job on the same page, the preview size
_made = StageCache(budget=512 << 20)


def page_detail(page_grey: np.ndarray, size: tuple[int, int], working: tuple[int, int]) -> PageDetail:
    key = digest("detail", page_grey, tuple(size), tuple(working))
    found = _made.get(key)
    if found is None:
        found = PageDetail.make(page_grey, size, working)
        _made.put(key, found)
    return found
