"""The published app's working-size resize (Pillow's LANCZOS) on the engine's GPU.

`imaging.to_working_size` resizes an A4 page's rough colours with Pillow on one CPU core
(about 0.2 s, longer than the networks on a fast GPU). This is its twin in torch: the
same filter taps and normalisation as Pillow's `precompute_coeffs` (Lanczos-3 stretched by
the scale when shrinking, centres at (x + 0.5) * scale), the horizontal pass first, and
each pass rounded to 8 bits as Pillow does. Pillow sums in 22-bit fixed point, this in
float32: a result can differ by one level where a sum falls within rounding of .5
(tests/test_device_imaging.py). Where the engine runs on the CPU, Pillow stays.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from .imaging import max_size_dims, working_size

SUPPORT = 3.0  # Lanczos-3


def _lanczos(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    inside = (x > -SUPPORT) & (x < SUPPORT)
    return np.where(inside, np.sinc(x) * np.sinc(x / SUPPORT), 0.0)


@lru_cache(maxsize=16)
def coefficients(in_size: int, out_size: int) -> np.ndarray:
    """out_size x in_size weights of one axis (Pillow's precompute_coeffs, dense)."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = SUPPORT * filterscale
    weights = np.zeros((out_size, in_size), np.float64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        taps = _lanczos((np.arange(xmin, xmax) - center + 0.5) / filterscale)
        total = taps.sum()
        weights[xx, xmin:xmax] = taps / total if total != 0 else taps
    return weights.astype(np.float32)


def _pass(image: torch.Tensor, weights: np.ndarray, dim: int) -> torch.Tensor:
    """Resample float H x W x C values along `dim` (0: rows, 1: columns), rounded to 8 bits."""
    w = torch.from_numpy(weights).to(image.device)
    out = torch.einsum("oi,iwc->owc", w, image) if dim == 0 else torch.einsum("oi,hic->hoc", w, image)
    return torch.floor(out + 0.5).clamp_(0.0, 255.0)


def resize(rgb: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """uint8 H x W x C on a device -> uint8 height x width x C, as Pillow's LANCZOS resize."""
    in_height, in_width = rgb.shape[:2]
    image = rgb.float()
    if width != in_width:
        image = _pass(image, coefficients(in_width, width), 1)
    if height != in_height:
        image = _pass(image, coefficients(in_height, height), 0)
    return image.to(torch.uint8)


def to_working_size(rgb: np.ndarray, max_size: int, device: torch.device) -> np.ndarray:
    """imaging.to_working_size on `device`: resize_max, then up to multiples of 8."""
    height, width = rgb.shape[:2]
    target_w, target_h = working_size(width, height, max_size)
    if (target_w, target_h) == (width, height):
        return rgb
    w, h = max_size_dims(width, height, max_size)
    image = torch.from_numpy(np.ascontiguousarray(rgb)).to(device)
    if (w, h) != (width, height):
        image = resize(image, w, h)
    if (target_w, target_h) != (w, h):  # round_up_to_8: a second resize, as the app makes
        image = resize(image, target_w, target_h)
    return image.cpu().numpy()

