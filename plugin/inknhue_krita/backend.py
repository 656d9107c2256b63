"""The plugin's link to `inknhue serve`, driven by Qt's event loop (never blocking the UI).

Finds a running backend through its connection file; if none answers, starts the
installed one (the command the installer configured) and stops it again when Krita
quits. Replies and job events are polled from the socket by a QTimer.

A backend the plugin starts holds a lease (`serve --lease`): it stops by itself when no
message has come for LEASE_S, so a killed Krita leaves no backend running. The plugin
renews the lease with a ping every HEARTBEAT_S, and adopts a leased backend it finds
running (left by a Krita that was killed): it renews that lease and stops it at exit.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from . import vendor
from .config import BackendConfig, load_backend_config
from .connection_file import read_connection_file
from .protocol import PROTOCOL, ProtocolError
from .qt import QtCore, Signal

log = logging.getLogger("inknhue_krita")

POLL_MS = 25
HEARTBEAT_S = 3.0      #: ping a quiet backend this often
ANSWER_S = 6.0         #: ... and call it lost when it does not answer this quickly
START_S = 90.0         #: a backend we launched may take this long to write its connection file
LEASE_S = 30.0         #: a backend we launch stops when it has heard nothing from us for this long


class Backend(QtCore.QObject):
    """States: "off", "connecting", "starting", "connected", "not_installed", "error"."""

    state_changed = Signal(str, str)          # state, detail for the artist
    job_event = Signal(object, object)        # a job event: header, images (not "event": QObject.event)
    hello_changed = Signal(object)            # the server's hello reply

    def __init__(self, parent=None, config: BackendConfig | None = None):
        super().__init__(parent)
        self.state, self.detail = "off", ""
        self.hello: dict = {}
        self.connection = None
        self.process = None
        self.started_here = False
        self.owns_backend = False  #: started here, or adopted: renew its lease, stop it at exit
        self._config = config
        self._callbacks: dict[str, Callable] = {}
        self._last_heard = 0.0
        self._last_sent = 0.0
        self._ping_sent: float | None = None
        self._start_deadline = 0.0
        self._launched_at = 0.0
        self._retry_at = 0.0
        self._may_start = False
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)

    # state ------------------------------------------------------------------------------

    def _set(self, state: str, detail: str = "") -> None:
        if (state, detail) != (self.state, self.detail):
            self.state, self.detail = state, detail
            log.info("backend %s: %s", state, detail)
            self.state_changed.emit(state, detail)

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    # connecting -------------------------------------------------------------------------

    def connect_or_start(self) -> None:
        """Connect to a running backend, or start the installed one. Returns at once."""
        zmq, problem = vendor.import_zmq()
        if zmq is None:
            self._set("error", problem)
            return
        log.info("pyzmq %s from %s", zmq.__version__, zmq.__file__)
        self._timer.start()
        self._may_start = True  # if the backend in the connection file does not answer
        if self._connect_from_file():
            return
        self._start_process()

    def _connect_from_file(self, newer_than: float = 0.0) -> bool:
        try:
            info = read_connection_file()
        except ProtocolError:
            return False
        if info.get("started", 0) < newer_than:
            return False
        from .client import Connection, ServerError

        self._close_connection()
        self.owns_backend = self.started_here  # until its hello shows a lease to adopt
        try:
            self.connection = Connection(info["address"], info["token"], info["curve"])
        except Exception as exc:  # a malformed address or keys in the file
            self._set("error", f"cannot connect to {info.get('address')}: {exc}")
            return False
        self._set("connecting", info["address"])
        self._last_heard = time.monotonic()
        self._ping_sent = time.monotonic()
        try:
            self.request({"type": "hello", "protocol": PROTOCOL}, callback=self._on_hello, timeout=0.5)
        except ServerError:
            pass  # not up yet: the heartbeat below gives it ANSWER_S
        return True

    def _on_hello(self, header: dict, images) -> None:
        if header.get("type") == "error":
            self._set("error", header.get("message", "the backend refused us"))
            return
        self.hello = header
        if header.get("lease") and not self.owns_backend:
            # leased but not ours: a backend whose Krita was killed; keep it alive and stop it at exit
            self.owns_backend = True
            log.info("adopting the backend at %s (lease %s s)", self.connection.address, header["lease"])
        self._set("connected", f"{header['device']['name']}, models {header['models']}")
        self.hello_changed.emit(header)

    def _start_process(self) -> None:
        self._may_start = False
        config, problem = (self._config, "") if self._config else load_backend_config()
        if not config.installed:
            self._set("not_installed", problem or "the backend is not installed: run the inkn'hue installer")
            return
        command = config.serve_command() + ["--port", "0", "--lease", f"{LEASE_S:g}"]
        self.process = QtCore.QProcess(self)
        self.process.setProcessChannelMode(QtCore.QProcess.ProcessChannelMode.MergedChannels)
        # The backend is its own Python: Krita's Python paths must not leak into it.
        environment = QtCore.QProcessEnvironment.systemEnvironment()
        for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONNOUSERSITE", "PYTHONSAFEPATH"):
            environment.remove(name)
        self.process.setProcessEnvironment(environment)
        self.process.errorOccurred.connect(self._on_process_error)
        self.process.finished.connect(self._on_process_finished)
        self._launched_at = time.time()
        self._start_deadline = time.monotonic() + START_S
        self.started_here = self.owns_backend = True
        log.info("starting the backend: %s", " ".join(command))  # the full command, for the log only
        self._set("starting")  # no command line for the artist: paths say nothing to them
        self.process.start(command[0], command[1:])

    def _on_process_error(self, error) -> None:
        output = bytes(self.process.readAll()).decode(errors="replace").strip()
        if output:
            log.warning("backend output:\n%s", output[-4000:])
        if self.state == "starting":
            self._set("error", f"cannot start the backend ({self.process.errorString()}); "
                               f"run the inkn'hue installer again")

    def _on_process_finished(self, code, status) -> None:
        output = bytes(self.process.readAll()).decode(errors="replace").strip().splitlines()
        last = next((line for line in reversed(output) if line.strip()), "")
        if self.state in ("starting", "connecting", "connected"):
            self._set("error", f"the backend stopped (exit {code}){': ' + last if last else ''}")
        self.started_here = False

    # requests ---------------------------------------------------------------------------

    def request(self, header: dict, images=None, callback: Callable | None = None, timeout: float = 0.0) -> str:
        """Send a request; `callback(reply, images)` runs when its reply arrives."""
        from .client import ServerError

        if self.connection is None:
            raise ServerError("unavailable", "not connected to the backend")
        request_id = self.connection.send(header, images, timeout=timeout)
        self._last_sent = time.monotonic()
        if callback:
            self._callbacks[request_id] = callback
        return request_id

    def _poll(self) -> None:
        from .client import ServerError

        now = time.monotonic()
        if self.connection is None:
            if self.state == "starting":
                if not self._connect_from_file(newer_than=self._launched_at - 1) and now > self._start_deadline:
                    self._set("error", f"the backend did not start within {START_S:.0f} s (see its log)")
            elif self.state == "error" and now > self._retry_at:
                self._retry_at = now + HEARTBEAT_S  # a backend started again is found again
                self._connect_from_file()
            return
        try:
            while (message := self.connection.receive(0)) is not None:
                self._last_heard, self._ping_sent = time.monotonic(), None
                header, images = message
                callback = self._callbacks.pop(header.get("re"), None)
                if callback:
                    callback(header, images)
                elif header.get("job"):
                    if header.get("type") == "result" and self.hello.get("models") != "ready":
                        self._refresh_hello()  # a job ran: the models are loaded; say so now
                    self.job_event.emit(header, images)
        except ServerError as exc:
            log.warning("bad message from the backend: %s", exc)
        self._heartbeat(now)

    def _refresh_hello(self) -> None:
        from .client import ServerError

        try:
            self.request({"type": "hello", "protocol": PROTOCOL}, callback=self._on_hello)
        except ServerError:
            pass  # the heartbeat notices a backend that is gone

    def _heartbeat(self, now: float) -> None:
        """Ping a quiet backend; one that does not answer is lost (and looked for again)."""
        from .client import ServerError

        if self._ping_sent is not None:
            if now - self._ping_sent > ANSWER_S:
                self._close_connection()
                self._callbacks.clear()
                self._retry_at = now + HEARTBEAT_S
                if self._may_start and self.state == "connecting":  # a stale connection file
                    self._start_process()
                    return
                self._set("error", "the backend stopped answering" if self.state == "connected"
                          else "no backend answers")
            return
        renew = self.owns_backend and now - self._last_sent > HEARTBEAT_S  # job events alone renew nothing
        # hello again while connecting or while the models load, to show when they are ready
        ask_hello = self.state == "connecting" or self.hello.get("models") in ("loading", "not loaded")
        if now - self._last_heard > HEARTBEAT_S or renew or (ask_hello and now - self._last_sent > HEARTBEAT_S):
            self._ping_sent = now
            try:
                self.request({"type": "hello" if ask_hello else "ping"},
                             callback=self._on_hello if ask_hello else None)
            except ServerError:
                pass  # unanswered: the check above reports it

    # stopping ---------------------------------------------------------------------------

    def _close_connection(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def stop(self) -> None:
        """At Krita's exit: stop the backend if this plugin started or adopted it."""
        self._timer.stop()
        self._set("off", "stopping")
        if self.owns_backend and self.connection is not None:
            try:
                self.connection.send({"type": "shutdown"}, timeout=0.2)
            except Exception:  # noqa: BLE001  (gone already; its lease ends it otherwise)
                pass
        if self.started_here and self.process is not None:
            if not self.process.waitForFinished(5000):
                self.process.terminate()
                if not self.process.waitForFinished(3000):
                    self.process.kill()
        self._close_connection()
        self._set("off")
        self.hello = {}

