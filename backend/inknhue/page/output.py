"""What a colorization gives back: which layer, at what size, in which channel order and depth.

Layers:
- `full`: the coloured page;
- `colour`: the colours without the line art, for a Multiply layer beneath the artist's
  own ink (the way colourists work); multiplied by the page it gives `full`;
- `flats`: the flat colours of the strokes alone (`FlatLayer`, from rough/flats.py), RGBA,
  transparent where paper stays: no network runs for it.
Sizes:
- `page` (or any width x height): the model's colours with the page's own lines,
  lettering and tone at that size (detail.py);
- `working`: as the networks made it; the `full` layer is then exactly what the
  published app returns.

`Colorization` is what a run produced (its working-size intermediates); the functions
below render it. The engine (engine/pipeline.py) makes one per page.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from inknhue_krita.messages import LAYERS, OUTPUT_SIZES, OutputSpec
from inknhue_krita.protocol import RawImage

from ..errors import InputError
from . import color_gpu, detail_gpu
from .color import LabBlend, check_ratio
from .detail import page_detail
from .imaging import resize_to
from .pixels import from_rgb


@dataclass
class Colorization:
    """One page's intermediates at the working size, and the result at any ratio and size."""

    page_size: tuple[int, int]   #: (width, height) of the page as given
    shaded: np.ndarray           #: the shading stage's grey, as RGB
    rough: np.ndarray            #: the rough colours
    generated: np.ndarray        #: the alignment VAE's output (ratio 0)
    page_grey: np.ndarray | None = None  #: the page's own grey at its size: its ink, for page-size results
    timings: dict[str, float] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)  #: the stages computed (not from the cache)
    warnings: list[str] = field(default_factory=list)  #: for the artist: inputs that look like a mistake
    #: where blends and page-size results are computed: None for numpy on the CPU (the
    #: reference), a GPU for the torch twins (color_gpu.py, detail_gpu.py)
    device: torch.device | None = None
    _blend: LabBlend | None = field(default=None, repr=False)
    _last: tuple[float, np.ndarray] | None = field(default=None, repr=False)
    _device_blend: object | None = field(default=None, repr=False)

    @property
    def working_size(self) -> tuple[int, int]:
        return self.generated.shape[1], self.generated.shape[0]

    def blend(self, ratio: float) -> np.ndarray:
        """The final colours at the working size (the LAB conversions are done once)."""
        ratio = check_ratio(ratio)
        if self._last is None or self._last[0] != ratio:
            if self._blend is None:
                self._blend = LabBlend(self.generated, self.rough)
            self._last = (ratio, self._blend(ratio))
        return self._last[1]

    def blend_on_device(self, ratio: float) -> torch.Tensor:
        """The blend as a uint8 H x W x 3 tensor on `device` (color_gpu.DeviceLabBlend)."""
        if self._device_blend is None:
            self._device_blend = color_gpu.DeviceLabBlend(self.generated, self.rough, self.device)
        return self._device_blend(ratio)

    def render(self, ratio: float, size: str | tuple[int, int] = "page", layer: str = "full") -> np.ndarray:
        """The result as H x W x 3 float32 in [0, 1] (see this module's docstring for the sizes and layers)."""
        return render_float(self, ratio, size, layer)

    def final(self, ratio: float, size: str | tuple[int, int] = "page", layer: str = "full") -> np.ndarray:
        """The result as H x W x 3 uint8: at the working size exactly the published app's."""
        return render_uint8(self, ratio, size, layer)


@dataclass
class FlatLayer:
    """A page's flats (rough.flats.flat_layer): RGBA at the page's size; no ratio changes them."""

    rgba: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)
    ran: list[str] = field(default_factory=lambda: ["rough"])
    warnings: list[str] = field(default_factory=list)

    @property
    def page_size(self) -> tuple[int, int]:
        return self.rgba.shape[1], self.rgba.shape[0]

    @property
    def working_size(self) -> tuple[int, int]:  # no network: the page's own size
        return self.page_size

    def at(self, size: tuple[int, int]) -> np.ndarray:
        """The layer at (width, height): nearest samples, so every pixel keeps a flat's own colour."""
        if tuple(size) == self.page_size:
            return self.rgba
        return cv2.resize(self.rgba, tuple(size), interpolation=cv2.INTER_NEAREST)


def pixel_size(result: Colorization, size: str | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, tuple):
        return size
    if size not in OUTPUT_SIZES:
        raise InputError(f"output size must be one of {', '.join(OUTPUT_SIZES)} or (width, height), got {size!r}")
    return result.page_size if size == "page" else result.working_size


def _check_layer(layer: str) -> str:
    if layer not in LAYERS:
        raise InputError(f"layer must be one of {', '.join(LAYERS)}, got {layer!r}")
    if layer == "flats":
        raise InputError("the flats layer is made from the hint strokes alone, not from a colorization "
                         "(ask for it as the job's layer)")
    return layer


def render_float(result: Colorization, ratio: float, size: str | tuple[int, int] = "page",
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


def render_uint8(result: Colorization, ratio: float, size: str | tuple[int, int] = "page",
                 layer: str = "full") -> np.ndarray:
    """H x W x 3 uint8; the working-size `full` layer is the blend itself, bit for bit."""
    if result.device is not None:
        rendered = render_on_device(result, ratio, size, layer)
        return (rendered if rendered.dtype == torch.uint8 else color_gpu.to_uint8(rendered)).cpu().numpy()
    if _check_layer(layer) == "full" and pixel_size(result, size) == result.working_size:
        return result.blend(ratio)
    return np.rint(render_float(result, ratio, size, layer) * 255.0).astype(np.uint8)


def render_on_device(result: Colorization, ratio: float, size: str | tuple[int, int] = "page",
                     layer: str = "full") -> "torch.Tensor":
    """render_float on result.device (color_gpu.py, detail_gpu.py): the working-size `full` layer as
    uint8 (the blend's own), any other as float32 in [0, 1]."""
    width, height = pixel_size(result, size)
    blended = result.blend_on_device(ratio)
    if _check_layer(layer) == "full" and (width, height) == result.working_size:
        return blended
    if result.page_grey is None:  # no page to take the ink from
        resized = resize_to(blended.cpu().numpy(), width, height)
        return torch.from_numpy(resized).to(result.device).float() / 255.0
    made = page_detail(result.page_grey, (width, height), result.working_size)
    on_device = detail_gpu.on_device(made, result.device)
    return on_device.full(blended) if layer == "full" else on_device.colour_layer(blended)


def render(result: Colorization | FlatLayer, spec: OutputSpec, ratio: float, mask: np.ndarray | None = None
           ) -> RawImage:
    """The server's reply: the asked layer at the asked size; `mask` (page-sized) becomes its alpha."""
    width, height = spec.pixel_size(result.page_size, result.working_size)
    if isinstance(result, FlatLayer) or spec.layer == "flats":
        if not isinstance(result, FlatLayer) or spec.layer != "flats":
            raise InputError("the flats layer comes only from a flats job, and a flats job gives only flats")
        rgba = result.at((width, height))
        alpha = rgba[..., 3]
        if mask is not None:
            alpha = (alpha.astype(np.uint16) * resize_to(mask, width, height) // 255).astype(np.uint8)
        return from_rgb(rgba[..., :3], spec.channels, spec.dtype, spec.linear, alpha=alpha)
    if spec.dtype == "uint8":
        rgb = render_uint8(result, ratio, (width, height), spec.layer)
    else:  # 16-bit and float results keep the precision of the computation
        rgb = render_float(result, ratio, (width, height), spec.layer)
    if mask is not None:
        mask = resize_to(mask, width, height)
    return from_rgb(rgb, spec.channels, spec.dtype, spec.linear, alpha=mask)
