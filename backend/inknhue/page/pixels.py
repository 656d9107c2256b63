"""Pixel buffers of the wire protocol <-> the pipeline's numpy arrays.

Clients send what they have (Krita: BGRA, 8 or 16 bit integer or float, float in linear
light) and ask for what they need back; the conversions happen here, on the server.
"""

from __future__ import annotations

import numpy as np

from inknhue_krita.protocol import CHANNELS, ProtocolError, RawImage

from .imaging import luma

_NUMPY = {"uint8": np.uint8, "uint16": np.dtype("<u2"), "float16": np.dtype("<f2"), "float32": np.dtype("<f4")}


def _srgb_encode(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1 / 2.4) - 0.055)


def _srgb_decode(encoded: np.ndarray) -> np.ndarray:
    return np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)


def to_array(image: RawImage) -> np.ndarray:
    """H x W x C uint8 in RGB(A) order (L stays one channel), sRGB-encoded whatever came."""
    pixels = np.frombuffer(image.data, dtype=_NUMPY[image.dtype]).reshape(
        image.height, image.width, CHANNELS[image.channels])
    if image.dtype == "uint8" and not image.linear:
        u8 = pixels
    elif image.dtype == "uint16" and not image.linear:
        u8 = ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    else:
        scale = {"uint8": 255.0, "uint16": 65535.0}.get(image.dtype, 1.0)
        values = np.nan_to_num(pixels.astype(np.float32), nan=0.0) / np.float32(scale)
        if image.linear:  # colour channels only; alpha is linear anyway
            colour = slice(0, 3) if image.channels != "L" else slice(0, 1)
            values[..., colour] = _srgb_encode(values[..., colour])
        u8 = np.rint(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)
    if image.channels == "BGRA":
        u8 = u8[..., [2, 1, 0, 3]]
    return u8


def to_rgb(image: RawImage, background=255) -> np.ndarray:
    """Any buffer -> RGB uint8; transparency is flattened onto paper white."""
    pixels = to_array(image)
    if image.channels == "L":
        return np.repeat(pixels, 3, axis=2)
    if pixels.shape[2] == 4:
        alpha = pixels[..., 3:4].astype(np.uint16)
        flat = (pixels[..., :3].astype(np.uint16) * alpha + background * (255 - alpha) + 127) // 255
        return flat.astype(np.uint8)
    return np.ascontiguousarray(pixels)


def to_rgba(image: RawImage, what: str = "hints") -> np.ndarray:
    """A buffer with an alpha channel -> RGBA uint8."""
    if image.channels not in ("RGBA", "BGRA"):
        raise ProtocolError("bad_input", f"the {what} need an alpha channel (RGBA or BGRA), got {image.channels}")
    return np.ascontiguousarray(to_array(image))


def from_rgb(rgb: np.ndarray, channels: str = "RGBA", dtype: str = "uint8", linear: bool = False,
             alpha: np.ndarray | None = None) -> RawImage:
    """RGB (uint8, or float in [0, 1] for full precision) -> a buffer in the channel order and
    depth the client asked for; opaque unless an H x W uint8 `alpha` is given."""
    if channels not in CHANNELS or dtype not in _NUMPY:
        raise ProtocolError("bad_input", f"cannot send {channels} {dtype}")
    height, width = rgb.shape[:2]
    values = rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float32, copy=False)
    if channels == "L":
        colour = (values @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    elif channels == "BGRA":
        colour = values[..., ::-1]
    else:
        colour = values
    if linear:  # a linear-light document, at any depth
        colour = _srgb_decode(np.clip(colour, 0.0, 1.0))
    out = np.empty((height, width, CHANNELS[channels]), _NUMPY[dtype])
    scale = {"uint8": 255.0, "uint16": 65535.0}.get(dtype)
    if scale is None:
        out[..., :colour.shape[2]] = colour
    elif rgb.dtype == np.uint8 and dtype == "uint8" and not linear:
        out[..., :colour.shape[2]] = luma(rgb)[..., None] if channels == "L" else (
            rgb[..., ::-1] if channels == "BGRA" else rgb)
    else:
        out[..., :colour.shape[2]] = np.rint(np.clip(colour, 0.0, 1.0) * scale)
    if CHANNELS[channels] == 4:
        a = np.float32(255) if alpha is None else alpha
        out[..., 3] = a if scale == 255.0 else (np.asarray(a, np.float32) / 255.0 * (scale or 1.0))
    return RawImage(width, height, channels, np.ascontiguousarray(out).data, dtype, linear)
