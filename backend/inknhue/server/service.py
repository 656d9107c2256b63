"""`inknhue serve`: a long-lived local backend that keeps the models warm.

Threads:
- the I/O loop owns the ROUTER socket: it checks every message, answers the quick
  requests itself (hello, ping, status, cancel, shutdown) and hands the rest on;
- one GPU worker runs colorize jobs in order, with the stage cache;
- one blend worker answers `blend` from a finished job's cached intermediates, so the
  ratio slider stays live while a job runs.
Workers send their replies and events through an inproc socket back to the I/O loop
(ZeroMQ sockets are not shared between threads). Only peers holding the connection
file's keys get through the handshake (security.py); the wire protocol is in
inknhue_krita.protocol and .messages, described in docs/protocol.md.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import zmq

from inknhue_krita import protocol
from inknhue_krita.connection_file import read_connection_file
from inknhue_krita.messages import BlendRequest, ColorizeRequest, UpscaleRequest, job_field
from inknhue_krita.paths import connection_file as default_connection_file
from inknhue_krita.protocol import ProtocolError, RawImage, shown

from .. import __version__, weights
from ..defaults import (
    DEFAULT_MAX_SIZE,
    DEFAULT_RATIO,
    LAYERS,
    MAX_MAX_SIZE,
    MAX_WORKING_PIXELS,
    MIN_MAX_SIZE,
    PROVIDER_NAMES,
)
from ..engine.calibration import Calibration, calibrate
from ..engine.options import EngineOptions
from ..engine.pipeline import STAGES, Engine, StageEvent, output_made
from ..errors import Cancelled, InknhueError
from ..logs import RateLimitedLog
from ..page.imaging import check_work_size
from ..page.output import FlatLayer, render
from ..page.pixels import from_rgb, to_array, to_rgb, to_rgba
from ..page.upscale import Upscaled, at_working_size, check_fits, upscale_float
from ..rough import PROVIDERS, RoughRequest, get_provider
from ..rough.flats import flat_layer
from ..runtime.cache import StageCache
from ..runtime.host_memory import give_back_freed_memory
from .connection import claim, refuse_if_taken
from .jobs import Job, JobState, JobTable
from .security import Gatekeeper, chosen_routing_id, unpredictable_routing_ids

log = logging.getLogger("inknhue.server")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_OUTBOX = "inproc://inknhue-outbox"
#: results on their way to one client that it has not read yet; beyond this, blends wait
MAX_UNREAD_BYTES = 1 << 30
#: blends waiting for the blend worker
MAX_QUEUED_BLENDS = 16
#: replies above this size are tracked until ZeroMQ has handed them to the kernel
_TRACK_BYTES = 1 << 20
#: codes that say a peer sent something broken: logged at most a few times a minute
_COMPLAINTS = ("bad_message", "bad_signature", "bad_version", "unknown_type", "bad_input", "too_large",
               "unknown_job", "not_ready", "busy")


class Lease:
    """A backend started by the plugin ends when the plugin stops renewing its lease (any
    message from a client renews it), so a killed Krita leaves no orphan behind."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.renewed = time.monotonic()

    def renew(self) -> None:
        self.renewed = time.monotonic()

    def expired(self) -> bool:
        return self.seconds is not None and time.monotonic() - self.renewed > self.seconds


class Server:
    def __init__(self, weights_dir=None, device: str = "auto", host: str = "127.0.0.1",
                 port: int = protocol.DEFAULT_PORT, token: str | None = None,
                 connection_file: Path | None = None, cache_bytes: int = 2 << 30,
                 curve_dir: Path | None = None, lease: float | None = None,
                 options: EngineOptions | None = None, calibrate: bool = True):
        if host not in LOOPBACK_HOSTS and curve_dir is None:
            raise InknhueError(f"refusing to listen on {host}: only loopback is allowed without encryption; "
                               f"give --curve-dir (see docs/protocol.md) to serve a network")
        self.engine = Engine(weights_dir, device, options)
        self.host, self.port = host, port
        self.token = token or protocol.new_token()
        self.key = self.token.encode()
        self.connection_file = connection_file or default_connection_file()
        self.cache = StageCache(cache_bytes)
        self.jobs = JobTable()
        self.job_queue: queue.Queue[Job | None] = queue.Queue()
        self.blend_queue: queue.Queue[tuple | None] = queue.Queue(MAX_QUEUED_BLENDS)
        self.counters: Counter[str] = Counter()
        self.models = "not loaded"
        self.calibration = Calibration()  #: this machine's speed, timed once the models are in (hello says it)
        self.calibrate_at_start = calibrate
        self.running = False
        self.lease = Lease(lease)
        self.context = zmq.Context()
        self.gatekeeper = Gatekeeper(self.context, curve_dir)
        self.address = ""
        self.notes: list[str] = []  #: what bind() fixed on the way (the connection file's folder), one line each
        self._threads: list[threading.Thread] = []
        self._complaints = RateLimitedLog(log)
        self._unread: dict[bytes, list[tuple[zmq.MessageTracker, int]]] = defaultdict(list)
        self._unread_lock = threading.Lock()  # the I/O loop adds, the blend worker asks
        self._trim_at: float | None = None  # when to hand freed memory back (after large results)

    # setup ------------------------------------------------------------------------------

    def bind(self) -> str:
        refuse_if_taken(self.connection_file)  # a second backend on one connection file (connection.py)
        unpredictable_routing_ids()  # libzmq's next automatic ids: nobody's guess (security.py)
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.MAXMSGSIZE, protocol.MAX_FRAME_BYTES)
        # No ROUTER_HANDOVER: a peer may never take over another's routing id.
        self.socket.setsockopt(zmq.HANDSHAKE_IVL, 5000)    # half-open handshakes are dropped
        self.socket.setsockopt(zmq.HEARTBEAT_IVL, 2000)    # dead peers, and what waits for them, go
        self.socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, 15000)
        self.gatekeeper.secure(self.socket)
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
        self.notes = claim(self.connection_file, {
            "address": self.address, "token": self.token, "protocol": protocol.PROTOCOL, "pid": os.getpid(),
            "version": __version__, "started": time.time(), "lease": self.lease.seconds,
            "curve": self.gatekeeper.connection_info()})
        return self.address

    def start(self) -> str:
        address = self.bind()
        self.running = True
        for target in (self._gpu_worker, self._blend_worker):
            thread = threading.Thread(target=target, name=target.__name__, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("listening on %s (device %s, weights %s%s)", address, self.engine.device, self.engine.weights_dir,
                 f", lease {self.lease.seconds:g} s" if self.lease.seconds else "")
        return address

    def close(self) -> None:
        self.running = False
        self.jobs.cancel_all()
        self.job_queue.put(None)
        try:
            self.blend_queue.put(None, timeout=10)
        except queue.Full:
            pass
        # A job is cancelled within a module's forward pass; loading the models cannot be cut
        # short (torch reads the files in C++), so it is not waited for long: see unfinished()
        for thread in self._threads:
            thread.join(timeout=1.0 if self.models == "loading" else 10.0)
        try:
            if read_connection_file(self.connection_file).get("token") == self.token:
                self.connection_file.unlink()
        except (ProtocolError, OSError):
            pass
        self.gatekeeper.close()
        self.context.destroy(linger=0)
        log.info("stopped")

    def unfinished(self) -> list[str]:
        """The workers still running after close() (the GPU worker while the models load)."""
        return [thread.name for thread in self._threads if thread.is_alive()]

    # the I/O loop -----------------------------------------------------------------------

    def serve_forever(self) -> None:
        poller = zmq.Poller()
        for socket in (self.socket, self.inbox, self.gatekeeper.monitor):
            poller.register(socket, zmq.POLLIN)
        while self.running:
            ready = dict(poller.poll(250))
            if self.inbox in ready:
                self._forward_replies()
            if self.socket in ready:
                try:
                    frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    continue
                if chosen_routing_id(frames[0].bytes):
                    self._error(frames[0].bytes, "bad_message", "this backend names each connection itself: a client "
                                "may not set its routing id (ZMQ_ROUTING_ID, ZMQ_IDENTITY); refused")
                    continue
                self._handle(frames[0].bytes, frames[1:])
            self.gatekeeper.drain_monitor()
            if self._trim_at is not None and time.monotonic() >= self._trim_at:
                # large results sent: let go of those ZeroMQ is done with, and of the memory they held
                with self._unread_lock:
                    for client in list(self._unread):
                        pending = [(t, n) for t, n in self._unread[client] if not t.done]
                        if pending:
                            self._unread[client] = pending
                        else:
                            del self._unread[client]
                    waiting = bool(self._unread)
                give_back_freed_memory()
                self._trim_at = time.monotonic() + 2.0 if waiting else None
            if self.lease.expired():
                log.warning("no word from the plugin that started this backend for %g s: stopping",
                            self.lease.seconds)
                self.running = False

    def _forward_replies(self) -> None:
        """Workers' replies go out here; large ones are tracked, so a client that does not
        read cannot make the server hold result after result."""
        while True:
            try:
                frames = self.inbox.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            size = sum(len(f) for f in frames[4:])
            if size < _TRACK_BYTES:
                self.socket.send_multipart(frames, copy=False)
                continue
            tracked = [zmq.Frame(f.buffer, track=True) for f in frames]
            tracker = self.socket.send_multipart(tracked, copy=False, track=True)
            with self._unread_lock:
                self._unread[frames[0].bytes].append((tracker, size))
            self._trim_at = time.monotonic() + 1.0

    def unread_bytes(self, client: bytes) -> int:
        """Bytes of results sent to `client` that ZeroMQ still holds (the client is not reading)."""
        with self._unread_lock:
            pending = [(t, n) for t, n in self._unread.get(client, []) if not t.done]
            if pending:
                self._unread[client] = pending
            else:
                self._unread.pop(client, None)
            return sum(n for _, n in pending)

    def _check_unread(self, client: bytes) -> None:
        unread = self.unread_bytes(client)
        if unread > MAX_UNREAD_BYTES:
            raise ProtocolError("busy", f"{unread >> 20} MiB of earlier results are still on their way to this "
                                        f"client: read them first")

    def _send(self, client: bytes, header: dict, images: dict[str, RawImage] | None = None, socket=None) -> None:
        frames = [client] + protocol.pack(self.key, header, images)
        (socket or self.socket).send_multipart(frames, copy=False)

    def _error(self, client: bytes, code: str, message: str, request_id=None, socket=None, **extra) -> None:
        if code in _COMPLAINTS:
            self._complaints.warning(code, "error %s to %s: %s", code, client.hex()[:10], message)
        else:
            log.warning("error %s to %s: %s", code, client.hex()[:10], message)
        self._send(client, {"type": "error", "re": request_id, "code": code, "message": message, **extra},
                   socket=socket)

    def _handle(self, client: bytes, frames) -> None:
        request_id = None
        try:
            header, images = protocol.unpack(self.key, frames)
            self.lease.renew()  # a signed message: the owner is alive
            request_id = protocol.request_id(header)
            if request_id is None:
                raise ProtocolError("bad_message", f"'id' must be a string of at most {protocol.MAX_ID_CHARS} "
                                                   f"characters, got {shown(header.get('id'))}")
            kind = header.get("type")
            if not isinstance(kind, str) or kind not in protocol.REQUESTS:
                raise ProtocolError("unknown_type", f"unknown request type {shown(kind)}; "
                                                    f"known: {', '.join(protocol.REQUESTS)}")
            log.debug("%s from %s", kind, client.hex()[:10])
            getattr(self, f"_on_{kind}")(client, request_id, header, images)
        except ProtocolError as exc:
            self._error(client, exc.code, exc.message, request_id or exc.request_id)
        except InknhueError as exc:
            self._error(client, exc.code, str(exc), request_id)
        except Exception as exc:  # a bug must not take the server down
            log.exception("handling a request failed")
            self._error(client, "internal", f"internal error: {shown(exc, 200)}", request_id)

    def _unavailable_providers(self) -> dict[str, str]:
        reasons = {name: PROVIDERS[name].unavailable(self.engine.weights_dir) for name in PROVIDER_NAMES}
        return {name: reason for name, reason in reasons.items() if reason}

    def _on_hello(self, client, request_id, header, images):
        missing = weights.missing_files(self.engine.weights_dir)
        unavailable = self._unavailable_providers()
        self._send(client, {
            "type": "hello", "re": request_id, "protocol": protocol.PROTOCOL, "version": __version__,
            "device": self.engine.describe(),
            # Only providers that can run are offered; the others, with why, for newer plugins.
            "providers": [{"name": name, "description": PROVIDERS[name].description,
                           "needs_weights": name == "shader"} for name in PROVIDER_NAMES if name not in unavailable],
            "unavailable_providers": [{"name": name, "description": PROVIDERS[name].description,
                                       "reason": reason} for name, reason in unavailable.items()],
            "weights": {"present": not missing, "missing": missing, "folder": str(self.engine.weights_dir)},
            "models": self.models,
            "calibration": self.calibration.describe(),
            "lease": self.lease.seconds,
            "defaults": {"ratio": DEFAULT_RATIO, "max_size": DEFAULT_MAX_SIZE},
            "layers": list(LAYERS),
            "limits": {"max_side": protocol.MAX_SIDE, "max_pixels": protocol.MAX_PIXELS,
                       "max_size": [MIN_MAX_SIZE, MAX_MAX_SIZE], "working_pixels": MAX_WORKING_PIXELS,
                       "queued_jobs": protocol.MAX_QUEUED_JOBS, "images": protocol.MAX_IMAGES},
        })

    def _on_ping(self, client, request_id, header, images):
        self._send(client, {"type": "pong", "re": request_id, "time": time.time()})

    def _on_status(self, client, request_id, header, images):
        reply = {"type": "status", "re": request_id, "models": self.models,
                 "jobs": [{"job": j.id, "state": j.state.value, "provider": j.request.provider} for j in self.jobs],
                 "counters": dict(self.counters), "cache": {"entries": len(self.cache), "bytes": self.cache.bytes}}
        if "job" in header:
            reply["job_status"] = self.jobs.get(job_field(header)).status()
        self._send(client, reply)

    def _check_models(self) -> None:
        """Refuse jobs that could never run: weights missing or unreadable."""
        if self.models == "weights missing" or self.models.startswith("error"):
            detail = self.models.removeprefix("error: ")
            if self.models == "weights missing":
                detail = (f"weights missing in {self.engine.weights_dir}: "
                          f"{', '.join(weights.missing_files(self.engine.weights_dir))}; {weights.HOW_TO_GET}")
            raise ProtocolError("weights", detail)

    def _on_colorize(self, client, request_id, header, images):
        request = ColorizeRequest.from_header(header, images, DEFAULT_RATIO, DEFAULT_MAX_SIZE,
                                              (MIN_MAX_SIZE, MAX_MAX_SIZE))
        if request.provider not in PROVIDERS:
            raise ProtocolError("bad_input", f"unknown provider {shown(request.provider)}; "
                                             f"known: {', '.join(PROVIDERS)}")
        if request.output.layer == "flats":  # the flats of the strokes: no network, no weights
            if request.provider != "flats":
                raise ProtocolError("bad_input", "the flats layer is the flats provider's: ask for provider flats")
            if "hints" not in images:
                raise ProtocolError("bad_input", "the flats layer needs the hint strokes (a 'hints' image)")
        else:
            self._check_models()
            reason = PROVIDERS[request.provider].unavailable(self.engine.weights_dir)
            if reason:
                raise ProtocolError("weights", f"the '{request.provider}' provider is not available: {reason}")
        page = images["page"]
        check_work_size(page.width, page.height, request.max_size)  # before anything is allocated
        if request.output.size == "page":
            request.output.check_bytes(page.width, page.height)
        elif isinstance(request.output.size, tuple):
            request.output.check_bytes(*request.output.size)
        job = Job(protocol.new_id("j-"), client, request, images)
        position = self.jobs.add(job)
        self.job_queue.put(job)
        self._send(client, {"type": "accepted", "re": request_id, "job": job.id, "position": position})

    def _on_upscale(self, client, request_id, header, images):
        """A colouring made at a lower resolution brought to the page (page/upscale.py): a job
        in the queue like any other (progress, cancel), no network and no weights."""
        request = UpscaleRequest.from_header(header, images, (MIN_MAX_SIZE, MAX_MAX_SIZE))
        page, coloured = images["page"], images["coloured"]
        try:  # refused before it is queued, as a page of another shape would be
            check_fits((page.width, page.height), (coloured.width, coloured.height))
        except InknhueError as exc:
            raise ProtocolError("bad_input", str(exc)) from None
        request.output.check_bytes(page.width, page.height)
        job = Job(protocol.new_id("j-"), client, request, images)
        position = self.jobs.add(job)
        self.job_queue.put(job)
        self._send(client, {"type": "accepted", "re": request_id, "job": job.id, "position": position})

    def _on_blend(self, client, request_id, header, images):
        request = BlendRequest.from_header(header)
        job = self.jobs.get(request.job)
        if job.state != JobState.DONE:
            raise ProtocolError("not_ready", f"job {job.id} is {job.state.value}")
        if isinstance(job.result, Upscaled):
            raise ProtocolError("bad_input", "an upscale job has no colour ratio to blend")
        if (request.output.layer == "flats") != isinstance(job.result, FlatLayer):
            raise ProtocolError("bad_input", "a flats job blends only as flats, and only a flats job gives flats")
        request.output.check_bytes(*request.output.pixel_size(job.result.page_size, job.result.working_size))
        self._check_unread(client)
        try:
            self.blend_queue.put_nowait((client, request_id, job, request))
        except queue.Full:
            raise ProtocolError("busy", f"{MAX_QUEUED_BLENDS} blends are waiting already") from None

    def _on_cancel(self, client, request_id, header, images):
        job = self.jobs.get(job_field(header))
        job.cancel.set()
        self._send(client, {"type": "cancelling", "re": request_id, "job": job.id, "state": job.state.value})

    def _on_shutdown(self, client, request_id, header, images):
        self._send(client, {"type": "bye", "re": request_id})
        self.running = False

    # workers ----------------------------------------------------------------------------

    def _outbox(self):
        socket = self.context.socket(zmq.PUSH)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(_OUTBOX)
        return socket

    def _gpu_worker(self) -> None:
        outbox = self._outbox()
        self._load_models()
        self._calibrate()
        while True:
            job = self.job_queue.get()
            if job is None:
                break
            if job.cancel.is_set():
                job.state, job.images = JobState.CANCELLED, {}
                self._send(job.client, {"type": "cancelled", "job": job.id}, socket=outbox)
                continue
            if isinstance(job.request, UpscaleRequest):
                self._run_upscale(job, outbox)
            else:
                self._run(job, outbox)
        outbox.close()

    def _load_models(self) -> None:
        if weights.missing_files(self.engine.weights_dir):
            self.models = "weights missing"
            log.error("weights missing in %s: %s", self.engine.weights_dir,
                      ", ".join(weights.missing_files(self.engine.weights_dir)))
            return
        self.models = "loading"
        try:
            seconds = self.engine.load()
            self.models = "ready"
            log.info("models loaded in %.1f s", seconds)
        except Exception as exc:  # noqa: BLE001  (whatever a weights file does, the worker lives on)
            if not isinstance(exc, InknhueError):
                log.exception("loading the models failed")
            message = str(exc) if isinstance(exc, InknhueError) else f"loading the models failed: {shown(exc, 200)}"
            self.models = f"error: {message}"
            log.error("%s", message)

    def _calibrate(self) -> None:
        """Time this machine before the first job (engine/calibration.py); a job, or closing,
        stops it at once."""
        if self.models == "ready" and self.calibrate_at_start:
            calibrate(self.engine, lambda: not self.job_queue.empty(), into=self.calibration)

    def _run(self, job: Job, outbox) -> None:
        job.state = JobState.RUNNING
        started = time.perf_counter()
        request = job.request

        def progress(event: StageEvent) -> None:
            self._send(job.client, {"type": "progress", "job": job.id, "stage": event.stage,
                                    "index": event.index, "total": event.total, "seconds": event.seconds,
                                    "cached": event.cached, "fraction": event.fraction, "done": event.done,
                                    "eta": event.eta, "eta_from": event.eta_from}, socket=outbox)

        try:
            if request.output.layer != "flats":
                self._check_models()
            images = job.images
            page = to_rgb(images["page"])
            rough_request = RoughRequest(
                page=page,
                hints=to_rgba(images["hints"]) if "hints" in images else None,
                reference=to_rgb(images["reference"]) if "reference" in images else None,
                rough=to_rgb(images["rough"]) if "rough" in images else None,
                fill_all=request.fill_all, transfer=request.transfer)
            if "mask" in images:
                job.mask = to_array(images["mask"])[..., 0].copy()
            job.images = {}  # the frames can go
            if request.output.layer == "flats":
                result = self._flats(rough_request, progress)
            else:
                result = self.engine.colorize(page, get_provider(request.provider), rough_request,
                                              max_size=request.max_size, ratio=request.ratio, progress=progress,
                                              cache=self.cache, cancelled=job.cancel.is_set)
            rendering = time.perf_counter()
            image = render(result, request.output, request.ratio, job.mask)
            output_made(time.perf_counter() - rendering, result.page_size)
            job.result, job.state = result, JobState.DONE
            self.counters.update(result.ran)
            seconds = time.perf_counter() - started
            log.info("job %s (%s) done in %.2f s, ran %s", job.id, request.provider, seconds, ",".join(result.ran))
            self._send(job.client, {
                "type": "result", "job": job.id, "ratio": request.ratio, "seconds": seconds,
                "timings": result.timings, "ran": result.ran, "stages": list(STAGES),
                "page_size": list(result.page_size), "working_size": list(result.working_size),
                "warnings": result.warnings,
            }, {"result": image}, socket=outbox)
        except BaseException as exc:
            self._job_failed(job, outbox, exc, "on this page; try a smaller max size or a smaller page")
        finally:
            job.images = {}
            give_back_freed_memory()

    def _job_failed(self, job: Job, outbox, exc: BaseException, where: str) -> None:
        """How a job that raised ends, told to its client: cancelled, the user's error, out of
        memory (`where`: what it was doing), or internal (logged). Anything else is raised on."""
        def fail(code: str, message: str) -> None:
            job.state, job.error = JobState.FAILED, {"code": code, "message": message}
            self._error(job.client, code, message, job=job.id, socket=outbox)

        if isinstance(exc, Cancelled):
            job.state = JobState.CANCELLED
            log.info("job %s cancelled", job.id)
            self._send(job.client, {"type": "cancelled", "job": job.id}, socket=outbox)
        elif isinstance(exc, (InknhueError, ProtocolError)):
            fail(getattr(exc, "code", "error"), getattr(exc, "message", None) or str(exc))
        elif isinstance(exc, MemoryError):
            fail("device", f"ran out of memory (RAM) {where}")
        elif isinstance(exc, Exception):
            log.exception("job %s failed", job.id, exc_info=exc)
            fail("internal", f"internal error: {shown(exc, 200)}")
        else:  # KeyboardInterrupt, SystemExit (the server's SIGTERM): not the job's to swallow
            raise exc

    def _run_upscale(self, job: Job, outbox) -> None:
        """An upscale job: one stage, "upscale", on the engine's GPU where it has one; a cancel stops
        it between row bands; a `mask` (a selection) becomes the result's alpha."""
        job.state = JobState.RUNNING
        started = time.perf_counter()
        request = job.request

        def progress(seconds):
            self._send(job.client, {"type": "progress", "job": job.id, "stage": "upscale", "index": 1, "total": 1,
                                    "seconds": seconds, "cached": False, "fraction": None, "done": None,
                                    "eta": None}, socket=outbox)

        try:
            progress(None)
            page, coloured = to_rgb(job.images["page"]), to_rgb(job.images["coloured"])
            mask = to_array(job.images["mask"])[..., 0].copy() if "mask" in job.images else None
            job.images = {}  # the frames can go
            notes: list[str] = []
            if request.max_size is not None:
                coloured = at_working_size(coloured, request.max_size, notes)
            device = None if self.engine.device.type == "cpu" else self.engine.device
            rgb = upscale_float(page, coloured, request.output.layer, notes, device, job.cancel.is_set)
            seconds = time.perf_counter() - started
            if job.cancel.is_set():
                raise Cancelled
            progress(seconds)
            spec = request.output
            image = from_rgb(np.rint(rgb * 255.0).astype(np.uint8) if spec.dtype == "uint8" else rgb,
                             spec.channels, spec.dtype, spec.linear, alpha=mask)
            job.result = Upscaled(rgb, (coloured.shape[1], coloured.shape[0]), {"upscale": seconds},
                                  warnings=notes)
            job.state = JobState.DONE
            self.counters.update(job.result.ran)
            log.info("job %s (upscale) done in %.2f s", job.id, seconds)
            self._send(job.client, {
                "type": "result", "job": job.id, "ratio": None, "seconds": seconds, "timings": job.result.timings,
                "ran": job.result.ran, "stages": ["upscale"], "page_size": list(job.result.page_size),
                "working_size": list(job.result.working_size), "warnings": notes,
            }, {"result": image}, socket=outbox)
        except BaseException as exc:
            self._job_failed(job, outbox, exc, "bringing the colouring to the page")
        finally:
            job.images = {}
            give_back_freed_memory()

    def _flats(self, request: RoughRequest, progress) -> FlatLayer:
        """A flats job: the flats provider's layer alone, as one stage."""
        provider = get_provider("flats")
        progress(StageEvent("rough", 1, 1, None))
        started = time.perf_counter()
        layer = flat_layer(request.page, provider.checked_hints(request), request.fill_all, request.reference)
        seconds = time.perf_counter() - started
        progress(StageEvent("rough", 1, 1, seconds))
        return FlatLayer(layer, timings={"rough": seconds}, warnings=provider.check(request))

    def _blend_worker(self) -> None:
        outbox = self._outbox()
        while True:
            item = self.blend_queue.get()
            if item is None:
                break
            client, request_id, job, request = item
            try:
                self._check_unread(client)  # blends asked for at once: checked as each is made
                image = render(job.result, request.output, request.ratio, job.mask)
                self._send(client, {"type": "blended", "re": request_id, "job": job.id, "ratio": request.ratio,
                                    "width": image.width, "height": image.height}, {"result": image}, socket=outbox)
            except ProtocolError as exc:
                self._error(client, exc.code, exc.message, request_id, socket=outbox)
            except MemoryError:
                self._error(client, "device", "ran out of memory (RAM) for this blend; ask for a smaller size",
                            request_id, socket=outbox)
            except Exception as exc:  # noqa: BLE001
                log.exception("blend failed")
                self._error(client, "internal", f"internal error: {shown(exc, 200)}", request_id, socket=outbox)
            finally:
                give_back_freed_memory()
        outbox.close()


def serve(server: Server, on_ready=None) -> None:
    """Run until a shutdown request, SIGTERM, Ctrl-C or an expired lease."""
    asked = []

    def stop(*_):
        asked.append(True)
        server.running = False

    if threading.current_thread() is threading.main_thread():  # before anyone can know our pid
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    address = server.start()
    if asked:  # stopped while it started (the look at an earlier connection file takes up to seconds)
        server.running = False
    if on_ready:
        on_ready(address)
    try:
        server.serve_forever()
    finally:
        server.close()
