"""`inknhue serve` and its client, against real server processes with the parity weights."""

import json
import math
import signal
import stat
import time

import numpy as np
import pytest
import zmq
from drawing import Page
from servers import ServerProcess, array, curve_socket, in_process_server, raw

from inknhue.engine.pipeline import Engine
from inknhue.rough import RoughRequest, get_provider
from inknhue_krita import paths, protocol
from inknhue_krita.client import Client, ServerError

RED, BLUE, GREEN = (220, 40, 40), (40, 60, 220), (40, 170, 60)


@pytest.fixture(scope="module")
def server(parity_weights, tmp_path_factory):
    process = ServerProcess(parity_weights, tmp_path_factory.mktemp("server"))
    process.wait_until_ready()
    yield process
    process.stop()


@pytest.fixture
def client(server):
    with server.client() as c:
        yield c


def drawn_page(width=200, height=300, colour=RED):
    page = Page(width, height).rectangle(10, 10, width - 10, height - 10).circle(width // 2, height // 2, 50)
    page.stroke([(width // 2 - 10, height // 2), (width // 2 + 10, height // 2)], colour)
    page.stroke([(20, 20), (40, 30)], BLUE)
    return page


def engine_output(parity_weights, page, ratio, max_size=64, provider="flats"):
    engine = Engine(parity_weights, "cpu")
    request = RoughRequest(page=page.rgb, hints=page.hints)
    return engine.colorize(page.rgb, get_provider(provider), request, max_size=max_size, ratio=ratio)


def run_job(client, page, ratio=0.8, **options):
    events = []
    job = client.colorize(raw(page.rgb), raw(page.hints), ratio=ratio, max_size=options.pop("max_size", 64),
                          **options)
    header, image = client.wait(job, on_event=events.append, timeout=120)
    return job, header, image, events


# --- the basics -------------------------------------------------------------------------------

def test_hello_describes_the_backend(client):
    hello = client.hello()
    assert hello["protocol"] == protocol.PROTOCOL
    assert hello["device"]["device"] == "cpu"
    assert hello["device"]["precision"] == "fast" and hello["device"]["precision_why"]  # what runs in bf16, why
    assert {p["name"] for p in hello["providers"]} == {"flats", "shader", "image"}
    assert hello["weights"]["present"] is True and hello["models"] == "ready"
    assert hello["limits"]["max_side"] == protocol.MAX_SIDE


def test_the_connection_file_is_private_and_names_the_address(server):
    info = json.loads(server.connection_file.read_text())
    assert info["address"] == server.address and info["address"].startswith("tcp://127.0.0.1:")
    assert len(info["token"]) == 64
    assert stat.S_IMODE(server.connection_file.stat().st_mode) == 0o600


def test_a_whole_job_reports_every_stage_and_returns_the_engines_result(client, parity_weights):
    page = drawn_page()
    job, header, image, events = run_job(client, page)
    finished = [e["stage"] for e in events if e["type"] == "progress" and e["seconds"] is not None]
    assert finished == ["rough", "shade", "condition", "encode", "decode", "blend"]
    assert header["page_size"] == [200, 300] and header["working_size"] == [64, 96]
    assert (image.width, image.height, image.channels) == (200, 300, "RGBA")
    expected = engine_output(parity_weights, page, 0.8).final(0.8, "page")
    np.testing.assert_array_equal(array(image)[..., :3], expected)
    assert (array(image)[..., 3] == 255).all()


def test_blend_at_several_ratios_equals_the_engine(client, parity_weights):
    page = drawn_page(colour=GREEN)
    job, *_ = run_job(client, page)
    reference = engine_output(parity_weights, page, 0.8)
    for ratio in (0.0, 0.3, 0.8, 1.0):
        blended = client.blend(job, ratio)
        np.testing.assert_array_equal(array(blended)[..., :3], reference.final(ratio, "page"))
    preview = client.blend(job, 0.5, size=[50, 75], channels="BGRA")
    assert (preview.width, preview.height, preview.channels) == (50, 75, "BGRA")


def test_the_colour_layer_for_under_the_ink_is_a_blend_away(client, parity_weights):
    page = drawn_page(210, 300, colour=GREEN)
    job, _, full, _ = run_job(client, page, output={"layer": "colour"})
    reference = engine_output(parity_weights, page, 0.8)
    np.testing.assert_array_equal(array(full)[..., :3], reference.final(0.8, "page", layer="colour"))
    again = client.blend(job, 0.3, layer="colour")
    np.testing.assert_array_equal(array(again)[..., :3], reference.final(0.3, "page", layer="colour"))
    assert "colour" in client.hello()["layers"]


def test_warnings_about_the_inputs_reach_the_client(client):
    page = Page(180, 240).rectangle(10, 10, 170, 230)  # no strokes on the hint layer
    _, header, _, events = run_job(client, page)
    assert any("hint layer is empty" in w for w in header["warnings"])
    within = [e for e in events if e["type"] == "progress" and e.get("fraction") is not None]
    assert all(0 <= e["fraction"] < 1 and 0 <= e["done"] <= 1 for e in within)


def test_16_bit_results_carry_more_than_8_bits(client, parity_weights):
    page = drawn_page(200, 310)
    job, _, image, _ = run_job(client, page, output={"dtype": "uint16", "channels": "RGB"})
    values = array(image)
    assert values.dtype == np.uint16 and (values % 257 != 0).any()
    expected = engine_output(parity_weights, page, 0.8).render(0.8, "page")
    assert np.abs(values / 65535.0 - expected).max() <= 1 / 65535


def test_a_hint_only_change_reruns_only_what_the_hints_change(client):
    page = drawn_page(190, 290, colour=(200, 100, 20))  # a page no other test sends
    before = client.status()["counters"]
    _, first, *_ = run_job(client, page)
    assert {"shade", "condition"} <= set(first["ran"])
    page.stroke([(30, 250), (60, 260)], GREEN)  # one more stroke, same page
    _, second, _, events = run_job(client, page)
    assert "shade" not in second["ran"] and "condition" not in second["ran"]
    assert {"rough", "encode", "decode"} <= set(second["ran"])
    assert {e["stage"] for e in events if e.get("cached")} == {"shade", "condition"}
    _, third, *_ = run_job(client, page, ratio=0.3)  # same inputs, new ratio: only a blend
    assert third["ran"] == ["blend"]
    after = client.status()["counters"]
    assert after["shade"] - before.get("shade", 0) == 1
    assert after["rough"] - before.get("rough", 0) == 2


def test_two_clients_at_once_get_their_own_results(server, parity_weights):
    pages = [drawn_page(colour=RED), drawn_page(220, 300, colour=BLUE)]
    with server.client() as first, server.client() as second:
        jobs = [c.colorize(raw(p.rgb), raw(p.hints), max_size=64) for c, p in zip((first, second), pages, strict=True)]
        results = [c.wait(job, timeout=60) for c, job in zip((first, second), jobs, strict=True)]
    for page, (_, image) in zip(pages, results, strict=True):
        np.testing.assert_array_equal(array(image)[..., :3],
                                      engine_output(parity_weights, page, 0.8).final(0.8, "page"))


def test_a_wrong_token_is_refused(server):
    with Client(server.address, "0" * 64, timeout=5, curve=server.curve) as stranger:
        with pytest.raises(ServerError) as refused:
            stranger.hello()
    assert refused.value.code == "bad_signature"


def test_images_beyond_the_limits_are_refused(client):
    huge = protocol.RawImage(20000, 10, "RGBA", b"")
    with pytest.raises(ServerError) as refused:
        client.colorize(huge, huge)
    assert refused.value.code == "too_large" and "16384 px a side" in refused.value.message


def test_bad_options_are_refused_with_a_reason(client):
    page = drawn_page()
    for options, code, words in [
        ({"ratio": float("nan")}, "bad_input", "'ratio' must be a number between 0 and 1"),
        ({"ratio": 1.5}, "bad_input", "between 0 and 1"),
        ({"max_size": 100}, "bad_input", "multiple of 32"),
        ({"provider": "magic"}, "bad_input", "unknown provider"),
        ({"provider": "image"}, "bad_input", "needs the 'rough' image"),
        ({"transfer": True}, "bad_input", "needs the 'reference' image"),
    ]:
        with pytest.raises(ServerError) as refused:
            client.colorize(raw(page.rgb), raw(page.hints), **options)
        assert refused.value.code == code and words in refused.value.message


def test_hints_of_another_size_are_refused(client):
    page = drawn_page()
    with pytest.raises(ServerError, match="the hints are 100x300 but the page is 200x300"):
        client.colorize(raw(page.rgb), raw(page.hints[:, :100]))


# --- long jobs: cancel, and a server that dies ------------------------------------------------

def slow_page():
    page = Page(1024, 1536).rectangle(20, 20, 1000, 1500)
    page.stroke([(100, 100), (200, 200)], RED)
    return page


def wait_for_stage(client, job, stage, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = client.next_event(1.0)
        if message and message[0].get("job") == job and message[0].get("stage") == stage:
            return
    raise TimeoutError(stage)


def test_cancel_stops_a_running_job_and_the_server_carries_on(client):
    page = slow_page()
    job = client.colorize(raw(page.rgb), raw(page.hints), max_size=1024)
    wait_for_stage(client, job, "shade")
    asked = time.monotonic()
    client.cancel(job)
    with pytest.raises(ServerError) as stopped:
        client.wait(job, timeout=60)
    assert stopped.value.code == "cancelled"
    assert time.monotonic() - asked < 5  # within a layer, not at the end of the stage
    job, header, *_ = run_job(client, drawn_page())
    assert header["type"] == "result"


def test_a_dead_server_is_reported_within_the_timeout(parity_weights, tmp_path):
    doomed = ServerProcess(parity_weights, tmp_path)
    try:
        doomed.wait_until_ready()
        with doomed.client(timeout=2.0) as client:
            page = slow_page()
            job = client.colorize(raw(page.rgb), raw(page.hints), max_size=1024)
            wait_for_stage(client, job, "shade")
            doomed.process.send_signal(signal.SIGKILL)
            started = time.monotonic()
            with pytest.raises(ServerError) as lost:
                client.wait(job)
            assert lost.value.code in ("timeout", "unavailable")
            assert time.monotonic() - started < 6
    finally:
        doomed.stop()


def test_no_server_is_an_error_in_seconds(tmp_path):
    server_public, _ = zmq.curve_keypair()
    public, secret = zmq.curve_keypair()
    curve = {"server_public": server_public.decode(), "public": public.decode(), "secret": secret.decode()}
    with Client("tcp://127.0.0.1:9", "0" * 64, timeout=1.0, curve=curve) as client:
        started = time.monotonic()
        with pytest.raises(ServerError) as lost:
            client.hello()
        assert lost.value.code in ("unavailable", "timeout")
        assert time.monotonic() - started < 4


def test_auto_without_a_connection_file_says_to_start_the_backend(isolated_user_dirs):
    with pytest.raises(ServerError, match="no backend is running"):
        Client("auto")


# --- hostile input ----------------------------------------------------------------------------

def hostile_messages(key: bytes, rng: np.random.Generator):
    """A few hundred messages that break the protocol in every way we could think of."""
    def signed(header, buffers=()):
        body = [json.dumps(header).encode() if not isinstance(header, bytes) else header, *buffers]
        return [protocol.TAG, protocol.sign(key, body[0]), *body]

    def colorize(**fields):
        header = {"type": "colorize", "id": "x", "provider": "flats",
                  "images": [{"name": "page", "width": 4, "height": 4, "channels": "RGB"},
                             {"name": "hints", "width": 4, "height": 4, "channels": "RGBA"}]}
        buffers = fields.pop("buffers", [bytes(48), bytes(64)])
        header.update(fields)
        return signed(header, buffers)

    messages = []
    for _ in range(120):  # noise
        messages.append([rng.bytes(int(rng.integers(0, 64))) for _ in range(int(rng.integers(1, 6)))])
    for _ in range(40):  # right tag, forged signature
        messages.append([protocol.TAG, rng.bytes(64), json.dumps({"type": "hello", "id": "x"}).encode()])
    messages += [
        [b"inknhue/0", b"sig", b"{}"], [b"inknhue/99", b"sig", b"{}"], [b"not inknhue"],
        signed(b"not json"), signed(b"[1, 2]"), signed(b"\xff\xfe"), signed({"type": "hello"}),
        signed({"type": "hello", "id": 5}), signed({"type": "hello", "id": "x" * 500}),
        signed({"type": "launch_missiles", "id": "x"}), signed({"id": "x"}),
        signed({"type": "hello", "id": "x", "pad": "y" * 70000}),
        signed({"type": "blend", "id": "x", "job": "j-nope", "ratio": 0.5}),
        signed({"type": "cancel", "id": "x", "job": None}),
        signed({"type": "hello", "id": "x", "images": "many"}),
        signed({"type": "hello", "id": "x", "images": [{}]}, [b""]),
        colorize(buffers=[bytes(47), bytes(64)]),                   # short page
        colorize(buffers=[bytes(48), bytes(65)]),                   # long hints
        colorize(buffers=[bytes(48)]),                              # a frame missing
        colorize(buffers=[bytes(48), bytes(64), bytes(3)]),         # a frame too many
        colorize(ratio=float("nan")), colorize(ratio=float("inf")), colorize(ratio="0.5"), colorize(ratio=True),
        colorize(ratio=-0.01), colorize(max_size=-32), colorize(max_size=2 ** 40), colorize(max_size=64.5),
        colorize(provider=None), colorize(provider="../../etc/passwd"), colorize(output=[1]),
        colorize(output={"size": [0, 10]}), colorize(output={"channels": "CMYK"}),
        colorize(images=[{"name": "page", "width": -4, "height": 4, "channels": "RGB"},
                         {"name": "hints", "width": 4, "height": 4, "channels": "RGBA"}]),
        colorize(images=[{"name": "page", "width": "4", "height": 4, "channels": "RGB"},
                         {"name": "hints", "width": 4, "height": 4, "channels": "RGBA"}]),
        colorize(images=[{"name": "page", "width": 4, "height": 4, "channels": "RGB", "dtype": "int64"},
                         {"name": "hints", "width": 4, "height": 4, "channels": "RGBA"}]),
        colorize(images=[{"name": "page", "width": 4, "height": 4, "channels": "RGB"},
                         {"name": "page", "width": 4, "height": 4, "channels": "RGBA"}]),
        colorize(images=[{"name": "hints", "width": 4, "height": 4, "channels": "RGB"},
                         {"name": "evil", "width": 4, "height": 4, "channels": "RGBA"}]),
        colorize(images=[{"name": "page", "width": 100000, "height": 100000, "channels": "RGB"},
                         {"name": "hints", "width": 4, "height": 4, "channels": "RGBA"}]),
        colorize(images=[{"name": "page", "width": 4, "height": 4, "channels": "RGB"},
                         {"name": "hints", "width": 4, "height": 4, "channels": "RGB"}], buffers=[bytes(48)] * 2),
    ]
    return messages


def test_hostile_messages_get_errors_and_the_server_keeps_working(server, client, parity_weights):
    socket = curve_socket(server.curve)
    socket.connect(server.address)
    key = server.token.encode()
    messages = hostile_messages(key, np.random.default_rng(7))
    assert len(messages) >= 200
    codes = []
    try:
        for frames in messages:
            socket.send_multipart(frames)
            assert socket.poll(5000), f"no answer to {frames[:3]!r}"
            header, _ = protocol.unpack(key, socket.recv_multipart())
            assert header["type"] == "error", header
            assert header["code"] and header["message"]
            codes.append(header["code"])
    finally:
        socket.close()
    assert {"bad_message", "bad_signature", "bad_version", "unknown_type", "bad_input", "too_large",
            "unknown_job"} <= set(codes)
    page = drawn_page()
    _, header, image, _ = run_job(client, page)
    np.testing.assert_array_equal(array(image)[..., :3],
                                  engine_output(parity_weights, page, 0.8).final(0.8, "page"))


# --- the server in this process, for faults we inject -----------------------------------------

@pytest.fixture
def local_server(parity_weights, tmp_path):
    with in_process_server(parity_weights, tmp_path / "server.json") as server:
        yield server


def test_out_of_memory_is_a_clear_error_and_the_server_stays_up(local_server):
    import torch

    original = local_server.engine.decode

    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.00 GiB")

    local_server.engine.decode = exhausted
    with Client(local_server.address, local_server.token, timeout=10, curve=local_server.curve) as client:
        page = drawn_page()
        job = client.colorize(raw(page.rgb), raw(page.hints), max_size=128)
        with pytest.raises(ServerError) as failed:
            client.wait(job, timeout=60)
        assert failed.value.code == "device" and "try a smaller max size (e.g. 64)" in failed.value.message
        job = client.colorize(raw(page.rgb), raw(page.hints), max_size=64)
        with pytest.raises(ServerError) as failed:
            client.wait(job, timeout=60)
        assert "smaller max size" not in failed.value.message  # 64 is the smallest: no advice to try it
        assert "too large for this device's memory" in failed.value.message
        local_server.engine.decode = original
        job = client.colorize(raw(page.rgb), raw(page.hints), max_size=64)
        assert client.wait(job, timeout=60)[0]["type"] == "result"


def test_shutdown_removes_the_connection_file(local_server):
    with Client(local_server.address, local_server.token, timeout=10, curve=local_server.curve) as client:
        client.shutdown()
    deadline = time.monotonic() + 10
    while local_server.connection_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not local_server.connection_file.exists()


def test_krita_float_pages_in_linear_light_are_converted(local_server):
    with Client(local_server.address, local_server.token, timeout=10, curve=local_server.curve) as client:
        page = drawn_page()
        linear = ((page.rgb / 255.0) ** 2.2).astype(np.float32)  # roughly what Krita's float docs hold
        rgba = np.dstack([linear, np.ones(linear.shape[:2], np.float32)])
        float_page = protocol.RawImage(200, 300, "RGBA", rgba.tobytes(), "float32", linear=True)
        job = client.colorize(float_page, raw(page.hints), max_size=64,
                              output={"channels": "BGRA", "dtype": "float32", "linear": True})
        header, image = client.wait(job, timeout=60)
        values = np.frombuffer(image.data, np.float32).reshape(300, 200, 4)
        assert image.dtype == "float32" and math.isclose(values[..., 3].min(), 1.0)


# --- the command line -------------------------------------------------------------------------

def test_serving_beyond_loopback_needs_curve_keys(cli, parity_weights):
    done = cli("serve", "--bind", "0.0.0.0", "--port", "0", "--weights", parity_weights)
    assert done.returncode == 1
    assert "only loopback is allowed without encryption" in done.stderr


def test_curve_encryption_on_request(cli, parity_weights, tmp_path):
    keys = tmp_path / "keys"
    assert cli("serve", "--make-curve-keys", keys).returncode == 0
    secured = ServerProcess(parity_weights, tmp_path, "--curve-dir", str(keys))
    try:
        import zmq.auth

        public, secret = zmq.auth.load_certificate(keys / "laptop.key_secret")
        server_public = json.loads(secured.connection_file.read_text())["curve"]["server_public"]
        curve = {"server_public": server_public, "public": public.decode(), "secret": secret.decode()}
        with secured.client(curve=curve) as client:
            assert client.hello()["protocol"] == protocol.PROTOCOL
        public, secret = zmq.curve_keypair()  # a key pair the server was not given
        stranger = dict(curve, public=public.decode(), secret=secret.decode())
        with secured.client(timeout=1.5, curve=stranger) as plain:
            with pytest.raises(ServerError):
                plain.hello()
    finally:
        secured.stop()


def test_colorize_through_a_running_server(server, cli, tmp_path, parity_weights):
    from PIL import Image

    page = drawn_page()
    Image.fromarray(page.grey).save(tmp_path / "page.png")
    Image.fromarray(page.hints, "RGBA").save(tmp_path / "hints.png")
    data = tmp_path / "data"  # a user data dir holding this server's connection file
    (data / "inknhue").mkdir(parents=True)
    (data / "inknhue" / "server.json").write_text(server.connection_file.read_text())
    expected = engine_output(parity_weights, page, 0.8).final(0.8, "page")
    for address in ("auto", server.address):
        done = cli("colorize", tmp_path / "page.png", "--hints", tmp_path / "hints.png", "-o", tmp_path / "out.png",
                   "--max-size", "64", "--server", address, env={"XDG_DATA_HOME": str(data)})
        assert done.returncode == 0, done.stderr
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), expected)


def test_colorize_with_no_server_running(cli, tmp_path):
    from PIL import Image

    page = drawn_page()
    Image.fromarray(page.grey).save(tmp_path / "page.png")
    Image.fromarray(page.hints, "RGBA").save(tmp_path / "hints.png")
    done = cli("colorize", tmp_path / "page.png", "--hints", tmp_path / "hints.png", "-o", tmp_path / "out.png",
               "--server", "auto")
    assert done.returncode == 1 and "no backend is running" in done.stderr


def test_the_connection_file_lives_in_the_user_data_dir_platformdirs_names(isolated_user_dirs):
    import platformdirs

    assert paths.connection_file() == platformdirs.user_data_path("inknhue", appauthor=False) / "server.json"


def test_the_server_logs_to_a_rotated_file_in_the_user_log_dir(cli, parity_weights, isolated_user_dirs):
    done = cli("serve", "--bind", "0.0.0.0", "--port", "0", "--weights", parity_weights)
    assert done.returncode == 1
    log = isolated_user_dirs / ".local/state/inknhue/log/server.log"
    assert "only loopback is allowed" in log.read_text()


def test_a_selection_mask_becomes_the_results_alpha(client):
    page = drawn_page()
    mask = np.zeros((300, 200, 1), np.uint8)
    mask[50:250, 40:160] = 255
    job = client.colorize(raw(page.rgb), raw(page.hints), max_size=64, output={"channels": "BGRA"}, mask=raw(mask))
    header, image = client.wait(job, timeout=60)
    np.testing.assert_array_equal(array(image)[..., 3], mask[..., 0])
    preview = client.blend(job, 0.2, size=[100, 150], channels="BGRA")
    assert array(preview)[75, 50, 3] == 255 and array(preview)[5, 5, 3] == 0
