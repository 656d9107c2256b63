"""Typed requests of the protocol: every field a client may send, checked in one place.

`protocol.py` frames and signs messages; this module turns a signed header into a request
object, or a `ProtocolError("bad_input", ...)` that names the field. Both ends use it: the
client builds headers with `to_header()`, the server parses them with `from_header()`, so
a field's type, range and default are written down once. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .protocol import (CHANNELS, COLORIZE_IMAGES, DTYPES, MAX_FRAME_BYTES, MAX_PIXELS, MAX_SIDE, UPSCALE_IMAGES,
                       ProtocolError, RawImage, int_field, ratio_field, shown)

OUTPUT_SIZES = ("page", "working")
#: full: the coloured page; colour: the colours without the line art, for a Multiply layer under the ink;
#: flats: the flat colours of the hint strokes alone (transparent where paper stays), no network run
LAYERS = ("full", "colour", "flats")
#: the rough-colour providers' names are the server's business; the field is checked for shape here
MAX_NAME_CHARS = 32
#: what each provider needs besides the page (the server's `hello` lists the providers)
PROVIDER_NEEDS = {"flats": "hints", "shader": "hints", "image": "rough", "style2paints": "hints"}


def bool_field(header: dict, key: str, default: bool = False, where: str = "") -> bool:
    value = header.get(key, default)
    if not isinstance(value, bool):
        raise ProtocolError("bad_input", f"'{where}{key}' must be true or false, got {shown(value)}")
    return value


def name_field(header: dict, key: str, default: str | None = None) -> str:
    value = header.get(key, default)
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_CHARS:
        raise ProtocolError("bad_input", f"'{key}' must be a name (a string of 1 to {MAX_NAME_CHARS} "
                                         f"characters), got {shown(value)}")
    return value


def choice_field(header: dict, key: str, choices, default: str, where: str = "") -> str:
    value = header.get(key, default)
    if not isinstance(value, str) or value not in choices:
        raise ProtocolError("bad_input", f"'{where}{key}' must be one of {', '.join(choices)}, got {shown(value)}")
    return value


@dataclass(frozen=True)
class OutputSpec:
    """The image a client wants back: which layer, its size, channel order and depth."""

    size: str | tuple[int, int] = "page"   #: "page", "working" or (width, height)
    channels: str = "RGBA"
    dtype: str = "uint8"
    linear: bool = False                    #: float data in linear light
    layer: str = "full"                     #: one of LAYERS

    FIELDS = ("size", "channels", "dtype", "linear", "layer")

    def to_header(self) -> dict:
        size = list(self.size) if isinstance(self.size, tuple) else self.size
        return {"size": size, "channels": self.channels, "dtype": self.dtype, "linear": self.linear,
                "layer": self.layer}

    @classmethod
    def from_header(cls, spec, where: str = "output.") -> "OutputSpec":
        if not isinstance(spec, dict):
            raise ProtocolError("bad_input", f"'{where.rstrip('.')}' must be an object, got {shown(spec)}")
        size = spec.get("size", "page")
        if isinstance(size, list):
            if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SIDE
                                         for v in size):
                raise ProtocolError("bad_input", f"'{where}size' as [width, height] needs two integers from 1 "
                                                 f"to {MAX_SIDE}, got {shown(size)}")
            if size[0] * size[1] > MAX_PIXELS:
                raise ProtocolError("too_large", f"'{where}size' {size[0]}x{size[1]} is larger than the limit of "
                                                 f"{MAX_PIXELS // 1_000_000} MP")
            size = (size[0], size[1])
        elif not isinstance(size, str) or size not in OUTPUT_SIZES:
            raise ProtocolError("bad_input", f"'{where}size' must be \"page\", \"working\" or [width, height], "
                                             f"got {shown(size)}")
        return cls(size, choice_field(spec, "channels", CHANNELS, "RGBA", where),
                   choice_field(spec, "dtype", DTYPES, "uint8", where), bool_field(spec, "linear", where=where),
                   choice_field(spec, "layer", LAYERS, "full", where))

    def pixel_size(self, page_size: tuple[int, int], working_size: tuple[int, int]) -> tuple[int, int]:
        return page_size if self.size == "page" else working_size if self.size == "working" else self.size

    def check_bytes(self, width: int, height: int) -> None:
        """Refuse an image that could not be sent in one frame, before anything is computed."""
        nbytes = width * height * CHANNELS[self.channels] * DTYPES[self.dtype]
        if nbytes > MAX_FRAME_BYTES:
            raise ProtocolError("too_large", f"a {width}x{height} {self.channels} {self.dtype} result is "
                                             f"{nbytes >> 20} MiB, more than one message may carry "
                                             f"({MAX_FRAME_BYTES >> 20} MiB): ask for a smaller size or depth")


@dataclass(frozen=True)
class ColorizeRequest:
    """`colorize`: the page and what colours it, and the image wanted back."""

    provider: str = "flats"
    ratio: float = 0.8
    max_size: int = 768
    fill_all: bool = False
    transfer: bool = False
    output: OutputSpec = field(default_factory=OutputSpec)

    def to_header(self) -> dict:
        return {"type": "colorize", "provider": self.provider, "ratio": self.ratio, "max_size": self.max_size,
                "fill_all": self.fill_all, "transfer": self.transfer, "output": self.output.to_header()}

    @classmethod
    def from_header(cls, header: dict, images: dict[str, RawImage], default_ratio: float, default_max_size: int,
                    max_size_range: tuple[int, int]) -> "ColorizeRequest":
        request = cls(
            provider=name_field(header, "provider", "flats"),
            ratio=ratio_field(header, default=default_ratio),
            max_size=int_field(header, "max_size", default_max_size, *max_size_range),
            fill_all=bool_field(header, "fill_all"),
            transfer=bool_field(header, "transfer"),
            output=OutputSpec.from_header(header.get("output", {})))
        if request.max_size % 32:
            raise ProtocolError("bad_input", f"'max_size' must be a multiple of 32, got {request.max_size}")
        request.check_images(images)
        return request

    def check_images(self, images: dict[str, RawImage]) -> None:
        unknown = set(images) - set(COLORIZE_IMAGES)
        if unknown:
            raise ProtocolError("bad_input", f"unexpected images: {', '.join(shown(n) for n in sorted(unknown))}")
        if "page" not in images:
            raise ProtocolError("bad_input", "a colorize request needs the 'page' image")
        page, hints, mask = images["page"], images.get("hints"), images.get("mask")
        for name, other in (("hints", hints), ("mask", mask)):
            if other and (other.width, other.height) != (page.width, page.height):
                raise ProtocolError("bad_input", f"the {name} are {other.width}x{other.height} but the page is "
                                                 f"{page.width}x{page.height}")
        if mask and mask.channels != "L":
            raise ProtocolError("bad_input", f"the mask must be one channel (L), got {mask.channels}")
        if hints and hints.channels not in ("RGBA", "BGRA"):
            raise ProtocolError("bad_input", f"the hints need an alpha channel (RGBA or BGRA), got {hints.channels}")
        needs = PROVIDER_NEEDS.get(self.provider)
        if needs and needs not in images:
            raise ProtocolError("bad_input", f"provider '{self.provider}' needs the '{needs}' image")
        if self.transfer and "reference" not in images:
            raise ProtocolError("bad_input", "'transfer' needs the 'reference' image")


#: the layers an upscale gives: the coloured page, or the colours for a Multiply layer under the ink
UPSCALE_LAYERS = ("full", "colour")


@dataclass(frozen=True)
class UpscaleRequest:
    """`upscale`: a colouring of the page made at a lower resolution (painted small, or pasted
    and scaled up) brought to the page's size with the page's own ink; no network runs.
    `max_size`: a colouring whose short side is larger is read at that size first (its
    detail is no finer: it was scaled up); None reads it as it is. An optional `mask` image
    (L, the page's size: a selection) becomes the result's alpha, as a colorize's."""

    max_size: int | None = None
    output: OutputSpec = field(default_factory=OutputSpec)

    provider = "upscale"  #: what `status` lists a job as
    ratio = None          #: no colour ratio: an upscale job has no blends

    def to_header(self) -> dict:
        header = {"type": "upscale", "output": self.output.to_header()}
        if self.max_size is not None:
            header["max_size"] = self.max_size
        return header

    @classmethod
    def from_header(cls, header: dict, images: dict[str, RawImage], max_size_range: tuple[int, int]
                    ) -> "UpscaleRequest":
        max_size = None
        if header.get("max_size") is not None:
            max_size = int_field(header, "max_size", 0, *max_size_range)
        output = OutputSpec.from_header(header.get("output", {}))
        if output.layer not in UPSCALE_LAYERS:
            raise ProtocolError("bad_input", f"'output.layer' of an upscale must be one of "
                                             f"{', '.join(UPSCALE_LAYERS)}, got {shown(output.layer)}")
        if output.size != "page":
            raise ProtocolError("bad_input", f"'output.size' of an upscale must be \"page\", got {shown(output.size)}")
        unknown = set(images) - set(UPSCALE_IMAGES)
        if unknown:
            raise ProtocolError("bad_input", f"unexpected images: {', '.join(shown(n) for n in sorted(unknown))}")
        for name in ("page", "coloured"):
            if name not in images:
                raise ProtocolError("bad_input", f"an upscale request needs the '{name}' image")
        page, mask = images["page"], images.get("mask")
        if mask and (mask.width, mask.height) != (page.width, page.height):
            raise ProtocolError("bad_input", f"the mask is {mask.width}x{mask.height} but the page is "
                                             f"{page.width}x{page.height}")
        if mask and mask.channels != "L":
            raise ProtocolError("bad_input", f"the mask must be one channel (L), got {mask.channels}")
        return cls(max_size, output)


def job_field(header: dict) -> str:
    value = header.get("job")
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        raise ProtocolError("bad_input", f"'job' must be a job id (a string), got {shown(value)}")
    return value


@dataclass(frozen=True)
class BlendRequest:
    """`blend`: a finished job's colours at another ratio (and size, order, depth)."""

    job: str
    ratio: float
    output: OutputSpec = field(default_factory=OutputSpec)

    def to_header(self) -> dict:
        return {"type": "blend", "job": self.job, "ratio": self.ratio, **self.output.to_header()}

    @classmethod
    def from_header(cls, header: dict) -> "BlendRequest":
        output = {k: header[k] for k in OutputSpec.FIELDS if k in header}
        return cls(job_field(header), ratio_field(header), OutputSpec.from_header(output, where=""))
