"""`inknhue serve` against strangers, lost connections, broken weights and hostile input.

The attacks run against real server processes on loopback: a stranger is anyone without
the connection file, which holds the token and the CURVE keys the handshake needs.
"""

import json
import os
import re
import shutil
import signal
import socket as pysocket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zmq
from drawing import Page
from servers import INKNHUE, ServerProcess, array, curve_socket, raw

from inknhue.engine.pipeline import Engine
from inknhue.rough import RoughRequest, get_provider
from inknhue_krita import protocol
from inknhue_krita.client import Client, ServerError
from inknhue_krita.connection_file import read_connection_file

RED, BLUE = (220, 40, 40), (40, 60, 220)
#: glibc's first rand(): libzmq's first automatic routing id is 00 6b8b4567, then +1 per peer
FIRST_AUTOMATIC_ID = 0x6B8B4567


@pytest.fixture
def server(parity_weights, tmp_path):
    process = ServerProcess(parity_weights, tmp_path)
    process.wait_until_ready()
    yield process
    process.stop()


def drawn_page(width=200, height=300, colour=RED):
    page = Page(width, height).rectangle(10, 10, width - 10, height - 10).circle(width // 2, height // 2, 50)
    page.stroke([(width // 2 - 10, height // 2), (width // 2 + 10, height // 2)], colour)
    return page


def expected_result(parity_weights, page, ratio=0.8, max_size=64):
    result = Engine(parity_weights, "cpu").colorize(page.rgb, get_provider("flats"),
                                                   RoughRequest(page=page.rgb, hints=page.hints),
                                                   max_size=max_size, ratio=ratio)
    return result.final(ratio, "page")


def slow_page():
    page = Page(1024, 1536).rectangle(20, 20, 1000, 1500)
    page.stroke([(100, 100), (200, 200)], RED)
    return page


def stranger_sockets(address, count, server_public=None):
    """DEALERs claiming the routing ids libzmq hands out next, as the attack did: plain ones,
    and CURVE ones with a key pair of their own (and the server's public key, if known)."""
    context = zmq.Context.instance()
    sockets = []
    for k in range(count):
        s = context.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.IDENTITY, b"\0" + (FIRST_AUTOMATIC_ID + k).to_bytes(4, "big"))
        if k % 2:
            public, secret = zmq.curve_keypair()
            s.curve_serverkey = server_public.encode() if server_public else zmq.curve_keypair()[0]
            s.curve_publickey, s.curve_secretkey = public, secret
        s.connect(address)
        sockets.append(s)
    return sockets


def hello_frames(key=b"x" * 64):
    return protocol.pack(key, {"type": "hello", "id": "h", "protocol": protocol.PROTOCOL})


# --- defect 1: strangers claiming routing ids cannot bring the server down ---------------------

def test_strangers_claiming_the_next_routing_ids_cannot_crash_the_server(server, parity_weights):
    strangers = stranger_sockets(server.address, 512, server_public=server.curve["server_public"])
    try:
        for s in strangers[:64]:
            try:  # a stranger whose handshake failed cannot even queue a message: all the better
                s.send_multipart(hello_frames(), flags=zmq.NOBLOCK)
            except zmq.Again:
                pass
        time.sleep(1.5)  # every stranger has tried its handshake (and retried)
        page = drawn_page()
        for _ in range(3):  # ordinary clients connect after them and get the next automatic ids
            with server.client() as client:
                job = client.colorize(raw(page.rgb), raw(page.hints), max_size=64)
                header, image = client.wait(job, timeout=60)
            np.testing.assert_array_equal(array(image)[..., :3], expected_result(parity_weights, page))
        assert server.process.poll() is None, "the server died"
        assert server.connection_file.exists()
        assert not any(s.poll(0) for s in strangers), "a stranger received something"
    finally:
        for s in strangers:
            s.close()
    with server.client() as client:
        assert client.status()["models"] == "ready"


# --- defect 2: a stranger cannot take a job's connection over ---------------------------------

def test_a_stranger_cannot_take_over_a_running_jobs_connection(server, parity_weights):
    page = slow_page()
    with server.client(timeout=10) as owner:
        job = owner.colorize(raw(page.rgb), raw(page.hints), max_size=512)
        # the owner's connection is among the first: a thief claims those ids while the job runs
        thieves = stranger_sockets(server.address, 16, server_public=server.curve["server_public"])
        try:
            header, image = owner.wait(job, timeout=120)
            deadline = time.monotonic() + 1.0
            stolen = []
            while time.monotonic() < deadline:
                for thief in thieves:
                    while thief.poll(0):
                        stolen.append(thief.recv_multipart())
                time.sleep(0.05)
        finally:
            for thief in thieves:
                thief.close()
    assert header["type"] == "result" and (image.width, image.height) == (1024, 1536)
    assert stolen == [], "a stranger received job data"
    assert server.process.poll() is None


def test_a_stranger_speaking_zmtp_without_keys_gets_no_byte_back(server):
    host, port = server.address.removeprefix("tcp://").rsplit(":", 1)
    with pysocket.create_connection((host, int(port)), timeout=5) as raw_socket:
        # a ZMTP 3.0 greeting with the NULL mechanism, then a READY and a hello
        greeting = b"\xff" + bytes(8) + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\0") + b"\0" + bytes(31)
        raw_socket.sendall(greeting)
        received = b""
        try:
            while len(received) < 1 << 16:
                chunk = raw_socket.recv(4096)
                if not chunk:
                    break
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    # at most the server's half of the greeting: the handshake fails, no message follows
    assert len(received) <= 64 and b"inknhue" not in received
    assert server.process.poll() is None


# --- defect 3: every wait ends, and a lost result is fetched again ------------------------------

class CuttableProxy:
    """A TCP relay between a client and the server whose connections the test can cut, as a
    reset connection (`ss -K`) does; ZeroMQ then reconnects through it."""

    def __init__(self, target: str):
        host, port = target.removeprefix("tcp://").rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = pysocket.create_server(("127.0.0.1", 0))
        self.address = f"tcp://127.0.0.1:{self.listener.getsockname()[1]}"
        self.pairs: list[tuple[pysocket.socket, pysocket.socket]] = []
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.listener.settimeout(0.2)
        while self.running:
            try:
                inside, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            outside = pysocket.create_connection(self.target)
            self.pairs.append((inside, outside))
            for a, b in ((inside, outside), (outside, inside)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source, sink):
        try:
            while chunk := source.recv(1 << 16):
                sink.sendall(chunk)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(pysocket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        for pair in self.pairs:
            for s in pair:
                try:
                    s.shutdown(pysocket.SHUT_RDWR)
                except OSError:
                    pass
        self.pairs.clear()

    def close(self):
        self.running = False
        self.cut()
        self.listener.close()


def wait_for_stage(client, job, stage, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = client.next_event(0.5)
        if message and message[0].get("job") == job and message[0].get("stage") == stage:
            return
    raise TimeoutError(stage)


def test_a_result_lost_with_its_connection_is_fetched_again(server):
    proxy = CuttableProxy(server.address)
    try:
        with Client(proxy.address, server.token, timeout=2.0, curve=server.curve) as client:
            page = slow_page()
            job = client.colorize(raw(page.rgb), raw(page.hints), max_size=512, output={"channels": "BGRA"})
            wait_for_stage(client, job, "shade")
            proxy.cut()  # the result will go to a connection that is gone
            started = time.monotonic()
            header, image = client.wait(job, timeout=120)
            assert time.monotonic() - started < 120
        assert header["type"] == "result" and header.get("recovered") is True
        assert header["page_size"] == [1024, 1536] and "timings" in header
        assert (image.width, image.height, image.channels) == (1024, 1536, "BGRA")
        with server.client() as check:  # the same pixels the job's own result carried
            np.testing.assert_array_equal(array(image), array(check.blend(job, 0.8, channels="BGRA")))
    finally:
        proxy.close()


def test_a_job_the_server_forgot_ends_the_wait_with_an_error(server):
    with server.client(timeout=1.0) as client:
        client._jobs["j-gone"] = (0.8, None)
        started = time.monotonic()
        with pytest.raises(ServerError) as lost:
            client.wait("j-gone", timeout=30)
        assert lost.value.code == "lost" and time.monotonic() - started < 5


def test_a_failed_jobs_error_reaches_a_client_that_missed_it(server):
    proxy = CuttableProxy(server.address)
    try:
        with Client(proxy.address, server.token, timeout=1.0, curve=server.curve) as client:
            page = slow_page()
            job = client.colorize(raw(page.rgb), raw(page.hints), max_size=512)
            wait_for_stage(client, job, "shade")
            proxy.cut()
            with server.client() as other:
                other.cancel(job)
            with pytest.raises(ServerError) as ended:
                client.wait(job, timeout=60)
            assert ended.value.code == "cancelled"
    finally:
        proxy.close()


# --- defect 4: a garbage weights file is a one-line weights error -----------------------------

@pytest.mark.parametrize("garbage", [b"r", b"root:x:0:0:root:/root:/bin/bash\n" * 40, bytes(range(256)) * 64])
def test_garbage_in_a_weights_file_is_a_one_line_weights_error(weights_copy, tmp_path, cli, garbage):
    (weights_copy / "pretrained_nets" / "shader.ckpt").write_bytes(garbage)
    page = drawn_page()
    from PIL import Image

    Image.fromarray(page.grey).save(tmp_path / "page.png")
    Image.fromarray(page.hints, "RGBA").save(tmp_path / "hints.png")
    done = cli("colorize", tmp_path / "page.png", "--hints", tmp_path / "hints.png", "-o", tmp_path / "out.png",
               "--max-size", "64", "--weights", weights_copy, "--device", "cpu")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("inknhue: error:")]
    assert len(error) == 1 and "shader.ckpt" in error[0] and "corrupt" in error[0]
    assert not (tmp_path / "out.png").exists()


def test_a_server_with_a_garbage_weights_file_says_so_and_refuses_jobs(weights_copy, tmp_path):
    shutil.copy("/etc/passwd" if os.path.exists("/etc/passwd") else __file__,
                weights_copy / "pretrained_nets" / "shader.ckpt")
    broken = ServerProcess(weights_copy, tmp_path)
    try:
        hello = broken.wait_until_ready(timeout=30)
        assert hello["models"].startswith("error:") and "shader.ckpt" in hello["models"]
        with broken.client() as client:
            page = drawn_page()
            with pytest.raises(ServerError) as refused:
                client.colorize(raw(page.rgb), raw(page.hints), max_size=64)
            assert refused.value.code == "weights" and "shader.ckpt" in refused.value.message
            assert client.ping() < 5  # alive
    finally:
        broken.stop()


# --- defect 5: limits checked before anything is allocated -------------------------------------

def test_an_output_size_beyond_the_pixel_limit_is_refused_at_once(server):
    page = drawn_page(64, 64)
    with server.client() as client:
        for size in ([16384, 16384], [10001, 10000]):
            with pytest.raises(ServerError) as refused:
                client.colorize(raw(page.rgb), raw(page.hints), max_size=64, output={"size": size})
            assert refused.value.code == "too_large" and "100 MP" in refused.value.message
        job = client.colorize(raw(page.rgb), raw(page.hints), max_size=64)
        client.wait(job, timeout=60)
        with pytest.raises(ServerError) as refused:
            client.blend(job, 0.5, size=[16384, 16384])
        assert refused.value.code == "too_large"


def test_a_page_too_long_for_the_working_size_is_refused_before_any_work(server):
    sliver = np.full((16384, 1, 3), 255, np.uint8)
    hints = np.zeros((16384, 1, 4), np.uint8)
    with server.client() as client:
        with pytest.raises(ServerError) as refused:
            client.colorize(raw(sliver), raw(hints), max_size=64)
        assert refused.value.code == "bad_input" and "too long and thin" in refused.value.message
        strip = np.full((16000, 800, 3), 255, np.uint8)  # a webtoon strip: fits at a smaller max size
        with pytest.raises(ServerError) as refused:
            client.colorize(raw(strip), raw(np.zeros((16000, 800, 4), np.uint8)), max_size=1024)
        assert "use max size" in refused.value.message
        assert client.status()["counters"].get("rough", 0) == 0  # nothing ran


def test_a_page_beyond_the_pixel_limit_is_refused_by_the_protocol(server):
    with server.client() as client:
        huge = protocol.RawImage(10001, 10000, "L", b"")
        with pytest.raises(ServerError) as refused:
            client.colorize(huge, protocol.RawImage(10001, 10000, "RGBA", b""))
        assert refused.value.code == "too_large" and "100 MP" in refused.value.message


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) * 1024


def test_results_a_client_does_not_read_are_not_piled_up(server):
    page = drawn_page()
    with server.client() as client:
        job = client.colorize(raw(page.rgb), raw(page.hints), max_size=64)
        client.wait(job, timeout=60)
        client.blend(job, 0.5, size=[5000, 5000], dtype="float32")  # one read: caches and allocator warm
    settled = rss_bytes(server.process.pid)
    reader = curve_socket(server.curve)
    reader.setsockopt(zmq.RCVHWM, 1)      # a client that stops reading: its queue stays full
    reader.setsockopt(zmq.RCVBUF, 65536)
    reader.connect(server.address)
    key = server.token.encode()
    try:
        for n in range(8):  # 8 x 400 MB asked for at once
            reader.send_multipart(protocol.pack(key, {"type": "blend", "id": f"b{n}", "job": job, "ratio": 0.5,
                                                      "size": [5000, 5000], "dtype": "float32"}))
        time.sleep(8)
        peak = rss_bytes(server.process.pid)
        with server.client() as other:  # the server answers others meanwhile
            assert other.ping() < 5
    finally:
        reader.close()
    # piled up, the 8 results would hold 3.2 GB; one being made, with its float temporaries and
    # the page's sampling maps at 5000 x 5000, takes up to about 1.6 GB
    assert peak < settled + 2.4e9, f"the server held {(peak - settled) / 1e9:.1f} GB for a client that reads nothing"
    deadline = time.monotonic() + 20
    while rss_bytes(server.process.pid) > settled + 0.3e9 and time.monotonic() < deadline:
        time.sleep(0.5)  # the unread results go with the connection
    assert rss_bytes(server.process.pid) < settled + 0.3e9


def test_the_cli_refuses_a_too_long_page_before_loading_anything(cli, tmp_path):
    from PIL import Image

    Image.new("L", (1, 16384), 255).save(tmp_path / "sliver.png")
    Image.new("RGBA", (1, 16384)).save(tmp_path / "hints.png")
    done = cli("colorize", tmp_path / "sliver.png", "--hints", tmp_path / "hints.png", "-o", tmp_path / "o.png",
               "--max-size", "64", "--weights", tmp_path / "nothing-here")
    assert done.returncode == 1 and "too long and thin" in done.stderr and "weights" not in done.stderr


# --- defect 6: strangers' strings cannot forge or flood the log -------------------------------

def test_peers_cannot_forge_log_lines_or_rotate_the_log_away(server, isolated_user_dirs):
    log_file = isolated_user_dirs / ".local/state/inknhue/log/server.log"
    sock = curve_socket(server.curve)
    sock.connect(server.address)
    key = server.token.encode()
    forged = "2026-01-01 00:00:00,000 1 ERROR inknhue.server: FORGED"
    try:
        messages = [[b"inknhue/\n" + forged.encode(), b"s", b"{}"],
                    protocol.pack(key, {"type": "\n" + forged, "id": "x"}),
                    protocol.pack(key, {"type": "colorize", "id": "x", "provider": "\n" + forged})]
        messages += [[b"inknhue/9" + b"x" * 60000, b"s", b"{}"]] * 300
        messages += [protocol.pack(key, {"type": "t" * 60000, "id": "y"})] * 300
        for frames in messages:
            sock.send_multipart(frames)
            assert sock.poll(5000)
            sock.recv_multipart()
    finally:
        sock.close()
    text = log_file.read_text()
    assert not any(line.startswith("2026-01-01") or "FORGED" in line.split(":", 3)[0] for line in text.splitlines())
    assert "\\n2026-01-01" in text  # the forged text is there, escaped inside one record
    assert not log_file.with_name("server.log.1").exists() and log_file.stat().st_size < 100_000
    assert text.count("error bad_version") <= 10


# --- defect 7: type confusion is bad_input naming the field, never internal --------------------

def strict_json(data: bytes):
    def refuse(name):
        raise ValueError(name)
    return json.loads(data, parse_constant=refuse)


CONFUSIONS = [
    ({"type": "colorize", "provider": ["flats"]}, "provider"),
    ({"type": "colorize", "provider": {"a": 1}}, "provider"),
    ({"type": "colorize", "output": {"channels": ["RGBA"]}}, "output.channels"),
    ({"type": "colorize", "output": {"dtype": {"x": 1}}}, "output.dtype"),
    ({"type": "colorize", "output": {"size": {"w": 1}}}, "output.size"),
    ({"type": "colorize", "output": {"linear": "yes"}}, "output.linear"),
    ({"type": "colorize", "fill_all": [1]}, "fill_all"),
    ({"type": "colorize", "transfer": "true"}, "transfer"),
    ({"type": "colorize", "max_size": [64]}, "max_size"),
    ({"type": "blend", "job": ["j"], "ratio": 0.5}, "job"),
    ({"type": "blend", "job": {"j": 1}, "ratio": 0.5}, "job"),
    ({"type": "blend", "job": "j-x", "ratio": 0.5, "channels": ["RGBA"]}, None),
    ({"type": "cancel", "job": [1, 2]}, "job"),
    ({"type": "status", "job": 5}, "job"),
]


def test_fields_of_the_wrong_type_are_bad_input_naming_the_field(server, isolated_user_dirs):
    sock = curve_socket(server.curve)
    sock.connect(server.address)
    key = server.token.encode()
    page = {"name": "page", "width": 4, "height": 4, "channels": "RGB"}
    hints = {"name": "hints", "width": 4, "height": 4, "channels": "RGBA"}
    try:
        def ask(header_bytes, buffers=()):
            sock.send_multipart([protocol.TAG, protocol.sign(key, header_bytes), header_bytes, *buffers])
            assert sock.poll(5000), header_bytes[:80]
            reply = sock.recv_multipart()
            return strict_json(reply[2])  # valid JSON, no NaN

        for fields, name in CONFUSIONS:
            header = {"id": "x", **fields}
            buffers = ()
            if fields["type"] == "colorize":
                header["images"] = [page, hints]
                buffers = (bytes(48), bytes(64))
            reply = ask(json.dumps(header).encode(), buffers)
            assert reply["type"] == "error" and reply["code"] in ("bad_input", "unknown_job"), (fields, reply)
            if name and reply["code"] == "bad_input":
                assert f"'{name}'" in reply["message"], (fields, reply)
        images = json.dumps([page, dict(hints, channels=["RGBA"])])
        reply = ask(b'{"type": "colorize", "id": "x", "images": ' + images.encode() + b"}", (bytes(48), bytes(64)))
        assert reply["code"] == "bad_message" and "'channels'" in reply["message"]
        reply = ask(b'{"type": "colorize", "id": "x", "ratio": 1' + b"0" * 400 + b"}")
        assert reply["code"] in ("bad_input", "bad_message") and reply["re"] == "x" or reply["re"] is None
        for raw_id in (b"NaN", b"Infinity", b"[1]", b"{}", b"1e999"):
            reply = ask(b'{"type": "ping", "id": ' + raw_id + b"}")
            assert reply["code"] == "bad_message" and reply["re"] is None
        reply = ask(b"[" * 30000 + b"]" * 30000)
        assert reply["code"] == "bad_message"
    finally:
        sock.close()
    assert "Traceback" not in (isolated_user_dirs / ".local/state/inknhue/log/server.log").read_text()


def test_a_huge_ratio_is_bad_input(server):
    with server.client() as client:
        page = drawn_page()
        with pytest.raises(ServerError) as refused:
            client.colorize(raw(page.rgb), raw(page.hints), ratio=10 ** 400)
        assert refused.value.code == "bad_input" and "'ratio'" in refused.value.message


# --- defect 8: the command line checks its output first, and honours the umask ------------------

def page_files(tmp_path):
    from PIL import Image

    page = drawn_page()
    Image.fromarray(page.grey).save(tmp_path / "page.png")
    Image.fromarray(page.hints, "RGBA").save(tmp_path / "hints.png")
    return tmp_path / "page.png", tmp_path / "hints.png"


@pytest.mark.parametrize("output, words", [
    ("blocker/out.png", "cannot write"),          # the folder would be inside a file
    ("out", "cannot tell an image format"),       # no extension
    ("out.notanimage", "cannot tell an image format"),
])
def test_an_output_that_cannot_be_written_is_refused_before_the_work(cli, tmp_path, parity_weights, output, words):
    page, hints = page_files(tmp_path)
    (tmp_path / "blocker").write_text("a file, not a folder")
    done = cli("colorize", page, "--hints", hints, "-o", tmp_path / output, "--max-size", "64",
               "--weights", parity_weights, "--device", "cpu")
    assert done.returncode == 1 and words in done.stderr and "Traceback" not in done.stderr
    assert "load" not in done.stderr and "[1/" not in done.stderr  # no stage ran


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_refused_before_the_work(cli, tmp_path, parity_weights):
    page, hints = page_files(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    done = cli("colorize", page, "--hints", hints, "-o", locked / "out.png", "--max-size", "64",
               "--weights", parity_weights, "--device", "cpu")
    assert done.returncode == 1 and "cannot write" in done.stderr and "[1/" not in done.stderr


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_follow_the_users_umask(tmp_path, parity_weights, umask, mode):
    from servers import INKNHUE

    page, hints = page_files(tmp_path)
    out = tmp_path / "out.png"
    done = subprocess.run([str(INKNHUE), "colorize", str(page), "--hints", str(hints), "-o", str(out),
                           "--max-size", "64", "--weights", str(parity_weights), "--device", "cpu"],
                          capture_output=True, text=True, timeout=300, preexec_fn=lambda: os.umask(umask))
    assert done.returncode == 0, done.stderr
    assert out.stat().st_mode & 0o777 == mode


# --- defect 9: a backend started with a lease ends when its owner is gone -----------------------

def test_a_leased_backend_stops_when_nobody_renews_it(parity_weights, tmp_path):
    leased = ServerProcess(parity_weights, tmp_path, "--lease", "2")
    try:
        assert leased.wait_until_ready()["lease"] == 2
        with leased.client() as client:  # an owner that pings keeps it alive past the lease
            for _ in range(8):
                client.ping()
                time.sleep(0.5)
        assert leased.process.poll() is None
        started = time.monotonic()
        leased.process.wait(timeout=15)  # then the owner is gone (a killed Krita)
        assert time.monotonic() - started < 6
        assert leased.process.returncode == 0 and not leased.connection_file.exists()
    finally:
        leased.stop()


def test_a_backend_without_a_lease_runs_on(server):
    time.sleep(1)
    assert server.process.poll() is None and server.wait_until_ready()["lease"] is None


def test_sigterm_still_stops_a_leased_backend(parity_weights, tmp_path):
    leased = ServerProcess(parity_weights, tmp_path, "--lease", "60")
    try:
        leased.process.send_signal(signal.SIGTERM)
        assert leased.process.wait(timeout=15) == 0
    finally:
        leased.stop()


# --- defect 10: the documented limits are the code's -----------------------------------------

def test_the_documented_image_limit_is_the_codes():
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "protocol.md").read_text()
    stated = re.search(r"at\s+most\s+(\d+)\s+images\s+a\s+message", doc)
    assert stated and int(stated.group(1)) == protocol.MAX_IMAGES == len(protocol.COLORIZE_IMAGES)
    assert f"{protocol.MAX_SIDE} px a side and {protocol.MAX_PIXELS // 1_000_000} MP" in doc
    key = b"k"
    images = {f"i{n}": protocol.RawImage(1, 1, "L", b"\0") for n in range(protocol.MAX_IMAGES + 1)}
    header, _ = protocol.unpack(key, protocol.pack(key, {"id": "x"}, dict(list(images.items())[:-1])))
    assert len(header["images"]) == protocol.MAX_IMAGES
    with pytest.raises(protocol.ProtocolError, match=f"at most {protocol.MAX_IMAGES} images"):
        protocol.unpack(key, protocol.pack(key, {"id": "x"}, images))


# --- issue 23, finding 6: an admitted client cannot make libzmq abort the server ----------------

def test_keyed_clients_claiming_the_next_routing_ids_cannot_abort_the_server(server, parity_weights):
    """64 sockets with the connection file's keys (as any --curve-dir client has) claim the
    routing ids libzmq would hand out next: when an ordinary client connected, libzmq asserted
    (socket_base.cpp:2113) and the server died, its connection file left behind. Now nobody
    can know the next ids (a claimer of the automatic shape cannot be told apart, and is
    answered), and a peer with an id of any other shape is refused."""
    claimers = []
    try:
        for k in range(64):
            socket = curve_socket(server.curve)
            socket.setsockopt(zmq.IDENTITY, b"\0" + (FIRST_AUTOMATIC_ID + k).to_bytes(4, "big"))
            socket.connect(server.address)
            claimers.append(socket)
        for socket in claimers:  # admitted, and signing with the token: each completes its handshake
            socket.send_multipart(hello_frames(server.token.encode()))
        for socket in claimers:
            assert socket.poll(10_000), "no answer to a keyed peer"
            assert protocol.unpack(server.token.encode(), socket.recv_multipart(copy=False))[0]["type"] == "hello"
        page = drawn_page()
        for _ in range(3):  # ordinary clients connect after them, and get automatic ids
            with server.client() as client:
                job = client.colorize(raw(page.rgb), raw(page.hints), max_size=64)
                header, image = client.wait(job, timeout=60)
            np.testing.assert_array_equal(array(image)[..., :3], expected_result(parity_weights, page))
        assert server.process.poll() is None, "the server died"
        assert server.connection_file.exists()
    finally:
        for socket in claimers:
            socket.close()


@pytest.mark.parametrize("routing_id", [b"laptop", b"\1" * 5, b"\0" * 6, b"\0" * 4, bytes(range(250, 255))])
def test_a_peer_that_names_its_own_connection_is_refused(server, routing_id):
    socket = curve_socket(server.curve)
    try:
        socket.setsockopt(zmq.IDENTITY, routing_id)
        socket.connect(server.address)
        socket.send_multipart(hello_frames(server.token.encode()))
        assert socket.poll(10_000)
        reply = protocol.unpack(server.token.encode(), socket.recv_multipart(copy=False))[0]
        assert reply["type"] == "error" and reply["code"] == "bad_message"
        assert "may not set its routing id" in reply["message"]
    finally:
        socket.close()
    with server.client() as client:  # everyone else is served
        assert client.ping() >= 0  # answered


def test_routing_ids_start_somewhere_new_in_every_process():
    """libzmq's first automatic id was always 00 6b8b4567 (glibc's unseeded rand())."""
    probe = """
import zmq
from inknhue.server.security import chosen_routing_id, unpredictable_routing_ids
assert unpredictable_routing_ids()
context = zmq.Context()
router = context.socket(zmq.ROUTER)
port = router.bind_to_random_port("tcp://127.0.0.1")
dealer = context.socket(zmq.DEALER)
dealer.connect(f"tcp://127.0.0.1:{port}")
dealer.send(b"x")
routing_id = router.recv_multipart()[0]
assert not chosen_routing_id(routing_id)
print(routing_id.hex())
context.destroy(linger=0)
"""
    firsts = {subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                             timeout=60).stdout.strip() for _ in range(4)}
    assert len(firsts) == 4 and f"00{FIRST_AUTOMATIC_ID:08x}" not in firsts, firsts


# --- issue 23, finding 7: the connection file --------------------------------------------------

def fake_info(n=0):
    return {"address": f"tcp://127.0.0.1:{5600 + n}", "token": "t" * 64, "pid": 2 ** 22 + n,
            "curve": {"server_public": "s", "public": "p", "secret": "x"}}


def test_a_folder_others_may_write_is_fixed_or_refused(tmp_path):
    from inknhue_krita.connection_file import UnsafeFolder, read_connection_file, write_connection_file

    shared = tmp_path / "data"
    shared.mkdir()
    shared.chmod(0o777)
    notes = write_connection_file(shared / "server.json", fake_info())
    assert (shared.stat().st_mode & 0o777) == 0o755 and (shared / "server.json").stat().st_mode & 0o777 == 0o600
    assert len(notes) == 1 and f"{shared} for the connection file was writable by other users (mode 0777)" in notes[0]
    assert read_connection_file(shared / "server.json")["token"] == "t" * 64

    open_to_all = tmp_path / "open"  # anyone could rename the data folder away and put theirs in its place
    open_to_all.mkdir()
    open_to_all.chmod(0o777)
    with pytest.raises(UnsafeFolder) as excinfo:
        write_connection_file(open_to_all / "inknhue" / "server.json", fake_info())
    assert f"{open_to_all}, above the folder" in str(excinfo.value) and "no sticky bit" in str(excinfo.value)
    assert not (open_to_all / "inknhue" / "server.json").exists()
    sticky = tmp_path / "sticky"  # like /tmp: others cannot rename what is ours
    sticky.mkdir()
    sticky.chmod(0o1777)
    write_connection_file(sticky / "inknhue" / "server.json", fake_info())
    assert (sticky / "inknhue").stat().st_mode & 0o777 == 0o700  # made private


def test_a_real_server_fixes_a_world_writable_data_folder_and_says_so(parity_weights, tmp_path, isolated_user_dirs):
    folder = tmp_path / "data"
    folder.mkdir()
    folder.chmod(0o777)
    started = ServerProcess(parity_weights, folder)
    try:
        assert folder.stat().st_mode & 0o777 == 0o755
        started.process.terminate()
        _, err = started.process.communicate(timeout=30)
    finally:
        started.stop()
    said = f"the folder {folder} for the connection file was writable by other users (mode 0777): made it 0755"
    assert f"warning: {said}" in err.splitlines()
    assert said in (isolated_user_dirs / ".local/state/inknhue/log/server.log").read_text()


def test_a_symlink_at_the_temporary_name_cannot_stop_or_redirect_the_write(tmp_path):
    """The temporary name was .server.json.PID: a dangling symlink there made the write raise
    FileExistsError (and a file there was unlinked). Now it is unpredictable."""
    from inknhue_krita.connection_file import read_connection_file, write_connection_file

    folder = tmp_path / "data"
    folder.mkdir()
    target = tmp_path / "elsewhere"
    (folder / f".server.json.{os.getpid()}").symlink_to(target)
    write_connection_file(folder / "server.json", fake_info())
    assert read_connection_file(folder / "server.json")["address"] == fake_info()["address"]
    assert not target.exists() and (folder / f".server.json.{os.getpid()}").is_symlink()
    assert sorted(p.name for p in folder.iterdir()) == [f".server.json.{os.getpid()}", "server.json"]


def test_a_second_server_on_one_connection_file_refuses_while_the_first_answers(parity_weights, tmp_path):
    first = ServerProcess(parity_weights, tmp_path)
    try:
        first.wait_until_ready()
        second = subprocess.Popen([str(INKNHUE), "serve", "--port", "0", "--weights", str(parity_weights), "--device",
                                   "cpu", "--connection-file", str(first.connection_file)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = second.communicate(timeout=60)
        finally:
            if second.poll() is None:
                second.kill()
                second.communicate()
        assert second.returncode == 1 and "listening" not in out, err
        assert (f"inknhue: error: another backend is running with the connection file {first.connection_file} "
                f"(pid {first.process.pid}, tcp://127.0.0.1:") in err
        assert "give this one its own --connection-file" in err
        assert read_connection_file(first.connection_file)["token"] == first.token  # the first's, untouched
        with first.client() as client:
            assert client.ping() >= 0  # answered
    finally:
        first.stop()
    assert not first.connection_file.exists()

    gone = ServerProcess(parity_weights, tmp_path)  # killed outright: its file stays behind, stale
    gone.process.kill()
    gone.process.wait()
    gone.stop()
    assert first.connection_file.exists()
    after = ServerProcess(parity_weights, tmp_path)
    try:
        assert read_connection_file(after.connection_file)["pid"] == after.process.pid
        with after.client() as client:
            assert client.ping() >= 0  # answered
    finally:
        after.stop()


# --- issue 23, finding 8: SIGTERM while the models load --------------------------------------

SLOW_LOAD = """
import sys, time
import torch
from inknhue.weights import checkpoints

real = checkpoints.load_shading_generator

def slow(weights_dir):  # minutes of torch's C++, as reading a large checkpoint is
    x = torch.randn(256, 256)
    started = time.monotonic()
    while time.monotonic() - started < 300:
        x = torch.tanh(x @ x)
    return real(weights_dir)

checkpoints.load_shading_generator = slow
from inknhue import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def test_sigterm_while_the_models_load_stops_the_backend_cleanly(parity_weights, tmp_path):
    """It used to abort: "terminate called without an active exception", exit status -6, and
    the connection file stayed."""
    script = tmp_path / "slow_serve.py"
    script.write_text(SLOW_LOAD)
    connection = tmp_path / "server.json"
    process = subprocess.Popen([sys.executable, str(script), "serve", "--port", "0", "--weights", str(parity_weights),
                                "--device", "cpu", "--connection-file", str(connection)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "listening on" in process.stdout.readline()
        info = read_connection_file(connection)
        with Client(info["address"], info["token"], curve=info["curve"], timeout=10) as client:
            deadline = time.monotonic() + 30
            while client.hello()["models"] != "loading" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert client.hello()["models"] == "loading"
        time.sleep(1.0)  # well inside torch
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert "terminate called" not in err and process.returncode == 0, (process.returncode, err)
    assert not connection.exists()


def test_sigterm_while_the_backend_starts_is_not_lost(parity_weights, tmp_path):
    """The backend looks at an earlier connection file before it binds (a ping of up to 3 s);
    a SIGTERM then was undone when the I/O loop was switched on, and the backend ran on."""
    listener = pysocket.create_server(("127.0.0.1", 0))  # takes the ping's connection, never answers it
    public, secret = zmq.curve_keypair()
    connection = tmp_path / "server.json"
    connection.write_text(json.dumps({  # a live pid (this one), an address that does not answer
        "address": f"tcp://127.0.0.1:{listener.getsockname()[1]}", "token": "t" * 64, "pid": os.getpid(),
        "curve": {"server_public": public.decode(), "public": public.decode(), "secret": secret.decode()}}))
    connection.chmod(0o600)
    process = subprocess.Popen([str(INKNHUE), "serve", "--port", "0", "--weights", str(parity_weights), "--device",
                                "cpu", "--connection-file", str(connection)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        listener.settimeout(60)
        peer, _ = listener.accept()  # the ping: the handlers are in place
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
        peer.close()
    finally:
        listener.close()
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, (out, err)
    assert not connection.exists()
