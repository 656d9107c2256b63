"""*Bring to page*: a colouring made at a lower resolution, on a layer, brought to the page's
size with the page's own ink (the backend's `upscale`, inknhue/page/upscale.py), decided
without Krita or Qt.

What an artist has, and what is read of it:
- a colouring pasted into the page's document and scaled up to the canvas (Krita's
  transform: blurry, its colours across the lines), or painted at the canvas's size with
  a broad brush: the layer is read at the canvas's size, transparent parts as paper, and
  the backend reads it at the Max size's working size first (finer detail it has not);
- a colouring pasted and not scaled (a layer smaller than the canvas, at the corner or
  centre where Krita put it): when its bounds have the page's shape, what is inside them
  is the colouring, at its own size.
The page is the image as seen without that layer (and without the plugin's own layers);
with *Page: Active layer*, the layer right beneath the colouring (the active one is the
colouring). The result is a new layer each time, named after the colouring, placed like
Colorize's (placement.py), never the artist's layer changed. With a selection, the new
layer holds the colours inside it only (its alpha, soft edges as selected), as Colorize's
result does; the work is still the whole page's (about a second at A4).
"""

from __future__ import annotations

from .logic import RESULT_LAYER, Rect

#: how far a colouring's shape may be from the page's: a resize's rounding (page/upscale.py's)
MAX_ASPECT_MISMATCH = 0.01
#: the result's layer, by the result kind asked for: (wire layer, name prefix, blending)
RESULTS = {"full": ("full", f"{RESULT_LAYER} from", "normal"),
           "colour": ("colour", f"{RESULT_LAYER} under ink from", "multiply")}
#: layer types whose pixels are a colouring (masks are not)
COLOURING_TYPES = ("paintlayer", "grouplayer", "filelayer", "vectorlayer", "clonelayer")


def fits(page: tuple[int, int], size: tuple[int, int]) -> bool:
    """Whether `size` has the page's shape: scaled by its long side, its short side is the
    page's within MAX_ASPECT_MISMATCH or a pixel of rounding (the backend's own rule)."""
    long_side = 0 if page[0] >= page[1] else 1
    expected = size[long_side] / page[long_side] * page[1 - long_side]
    return abs(size[1 - long_side] - expected) <= max(1.0, MAX_ASPECT_MISMATCH * expected)


def colouring_area(bounds: Rect, page: tuple[int, int]) -> Rect:
    """The part of the layer read as the colouring: its bounds when they are smaller than the
    page and of its shape (pasted, not scaled), else the whole page."""
    whole = Rect(0, 0, *page)
    inside = bounds.intersected(whole)
    if inside != whole and inside.width < page[0] and inside.height < page[1] \
            and fits(page, (inside.width, inside.height)):
        return inside
    return whole


def result_kind(layer: str) -> str:
    """The docker's Result choice as an upscale's: the colour under the ink, or the coloured page."""
    return "colour" if layer == "colour" else "full"


def refusal(node_type: str | None, is_hints: bool, empty: bool) -> str:
    """Why the active layer cannot be brought to the page ("" when it can)."""
    if node_type is None:
        return "Select the layer that holds your colouring: Bring to page brings the active layer."
    if is_hints:
        return "The active layer is the hint layer: select the layer that holds your colouring."
    if node_type not in COLOURING_TYPES:
        return "The active layer is a mask: select the layer that holds your colouring."
    if empty:
        return "The active layer is empty: select the layer that holds your colouring."
    return ""


def request(kind: str, output: dict, area: Rect, page: tuple[int, int], max_size: int) -> dict:
    """The `upscale` request's header. A colouring read at the canvas's size is read at the
    Max size's working size by the backend; one read at its own size is used as it is."""
    header = {"type": "upscale", "output": output}
    if (area.width, area.height) == page:
        header["max_size"] = max_size
    return header


def older(reply: dict) -> dict:
    """A backend older than Bring to page does not know the request: say what to do."""
    if reply.get("type") == "error" and reply.get("code") == "unknown_type":
        return dict(reply, message="This backend is older than the plugin and cannot bring a colouring to the page: "
                                   "run the inkn'hue installer again to update it.")
    return reply


def done_text(name: str, seconds, size) -> str:
    """The stage line once the new layer is written; `size`: the colouring's size as used."""
    text = f"Brought \u201c{name}\u201d to the page"
    if isinstance(seconds, (int, float)):
        text += f" in {seconds:.1f} s"
    if isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size):
        text += f" (its colours from {size[0]}x{size[1]})"
    return text
