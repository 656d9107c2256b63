"""`inknhue serve`: a long-lived local backend that keeps the models warm.

Threads:
- the I/O loop owns the ROUTER socket: it checks every message, answers the quick
  requests itself (hello, ping, status, cancel, shutdown) and hands the rest on;
- one GPU worker runs colorize jobs in order, with the stage cache;
- one blend worker answers `blend` from a finished job's cached intermediates, so the
  ratio slider stays live while a job runs.
Workers send their replies and events through an inproc socket back to the I/O loop
(ZeroMQ sockets are not shared between threads). The wire protocol is in
inknhue_krita.protocol and docs/protocol.md.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zmq
from inknhue_krita import protocol
from inknhue_krita.protocol import ProtocolError, RawImage

from . import __version__, weights
from .cache import StageCache
from .defaults import DEFAULT_MAX_SIZE, DEFAULT_RATIO, MAX_MAX_SIZE, MIN_MAX_SIZE, OUTPUT_SIZES, PROVIDER_NAMES
from .errors import InknhueError
from .imaging import resize_to
from .pipeline import STAGES, Cancelled, Colorization, Engine, StageEvent
from .pixels import from_rgb, to_array, to_rgb, to_rgba
from .rough import PROVIDERS, RoughRequest, get_provider

log = logging.getLogger(__name__)

#: finished jobs kept for `blend` (their intermediates are a few tens of MB each)
KEEP_FINISHED_JOBS = 8
MAX_MESSAGE_BYTES = 1 << 30
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_OUTBOX = "inproc://inknhue-outbox"


@dataclass
class Output:
    size: object = "page"        #: "page", "working" or [width, height]
    channels: str = "RGBA"
    dtype: str = "uint8"
    linear: bool = False

    @classmethod
    def parse(cls, spec) -> "Output":
        if not isinstance(spec, dict):
            raise ProtocolError("bad_input", "'output' must be an object")
        out = cls(spec.get("size", "page"), spec.get("channels", "RGBA"), spec.get("dtype", "uint8"),
                  bool(spec.get("linear", False)))
        size = out.size
        sized = isinstance(size, list) and len(size) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= protocol.MAX_SIDE for v in size)
        if size not in OUTPUT_SIZES and not sized:
            raise ProtocolError("bad_input", "'size' must be \"page\", \"working\" or [width, height]")
        if out.channels not in protocol.CHANNELS or out.dtype not in protocol.DTYPES:
            raise ProtocolError("bad_input", f"cannot send {out.channels} {out.dtype}")
        return out

    def render(self, result: Colorization, ratio: float, mask: np.ndarray | None = None) -> RawImage:
        """The blend at `ratio`, at the asked size; `mask` (page-sized) becomes its alpha."""
        blended = result.blend(ratio)
        if self.size == "page":
            blended = resize_to(blended, *result.page_size)
        elif self.size != "working":
            blended = resize_to(blended, *self.size)
        if mask is not None:
            mask = resize_to(mask, blended.shape[1], blended.shape[0])
        return from_rgb(blended, self.channels, self.dtype, self.linear, alpha=mask)


@dataclass
class Job:
    id: str
    client: bytes
    provider: str
    ratio: float
    max_size: int
    fill_all: bool
    transfer: bool
    output: Output
    images: dict[str, RawImage]
    state: str = "queued"        #: queued, running, done, failed, cancelled
    cancel: threading.Event = field(default_factory=threading.Event)
    result: Colorization | None = None
    mask: np.ndarray | None = None   #: the selection, as the result's alpha


class Server:
    def __init__(self, weights_dir=None, device: str = "auto", host: str = "127.0.0.1",
                 port: int = protocol.DEFAULT_PORT, token: str | None = None,
                 connection_file: Path | None = None, cache_bytes: int = 2 << 30,
                 curve_dir: Path | None = None):
        if host not in LOOPBACK_HOSTS and curve_dir is None:
            raise InknhueError(f"refusing to listen on {host}: only loopback is allowed without "
                               f"encryption; give --curve-dir (see docs/protocol.md) to serve a network")
        self.engine = Engine(weights_dir, device)
        self.host, self.port = host, port
        self.token = token or protocol.new_token()
        self.key = self.token.encode()
        self.connection_file = connection_file or protocol.connection_file()
        self.curve_dir = curve_dir
        self.cache = StageCache(cache_bytes)
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.job_queue: queue.Queue[Job | None] = queue.Queue()
        self.blend_queue: queue.Queue[tuple | None] = queue.Queue()
        self.counters: Counter[str] = Counter()
        self.models = "not loaded"
        self.running = False
        self.context = zmq.Context()
        self.address = ""
        self._threads: list[threading.Thread] = []
        self._auth = None

    # setup ------------------------------------------------------------------------------

    def bind(self) -> str:
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        self.socket.setsockopt(zmq.ROUTER_HANDOVER, 1)
        curve_info = None
        if self.curve_dir is not None:
            curve_info = self._setup_curve()
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.socket.setsockopt(zmq.IPV6, ":" in self.host)
        try:
            self.socket.bind(f"tcp://{host}:{self.port or '*'}")
        except zmq.ZMQError as exc:
            raise InknhueError(f"cannot listen on {host}:{self.port}: {exc} (is another backend running? "
                               f"--port 0 picks a free port)") from None
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.inbox = self.context.socket(zmq.PULL)
        self.inbox.bind(_OUTBOX)
        info = {"address": self.address, "token": self.token, "protocol": protocol.PROTOCOL,
                "pid": os.getpid(), "version": __version__, "started": time.time()}
        if curve_info:
            info["curve"] = curve_info
        protocol.write_connection_file(self.connection_file, info)
        return self.address

    def _setup_curve(self) -> dict:
        import zmq.auth
        from zmq.auth.thread import ThreadAuthenticator

        secret = self.curve_dir / "server.key_secret"
        clients = self.curve_dir / "clients"
        if not secret.is_file() or not clients.is_dir():
            raise InknhueError(f"{self.curve_dir} needs server.key_secret and a clients/ folder of public "
                               f"keys: create them with `inknhue serve --make-curve-keys {self.curve_dir}`")
        public, secret_key = zmq.auth.load_certificate(secret)
        self._auth = ThreadAuthenticator(self.context)
        self._auth.start()
        self._auth.configure_curve(domain="*", location=str(clients))
        self.socket.curve_secretkey = secret_key
        self.socket.curve_publickey = public
        self.socket.curve_server = True
        return {"server_public": public.decode()}

    def start(self) -> str:
        address = self.bind()
        self.running = True
        for target in (self._gpu_worker, self._blend_worker):
            thread = threading.Thread(target=target, name=target.__name__, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("listening on %s (device %s, weights %s)", address, self.engine.device, self.engine.weights_dir)
        return address

    def close(self) -> None:
        self.running = False
        for job in self.jobs.values():
            job.cancel.set()
        self.job_queue.put(None)
        self.blend_queue.put(None)
        for thread in self._threads:
            thread.join(timeout=10)
        try:
            if protocol.read_connection_file(self.connection_file).get("token") == self.token:
                self.connection_file.unlink()
        except (ProtocolError, OSError):
            pass
        if self._auth:
            self._auth.stop()
        self.context.destroy(linger=0)
        log.info("stopped")

    # the I/O loop -----------------------------------------------------------------------

    def serve_forever(self) -> None:
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        poller.register(self.inbox, zmq.POLLIN)
        while self.running:
            ready = dict(poller.poll(250))
            if self.inbox in ready:
                while True:
                    try:
                        self.socket.send_multipart(self.inbox.recv_multipart(zmq.NOBLOCK, copy=False), copy=False)
                    except zmq.Again:
                        break
            if self.socket in ready:
                try:
                    frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    continue
                self._handle(frames[0].bytes, frames[1:])

    def _send(self, client: bytes, header: dict, images: dict[str, RawImage] | None = None, socket=None) -> None:
        frames = [client] + protocol.pack(self.key, header, images)
        (socket or self.socket).send_multipart(frames, copy=False)

    def _error(self, client: bytes, code: str, message: str, request_id=None, socket=None, **extra) -> None:
        log.warning("error %s to %s: %s", code, client.hex()[:8], message)
        self._send(client, {"type": "error", "re": request_id, "code": code, "message": message, **extra},
                   socket=socket)

    def _handle(self, client: bytes, frames) -> None:
        request_id = None
        try:
            header, images = protocol.unpack(self.key, frames)
            request_id = header.get("id")
            if not isinstance(request_id, str) or len(request_id) > 128:
                raise ProtocolError("bad_message", "'id' must be a short string")
            kind = header.get("type")
            if kind not in protocol.REQUESTS:
                raise ProtocolError("unknown_type", f"unknown request type {kind!r}; "
                                                    f"known: {', '.join(protocol.REQUESTS)}")
            log.debug("%s from %s", kind, client.hex()[:8])
            getattr(self, f"_on_{kind}")(client, request_id, header, images)
        except ProtocolError as exc:
            self._error(client, exc.code, exc.message, request_id or exc.request_id)
        except InknhueError as exc:
            self._error(client, exc.code, str(exc), request_id)
        except Exception as exc:  # a bug must not take the server down
            log.exception("handling a request failed")
            self._error(client, "internal", f"internal error: {exc}", request_id)

    def _on_hello(self, client, request_id, header, images):
        missing = weights.missing_files(self.engine.weights_dir)
        self._send(client, {
            "type": "hello", "re": request_id, "protocol": protocol.PROTOCOL, "version": __version__,
            "device": self.engine.describe(),
            "providers": [{"name": name, "description": PROVIDERS[name].description,
                           "needs_weights": name == "shader"} for name in PROVIDER_NAMES],
            "weights": {"present": not missing, "missing": missing, "folder": str(self.engine.weights_dir)},
            "models": self.models,
            "defaults": {"ratio": DEFAULT_RATIO, "max_size": DEFAULT_MAX_SIZE},
            "limits": {"max_side": protocol.MAX_SIDE, "max_pixels": protocol.MAX_PIXELS,
                       "max_size": [MIN_MAX_SIZE, MAX_MAX_SIZE], "queued_jobs": protocol.MAX_QUEUED_JOBS},
        })

    def _on_ping(self, client, request_id, header, images):
        self._send(client, {"type": "pong", "re": request_id, "time": time.time()})

    def _on_status(self, client, request_id, header, images):
        self._send(client, {
            "type": "status", "re": request_id, "models": self.models,
            "jobs": [{"job": j.id, "state": j.state, "provider": j.provider} for j in self.jobs.values()],
            "counters": dict(self.counters), "cache": {"entries": len(self.cache), "bytes": self.cache.bytes},
        })

    def _on_colorize(self, client, request_id, header, images):
        provider = header.get("provider", "flats")
        if provider not in PROVIDERS:
            raise ProtocolError("bad_input", f"unknown provider {provider!r}; known: {', '.join(PROVIDERS)}")
        max_size = protocol.int_field(header, "max_size", DEFAULT_MAX_SIZE, MIN_MAX_SIZE, MAX_MAX_SIZE)
        if max_size % 32:
            raise ProtocolError("bad_input", f"'max_size' must be a multiple of 32, got {max_size}")
        unknown = set(images) - set(protocol.COLORIZE_IMAGES)
        if unknown:
            raise ProtocolError("bad_input", f"unexpected images: {', '.join(sorted(unknown))}")
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
        needs = {"flats": "hints", "shader": "hints", "image": "rough"}[provider]
        if needs not in images:
            raise ProtocolError("bad_input", f"provider '{provider}' needs the '{needs}' image")
        transfer = bool(header.get("transfer", False))
        if transfer and "reference" not in images:
            raise ProtocolError("bad_input", "'transfer' needs the 'reference' image")
        waiting = sum(1 for j in self.jobs.values() if j.state in ("queued", "running"))
        if waiting >= protocol.MAX_QUEUED_JOBS:
            raise ProtocolError("busy", f"{waiting} jobs are waiting already; cancel some or try again later")
        job = Job(protocol.new_id("j-"), client, provider, protocol.ratio_field(header, default=DEFAULT_RATIO),
                  max_size, bool(header.get("fill_all", False)), transfer,
                  Output.parse(header.get("output", {})), images)
        self.jobs[job.id] = job
        self._forget_old_jobs()
        self.job_queue.put(job)
        self._send(client, {"type": "accepted", "re": request_id, "job": job.id, "position": waiting})

    def _job(self, header) -> Job:
        job = self.jobs.get(header.get("job"))
        if job is None:
            raise ProtocolError("unknown_job", f"no job {header.get('job')!r} (finished jobs are kept "
                                               f"for the last {KEEP_FINISHED_JOBS})")
        return job

    def _on_blend(self, client, request_id, header, images):
        job = self._job(header)
        if job.state != "done":
            raise ProtocolError("not_ready", f"job {job.id} is {job.state}")
        ratio = protocol.ratio_field(header)
        output = Output.parse({k: header[k] for k in ("size", "channels", "dtype", "linear") if k in header})
        self.blend_queue.put((client, request_id, job, ratio, output))

    def _on_cancel(self, client, request_id, header, images):
        job = self._job(header)
        job.cancel.set()
        self._send(client, {"type": "cancelling", "re": request_id, "job": job.id, "state": job.state})

    def _on_shutdown(self, client, request_id, header, images):
        self._send(client, {"type": "bye", "re": request_id})
        self.running = False

    def _forget_old_jobs(self) -> None:
        finished = [j.id for j in self.jobs.values() if j.state in ("done", "failed", "cancelled")]
        for job_id in finished[:-KEEP_FINISHED_JOBS] if len(finished) > KEEP_FINISHED_JOBS else []:
            del self.jobs[job_id]

    # workers ----------------------------------------------------------------------------

    def _outbox(self):
        socket = self.context.socket(zmq.PUSH)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(_OUTBOX)
        return socket

    def _gpu_worker(self) -> None:
        outbox = self._outbox()
        self._load_models()
        while True:
            job = self.job_queue.get()
            if job is None:
                break
            if job.cancel.is_set():
                job.state = "cancelled"
                self._send(job.client, {"type": "cancelled", "job": job.id}, socket=outbox)
                continue
            self._run(job, outbox)
        outbox.close()

    def _load_models(self) -> None:
        if weights.missing_files(self.engine.weights_dir):
            self.models = "weights missing"
            return
        self.models = "loading"
        try:
            seconds = self.engine.load()
            self.models = "ready"
            log.info("models loaded in %.1f s", seconds)
        except InknhueError as exc:
            self.models = f"error: {exc}"
            log.error("loading the models failed: %s", exc)

    def _run(self, job: Job, outbox) -> None:
        job.state = "running"
        started = time.perf_counter()

        def progress(event: StageEvent) -> None:
            self._send(job.client, {"type": "progress", "job": job.id, "stage": event.stage,
                                    "index": event.index, "total": event.total, "seconds": event.seconds,
                                    "cached": event.cached}, socket=outbox)

        try:
            images = job.images
            page = to_rgb(images["page"])
            request = RoughRequest(
                page=page,
                hints=to_rgba(images["hints"]) if "hints" in images else None,
                reference=to_rgb(images["reference"]) if "reference" in images else None,
                rough=to_rgb(images["rough"]) if "rough" in images else None,
                fill_all=job.fill_all, transfer=job.transfer)
            if "mask" in images:
                job.mask = to_array(images["mask"])[..., 0].copy()
            job.images = {}  # the frames can go
            result = self.engine.colorize(page, get_provider(job.provider), request, max_size=job.max_size,
                                          ratio=job.ratio, progress=progress, cache=self.cache,
                                          cancelled=job.cancel.is_set)
            image = job.output.render(result, job.ratio, job.mask)
            job.result, job.state = result, "done"
            self.counters.update(result.ran)
            seconds = time.perf_counter() - started
            log.info("job %s (%s) done in %.2f s, ran %s", job.id, job.provider, seconds, ",".join(result.ran))
            self._send(job.client, {
                "type": "result", "job": job.id, "ratio": job.ratio, "seconds": seconds,
                "timings": result.timings, "ran": result.ran, "stages": list(STAGES),
                "page_size": list(result.page_size), "working_size": list(result.working_size),
            }, {"result": image}, socket=outbox)
        except Cancelled:
            job.state = "cancelled"
            log.info("job %s cancelled", job.id)
            self._send(job.client, {"type": "cancelled", "job": job.id}, socket=outbox)
        except (InknhueError, ProtocolError) as exc:
            job.state = "failed"
            code = getattr(exc, "code", "error")
            message = getattr(exc, "message", None) or str(exc)
            self._error(job.client, code, message, job=job.id, socket=outbox)
        except Exception as exc:
            job.state = "failed"
            log.exception("job %s failed", job.id)
            self._error(job.client, "internal", f"internal error: {exc}", job=job.id, socket=outbox)
        finally:
            job.images = {}

    def _blend_worker(self) -> None:
        outbox = self._outbox()
        while True:
            item = self.blend_queue.get()
            if item is None:
                break
            client, request_id, job, ratio, output = item
            try:
                image = output.render(job.result, ratio, job.mask)
                self._send(client, {"type": "blended", "re": request_id, "job": job.id, "ratio": ratio,
                                    "width": image.width, "height": image.height}, {"result": image}, socket=outbox)
            except Exception as exc:
                log.exception("blend failed")
                self._error(client, getattr(exc, "code", "internal"), str(exc), request_id, socket=outbox)
        outbox.close()


def make_curve_keys(directory: Path) -> None:
    """A server key pair and one client key pair (clients/laptop.key is the authorised public key)."""
    import shutil

    import zmq.auth

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "clients").mkdir(exist_ok=True)
    zmq.auth.create_certificates(directory, "server")
    zmq.auth.create_certificates(directory, "laptop")
    shutil.move(directory / "laptop.key", directory / "clients" / "laptop.key")
    for path in directory.glob("*.key_secret"):
        path.chmod(0o600)


def serve(server: Server, on_ready=None) -> None:
    """Run until a shutdown request, SIGTERM or Ctrl-C."""
    address = server.start()
    if on_ready:
        on_ready(address)

    def stop(*_):
        server.running = False

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever()
    finally:
        server.close()

