"""The CIELAB blend computed by torch on the engine's GPU: the twin of `color.LabBlend`.

The same formulas, so a slider move on a GPU costs a few kernels instead of CIELAB over the
whole image in numpy on the CPU. Where the engine runs on the CPU, the numpy path stays (it
is the reference, and the working-size result is the published app's bit for bit); this
path is checked against it within a level on the CPU (tests/test_device_output.py).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from . import color


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
