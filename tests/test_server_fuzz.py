"""A bounded, seeded fuzz of `inknhue serve` over every request type and field of
docs/protocol.md: signed and unsigned, by a peer with the connection file's keys (strangers
do not get past the handshake: test_server_security.py). Never `internal`, never a dead
server, and the server's memory back near where it started."""

import json
import re
import time

import numpy as np
import pytest
from inknhue_krita import protocol

from servers import ServerProcess, curve_socket

SEED = 20261125
MESSAGES = 2500
BUDGET_S = 50.0

#: every request type with a valid header (colorize also with valid images)
REQUESTS = {
    "hello": {"protocol": protocol.PROTOCOL},
    "ping": {},
    "status": {"job": "j-none"},
    "colorize": {"provider": "flats", "ratio": 0.5, "max_size": 64, "fill_all": False, "transfer": False,
                 "output": {"size": "page", "channels": "RGBA", "dtype": "uint8", "linear": False, "layer": "full"}},
    "upscale": {"max_size": 64, "output": {"size": "page", "channels": "RGBA", "dtype": "uint8", "linear": False,
                                           "layer": "colour"}},
    "blend": {"job": "j-none", "ratio": 0.5, "size": "page", "channels": "RGBA", "dtype": "uint8", "linear": False,
              "layer": "colour"},
    "cancel": {"job": "j-none"},
}
IMAGE_FIELDS = {"name": "page", "width": 8, "height": 8, "channels": "RGB", "dtype": "uint8", "linear": False}
HOSTILE = [None, True, False, 0, -1, 1, 0.5, -0.0, 2 ** 31, 2 ** 64, 10 ** 30, 1e308, -1e308, "", "x", "flats",
           "page", "working", "colour", "RGBA", "float32", "j-none", "\n\x1b[31mforged", "\u2028", "x" * 5000, [], {},
           [1, 2], [64, 64], [0, 0], [16384, 16384], [1.5, 2], ["a", "b"], {"size": "page"}, {"a": {"b": {"c": []}}},
           [[[[[]]]]], "\ud800", "é", 3.14159]
RAW_NUMBERS = [b"NaN", b"Infinity", b"-Infinity", b"1" + b"0" * 500, b"1e999", b"-0", b"[" * 200 + b"]" * 200]


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) * 1024


def mutate(rng, kind):
    """One message: a valid request of `kind` with some fields and frames broken."""
    header = {"type": kind, "id": f"f{rng.integers(1 << 30)}", **json.loads(json.dumps(REQUESTS[kind]))}
    images = []
    if kind == "colorize":
        images = [dict(IMAGE_FIELDS), dict(IMAGE_FIELDS, name="hints", channels="RGBA")]
    elif kind == "upscale":
        images = [dict(IMAGE_FIELDS, channels="RGBA"), dict(IMAGE_FIELDS, name="coloured", channels="RGBA")]
    raw_value = None
    for _ in range(int(rng.integers(1, 4))):
        target = rng.random()
        if target < 0.5:  # a request field (or the id, type, images)
            key = str(rng.choice(list(header) + ["id", "type", "images", "output", "job", "extra"]))
            header[key] = HOSTILE[int(rng.integers(len(HOSTILE)))]
        elif target < 0.7 and kind in ("colorize", "upscale") and isinstance(header.get("output"), dict):
            key = str(rng.choice(["size", "channels", "dtype", "linear", "layer", "other"]))
            header["output"][key] = HOSTILE[int(rng.integers(len(HOSTILE)))]
        elif target < 0.85 and images:
            image = images[int(rng.integers(len(images)))]
            key = str(rng.choice(list(IMAGE_FIELDS) + ["extra"]))
            image[key] = HOSTILE[int(rng.integers(len(HOSTILE)))]
        else:
            raw_value = RAW_NUMBERS[int(rng.integers(len(RAW_NUMBERS)))]
    if images:
        header["images"] = images
    body = json.dumps(header).encode()
    if raw_value is not None:  # a number JSON libraries write but must not accept
        body = body[:-1] + b', "ratio": ' + raw_value + b"}"
    buffers = []
    for _ in images:
        size = 8 * 8 * 4
        if rng.random() < 0.2:
            size = int(rng.integers(0, 600))
        buffers.append(bytes(size))
    if rng.random() < 0.1:
        buffers = buffers[:-1] if buffers else [b"x"]
    return body, buffers


@pytest.fixture(scope="module")
def fuzzed_server(parity_weights, tmp_path_factory):
    process = ServerProcess(parity_weights, tmp_path_factory.mktemp("fuzz"))
    process.wait_until_ready()
    yield process
    process.stop()


def test_fuzzing_every_request_and_field_never_breaks_the_server(fuzzed_server):
    server = fuzzed_server
    rng = np.random.default_rng(SEED)
    key = server.token.encode()
    with server.client() as client:  # warm up: one real job, so its buffers count in the start
        from test_server_security import drawn_page
        from servers import raw

        page = drawn_page()
        job = client.colorize(raw(page.rgb), raw(page.hints), max_size=64)
        client.wait(job, timeout=60)
        REQUESTS["blend"]["job"] = REQUESTS["cancel"]["job"] = REQUESTS["status"]["job"] = job
    start = rss(server.process.pid)
    sock = curve_socket(server.curve)
    sock.connect(server.address)
    codes, kinds = {}, set()
    started = time.monotonic()
    sent = 0
    try:
        while sent < MESSAGES and time.monotonic() - started < BUDGET_S:
            kind = str(rng.choice(list(REQUESTS)))
            body, buffers = mutate(rng, kind)
            signed = rng.random() < 0.8
            signature = protocol.sign(key, body) if signed else protocol.sign(b"wrong", body)
            tag = protocol.TAG if rng.random() < 0.95 else rng.bytes(int(rng.integers(0, 12)))
            sock.send_multipart([tag, signature, body, *buffers])
            sent += 1
            kinds.add(kind)
            assert sock.poll(10_000), f"no answer to {body[:200]!r}"
            while sock.poll(0):
                frames = sock.recv_multipart()
                reply = json.loads(frames[2], parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
                if reply.get("type") == "error":
                    codes[reply["code"]] = codes.get(reply["code"], 0) + 1
                    assert reply["code"] != "internal", (body[:300], reply)
            if sent % 250 == 0:
                assert server.process.poll() is None, f"the server died after {sent} messages"
    finally:
        sock.close()
    time.sleep(1.0)  # let accepted jobs finish
    with server.client() as client:
        assert client.ping() < 5
        status = client.status()
        assert all(j["state"] in ("done", "failed", "cancelled", "queued", "running") for j in status["jobs"])
    assert server.process.poll() is None
    assert sent >= 500 and kinds == set(REQUESTS)
    assert {"bad_message", "bad_signature", "bad_input"} <= set(codes), codes
    print(f"fuzz: {sent} messages, replies by code {codes}")
    grown = rss(server.process.pid) - start
    assert grown < 100e6, f"the server grew by {grown / 1e6:.0f} MB over {sent} messages ({codes})"
