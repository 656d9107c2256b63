"""Who may talk to the server: CURVE keys on every connection, checked by a ZAP handler.

ZeroMQ's ROUTER socket trusts the routing id a peer announces, and libzmq asserts (the
process dies) when a peer claims the id it would have given the next connection; with
ROUTER_HANDOVER a peer could even take another's connection over. So no peer may finish
the handshake without the connection file's secrets: the socket is a CURVE server (the
"Ironhouse" pattern of the ZeroMQ guide), a stranger without the server's public key
cannot complete the handshake, and the ZAP handler admits only the client keys this run
made (written to the 0600 connection file) plus, for a network, the public keys in
`--curve-dir`/clients. Refused handshakes are counted from the socket's monitor and
logged at most once a minute. docs/protocol.md gives the reasoning for users.

The keys keep strangers out, not an admitted client that misbehaves: one holding the keys
(any `--curve-dir` client, or whoever reads the connection file) could still claim the ids
libzmq hands out next and make it assert (socket_base.cpp: an automatic id is added to the
socket's table without a look whether a peer holds it). libzmq cannot be told to ignore a
peer's chosen routing id (ZAP is not told it, the draft SERVER socket is not in the
wheels), so:
- `unpredictable_routing_ids()`: libzmq numbers a ROUTER's connections on from a rand()
  drawn when the socket is made, and nothing seeds rand(): the first id is always
  00 6b8b4567. The server seeds it from os.urandom just before it makes its ROUTER, so the
  ids it hands out start anywhere among 2^32 and no peer ever learns one (they are never
  sent). A peer that claims ids blindly, one connection each, hits the next with
  probability (its connections) / 2^32 per new connection: at most about 2.4e-7 under the
  usual limit of 1,024 open files.
- `chosen_routing_id(routing_id)`: an automatic id is five bytes, the first 0. A message
  under any other id comes from a peer that announced one of its own (inkn'hue's clients
  never do) and is refused, whatever it says. (One that chose the automatic shape cannot
  be told apart: the handshake's "Identity" property reads as empty through zmq_msg_gets
  when it starts with a 0 byte. The unpredictable ids are the defence there.)
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import zmq
from zmq.utils.monitor import recv_monitor_message

from ..errors import InknhueError

log = logging.getLogger(__name__)

_REFUSALS = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
             | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
REPORT_EVERY_S = 60.0
ZAP_DOMAIN = "inknhue"


def unpredictable_routing_ids() -> bool:
    """Seed the C library's rand(), which libzmq draws a new ROUTER's first automatic routing
    id from, with 32 random bits. Call it just before making the ROUTER socket; False where
    the C library could not be reached (the ids are then libzmq's usual ones)."""
    try:
        libc = ctypes.CDLL("ucrtbase") if sys.platform == "win32" else ctypes.CDLL(None)
        libc.srand(ctypes.c_uint(int.from_bytes(os.urandom(4), "little")))
    except (OSError, AttributeError) as exc:
        log.debug("cannot seed rand() for libzmq's routing ids: %s", exc)
        return False
    return True


def chosen_routing_id(routing_id: bytes) -> bool:
    """Whether a message's routing id is one its peer announced rather than one libzmq gave
    (libzmq's own are 00 and four bytes)."""
    return len(routing_id) != 5 or routing_id[0] != 0


def keypair() -> tuple[str, str]:
    public, secret = zmq.curve_keypair()
    return public.decode(), secret.decode()


class Gatekeeper:
    """Makes a ROUTER socket a CURVE server and runs the ZAP handler that checks client keys."""

    def __init__(self, context: zmq.Context, curve_dir: Path | None = None):
        if not zmq.has("curve"):
            raise InknhueError(f"this pyzmq (libzmq {zmq.zmq_version()}) has no CURVE encryption, which the "
                               f"backend requires: reinstall pyzmq from its wheels")
        self.context = context
        self.clients_dir = None
        if curve_dir is None:
            self.server_public, self.server_secret = keypair()
        else:  # a network: the server's key is kept, so clients can pin it
            self.server_public, self.server_secret = self._load_server_key(curve_dir)
            self.clients_dir = curve_dir / "clients"
        self.client_public, self.client_secret = keypair()  # this run's key pair for the connection file
        self.refused = 0
        self._unreported = 0
        self._reported_at = 0.0
        self._auth = None
        self.monitor = None

    @staticmethod
    def _load_server_key(curve_dir: Path) -> tuple[str, str]:
        import zmq.auth

        secret = curve_dir / "server.key_secret"
        if not secret.is_file() or not (curve_dir / "clients").is_dir():
            raise InknhueError(f"{curve_dir} needs server.key_secret and a clients/ folder of public "
                               f"keys: create them with `inknhue serve --make-curve-keys {curve_dir}`")
        public, secret_key = zmq.auth.load_certificate(secret)
        if secret_key is None:
            raise InknhueError(f"{secret} holds no secret key: create the keys again with --make-curve-keys")
        return public.decode(), secret_key.decode()

    def connection_info(self) -> dict:
        """The keys a client needs, for the connection file."""
        return {"server_public": self.server_public, "public": self.client_public, "secret": self.client_secret}

    def secure(self, socket: zmq.Socket) -> None:
        """Before bind: the ZAP handler runs first, so no connection is ever let in unchecked."""
        from zmq.auth.thread import ThreadAuthenticator

        quiet = logging.getLogger("inknhue.zap")  # pyzmq logs each decision at debug: keep them out of our log
        quiet.propagate = False
        self._auth = ThreadAuthenticator(self.context, log=quiet)
        self._auth.start()
        self._auth.configure_curve_callback(domain=ZAP_DOMAIN, credentials_provider=self)
        socket.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
        socket.curve_secretkey = self.server_secret.encode()
        socket.curve_publickey = self.server_public.encode()
        socket.curve_server = True
        self.monitor = socket.get_monitor_socket(_REFUSALS)

    def callback(self, domain: str, key: bytes) -> bool:
        """ZAP: is this client public key (Z85) allowed?"""
        if key.decode(errors="replace") == self.client_public:
            return True
        if self.clients_dir is not None and self.clients_dir.is_dir():
            import zmq.auth

            try:
                return key in zmq.auth.load_certificates(self.clients_dir)
            except Exception as exc:  # noqa: BLE001  (a bad key file must not open or break the door)
                log.error("cannot read client keys in %s: %s", self.clients_dir, exc)
        return False

    def drain_monitor(self) -> None:
        """Count refused handshakes; say so in the log at most once a minute."""
        while True:
            try:
                recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                break
            self.refused += 1
            self._unreported += 1
        now = time.monotonic()
        if self._unreported and now - self._reported_at >= REPORT_EVERY_S:
            log.warning("refused %d connection(s) without this backend's keys (%d since the start)",
                        self._unreported, self.refused)
            self._unreported, self._reported_at = 0, now

    def close(self) -> None:
        if self.monitor is not None:
            self.monitor.close(linger=0)
        if self._auth is not None:
            self._auth.stop()


def make_curve_keys(directory: Path) -> None:
    """A server key pair and one client key pair (clients/laptop.key is the authorised public key)."""
    import zmq.auth

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "clients").mkdir(exist_ok=True)
    zmq.auth.create_certificates(directory, "server")
    zmq.auth.create_certificates(directory, "laptop")
    shutil.move(directory / "laptop.key", directory / "clients" / "laptop.key")
    for path in directory.glob("*.key_secret"):
        path.chmod(0o600)
