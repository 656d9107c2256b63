"""Starting real `inknhue serve` processes (or a server in this process) for the tests, and building raw images."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from inknhue_krita.connection_file import read_connection_file
from inknhue_krita.protocol import RawImage

INKNHUE = Path(sys.executable).parent / "inknhue"


def raw(array: np.ndarray | None, channels: str | None = None) -> RawImage | None:
    if array is None:
        return None
    channels = channels or {1: "L", 3: "RGB", 4: "RGBA"}[array.shape[2] if array.ndim == 3 else 1]
    return RawImage(array.shape[1], array.shape[0], channels, np.ascontiguousarray(array).tobytes())


def curve_socket(curve: dict, kind=None):
    """A ZeroMQ socket with the connection file's client keys (a DEALER unless `kind`)."""
    import zmq

    socket = zmq.Context.instance().socket(kind or zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.curve_serverkey = curve["server_public"].encode()
    socket.curve_publickey = curve["public"].encode()
    socket.curve_secretkey = curve["secret"].encode()
    return socket


def array(image: RawImage) -> np.ndarray:
    channels = {"L": 1, "RGB": 3, "RGBA": 4, "BGRA": 4}[image.channels]
    dtype = {"uint8": np.uint8, "uint16": "<u2", "float16": "<f2", "float32": "<f4"}[image.dtype]
    return np.frombuffer(image.data, dtype).reshape(image.height, image.width, channels)


class ServerProcess:
    def __init__(self, weights: Path, folder: Path, *extra: str, calibrate: bool = False):
        """`calibrate`: time this machine once the models load (off for the suite: seconds of
        both cores a server, which only the calibration's own tests need)."""
        self.connection_file = folder / "server.json"
        self.process = subprocess.Popen(
            [str(INKNHUE), "serve", "--port", "0", "--weights", str(weights), "--device", "cpu",
             "--connection-file", str(self.connection_file), *([] if calibrate else ["--no-calibration"]), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
        line = self.process.stdout.readline()
        if "listening on" not in line:
            self.process.kill()
            raise RuntimeError(f"the server did not start: {line}{self.process.stderr.read()}")
        self.address = line.split("listening on ")[1].strip()
        self.info = read_connection_file(self.connection_file)
        self.token, self.curve = self.info["token"], self.info["curve"]

    def client(self, timeout: float = 10.0, **kwargs):
        from inknhue_krita.client import Client

        kwargs.setdefault("curve", self.curve)
        return Client(self.address, self.token, timeout=timeout, **kwargs)

    def wait_until_ready(self, timeout: float = 60.0) -> dict:
        with self.client() as client:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                hello = client.hello()
                if hello["models"] not in ("loading", "not loaded"):
                    return hello
                time.sleep(0.1)
        raise TimeoutError("models did not load")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.stdout.close()
        self.process.stderr.close()


@contextmanager
def in_process_server(weights_dir, connection_file: Path, calibrate: bool = False):
    """A Server on a free port in a thread of this process (for faults the tests inject
    into it); `.curve` holds its connection details."""
    from inknhue.server import Server, serve

    server = Server(weights_dir, "cpu", port=0, connection_file=connection_file, calibrate=calibrate)
    ready = threading.Event()
    thread = threading.Thread(target=serve, args=(server,), kwargs={"on_ready": lambda _: ready.set()})
    thread.start()
    assert ready.wait(30)
    server.curve = server.gatekeeper.connection_info()
    try:
        yield server
    finally:
        server.running = False
        thread.join(30)
