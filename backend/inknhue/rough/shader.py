"""`shader`: the shading generator's own colour output, steered by the hint strokes.

manga-colorization-v2 is a hint-guided colorizer; inkn'hue uses it with empty hints for
shading. Fed the strokes in its four hint channels (as its `update_hint` does: hint RGB
scaled to [-1, 1] times the mask, then the mask), its colour output is a rough prior from
the same released `shader.ckpt`.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ..page.imaging import luma, resize_pad
from .base import RoughProvider, RoughRequest, empty_hints_warning, register
from .flats import check_hints

#: a downscaled stroke pixel counts as hinted when at least this opaque
MASK_THRESHOLD = 0.3


def encode_hints(rgb: np.ndarray, mask: np.ndarray) -> torch.Tensor:
    """H x W x 3 colours (uint8, or float in [0, 1]) and an H x W mask -> 1 x 4 x H x W."""
    rgb = rgb.astype(np.float32) / 255.0 if np.issubdtype(rgb.dtype, np.integer) else rgb.astype(np.float32)
    hint = torch.from_numpy((rgb - 0.5) / 0.5).permute(2, 0, 1)
    mask_t = torch.from_numpy(mask.astype(np.float32))[None]
    return torch.cat([hint * mask_t, mask_t], 0)[None]


def hints_at(hints: np.ndarray, width: int, height: int, pad: tuple[int, int]) -> torch.Tensor:
    """Page-sized RGBA strokes -> the generator's hint channels at its input size.

    Colours are averaged with their alpha (premultiplied) so thin strokes keep their hue
    when downscaled; padding carries no hints.
    """
    alpha = hints[..., 3:4].astype(np.float32) / 255.0
    premultiplied = hints[..., :3].astype(np.float32) / 255.0 * alpha
    alpha_small = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_AREA)[..., None]
    colour_small = cv2.resize(premultiplied, (width, height), interpolation=cv2.INTER_AREA)
    colour = np.clip(colour_small / np.maximum(alpha_small, 1e-6), 0.0, 1.0)
    mask = (alpha_small[..., 0] >= MASK_THRESHOLD).astype(np.float32)
    colour = np.pad(colour, ((0, pad[0]), (0, pad[1]), (0, 0)))
    mask = np.pad(mask, ((0, pad[0]), (0, pad[1])))
    return encode_hints(colour, mask)


@register
class ShaderProvider(RoughProvider):
    name = "shader"
    description = "the shading network's own colours, guided by the hint strokes (released shader.ckpt)"

    def validate(self, request: RoughRequest) -> None:
        check_hints(request.hints, request.page)

    def check(self, request: RoughRequest) -> list[str]:
        return empty_hints_warning(request)

    def rough_colours(self, request: RoughRequest, engine) -> np.ndarray:
        hints = check_hints(request.hints, request.page)
        padded, pad = resize_pad(luma(request.page), request.max_size)
        height, width = padded.shape[0] - pad[0], padded.shape[1] - pad[1]
        colour = engine.run_generator(padded, hints_at(hints, width, height, pad))
        rgb = ((colour[0].permute(1, 2, 0) * 0.5 + 0.5) * 255.0).clamp(0, 255).to(torch.uint8).numpy()
        return rgb[:height, :width]
