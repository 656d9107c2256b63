"""Any colorization brought to the page's own size with the page's own ink: `inknhue upscale`.

A colouring made at a lower resolution (another tool's, an older one of ours, a hand
colouring) is what the model's result is to `detail.PageDetail`: the working-size colours.
The page-size result is made by the same code as `--output-size page`: the page's lines,
lettering and solid blacks exactly as drawn, its tone laid over the colours where the
colouring kept it, laid back as texture around the colours where the colouring painted over it.

What a colouring may be: any size up to the page's, with the page's aspect ratio (within
MAX_ASPECT_MISMATCH: the rounding of a resize, not a crop); greyscale (a grey colouring
gives a grey result); with transparency (flattened onto white paper, and said). Larger
than the page, it is first brought down to the page's size (INTER_AREA), and said. Out of
register with the page's lines by a pixel or more (a tool's padding, cropping or rounding),
it is moved onto them first (registration.py), and said.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..errors import Cancelled, InputError
from .detail import PageDetail
from .imaging import aspect_mismatch, luma, open_image, to_rgb
from .registration import registered

#: the most a colouring's aspect ratio may differ from the page's: a resize's rounding
MAX_ASPECT_MISMATCH = 0.01
LAYERS = ("full", "colour")


@dataclass
class Colouring:
    """A colouring as read: RGB uint8, and what the artist should know about it."""

    rgb: np.ndarray
    notes: list[str] = field(default_factory=list)


def read_colouring(path) -> Colouring:
    """Any image Pillow reads: greyscale as grey RGB, transparency flattened onto white."""
    image = open_image(path, "colouring")
    notes = []
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        alpha = np.asarray(image.convert("RGBA"))[..., 3]
        if (alpha < 255).any():
            notes.append(f"the colouring {path} has transparent parts: they count as white paper")
    return Colouring(to_rgb(image), notes)


def check_fits(page_size: tuple[int, int], coloured_size: tuple[int, int], coloured_name: str = "the colouring"
               ) -> None:
    """The colouring is of this page: scaled by its long side, its short side is the page's
    within MAX_ASPECT_MISMATCH or a pixel of rounding (a 1 px wide page has no other width)."""
    long_side = 0 if page_size[0] >= page_size[1] else 1
    scale = coloured_size[long_side] / page_size[long_side]
    expected = scale * page_size[1 - long_side]
    if abs(coloured_size[1 - long_side] - expected) > max(1.0, MAX_ASPECT_MISMATCH * expected):
        mismatch = aspect_mismatch(page_size, coloured_size)
        raise InputError(f"{coloured_name} ({coloured_size[0]}x{coloured_size[1]}) does not have the page's shape "
                         f"({page_size[0]}x{page_size[1]}; aspect ratios {100 * mismatch:.1f}% apart, at most "
                         f"{100 * MAX_ASPECT_MISMATCH:.0f}%): is it of another page, or cropped?")


def at_working_size(coloured: np.ndarray, max_size: int, notes: list[str] | None = None) -> np.ndarray:
    """A colouring whose short side is more than `max_size` brought down to it (INTER_AREA)
    first: a colouring scaled up in Krita to the page's size has no finer detail than it had,
    and its colours blurred across the lines over the scale factor; at the size it was made
    at, the page-size result keeps them to their own side of the ink, as the model's own."""
    height, width = coloured.shape[:2]
    scale = max_size / min(width, height)
    if scale >= 1:
        return coloured
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if notes is not None:
        notes.append(f"the colouring ({width}x{height}) was read at {size[0]}x{size[1]} (Max size {max_size}): "
                     f"its colours are brought to the page from there; raise Max size for a finer colouring")
    return cv2.resize(coloured, size, interpolation=cv2.INTER_AREA)


def upscale(page_rgb: np.ndarray, coloured: np.ndarray, layer: str = "full", notes: list[str] | None = None,
            device=None) -> np.ndarray:
    """The colouring (h x w x 3 uint8) at the page's size (H x W x 3) with the page's ink:
    H x W x 3 uint8. layer: full (the coloured page) or colour (for a Multiply layer under the ink)."""
    return np.rint(upscale_float(page_rgb, coloured, layer, notes, device) * 255.0).astype(np.uint8)


def upscale_float(page_rgb: np.ndarray, coloured: np.ndarray, layer: str = "full",
                  notes: list[str] | None = None, device=None, cancelled=None) -> np.ndarray:
    """upscale() as H x W x 3 float32 in [0, 1] (16-bit and float results keep its precision).
    device: a GPU (torch.device) to render on (detail_gpu.py), the CPU's numpy where it has not
    the memory (said in `notes`); cancelled: polled between steps and row bands (errors.Cancelled)."""
    if layer not in LAYERS:
        raise InputError(f"layer must be one of {', '.join(LAYERS)}, got {layer!r}")
    height, width = page_rgb.shape[:2]
    check_fits((width, height), (coloured.shape[1], coloured.shape[0]))
    if coloured.shape[1] > width or coloured.shape[0] > height:
        if notes is not None:
            notes.append(f"the colouring ({coloured.shape[1]}x{coloured.shape[0]}) is larger than the page "
                         f"({width}x{height}): brought down to the page's size first")
        coloured = cv2.resize(coloured, (width, height), interpolation=cv2.INTER_AREA)
    made = PageDetail.make(luma(page_rgb), (width, height), (coloured.shape[1], coloured.shape[0]))
    coloured = registered(made.page_w, coloured, notes)  # another tool's, a pixel or two off the lines
    if cancelled is not None and cancelled():
        raise Cancelled()
    if device is not None:
        rendered = _on_device(made, coloured, layer, device, notes)
        if rendered is not None:
            return rendered
    return made.full(coloured, cancelled) if layer == "full" else made.colour_layer(coloured, cancelled)


def _on_device(made: PageDetail, coloured: np.ndarray, layer: str, device, notes: list[str] | None):
    """The render on a GPU, or None where the device runs out of memory (a page far past A4 on a
    small card): the CPU has the host's memory."""
    import torch

    from ..runtime.devices import is_out_of_memory
    from . import detail_gpu
    try:
        twin = detail_gpu.on_device(made, device)
        model = torch.from_numpy(np.ascontiguousarray(coloured)).to(device)
        rendered = twin.full(model) if layer == "full" else twin.colour_layer(model)
        return rendered.cpu().numpy()
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        made.twins.clear()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if notes is not None:
            notes.append(f"the page ({made.page.shape[1]}x{made.page.shape[0]}) did not fit in {device}'s memory: "
                         f"brought to the page on the CPU")
        return None


@dataclass
class Upscaled:
    """An upscale job's result (the server's): what a finished job tells of itself."""

    rgb: np.ndarray                      #: H x W x 3 float32 in [0, 1], the page's size
    working_size: tuple[int, int]        #: the colouring's size, as it was used
    timings: dict[str, float] = field(default_factory=dict)
    ran: list[str] = field(default_factory=lambda: ["upscale"])
    warnings: list[str] = field(default_factory=list)

    @property
    def page_size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]
