"""The wire protocol between the Krita plugin (and other clients) and `inknhue serve`.

Standard library only (plus pyzmq where sockets are involved, in client.py): this module
runs inside Krita's own Python. docs/protocol.md describes the protocol for people; this
module is its single implementation, used by both ends.

Every message is a ZeroMQ multipart message (after the ROUTER's identity frame):

    [0] b"inknhue/1"     protocol tag and version
    [1] signature        hex HMAC-SHA256 of the header, keyed with the session token
    [2] header           a JSON object, UTF-8
    [3..] buffers        raw pixel data, one frame per entry of header["images"]

As in Jupyter's protocol, the buffers are not signed: the header, which gives each
buffer's size and layout, is. Hashing a page's tens of megabytes on both ends would
cost more than the rest of a blend round trip.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
from dataclasses import dataclass

#: 2: CURVE on every connection (keys in the connection file), typed field checks
PROTOCOL = 2
TAG = b"inknhue/%d" % PROTOCOL
DEFAULT_PORT = 5557

# Limits a 24 GB machine survives with the models loaded (docs/protocol.md, "Limits").
MAX_SIDE = 16384
MAX_PIXELS = 100_000_000         #: an A3 page at 600 dpi is 70 MP
MAX_HEADER_BYTES = 64 * 1024
MAX_ID_CHARS = 128
CHANNELS = {"L": 1, "RGB": 3, "RGBA": 4, "BGRA": 4}
DTYPES = {"uint8": 1, "uint16": 2, "float16": 2, "float32": 4}
#: the largest frame: one image at the pixel limit, RGBA float32 (ZeroMQ drops larger ones)
MAX_FRAME_BYTES = MAX_PIXELS * 4 * 4 + MAX_HEADER_BYTES
#: the images a colorize request may carry ("mask": L, the page's size, becomes the result's alpha)
COLORIZE_IMAGES = ("page", "hints", "reference", "rough", "mask")
#: an upscale's: the page (its ink) and a colouring of it made at a lower resolution (both
#: required), and the selection ("mask", as colorize's)
UPSCALE_IMAGES = ("page", "coloured", "mask")
MAX_IMAGES = len(COLORIZE_IMAGES)
MAX_QUEUED_JOBS = 8
#: request types a server answers
REQUESTS = ("hello", "ping", "status", "colorize", "upscale", "blend", "cancel", "shutdown")


def shown(value, limit: int = 60) -> str:
    """A peer's value, safe to put in a message or a log line: escaped, one line, short."""
    try:
        text = ascii(value)
    except Exception:  # noqa: BLE001  (a value whose repr fails is still shown)
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "...(" + str(len(text)) + " chars)"


class ProtocolError(Exception):
    """A message that breaks the protocol; `code` says how (sent back in an error reply)."""

    def __init__(self, code: str, message: str, request_id: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id  #: the id of the request it answers, once known


# --- images ----------------------------------------------------------------------------

@dataclass
class RawImage:
    """Pixels as bytes: rows top to bottom, channels interleaved in `channels` order.

    `linear` marks float data in linear light (Krita's float documents), converted to and
    from sRGB by the server.
    """

    width: int
    height: int
    channels: str
    data: bytes | memoryview
    dtype: str = "uint8"
    linear: bool = False

    def describe(self, name: str) -> dict:
        return {"name": name, "width": self.width, "height": self.height, "channels": self.channels,
                "dtype": self.dtype, "linear": self.linear}

    @property
    def nbytes(self) -> int:
        return self.width * self.height * CHANNELS[self.channels] * DTYPES[self.dtype]


def check_image_spec(spec) -> None:
    if not isinstance(spec, dict):
        raise ProtocolError("bad_message", "each entry of 'images' must be an object")
    name = spec.get("name")
    if not isinstance(name, str) or not name or len(name) > 32:
        raise ProtocolError("bad_message", "an image needs a 'name' (a string of 1 to 32 characters)")
    width, height = spec.get("width"), spec.get("height")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (width, height)):
        raise ProtocolError("bad_message", f"image {shown(name)}: 'width' and 'height' must be integers")
    if width < 1 or height < 1:
        raise ProtocolError("bad_input", f"image {shown(name)} is empty ({width}x{height})")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ProtocolError("too_large", f"image {shown(name)} is {width}x{height}: larger than the limit of "
                                         f"{MAX_SIDE} px a side and {MAX_PIXELS // 1_000_000} MP")
    for key, choices, default in (("channels", CHANNELS, None), ("dtype", DTYPES, "uint8")):
        value = spec.get(key, default)
        if not isinstance(value, str) or value not in choices:
            raise ProtocolError("bad_message", f"image {shown(name)}: '{key}' must be one of "
                                               f"{', '.join(choices)}, got {shown(value)}")
    if not isinstance(spec.get("linear", False), bool):
        raise ProtocolError("bad_message", f"image {shown(name)}: 'linear' must be true or false")


def image_from(spec: dict, buffer) -> RawImage:
    image = RawImage(spec["width"], spec["height"], spec["channels"], buffer,
                     spec.get("dtype", "uint8"), spec.get("linear", False))
    got = memoryview(buffer).nbytes
    if got != image.nbytes:
        raise ProtocolError("bad_input", f"image {shown(spec['name'])} should be {image.nbytes} bytes "
                                         f"({image.width}x{image.height} {image.channels} {image.dtype}), got {got}")
    return image


# --- numbers ---------------------------------------------------------------------------

def ratio_field(header: dict, key: str = "ratio", default: float | None = None) -> float:
    value = header.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1 \
            or not math.isfinite(value):  # range first: math.isfinite(10**400) overflows
        raise ProtocolError("bad_input", f"'{key}' must be a number between 0 and 1, got {shown(value)}")
    return float(value)


def int_field(header: dict, key: str, default: int, low: int, high: int) -> int:
    value = header.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProtocolError("bad_input", f"'{key}' must be an integer from {low} to {high}, got {shown(value)}")
    return value


# --- framing ---------------------------------------------------------------------------

def sign(key: bytes, header: bytes) -> bytes:
    return hmac.new(key, header, digestmod=hashlib.sha256).hexdigest().encode()


def pack(key: bytes, header: dict, images: dict[str, RawImage] | None = None) -> list:
    """A message as frames (after any identity): tag, signature, header, buffers."""
    images = images or {}
    header = dict(header, images=[image.describe(name) for name, image in images.items()])
    body = [json.dumps(header, separators=(",", ":"), allow_nan=False).encode()]
    body += [image.data for image in images.values()]
    return [TAG, sign(key, body[0])] + body


def _buffer(frame):
    return frame.buffer if hasattr(frame, "buffer") else frame


def unpack(key: bytes, frames) -> tuple[dict, dict[str, RawImage]]:
    """Check and decode a message (frames after any identity). Raises ProtocolError."""
    if len(frames) < 3:
        raise ProtocolError("bad_message", f"a message has at least 3 frames, got {len(frames)}")
    tag = bytes(_buffer(frames[0]))
    if tag != TAG:
        if tag.startswith(b"inknhue/"):
            raise ProtocolError("bad_version", f"protocol {shown(tag)} is not {TAG.decode()}: "
                                               f"install the plugin and the backend of the same version")
        raise ProtocolError("bad_message", "not an inkn'hue message")
    if len(frames) > 3 + MAX_IMAGES:
        raise ProtocolError("bad_message", f"at most {MAX_IMAGES} images a message")
    body = [_buffer(f) for f in frames[2:]]
    if memoryview(body[0]).nbytes > MAX_HEADER_BYTES:
        raise ProtocolError("bad_message", "the header is too long")
    if not hmac.compare_digest(bytes(_buffer(frames[1])), sign(key, bytes(body[0]))):
        raise ProtocolError("bad_signature", "the message is not signed with this server's token "
                                             "(a stale connection file?)")
    try:
        header = json.loads(bytes(body[0]).decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: [[[[...]]]]
        raise ProtocolError("bad_message", "the header is not JSON (or holds NaN or Infinity)") from None
    if not isinstance(header, dict):
        raise ProtocolError("bad_message", "the header is not a JSON object")
    try:
        return header, _images(header, body[1:])
    except ProtocolError as exc:
        exc.request_id = request_id(header)
        raise


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def _images(header: dict, buffers) -> dict[str, RawImage]:
    specs = header.get("images", [])
    if not isinstance(specs, list) or len(specs) != len(buffers):
        raise ProtocolError("bad_message", f"the header lists {len(specs) if isinstance(specs, list) else '?'} "
                                           f"images but {len(buffers)} buffers came")
    images = {}
    for spec, buffer in zip(specs, buffers, strict=True):
        check_image_spec(spec)
        if spec["name"] in images:
            raise ProtocolError("bad_message", f"image '{spec['name']}' is listed twice")
        images[spec["name"]] = image_from(spec, buffer)
    return images


def request_id(header: dict) -> str | None:
    """The header's id if it is a valid one (a string of at most MAX_ID_CHARS), else None."""
    value = header.get("id")
    return value if isinstance(value, str) and len(value) <= MAX_ID_CHARS else None


def new_token() -> str:
    return secrets.token_hex(32)


def new_id(prefix: str = "") -> str:
    """Request and job ids: 128 random bits, so a job id is a capability nobody guesses."""
    return prefix + secrets.token_hex(16)
