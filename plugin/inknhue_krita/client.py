"""Client of `inknhue serve`: pyzmq and the standard library only (it runs inside Krita).

`Connection` is the non-blocking socket the Krita plugin polls from Qt's event loop;
`Client` adds blocking calls with timeouts for the command line and the tests. A dead or
missing server is reported within the timeout, never by hanging, and so is a job whose
events were lost on the way (a finished job's result is then fetched again).
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Callable

import zmq

from .connection_file import read_connection_file
from .messages import BlendRequest, ColorizeRequest, OutputSpec, UpscaleRequest
from .protocol import PROTOCOL, ProtocolError, RawImage, new_id, pack, unpack

DEFAULT_TIMEOUT = 5.0


class ServerError(Exception):
    """The server answered with an error, or did not answer; `code` says which."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Connection:
    """One DEALER socket to one server, for callers that poll (e.g. a Qt event loop)."""

    def __init__(self, address: str, token: str, curve: dict, context: zmq.Context | None = None):
        """`curve`: the connection file's keys (server_public, public, secret); the server
        lets no connection in without them."""
        self.address = address
        self.key = token.encode()
        if not zmq.has("curve"):
            raise ServerError("unavailable", f"this pyzmq ({zmq.__version__}, libzmq {zmq.zmq_version()}) has no "
                                             f"CURVE encryption, which the backend requires: install pyzmq's wheels")
        self.socket = (context or zmq.Context.instance()).socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.IMMEDIATE, 1)  # queue nothing for a peer that is not there
        try:
            self.socket.curve_serverkey = curve["server_public"].encode()
            self.socket.curve_publickey = curve["public"].encode()
            self.socket.curve_secretkey = curve["secret"].encode()
        except (KeyError, TypeError, AttributeError, zmq.ZMQError) as exc:
            self.socket.close(linger=0)
            raise ServerError("no_server", f"the connection file's CURVE keys are damaged ({exc}); "
                                           f"restart the backend") from None
        self.socket.connect(address)

    def send(self, header: dict, images: dict[str, RawImage] | None = None, timeout: float = 0.0) -> str:
        """Send a request; returns its id. Waits up to `timeout` s for the connection to be up."""
        header = dict(header)
        header.setdefault("id", new_id())
        if not self.socket.poll(int(timeout * 1000), zmq.POLLOUT):
            raise ServerError("unavailable", f"the backend at {self.address} is not reachable")
        try:
            self.socket.send_multipart(pack(self.key, header, images), flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            raise ServerError("unavailable", f"the backend at {self.address} is not reachable") from None
        return header["id"]

    def receive(self, timeout: float | None = 0.0) -> tuple[dict, dict[str, RawImage]] | None:
        """The next message, or None if none arrives within `timeout` seconds."""
        if not self.socket.poll(None if timeout is None else int(timeout * 1000), zmq.POLLIN):
            return None
        frames = self.socket.recv_multipart(copy=False)
        try:
            return unpack(self.key, frames)
        except ProtocolError as exc:
            raise ServerError(exc.code, f"a bad message from {self.address}: {exc.message}") from None

    def fileno(self) -> int:
        """For QSocketNotifier: readable when messages may be waiting (then drain receive(0))."""
        return self.socket.getsockopt(zmq.FD)

    def close(self) -> None:
        self.socket.close(linger=0)


class Client:
    """Blocking calls to a server, each bounded by a timeout."""

    def __init__(self, address: str | None = None, token: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 connection_file: Path | None = None, curve: dict | None = None):
        if address in (None, "auto"):
            info = read_connection_file_or_fail(connection_file)
            address, token = info["address"], token or info["token"]
            curve = curve or info["curve"]
        elif not token or not curve:  # an explicit address: the secrets of the server the file names
            info = read_connection_file_or_fail(connection_file)
            if info["address"] != address:
                raise ServerError("no_token", f"no token and keys for {address}: the connection file is for "
                                              f"{info['address']}")
            token, curve = token or info["token"], curve or info["curve"]
        self.timeout = timeout
        self.connection = Connection(address, token, curve)
        self.events: deque[tuple[dict, dict]] = deque()
        self._jobs: dict[str, tuple[float, OutputSpec]] = {}  #: what each job was asked for

    def close(self) -> None:
        self.connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # requests ---------------------------------------------------------------------------

    def request(self, header: dict, images: dict[str, RawImage] | None = None,
                timeout: float | None = None) -> tuple[dict, dict[str, RawImage]]:
        """Send a request and wait for its reply; events that arrive meanwhile are kept."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        request_id = self.connection.send(header, images, timeout=min(self.timeout, 2.0))
        while True:
            left = deadline - time.monotonic()
            message = self.connection.receive(max(0.0, left))
            if message is None:
                raise ServerError("timeout", f"no answer from the backend at {self.connection.address} within "
                                             f"{self.timeout if timeout is None else timeout:g} s: is it running?")
            reply, reply_images = message
            if reply.get("re") == request_id:
                if reply.get("type") == "error":
                    raise ServerError(reply.get("code", "error"), reply.get("message", "unknown error"))
                return reply, reply_images
            self.events.append(message)

    def hello(self) -> dict:
        reply, _ = self.request({"type": "hello", "protocol": PROTOCOL})
        return reply

    def ping(self) -> float:
        started = time.monotonic()
        self.request({"type": "ping"})
        return time.monotonic() - started

    def status(self) -> dict:
        return self.request({"type": "status"})[0]

    def colorize(self, page: RawImage, hints: RawImage | None = None, reference: RawImage | None = None,
                 rough: RawImage | None = None, provider: str = "flats", ratio: float = 0.8,
                 max_size: int = 768, fill_all: bool = False, transfer: bool = False,
                 output: dict | None = None, mask: RawImage | None = None) -> str:
        """Queue a job; returns its id. Its events come through `wait` (or `next_event`).
        `mask` (L, the page's size) becomes the result's alpha: a selection."""
        images = {name: image for name, image in (("page", page), ("hints", hints), ("reference", reference),
                                                   ("rough", rough), ("mask", mask)) if image}
        header = ColorizeRequest(provider, ratio, max_size, fill_all, transfer).to_header()
        header["output"] = _listed(output or {})
        try:  # the server's own checks, so a bad value is said here (JSON cannot even carry a NaN)
            request = ColorizeRequest.from_header(header, images, ratio, max_size, (1, 1 << 30))
        except ProtocolError as exc:
            raise ServerError(exc.code, exc.message) from None
        spec = request.output
        # Large pages take a while to send and check: allow for the transfer.
        reply, _ = self.request(request.to_header(), images,
                                timeout=self.timeout + sum(i.nbytes for i in images.values()) / 50e6)
        self._jobs[reply["job"]] = (ratio, spec)
        return reply["job"]

    def upscale(self, page: RawImage, coloured: RawImage, max_size: int | None = None,
                output: dict | None = None, mask: RawImage | None = None) -> str:
        """Queue an upscale job (a colouring brought to the page's size; `mask`, L at the page's
        size, the result's alpha); returns its id."""
        header = UpscaleRequest(max_size).to_header()
        header["output"] = _listed(output or {})
        images = {"page": page, "coloured": coloured}
        if mask is not None:
            images["mask"] = mask
        try:  # the server's own checks, said here
            UpscaleRequest.from_header(header, images, (1, 1 << 30))
        except ProtocolError as exc:
            raise ServerError(exc.code, exc.message) from None
        reply, _ = self.request(header, images, timeout=self.timeout + sum(i.nbytes for i in images.values()) / 50e6)
        return reply["job"]

    def blend(self, job: str, ratio: float, size="page", channels: str = "RGBA", dtype: str = "uint8",
              linear: bool = False, layer: str = "full") -> RawImage:
        header = {"type": "blend", "job": job, "ratio": ratio,
                  **_listed({"size": size, "channels": channels, "dtype": dtype, "linear": linear, "layer": layer})}
        try:
            request = BlendRequest.from_header(header)
        except ProtocolError as exc:
            raise ServerError(exc.code, exc.message) from None
        reply, images = self.request(request.to_header())
        return images["result"]

    def job_status(self, job: str) -> dict:
        """What the server knows of a job: `state`, and its `error` or `result` details."""
        return self.request({"type": "status", "job": job})[0]["job_status"]

    def cancel(self, job: str) -> None:
        self.request({"type": "cancel", "job": job})

    def shutdown(self) -> None:
        self.request({"type": "shutdown"})

    # events -----------------------------------------------------------------------------

    def next_event(self, timeout: float) -> tuple[dict, dict[str, RawImage]] | None:
        if self.events:
            return self.events.popleft()
        return self.connection.receive(timeout)

    def wait(self, job: str, on_event: Callable[[dict], None] | None = None,
             timeout: float | None = None) -> tuple[dict, RawImage]:
        """Wait for a job's result, passing its progress events to `on_event`.

        Long stages send nothing for a while: when the server is quiet for `self.timeout`,
        the job's status is asked for, so a dead server is reported within about twice the
        timeout, and a job whose events were lost (a connection reset: ZeroMQ reconnects,
        but what was sent meanwhile is gone) ends too: a finished job's result is fetched
        again, a failed one raises its error. `timeout` bounds the whole wait (default: none).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            message = self.next_event(self.timeout)
            if message is None:
                recovered = self._recover(job)  # raises if the server or the job is gone
                if recovered:
                    return recovered
            else:
                event, images = message
                if event.get("job") == job:
                    kind = event.get("type")
                    if kind == "result":
                        return event, images["result"]
                    if kind == "error":
                        raise ServerError(event.get("code", "error"), event.get("message", "the job failed"))
                    if kind == "cancelled":
                        raise ServerError("cancelled", f"job {job} was cancelled")
                    if on_event:
                        on_event(event)
            if deadline is not None and time.monotonic() > deadline:
                raise ServerError("timeout", f"job {job} did not finish within {timeout:g} s")


    def _recover(self, job: str) -> tuple[dict, RawImage] | None:
        """After a quiet spell: None while the job runs, its result if it finished unseen."""
        try:
            status = self.job_status(job)
        except ServerError as exc:
            if exc.code == "unknown_job":
                raise ServerError("lost", f"the backend no longer knows job {job} (was it restarted?)") from None
            raise
        state = status.get("state")
        if state == "done" and job in self._jobs:
            # the result may have come after all, while the status was asked for
            while (message := self.connection.receive(0)) is not None:
                self.events.append(message)
            for message in list(self.events):
                if message[0].get("job") == job and message[0].get("type") == "result":
                    self.events.remove(message)
                    return message[0], message[1]["result"]
            ratio, spec = self._jobs[job]
            image = self.blend(job, ratio, spec.size if isinstance(spec.size, str) else list(spec.size),
                               spec.channels, spec.dtype, spec.linear)
            return {"type": "result", "job": job, "recovered": True, **status.get("result", {})}, image
        if state == "failed":
            error = status.get("error") or {}
            raise ServerError(error.get("code", "error"), error.get("message", f"job {job} failed"))
        if state == "cancelled":
            raise ServerError("cancelled", f"job {job} was cancelled")
        return None


def _listed(output: dict) -> dict:
    """Sizes given as tuples, as JSON gives them: lists."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in output.items()}


def read_connection_file_or_fail(path: Path | None = None) -> dict:
    try:
        return read_connection_file(path)
    except ProtocolError as exc:
        raise ServerError(exc.code, exc.message) from None
