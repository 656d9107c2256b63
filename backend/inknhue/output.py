"""The image a client gets back: a colorization's blend at the size, order and depth it asked for."""

from __future__ import annotations

import numpy as np
from inknhue_krita.messages import OutputSpec
from inknhue_krita.protocol import RawImage

from .imaging import resize_to
from .pipeline import Colorization
from .pixels import from_rgb


def render(result: Colorization, spec: OutputSpec, ratio: float, mask: np.ndarray | None = None) -> RawImage:
    """The blend at `ratio`, at the asked size; `mask` (page-sized) becomes its alpha."""
    width, height = spec.pixel_size(result.page_size, result.working_size)
    blended = resize_to(result.blend(ratio), width, height)
    if mask is not None:
        mask = resize_to(mask, width, height)
    return from_rgb(blended, spec.channels, spec.dtype, spec.linear, alpha=mask)
