"""What the docker decides, with no Krita and no Qt: testable on its own.

Pixel data stays as bytes here (Krita's layout); the server does the numeric work.
"""

from __future__ import annotations

from dataclasses import dataclass

from .protocol import RawImage

STAGE_LABELS = {
    "rough": "Rough colours",
    "shade": "Shading",
    "condition": "Reading the line art",
    "encode": "Encoding colours",
    "decode": "Aligning colours",
    "blend": "Blending",
    "upscale": "Bringing the colours to the page",
}
HINT_LAYER = "inkn'hue hints"
RESULT_LAYER = "inkn'hue colour"
#: the output layers the docker offers: (protocol name, layer name, blending mode, label, tooltip)
OUTPUT_LAYERS = (
    ("full", RESULT_LAYER, "normal", "Coloured page",
     "The whole page in colour, lines included, as a new layer above the page."),
    ("colour", f"{RESULT_LAYER} under ink", "multiply", "Colour under the ink",
     "Only the colours, without the line art, as a Multiply layer beneath your ink layers: "
     "repaint or adjust them and your lines stay untouched on top."),
    ("flats", f"{RESULT_LAYER} flats", "multiply", "Flats",
     "The flat colours of your strokes alone, region by region, as a Multiply layer beneath your ink layers "
     "(over a scanned page too): transparent where the page stays paper. No network runs: quick on any "
     "computer. White strokes keep a region empty."),
)
MIN_MAX_SIZE, MAX_MAX_SIZE = 64, 2048  #: until the backend's hello says its own limits
#: while the ratio slider is dragged, blends come at about this many pixels on the long side
PREVIEW_LONG_SIDE = 1280

#: Krita colour depth -> protocol dtype
DEPTHS = {"U8": "uint8", "U16": "uint16", "F16": "float16", "F32": "float32"}
BYTES = {"uint8": 1, "uint16": 2, "float16": 2, "float32": 4}
#: a fully opaque alpha in Krita's pixel data, little-endian, per dtype
OPAQUE_ALPHA = {"uint8": b"\xff", "uint16": b"\xff\xff", "float16": b"\x00\x3c", "float32": b"\x00\x00\x80\x3f"}


def fully_opaque(data: bytes, dtype: str) -> bool:
    """Whether BGRA pixel data in `dtype` covers everything (alpha 1 everywhere)."""
    alpha = OPAQUE_ALPHA[dtype]
    size = len(alpha)
    step = 4 * size
    return bool(data) and all(not data[3 * size + i::step].strip(alpha[i:i + 1]) for i in range(size))


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    width: int
    height: int

    @property
    def empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    def contains(self, other: "Rect") -> bool:
        return (self.x <= other.x and self.y <= other.y and other.x + other.width <= self.x + self.width
                and other.y + other.height <= self.y + self.height)

    def intersected(self, other: "Rect") -> "Rect":
        x0, y0 = max(self.x, other.x), max(self.y, other.y)
        x1 = min(self.x + self.width, other.x + other.width)
        y1 = min(self.y + self.height, other.y + other.height)
        return Rect(x0, y0, max(0, x1 - x0), max(0, y1 - y0))


def work_area(document_size: tuple[int, int], selection: Rect | None) -> Rect:
    """The part of the image to colorize: the selection's bounding box, or all of it."""
    whole = Rect(0, 0, *document_size)
    return whole if selection is None or selection.empty else selection.intersected(whole)


@dataclass(frozen=True)
class Format:
    """How a document's pixels travel: Krita gives BGRA in the document's depth."""

    dtype: str
    linear: bool

    def image(self, data, width: int, height: int) -> RawImage:
        return RawImage(width, height, "BGRA", data, self.dtype, self.linear)

    def output(self, size="page", layer: str = "full") -> dict:
        return {"size": size, "channels": "BGRA", "dtype": self.dtype, "linear": self.linear, "layer": layer}


def document_format(color_model: str, color_depth: str, profile: str) -> tuple[Format | None, str]:
    """The wire format for a document, or None and what the artist should do."""
    if color_model == "GRAYA":
        return None, ("This is a greyscale document: inkn'hue needs RGB to add colour. "
                      "Convert the image to RGB/Alpha (Image > Convert Image Color Space).")
    if color_model != "RGBA":
        return None, (f"inkn'hue works on RGB/Alpha documents; this one is {color_model}. "
                      f"Convert it with Image > Convert Image Color Space.")
    if color_depth not in DEPTHS:
        return None, f"Unsupported colour depth {color_depth}."
    # A linear-light profile (e.g. "sRGB-elle-V2-g10.icc", Krita's default for float) at any depth.
    linear = any(mark in profile.lower() for mark in ("g10", "linear", "scrgb"))
    return Format(DEPTHS[color_depth], linear), ""


def preview_size(width: int, height: int, long_side: int = PREVIEW_LONG_SIDE) -> list[int] | str:
    """A screen-size blend while dragging: "page" when the page is small anyway."""
    if max(width, height) <= long_side:
        return "page"
    scale = long_side / max(width, height)
    return [max(1, round(width * scale)), max(1, round(height * scale))]


def box_max_size(max_size: int, page: tuple[int, int], box: Rect, low: int = MIN_MAX_SIZE) -> int:
    """The Max size for a selection box that works it at the page's own working scale, so a
    box costs its share of the page (a box at the page's Max size would be worked as finely
    as the whole page: a 400x300 box cost twice the page). Never above `max_size`."""
    if max(page) <= max_size:  # the page is worked at its own size: so is the box
        return max_size
    scale = max_size / min(page)
    return max(low, min(max_size, 32 * round(min(box.width, box.height) * scale / 32)))


def snap_max_size(value: int, low: int = MIN_MAX_SIZE, high: int = MAX_MAX_SIZE) -> int:
    """The working size the network accepts: a multiple of 32 within its range."""
    return min(high, max(low, round(value / 32) * 32))


def time_left_text(seconds: float | None, rough: bool = False) -> str:
    """"about 2 min left", in steps an artist reads at a glance; "" when unknown. `rough`: an
    estimate from the backend's calibration alone (small passes timed at its start), "roughly"."""
    if seconds is None or seconds != seconds or seconds < 0:
        return ""
    if seconds < 10:
        return "a few seconds left"
    about = "roughly" if rough else "about"
    if seconds < 60:
        return f"{about} {5 * round(seconds / 5)} s left"
    return f"{about} {max(1, round(seconds / 60))} min left"


def progress_text(stage: str, index: int, total: int, cached: bool = False, fraction: float | None = None,
                  eta: float | None = None, running: bool = False, eta_from: str | None = None,
                  overdue: bool = False) -> str:
    """The stage line; `running`: the stage has started, not ended (then an unknown time
    left reads "estimating…": the backend knows it once it has timed this machine, at its
    start or in a job); `eta_from`: what the time left stands on (the backend's
    "calibration" reads "roughly"); `overdue`: the time left was counted down past zero with
    no word from the backend since (it makes the page-size output): "finishing…", not a
    "few seconds" that last."""
    label = STAGE_LABELS.get(stage, stage)
    text = f"{index}/{total} {label}" + (" (reused)" if cached else "")
    if fraction is not None:
        text += f" {100 * fraction:.0f}%"
    left = "finishing…" if overdue and eta is not None else \
        time_left_text(eta, eta_from == "calibration") or ("estimating…" if running and eta is None else "")
    return f"{text} · {left}" if left and not cached else text


def progress_value(index: int, total: int, finished: bool, done: float | None = None) -> int:
    """Percent done: the job's network work when the backend counts it, else by stages
    (a stage counts when finished, half when running)."""
    if done is not None:
        return round(100 * min(1.0, max(0.0, done)))
    if total <= 0:
        return 0
    return round(100 * (index - (0 if finished else 0.5)) / total)


def ratio_to_slider(ratio: float) -> int:
    return round(min(1.0, max(0.0, ratio)) * 100)


def slider_to_ratio(value: int) -> float:
    return min(100, max(0, value)) / 100.0


def layer_name(existing: list[str], base: str = RESULT_LAYER) -> str:
    """A new layer's name that does not clash with the artist's: base, base 2, base 3..."""
    if base not in existing:
        return base
    number = 2
    while f"{base} {number}" in existing:
        number += 1
    return f"{base} {number}"


class BlendThrottle:
    """At most one blend in flight: while dragging, only the latest ratio is asked next."""

    def __init__(self):
        self.in_flight: str | None = None
        self.pending: tuple[float, bool] | None = None

    def request(self, ratio: float, final: bool) -> tuple[float, bool] | None:
        """Returns (ratio, final) to send now, or None to wait for the blend in flight."""
        if self.in_flight is None:
            return ratio, final
        # a final request must not be lost behind a preview
        self.pending = (ratio, final or bool(self.pending and self.pending[1]))
        return None

    def sent(self, request_id: str) -> None:
        self.in_flight = request_id

    def done(self) -> tuple[float, bool] | None:
        """The blend in flight came back: returns the request to send next, if any."""
        self.in_flight = None
        pending, self.pending = self.pending, None
        return pending
