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
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

PROTOCOL = 1
TAG = b"inknhue/%d" % PROTOCOL
DEFAULT_PORT = 5557

MAX_SIDE = 16384
MAX_PIXELS = 200_000_000
MAX_HEADER_BYTES = 64 * 1024
MAX_IMAGES = 5
MAX_QUEUED_JOBS = 8

CHANNELS = {"L": 1, "RGB": 3, "RGBA": 4, "BGRA": 4}
DTYPES = {"uint8": 1, "uint16": 2, "float16": 2, "float32": 4}
#: the images a colorize request may carry ("mask": L, the page's size, becomes the result's alpha)
COLORIZE_IMAGES = ("page", "hints", "reference", "rough", "mask")
#: request types a server answers
REQUESTS = ("hello", "ping", "status", "colorize", "blend", "cancel", "shutdown")


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
    if not isinstance(name, str) or not name:
        raise ProtocolError("bad_message", "an image has no name")
    width, height = spec.get("width"), spec.get("height")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (width, height)):
        raise ProtocolError("bad_message", f"image '{name}': width and height must be integers")
    if width < 1 or height < 1:
        raise ProtocolError("bad_input", f"image '{name}' is empty ({width}x{height})")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ProtocolError("too_large", f"image '{name}' is {width}x{height}: larger than the limit of "
                                         f"{MAX_SIDE} px a side and {MAX_PIXELS // 1_000_000} MP")
    if spec.get("channels") not in CHANNELS:
        raise ProtocolError("bad_message", f"image '{name}': channels must be one of {', '.join(CHANNELS)}")
    if spec.get("dtype", "uint8") not in DTYPES:
        raise ProtocolError("bad_message", f"image '{name}': dtype must be one of {', '.join(DTYPES)}")


def image_from(spec: dict, buffer) -> RawImage:
    image = RawImage(spec["width"], spec["height"], spec["channels"], buffer,
                     spec.get("dtype", "uint8"), bool(spec.get("linear", False)))
    got = memoryview(buffer).nbytes
    if got != image.nbytes:
        raise ProtocolError("bad_input", f"image '{spec['name']}' should be {image.nbytes} bytes "
                                         f"({image.width}x{image.height} {image.channels} {image.dtype}), got {got}")
    return image


# --- numbers ---------------------------------------------------------------------------

def ratio_field(header: dict, key: str = "ratio", default: float | None = None) -> float:
    value = header.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 <= value <= 1.0:
        raise ProtocolError("bad_input", f"'{key}' must be a number between 0 and 1, got {value!r}")
    return float(value)


def int_field(header: dict, key: str, default: int, low: int, high: int) -> int:
    value = header.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProtocolError("bad_input", f"'{key}' must be an integer from {low} to {high}, got {value!r}")
    return value


# --- framing ---------------------------------------------------------------------------

def sign(key: bytes, header: bytes) -> bytes:
    return hmac.new(key, header, digestmod=hashlib.sha256).hexdigest().encode()


def pack(key: bytes, header: dict, images: dict[str, RawImage] | None = None) -> list:
    """A message as frames (after any identity): tag, signature, header, buffers."""
    images = images or {}
    header = dict(header, images=[image.describe(name) for name, image in images.items()])
    body = [json.dumps(header, separators=(",", ":")).encode()]
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
            raise ProtocolError("bad_version", f"protocol {tag.decode(errors='replace')} is not "
                                               f"{TAG.decode()}: update the plugin or the backend")
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
        header = json.loads(bytes(body[0]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("bad_message", "the header is not JSON") from None
    if not isinstance(header, dict):
        raise ProtocolError("bad_message", "the header is not a JSON object")
    try:
        return header, _images(header, body[1:])
    except ProtocolError as exc:
        request_id = header.get("id")
        exc.request_id = request_id if isinstance(request_id, str) else None
        raise


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


def new_token() -> str:
    return secrets.token_hex(32)


def new_id(prefix: str = "") -> str:
    return prefix + secrets.token_hex(6)


# --- the connection file ---------------------------------------------------------------

def user_data_dir() -> Path:
    """platformdirs' user_data_dir("inknhue", appauthor=False), without platformdirs
    (Krita's Python has none)."""
    home = Path.home()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(home / "AppData" / "Local")
        return Path(base) / "inknhue"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "inknhue"
    base = os.environ.get("XDG_DATA_HOME", "").strip() or str(home / ".local" / "share")
    return Path(base) / "inknhue"


def connection_file() -> Path:
    return user_data_dir() / "server.json"


def write_connection_file(path: Path, info: dict) -> None:
    """Write the file readable by the user only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    if tmp.exists():
        tmp.unlink()  # O_EXCL below: the file is born private, never widened afterwards
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f, indent=2)
    os.replace(tmp, path)


def read_connection_file(path: Path | None = None) -> dict:
    path = path or connection_file()
    try:
        info = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ProtocolError("no_server", f"no backend is running (no connection file at {path}); "
                                         f"start one with `inknhue serve`") from None
    except (OSError, ValueError) as exc:
        raise ProtocolError("no_server", f"cannot read the connection file {path}: {exc}") from None
    if not isinstance(info, dict) or not {"address", "token"} <= set(info):
        raise ProtocolError("no_server", f"the connection file {path} is damaged; restart `inknhue serve`")
    return info
