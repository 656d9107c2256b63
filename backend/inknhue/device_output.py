"""The blend and the page-size result computed by torch on the engine's device.

The GPU fast path of `color.LabBlend` and `detail.PageDetail`: the same formulas, so a
slider move on a GPU costs a few kernels instead of CIELAB and a remap over the whole page
in numpy on the CPU. Where the engine runs on the CPU, the numpy path stays (it is the
reference, and the working-size result is the published app's bit for bit); this path is
checked against it within a level on the CPU (tests/test_device_output.py).

What stays on the CPU: the page's sampling maps (detail._sampling_maps: distance
transforms, made once per page and output size), copied to the device once as a grid.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import color, detail
from .errors import InputError


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """H x W x 3 uint8 sRGB -> float32 L*a*b* (color.rgb_to_lab)."""
    c = rgb.float() / 255.0
    linear = torch.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = linear @ torch.as_tensor(color._NORMALIZED_XYZ_FROM_RGB, device=rgb.device)
    f = torch.where(xyz > color._EPSILON, torch.clamp(xyz, min=color._EPSILON) ** (1 / 3),
                    color._KAPPA * xyz + 16.0 / 116.0)
    return torch.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]),
                        200.0 * (f[..., 1] - f[..., 2])], -1)


def lab_to_srgb(lab: torch.Tensor) -> torch.Tensor:
    """float L*a*b* -> sRGB in [0, 1], clipped (color.lab_to_rgb before its rounding)."""
    fy = (lab[..., 0] + 16.0) / 116.0
    f = torch.stack([fy + lab[..., 1] / 500.0, fy, torch.clamp(fy - lab[..., 2] / 200.0, min=0.0)], -1)
    xyz = torch.where(f > color._F_EPSILON, f ** 3, (f - 16.0 / 116.0) / color._KAPPA)
    linear = xyz @ torch.as_tensor(color._RGB_FROM_NORMALIZED_XYZ, device=lab.device)
    srgb = torch.where(linear > 0.0031308, 1.055 * torch.clamp(linear, min=0.0031308) ** (1 / 2.4) - 0.055,
                       12.92 * linear)
    return srgb.clamp_(0.0, 1.0)


def to_uint8(srgb: torch.Tensor) -> torch.Tensor:
    return torch.round(srgb * 255.0).to(torch.uint8)


class DeviceLabBlend:
    """color.LabBlend on a device: both inputs in CIELAB once, each ratio a few kernels.
    Returns uint8 H x W x 3 tensors on the device (the blend's own precision)."""

    def __init__(self, generated: np.ndarray, rough: np.ndarray, device: torch.device):
        if generated.shape != rough.shape:
            raise InputError(f"blend inputs differ in size: {generated.shape} vs {rough.shape}")
        self.generated = rgb_to_lab(torch.from_numpy(generated).to(device))
        self._ab_delta = rgb_to_lab(torch.from_numpy(rough).to(device))[..., 1:] - self.generated[..., 1:]

    def __call__(self, ratio: float) -> torch.Tensor:
        ratio = color.check_ratio(ratio)
        lab = self.generated.clone()
        lab[..., 1:] += np.float32(ratio) * self._ab_delta
        return to_uint8(lab_to_srgb(lab))


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """cv2.GaussianBlur(image, (0, 0), sigma) of a float32 H x W x C tensor: the same kernel
    size (sigma x 8 + 1, odd) and border (reflect-101), separably."""
    size = int(round(sigma * 8 + 1)) | 1
    radius = size // 2
    x = torch.arange(size, dtype=torch.float64) - radius  # on the CPU: MPS has no float64
    kernel = torch.exp(-(x * x) / (2 * sigma * sigma))
    kernel = (kernel / kernel.sum()).float().to(image.device)
    channels = image.shape[2]
    out = image.permute(2, 0, 1)[None]  # 1 x C x H x W
    for dim in (3, 2):
        length = out.shape[dim]
        pad = (radius, radius, 0, 0) if dim == 3 else (0, 0, radius, radius)
        if radius < length:
            out = F.pad(out, pad, mode="reflect")
        else:  # reflect-101 beyond one period: index arithmetic
            index = _reflect_101(torch.arange(-radius, length + radius, device=image.device), length)
            out = out.index_select(dim, index)
        weight = kernel.view(1, 1, 1, size) if dim == 3 else kernel.view(1, 1, size, 1)
        out = F.conv2d(out, weight.expand(channels, 1, *weight.shape[2:]), groups=channels)
    return out[0].permute(1, 2, 0)


def _reflect_101(index: torch.Tensor, length: int) -> torch.Tensor:
    if length == 1:
        return torch.zeros_like(index)
    period = 2 * (length - 1)
    index = index.remainder(period)
    return torch.where(index >= length, period - index, index)


def colour_over_page(model: torch.Tensor, page_w: torch.Tensor) -> torch.Tensor:
    """detail.colour_over_page on a device: model H x W x 3 and page_w H x W in [0, 1]."""
    num = model * page_w[..., None]
    den = (page_w * page_w)[..., None]
    colour = None
    trusted = torch.zeros(den.shape, dtype=torch.bool, device=model.device)
    for sigma in detail.RATIO_SIGMAS:
        n, d = gaussian_blur(num, sigma), gaussian_blur(den, sigma)
        ratio = n / torch.clamp(d, min=1e-6)
        colour = ratio if colour is None else torch.where(trusted, colour, ratio)
        trusted |= d > detail.MIN_PAPER
        if bool(trusted.all()):
            break
    colour = torch.where(trusted, colour, model)
    return colour.clamp_(0.0, 1.0)


class DevicePageDetail:
    """detail.PageDetail's per-ratio work on a device: its maps as a sampling grid."""

    def __init__(self, made: detail.PageDetail, device: torch.device):
        xy, frac = made.maps
        self.page = torch.from_numpy(made.page).to(device)
        self.page_w = torch.from_numpy(made.page_w).to(device)
        frac = torch.from_numpy(frac.astype(np.int32)).to(device)
        xy = torch.from_numpy(xy).to(device).float()
        x = xy[..., 0] + (frac & 31).float() / 32.0  # cv2.remap's 1/32-pixel fixed point
        y = xy[..., 1] + (frac >> 5).float() / 32.0
        height, width = self.page_w.shape
        # grid_sample's align_corners=True: -1 and 1 are the centres of the edge pixels
        self.grid = torch.stack([x * (2.0 / max(width - 1, 1)) - 1.0, y * (2.0 / max(height - 1, 1)) - 1.0], -1)[None]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.page, self.page_w, self.grid))

    def colour_layer(self, model: torch.Tensor) -> torch.Tensor:
        """model: uint8 H x W x 3 at the working size -> float32 page-sized layer in [0, 1]."""
        colour = colour_over_page(model.float() / 255.0, self.page_w)
        sampled = F.grid_sample(colour.permute(2, 0, 1)[None], self.grid, mode="bilinear",
                                padding_mode="border", align_corners=True)
        return sampled[0].permute(1, 2, 0)

    def full(self, model: torch.Tensor) -> torch.Tensor:
        return self.colour_layer(model).mul_((self.page.float() / 255.0)[..., None])

