"""`upscale` on the backend (the docker's *Bring to page*): a colouring made at a lower
resolution brought to the page's size with the page's ink, by page/upscale.py's code, with
no network and no weights; every field checked, a wrong one `bad_input` naming it."""

import cv2
import numpy as np
import pytest
from servers import ServerProcess, array, raw

from inknhue.page.upscale import at_working_size, upscale, upscale_float
from inknhue_krita.client import ServerError


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    """A backend with an empty weights folder: an upscale needs none."""
    folder = tmp_path_factory.mktemp("upscale-server")
    (folder / "empty").mkdir()
    process = ServerProcess(folder / "empty", folder)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def inked():
    """A page of ink (frames, a circle, lettering) and a flat colouring of it at a quarter of its size."""
    page = np.full((480, 360), 255, np.uint8)
    cv2.rectangle(page, (10, 10), (350, 470), 0, 3)
    cv2.circle(page, (180, 240), 90, 0, 2)
    cv2.putText(page, "INK", (120, 120), cv2.FONT_HERSHEY_SIMPLEX, 1.5, 0, 3)
    small = np.full((120, 90, 3), (240, 220, 190), np.uint8)
    cv2.circle(small, (45, 60), 22, (200, 60, 60), -1)
    return np.dstack([page] * 3), small


def run(client, page, coloured, **options):
    events = []
    job = client.upscale(raw(page), raw(coloured), **options)
    header, image = client.wait(job, on_event=events.append, timeout=120)
    return job, header, image, events


def test_an_upscale_needs_no_weights_and_gives_what_the_command_gives(backend, inked):
    page, small = inked
    with backend.client() as client:
        assert not client.hello()["weights"]["present"]
        job, header, image, events = run(client, page, small, output={"channels": "RGB"})
    np.testing.assert_array_equal(array(image), upscale(page, small))
    assert header["ran"] == ["upscale"] and header["page_size"] == [360, 480] and header["working_size"] == [90, 120]
    assert [(e["stage"], e["seconds"] is None) for e in events] == [("upscale", True), ("upscale", False)]


def test_the_colour_layer_and_16_bit_results(backend, inked):
    page, small = inked
    with backend.client() as client:
        _, _, image, _ = run(client, page, small, output={"channels": "RGB", "layer": "colour", "dtype": "uint16"})
    expected = upscale_float(page, small, "colour")
    got = array(image).astype(np.float64) / 65535
    assert np.abs(got - expected).max() <= 1 / 65535 + 1e-6
    assert len(np.unique(array(image))) > 256  # not 8 bits widened


def test_a_colouring_scaled_up_to_the_page_is_read_at_max_size(backend, inked):
    """What an artist usually has: the colouring pasted and scaled up to the canvas, blurry."""
    page, small = inked
    blurry = cv2.resize(small, (360, 480), interpolation=cv2.INTER_CUBIC)
    with backend.client() as client:
        _, header, image, _ = run(client, page, blurry, max_size=128, output={"channels": "RGB"})
    np.testing.assert_array_equal(array(image), upscale(page, at_working_size(blurry, 128)))
    assert header["working_size"] == [128, 171]
    assert any("was read at 128x171 (Max size 128)" in w for w in header["warnings"])


def test_an_upscale_job_has_no_blend(backend, inked):
    page, small = inked
    with backend.client() as client:
        job, *_ = run(client, page, small)
        with pytest.raises(ServerError) as refused:
            client.blend(job, 0.5)
        assert refused.value.code == "bad_input" and "no colour ratio" in refused.value.message
        assert client.job_status(job)["provider"] == "upscale"


def test_a_cancelled_upscale_never_sends_its_result(backend):
    page = np.full((3200, 2400, 3), 255, np.uint8)
    page[::40] = 0
    coloured = np.full((800, 600, 3), 200, np.uint8)
    with backend.client() as client:
        first = client.upscale(raw(page), raw(coloured))
        second = client.upscale(raw(page), raw(coloured))
        client.cancel(second)  # queued behind the first, or running: either way no result
        client.cancel(first)
        for job in (first, second):
            with pytest.raises(ServerError) as stopped:
                client.wait(job, timeout=120)
            assert stopped.value.code == "cancelled"
        _, header, _, _ = run(client, page[:400, :300], coloured[:100, :75])  # and it carries on
        assert header["type"] == "result"


def test_a_selection_mask_becomes_the_results_alpha(backend, inked):
    page, small = inked
    mask = np.zeros(page.shape[:2], np.uint8)
    mask[100:300, 50:200], mask[100:300, 200:220] = 255, 100
    with backend.client() as client:
        _, _, image, _ = run(client, page, small, mask=raw(mask))
    rgba = array(image)
    np.testing.assert_array_equal(rgba[..., 3], mask)
    np.testing.assert_array_equal(rgba[..., :3], upscale(page, small))


def test_a_cancel_stops_an_upscale_between_row_bands():
    """The render polls its cancel a band at a time: a Cancel arriving mid-page stops it there."""
    from inknhue.errors import Cancelled
    page = np.full((640, 480, 3), 255, np.uint8)
    page[::20] = 0
    polls = []

    def cancelled():
        polls.append(1)
        return len(polls) > 3
    with pytest.raises(Cancelled):
        upscale_float(page, np.full((160, 120, 3), 200, np.uint8), cancelled=cancelled)
    assert len(polls) == 4  # stopped at the third band of twenty, not at the end


def test_on_a_gpu_backend_the_upscale_renders_on_the_device_as_the_cpu_does(inked):
    """The GPU twin (detail_gpu.py) is the path a CUDA or MPS backend takes; given the CPU as
    its device here, it gives the numpy reference's result within a level."""
    import torch
    page, small = inked
    for layer in ("full", "colour"):
        on_device = upscale_float(page, small, layer, device=torch.device("cpu"))
        assert np.abs(on_device - upscale_float(page, small, layer)).max() <= 1.5 / 255


def request(client, header, images):
    """A request as a peer may send it, past the client's own checks."""
    with pytest.raises(ServerError) as refused:
        client.request(header, images)
    return refused.value


@pytest.mark.parametrize("header, images, code, words", [
    ({"output": {"layer": "flats"}}, None, "bad_input", "'output.layer' of an upscale must be one of full, colour"),
    ({"output": {"layer": 3}}, None, "bad_input", "'output.layer' must be one of"),
    ({"output": {"size": "working"}}, None, "bad_input", "'output.size' of an upscale must be \"page\""),
    ({"output": {"size": [10, 10]}}, None, "bad_input", "'output.size' of an upscale"),
    ({"output": "page"}, None, "bad_input", "'output' must be an object"),
    ({"output": {"dtype": "int7"}}, None, "bad_input", "'output.dtype' must be one of"),
    ({"max_size": "768"}, None, "bad_input", "'max_size' must be an integer"),
    ({"max_size": True}, None, "bad_input", "'max_size' must be an integer"),
    ({"max_size": 10 ** 30}, None, "bad_input", "'max_size' must be an integer"),
    ({}, {"page"}, "bad_input", "needs the 'coloured' image"),
    ({}, {"coloured"}, "bad_input", "needs the 'page' image"),
    ({}, {"page", "coloured", "hints"}, "bad_input", "unexpected images: 'hints'"),
    ({}, "cropped", "bad_input", "does not have the page's shape"),
    ({}, "small mask", "bad_input", "the mask is 90x120 but the page is 360x480"),
    ({}, "rgb mask", "bad_input", "the mask must be one channel (L), got RGB"),
])
def test_hostile_fields_are_refused_naming_them(backend, inked, header, images, code, words):
    page, small = inked
    given = {"page": raw(page), "coloured": raw(small), "hints": raw(small)}
    if images == "cropped":
        given = {"page": raw(page), "coloured": raw(np.ascontiguousarray(small[:80]))}
    elif images == "small mask":
        given = {"page": raw(page), "coloured": raw(small), "mask": raw(np.zeros(small.shape[:2], np.uint8))}
    elif images == "rgb mask":
        given = {"page": raw(page), "coloured": raw(small), "mask": raw(page)}
    else:
        given = {name: given[name] for name in (images or {"page", "coloured"})}
    with backend.client() as client:
        refused = request(client, {"type": "upscale", **header}, given)
        assert refused.code == code and words in refused.message, refused.message
        assert client.ping() < 5
