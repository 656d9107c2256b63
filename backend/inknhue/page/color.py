"""sRGB <-> CIELAB (D65) and the final blend: L from the VAE output, a*/b* towards the rough colours.

Same formulas as scikit-image's rgb2lab/lab2rgb that the published app uses (and kornia's,
which the parity fixtures were checked against), in float32 numpy.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

_XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423],
                          [0.212671, 0.715160, 0.072169],
                          [0.019334, 0.119193, 0.950227]])
_RGB_FROM_XYZ = np.linalg.inv(_XYZ_FROM_RGB)
_D65 = np.array([0.95047, 1.0, 1.08883])

# Fold the white point into the matrices: XYZ/white from linear RGB, and back.
_NORMALIZED_XYZ_FROM_RGB = (_XYZ_FROM_RGB / _D65[:, None]).T.astype(np.float32)
_RGB_FROM_NORMALIZED_XYZ = (_RGB_FROM_XYZ * _D65[None, :]).T.astype(np.float32)

_EPSILON = 0.008856  # (6/29)^3
_KAPPA = 7.787
_F_EPSILON = 0.2068966  # 6/29


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 sRGB -> float32 L*a*b*."""
    c = rgb.astype(np.float32) / 255.0
    linear = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = linear @ _NORMALIZED_XYZ_FROM_RGB
    f = np.where(xyz > _EPSILON, np.cbrt(np.maximum(xyz, _EPSILON)), _KAPPA * xyz + 16.0 / 116.0)
    lab = np.empty_like(f)
    lab[..., 0] = 116.0 * f[..., 1] - 16.0
    lab[..., 1] = 500.0 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200.0 * (f[..., 1] - f[..., 2])
    return lab


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """float L*a*b* -> H x W x 3 uint8 sRGB, clipping out-of-gamut colours."""
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, np.maximum(fy - lab[..., 2] / 200.0, 0.0)], axis=-1)
    xyz = np.where(f > _F_EPSILON, f ** 3, (f - 16.0 / 116.0) / _KAPPA)
    linear = xyz @ _RGB_FROM_NORMALIZED_XYZ
    srgb = np.where(linear > 0.0031308,
                    1.055 * np.maximum(linear, 0.0031308) ** (1 / 2.4) - 0.055,
                    12.92 * linear)
    return np.rint(np.clip(srgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def check_ratio(ratio: float) -> float:
    ratio = float(ratio)
    if not (0.0 <= ratio <= 1.0):  # also false for NaN
        raise InputError(f"ratio must be between 0 and 1, got {ratio}")
    return ratio


class LabBlend:
    """The final blend, with both inputs converted to CIELAB once so each ratio is cheap.

    ratio 0 gives the VAE output, ratio 1 its lightness with the rough colours' a*/b*.
    """

    def __init__(self, generated: np.ndarray, rough: np.ndarray):
        if generated.shape != rough.shape:
            raise InputError(f"blend inputs differ in size: {generated.shape} vs {rough.shape}")
        self.generated = rgb_to_lab(generated)
        rough_lab = rgb_to_lab(rough)
        self._ab_delta = rough_lab[..., 1:] - self.generated[..., 1:]

    def __call__(self, ratio: float) -> np.ndarray:
        ratio = check_ratio(ratio)
        lab = self.generated.copy()
        lab[..., 1:] += np.float32(ratio) * self._ab_delta
        return lab_to_rgb(lab)


def blend(generated: np.ndarray, rough: np.ndarray, ratio: float) -> np.ndarray:
    return LabBlend(generated, rough)(ratio)
