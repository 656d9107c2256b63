"""`image`: rough colours the user supplies (a Style2Paints output, as the published app takes)."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..page.imaging import aspect_mismatch
from .base import RoughProvider, RoughRequest, register

#: how far the rough image's aspect ratio may differ from the page's
MAX_ASPECT_MISMATCH = 0.01


@register
class ImageProvider(RoughProvider):
    name = "image"
    description = "a rough-colour image you supply (e.g. a Style2Paints V4.5 output)"

    def rough_colours(self, request: RoughRequest, engine=None) -> np.ndarray:
        if request.rough is None:
            raise InputError("the 'image' provider needs a rough-colour image (--rough ROUGH)")
        page_size = request.page.shape[1], request.page.shape[0]
        rough_size = request.rough.shape[1], request.rough.shape[0]
        mismatch = aspect_mismatch(rough_size, page_size)
        if mismatch > MAX_ASPECT_MISMATCH:
            raise InputError(
                f"the rough colours ({rough_size[0]}x{rough_size[1]}) and the page "
                f"({page_size[0]}x{page_size[1]}) differ in aspect ratio by {mismatch:.1%} "
                f"(at most {MAX_ASPECT_MISMATCH:.0%} allowed): are they of the same page?")
        return request.rough
