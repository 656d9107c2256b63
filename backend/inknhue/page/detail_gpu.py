"""The page-size result's per-ratio work computed by torch on the engine's GPU: the twin
of `detail.PageDetail` (its colour-over-page ratio, the tone's amplitude, the remap and the
render, the same formulas).

What stays on the CPU: what is made once per page and output size (its ink, from
lineart.py; its tone at the working size; the sampling maps, from distance transforms),
copied to the device once.
Checked against the numpy reference within a level on the CPU (tests/test_device_output.py).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import detail


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


def wide_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """detail.wide_blur of an H x W x C tensor: wide windows blurred at 1/f the size."""
    factor = detail.pyramid_factor(sigma)
    if factor == 1:
        return gaussian_blur(image, sigma)
    height, width = image.shape[:2]
    planes = image.permute(2, 0, 1)[None]
    padded = F.pad(planes, (0, -width % factor, 0, -height % factor), mode="replicate")
    small = F.avg_pool2d(padded, factor)  # cv2's INTER_AREA at a whole factor: the box mean
    small = gaussian_blur(small[0].permute(1, 2, 0), sigma / factor).permute(2, 0, 1)[None]
    big = F.interpolate(small, scale_factor=factor, mode="bilinear", align_corners=False)
    return big[0, :, :height, :width].permute(1, 2, 0)


def colour_over_page(model: torch.Tensor, page_w: torch.Tensor) -> torch.Tensor:
    """detail.colour_over_page on a device: model H x W x 3 and page_w H x W in [0, 1]."""
    num = model * page_w[..., None]
    den = (page_w * page_w)[..., None]
    colour = None
    trusted = torch.zeros(den.shape, dtype=torch.bool, device=model.device)
    for sigma in detail.RATIO_SIGMAS:
        n, d = wide_blur(num, sigma), wide_blur(den, sigma)
        ratio = n / torch.clamp(d, min=1e-6)
        colour = ratio if colour is None else torch.where(trusted, colour, ratio)
        trusted |= d > detail.MIN_PAPER
        if bool(trusted.all()):
            break
    colour = torch.where(trusted, colour, model)
    return colour.clamp_(0.0, 1.0)


def tone_gain(colour: torch.Tensor, tone: torch.Tensor) -> torch.Tensor:
    """detail.tone_gain on a device: H x W x 3 and H x W -> H x W x 6 (B, A)."""
    value = colour.amax(dim=-1).clamp(min=1e-3)
    seen = F.max_pool2d(tone[None, None], 3, stride=1, padding=1)[0, 0]  # cv2.dilate, 3 x 3
    lighter = (gaussian_blur(value[..., None], detail.TONE_SIGMA)[..., 0] > seen)[..., None]
    level = tone.clamp(1e-3, 1.0)[..., None]
    amplitude = torch.where(lighter, torch.minimum(colour / level, (1.0 - colour) / (1.0 - level).clamp(min=1e-6)),
                            colour / torch.maximum(level, value[..., None]))
    offset = torch.where(lighter, (colour - amplitude * level).clamp(min=0.0), torch.zeros_like(colour))
    return torch.cat([offset, amplitude], dim=-1)


def _tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """On the device; a read-only array (a decoded image's view) copied first, since torch's
    tensors are writable and one on the CPU would share its memory."""
    return torch.from_numpy(array if array.flags.writeable else array.copy()).to(device)


class DevicePageDetail:
    """detail.PageDetail's per-ratio work on a device: its maps as a sampling grid."""

    def __init__(self, made: detail.PageDetail, device: torch.device):
        xy, frac = made.maps
        self.page, self.ink, self.page_w, self.tone_w = (
            _tensor(a, device) for a in (made.page, made.ink, made.page_w, made.tone_w))
        frac = torch.from_numpy(frac.astype(np.int32)).to(device)
        xy = torch.from_numpy(xy).to(device).float()
        x = xy[..., 0] + (frac & 31).float() / 32.0  # cv2.remap's 1/32-pixel fixed point
        y = xy[..., 1] + (frac >> 5).float() / 32.0
        height, width = self.page_w.shape
        # grid_sample's align_corners=True: -1 and 1 are the centres of the edge pixels
        self.grid = torch.stack([x * (2.0 / max(width - 1, 1)) - 1.0, y * (2.0 / max(height - 1, 1)) - 1.0], -1)[None]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.page, self.ink, self.page_w, self.tone_w, self.grid))

    def layers(self, model: torch.Tensor) -> torch.Tensor:
        """model: uint8 H x W x 3 at the working size -> float32 page-sized B, A (H x W x 6)."""
        colour = colour_over_page(model.float() / 255.0, self.page_w)
        sampled = F.grid_sample(tone_gain(colour, self.tone_w).permute(2, 0, 1)[None], self.grid, mode="bilinear",
                                padding_mode="border", align_corners=True)
        return sampled[0].permute(1, 2, 0)

    def _render(self, model: torch.Tensor, under_ink: bool) -> torch.Tensor:
        made = self.layers(model)
        page = self.page.float() / 255.0
        if under_ink:  # A + B / P off the ink, A + B on it
            weight = torch.where(self.ink, torch.ones_like(page), 1.0 / page.clamp(min=1e-3))
            return torch.addcmul(made[..., 3:], made[..., :3], weight[..., None]).clamp_(max=1.0)
        weight = torch.where(self.ink, page, torch.ones_like(page))  # B + A x P; (B + A) x P on the ink
        return torch.addcmul(made[..., :3] * weight[..., None], made[..., 3:], page[..., None]).clamp_(max=1.0)

    def colour_layer(self, model: torch.Tensor) -> torch.Tensor:
        return self._render(model, True)

    def full(self, model: torch.Tensor) -> torch.Tensor:
        return self._render(model, False)


def on_device(made: detail.PageDetail, device: torch.device) -> DevicePageDetail:
    """This page's per-ratio work on a GPU, made once and kept with the page's detail."""
    twin = made.twins.get(str(device))
    if twin is None:
        twin = made.twins[str(device)] = DevicePageDetail(made, device)
    return twin
