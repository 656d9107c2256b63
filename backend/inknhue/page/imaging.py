"""Reading images of any mode, and the published app's resizing rules.

Arrays here are H x W x C uint8, RGB order, unless a name says otherwise.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from inknhue_krita.protocol import MAX_PIXELS, MAX_SIDE

from ..defaults import MAX_WORKING_PIXELS, MIN_MAX_SIZE
from ..errors import InputError

# Largest image accepted anywhere (pages, hints, references): the protocol's limits.
# Let Pillow open up to our own limit, and stop it (instead of warning) beyond twice that.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

WHITE = (255, 255, 255)
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def check_size(width: int, height: int, what: str = "image") -> None:
    if width < 1 or height < 1:
        raise InputError(f"{what} is empty ({width}x{height})")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise InputError(f"{what} is {width}x{height}: larger than the limit of {MAX_SIDE} px "
                         f"a side and {MAX_PIXELS // 1_000_000} MP")


def _too_large(exc: Exception, what: str, path: Path) -> InputError:
    """Pillow's refusal of a huge image (before its size is known to us), said as check_size says it."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(found.group(1)) / 1_000_000:.0f} MP: " if found else ""
    return InputError(f"{what} {path} is {size}larger than the limit of {MAX_SIDE} px a side and "
                      f"{MAX_PIXELS // 1_000_000} MP")


def open_image(path: str | os.PathLike, what: str = "image") -> Image.Image:
    """Open and decode an image file, upright (EXIF orientation applied), within the size limits."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            check_size(*image.size, what=f"{what} {path}")
            image.load()
    except FileNotFoundError:
        raise InputError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{what} {path} is a folder, not an image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_large(exc, what, path) from None
    except UnidentifiedImageError as exc:
        raise InputError(f"{what} {path} is not an image Pillow can read ({exc})") from None
    except OSError as exc:  # truncated or damaged data
        raise InputError(f"{what} {path} could not be decoded: {exc}") from None
    return ImageOps.exif_transpose(image)


def read_header(path: str | os.PathLike, what: str = "image") -> tuple[int, int, bool]:
    """An image's upright (width, height) and whether it has transparency, from its header
    alone (no pixels are decoded): a whole chapter's files are checked before any work.
    Damaged pixel data behind a sound header is found later, by `open_image`."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # check_size says it better
            with Image.open(path) as image:
                width, height = image.size
                alpha = image.mode in _ALPHA_MODES or "transparency" in image.info
                # the base class's getexif: PNG's own would decode the pixels to find a late eXIf chunk
                if Image.Image.getexif(image).get(0x0112) in (5, 6, 7, 8):  # rotated a quarter turn
                    width, height = height, width
    except FileNotFoundError:
        raise InputError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{what} {path} is a folder, not an image") from None
    except Image.DecompressionBombError as exc:
        raise _too_large(exc, what, path) from None
    except UnidentifiedImageError as exc:
        raise InputError(f"{what} {path} is not an image Pillow can read ({exc})") from None
    except OSError as exc:
        raise InputError(f"{what} {path} could not be read: {exc}") from None
    check_size(width, height, f"{what} {path}")
    return width, height, alpha


def _high_depth_to_u8(image: Image.Image) -> np.ndarray:
    """Modes I;16*, I and F (16-bit, 32-bit, float greyscale) -> 8-bit grey."""
    values = np.asarray(image).astype(np.float64)
    if image.mode == "F":
        scale = 255.0 if values.size and np.nanmax(values) <= 1.0 else 1.0
    else:  # 16-bit integer data; 'I' from a 16-bit PNG holds 0..65535
        scale = 255.0 / 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 1.0
    return np.rint(np.clip(np.nan_to_num(values * scale), 0, 255)).astype(np.uint8)


def to_rgb(image: Image.Image, background=WHITE) -> np.ndarray:
    """Any Pillow mode -> RGB uint8. Transparency is flattened onto `background` (paper white)."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        grey = _high_depth_to_u8(image)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, tuple(background) + (255,))
        flat.alpha_composite(rgba)
        return np.asarray(flat.convert("RGB"))
    return np.asarray(image.convert("RGB"))


def to_rgba(image: Image.Image) -> np.ndarray:
    """Any Pillow mode -> RGBA uint8 (high-depth greyscale becomes opaque grey)."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        grey = _high_depth_to_u8(image)
        return np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    return np.asarray(image.convert("RGBA"))


def read_hints(path: str | os.PathLike) -> np.ndarray:
    """Hint strokes: RGBA, colour where alpha > 0. An image without transparency is refused."""
    image = open_image(path, "hints")
    if image.mode not in _ALPHA_MODES and "transparency" not in image.info:
        raise InputError(f"hints {path} have no transparency ({image.mode}): paint the strokes on a "
                         f"transparent layer and save it as PNG with alpha")
    return np.asarray(image.convert("RGBA"))


def read_rgb(path: str | os.PathLike, what: str = "image") -> np.ndarray:
    return to_rgb(open_image(path, what), WHITE)


def luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma with Pillow's rounding (what Image.convert('L') gives)."""
    return np.asarray(Image.fromarray(rgb).convert("L"))


def grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[:, :, None], 3, axis=2)


def _image_format(path: Path) -> str:
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise InputError(f"cannot tell an image format from the name {path} (use .png, .jpg, .tif, ...)")
    return fmt


#: image formats that keep an alpha channel
ALPHA_FORMATS = ("PNG", "TIFF", "WEBP")


def check_alpha_format(path: str | os.PathLike) -> None:
    """A layer with transparency cannot go into a JPEG: say so before any work."""
    if _image_format(Path(path)) not in ALPHA_FORMATS:
        raise InputError(f"{path}: this layer has transparency, which a {Path(path).suffix or 'file'} "
                         f"cannot hold; write a .png, .tif or .webp")


def check_writable(path: str | os.PathLike) -> Path:
    """Say now, not after minutes of work, that an output cannot be written: its name has no
    image format, or its folder cannot be created or written."""
    path = Path(path)
    _image_format(path)
    if path.is_dir():
        raise InputError(f"cannot write {path}: it is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(tmp)
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_image(array: np.ndarray, path: str | os.PathLike) -> Path:
    """Write atomically: a failure never leaves a half-written file in place of an old one.
    The file gets the mode any program's new file gets (0666 less the umask), not mkstemp's 0600."""
    path = Path(path)
    fmt = _image_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            Image.fromarray(array).save(f, format=fmt)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


# --- the published app's resizing rules -------------------------------------------------

def aspect_mismatch(size_a: tuple[int, int], size_b: tuple[int, int]) -> float:
    """Relative difference of two (width, height) aspect ratios."""
    ratio_a, ratio_b = size_a[0] / size_a[1], size_b[0] / size_b[1]
    return abs(ratio_a / ratio_b - 1.0)


def resize_pad(grey: np.ndarray, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """manga-colorization-v2's resize-and-pad for the shading generator.

    Portrait or square: width becomes `size`; landscape: height becomes 1.5 x `size`.
    cv2 INTER_AREA, then 'maximum' padding (bottom or right) to the next multiple of 32,
    adding a full 32 when already a multiple. Returns the padded image and (pad_h, pad_w).
    """
    h, w = grey.shape[:2]
    if h < w:
        new_h = int(size * 1.5)
        new_w = int(np.ceil(w / (h / (size * 1.5))))
        resized = cv2.resize(grey, (new_w, new_h), interpolation=cv2.INTER_AREA)
        pad = (0, 32 - new_w % 32)
    else:
        new_w = size
        new_h = int(np.ceil(h / (w / size)))
        resized = cv2.resize(grey, (new_w, new_h), interpolation=cv2.INTER_AREA)
        pad = (32 - new_h % 32, 0)
    return np.pad(resized, ((0, pad[0]), (0, pad[1])), mode="maximum"), pad


def resize_max(image: Image.Image, max_size: int) -> Image.Image:
    """The app's resize_max: if a side exceeds max_size, the short side becomes max_size."""
    size = max_size_dims(*image.size, max_size)
    return image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)


def max_size_dims(width: int, height: int, max_size: int) -> tuple[int, int]:
    """The size resize_max gives: if a side exceeds max_size, the short side becomes max_size."""
    w, h = width, height
    if w > max_size or h > max_size:
        if w <= h:
            w, h = max_size, int(float(h) * float(max_size) / float(w))
        else:
            w, h = int(float(w) * float(max_size) / float(h)), max_size
    return w, h


def round_up_to_8(image: Image.Image) -> Image.Image:
    w, h = image.size
    return image.resize(((w + 7) // 8 * 8, (h + 7) // 8 * 8), Image.Resampling.LANCZOS)


def working_size(width: int, height: int, max_size: int) -> tuple[int, int]:
    """The size `to_working_size` gives a width x height image, without resizing anything."""
    w, h = max_size_dims(width, height, max_size)
    return (w + 7) // 8 * 8, (h + 7) // 8 * 8


def shading_size(width: int, height: int, size: int) -> tuple[int, int]:
    """The size `resize_pad` gives the shading generator, padding included."""
    if height < width:
        new_h, new_w = int(size * 1.5), int(np.ceil(width / (height / (size * 1.5))))
        return new_w + 32 - new_w % 32, new_h
    new_w, new_h = size, int(np.ceil(height / (width / size)))
    return new_w, new_h + 32 - new_h % 32


def _fits(width: int, height: int, max_size: int) -> bool:
    work_w, work_h = working_size(width, height, max_size)
    shade_w, shade_h = shading_size(width, height, max_size)
    # landscape pages shade at 1.5x the max size on each side (manga-colorization-v2's rule)
    return work_w * work_h <= MAX_WORKING_PIXELS and shade_w * shade_h <= 2.25 * MAX_WORKING_PIXELS


def check_work_size(width: int, height: int, max_size: int) -> None:
    """Refuse, before anything is allocated, a page whose working or shading resolution
    would outgrow the memory limits (a very long strip, or a sliver of a page)."""
    if _fits(width, height, max_size):
        return
    work_w, work_h = working_size(width, height, max_size)
    fits = next((size for size in range(max_size - 32, MIN_MAX_SIZE - 1, -32) if _fits(width, height, size)), None)
    advice = (f"use max size {fits} or less" if fits else
              f"its shape ({width}x{height}) is too long and thin: crop it, or colorize it in parts")
    raise InputError(f"at max size {max_size} this {width}x{height} page would be worked on at {work_w}x{work_h} "
                     f"({work_w * work_h / 1e6:.1f} MP), beyond the limit of {MAX_WORKING_PIXELS / 1e6:.1f} MP: "
                     f"{advice}")


def to_working_size(rgb: np.ndarray, max_size: int) -> np.ndarray:
    """The app's resize_to_nearest: resize_max, then up to multiples of 8 (both LANCZOS)."""
    return np.asarray(round_up_to_8(resize_max(Image.fromarray(rgb), max_size)))


def resize_to(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Any size to any size: Lanczos up, area-averaging down (OpenCV's, multi-threaded)."""
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    shrink = width < rgb.shape[1] and height < rgb.shape[0]
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4)
