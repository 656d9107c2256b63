"""What a colorization gives back: which layer, at what size, in which channel order and depth.

Layers:
- `full`: the coloured page;
- `colour`: the colours without the line art, for a Multiply layer beneath the artist's
  own ink (the way colourists work); multiplied by the page it gives `full`.
Sizes:
- `page` (or any width x height): the model's colours with the page's own lines,
  lettering and tone at that size (detail.py);
- `working`: as the networks made it; the `full` layer is then exactly what the
  published app returns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from inknhue_krita.messages import LAYERS, OUTPUT_SIZES, OutputSpec
from inknhue_krita.protocol import RawImage

from . import device_output
from .detail import page_detail
from .errors import InputError
from .imaging import resize_to
from .pixels import from_rgb

if TYPE_CHECKING:
    from .pipeline import Colorization


def pixel_size(result: "Colorization", size: str | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, tuple):
        return size
    if size not in OUTPUT_SIZES:
        raise InputError(f"output size must be one of {', '.join(OUTPUT_SIZES)} or (width, height), got {size!r}")
    return result.page_size if size == "page" else result.working_size


def _check_layer(layer: str) -> str:
    if layer not in LAYERS:
        raise InputError(f"layer must be one of {', '.join(LAYERS)}, got {layer!r}")
    return layer


def render_float(result: "Colorization", ratio: float, size: str | tuple[int, int] = "page",
                 layer: str = "full") -> np.ndarray:
    """H x W x 3 float32 in [0, 1], sRGB-encoded."""
    if result.device is not None:
        rendered = render_on_device(result, ratio, size, layer)
        return (rendered.float() / 255.0 if rendered.dtype == torch.uint8 else rendered).cpu().numpy()
    width, height = pixel_size(result, size)
    blended = result.blend(ratio)
    if _check_layer(layer) == "full" and (width, height) == result.working_size:
        return blended.astype(np.float32) / 255.0
    if result.page_grey is None:  # no page to take the ink from
        return resize_to(blended, width, height).astype(np.float32) / 255.0
    detail = page_detail(result.page_grey, (width, height), result.working_size)
    return detail.full(blended) if layer == "full" else detail.colour_layer(blended)


def render_uint8(result: "Colorization", ratio: float, size: str | tuple[int, int] = "page",
                 layer: str = "full") -> np.ndarray:
    """H x W x 3 uint8; the working-size `full` layer is the blend itself, bit for bit."""
    if result.device is not None:
        rendered = render_on_device(result, ratio, size, layer)
        return (rendered if rendered.dtype == torch.uint8 else device_output.to_uint8(rendered)).cpu().numpy()
    if _check_layer(layer) == "full" and pixel_size(result, size) == result.working_size:
        return result.blend(ratio)
    return np.rint(render_float(result, ratio, size, layer) * 255.0).astype(np.uint8)


def render_on_device(result: "Colorization", ratio: float, size: str | tuple[int, int] = "page",
                     layer: str = "full") -> "torch.Tensor":
    """render_float on result.device (device_output.py): the working-size `full` layer as
    uint8 (the blend's own), any other as float32 in [0, 1]."""
    width, height = pixel_size(result, size)
    blended = result.blend_on_device(ratio)
    if _check_layer(layer) == "full" and (width, height) == result.working_size:
        return blended
    if result.page_grey is None:  # no page to take the ink from
        resized = resize_to(blended.cpu().numpy(), width, height)
        return torch.from_numpy(resized).to(result.device).float() / 255.0
    made = page_detail(result.page_grey, (width, height), result.working_size)
    on_device = made.on_device(result.device)
    return on_device.full(blended) if layer == "full" else on_device.colour_layer(blended)


def render(result: "Colorization", spec: OutputSpec, ratio: float, mask: np.ndarray | None = None) -> RawImage:
    """The server's reply: the asked layer at the asked size; `mask` (page-sized) becomes its alpha."""
    width, height = spec.pixel_size(result.page_size, result.working_size)
    if spec.dtype == "uint8":
        rgb = render_uint8(result, ratio, (width, height), spec.layer)
    else:  # 16-bit and float results keep the precision of the computation
        rgb = render_float(result, ratio, (width, height), spec.layer)
    if mask is not None:
        mask = resize_to(mask, width, height)
    return from_rgb(rgb, spec.channels, spec.dtype, spec.linear, alpha=mask)
