"""The run's flow (plugin/inknhue_krita/controller.py) without widgets: a fake view records
what the docker would show, a fake backend records what would go out and answers by hand."""

import krita
import numpy as np
import pytest

from inknhue_krita.controller import Choices, Controllers
from inknhue_krita.logic import HINT_LAYER, RESULT_LAYER
from inknhue_krita.preview import KNOTS
from inknhue_krita.protocol import RawImage


class View:
    def __init__(self):
        self.said, self.progress, self.stage, self.shown, self.conversion = [], None, None, 0, None
        self.running = self.cancellable = False
        self.queued = []

    def say(self, text):
        self.said.append(text)

    def show_progress(self, value=None, stage=None):
        self.progress = value if value is not None else self.progress
        self.stage = stage if stage is not None else self.stage

    def job_running(self, running, cancellable=False):
        self.running, self.cancellable = running, cancellable

    def result_shown(self):
        self.shown += 1

    def offer_conversion(self, visible):
        self.conversion = visible

    def live_failed(self, reason):
        self.said.append(reason)

    def later(self, fn):
        self.queued.append(fn)


class Backend:
    def __init__(self):
        self.hello = {"device": {"device": "cpu", "name": "cpu"}}
        self.connected = True
        self.sent = []  # (header, images, callback)

    def request(self, header, images=None, callback=None, timeout=0.0):
        self.sent.append((header, images, callback))
        return f"request-{len(self.sent)}"


@pytest.fixture
def setup():
    krita.application()
    app = krita.Krita.instance()
    doc = app.createDocument(40, 30, "page", "RGBA", "U8", "", 300.0)
    ink = doc.createNode("ink", "paintlayer")
    ink.pixels[...] = 255
    doc.rootNode().addChildNode(ink, doc.topLevelNodes()[-1])
    hints = doc.createNode(HINT_LAYER, "paintlayer")
    hints.pixels[10:14, 10:20] = (40, 40, 220, 255)
    doc.rootNode().addChildNode(hints, ink)
    doc.setActiveNode(ink)
    view, backend = View(), Backend()
    choices = Choices(provider="flats", max_size=64, ratio=0.5)
    yield Controllers(backend, view, lambda: choices), doc, view, backend
    app.close(doc)


def result_image(doc, colour=(10, 200, 30)):
    pixels = np.zeros((doc.height(), doc.width(), 4), np.uint8)
    pixels[...] = (*colour, 255)
    return {"result": RawImage(doc.width(), doc.height(), "BGRA", pixels.tobytes())}


def layer(doc, name):
    return next((n for n in doc.topLevelNodes() if n.name() == name), None)


def settle(view):
    """Run what the controller left for Qt's next turns (view.later), as the event loop would."""
    while view.queued:
        view.queued.pop(0)()


def test_a_run_sends_the_page_and_hints_as_the_choices_say_and_writes_its_result(setup):
    controllers, doc, view, backend = setup
    assert controllers.of(doc).start(Choices(provider="flats", max_size=96, ratio=0.3, fill_all=True))
    settle(view)  # the page read, a band a turn of Qt's event loop
    header, images, accepted = backend.sent[0]
    assert header["type"] == "colorize" and header["max_size"] == 96 and header["ratio"] == 0.3
    assert header["fill_all"] and header["provider"] == "flats" and set(images) == {"page", "hints"}
    assert view.running and view.cancellable and view.stage == "Sending the page…"
    assert controllers.running is not None and layer(doc, RESULT_LAYER) is None

    accepted({"type": "accepted", "job": "j1"}, None)
    assert view.cancellable and view.stage == "Starting…"
    controllers.on_event({"type": "progress", "job": "j1", "stage": "shade", "index": 2, "total": 6,
                          "seconds": None}, None)
    assert 0 < view.progress < 100 and "Shading" in view.stage
    controllers.on_event({"type": "result", "job": "j1", "seconds": 1.5, "ran": ["rough", "shade", "decode"],
                          "timings": {"shade": 0.5}}, result_image(doc))
    settle(view)  # the result written, a band a turn
    written = layer(doc, RESULT_LAYER)
    assert written is not None and tuple(written.pixels[5, 5]) == (10, 200, 30, 255)
    assert controllers.running is None and not view.running and view.shown == 1
    assert view.progress == 100 and view.stage.startswith("Done in 1.5 s")
    assert controllers.rerun_s is not None  # measured on this job


def test_a_reference_layer_deleted_since_it_was_chosen_is_said_and_the_run_goes_on_without_it(setup):
    controllers, doc, view, backend = setup
    assert controllers.of(doc).start(Choices(provider="flats", max_size=64, ratio=0.5, reference="layer:gone"))
    settle(view)
    header, images, _ = backend.sent[0]
    assert set(images) == {"page", "hints"} and not header["transfer"]
    assert view.said[-1] == "The reference layer is gone; colorizing without it."


def test_a_job_cancelled_before_it_was_accepted_is_stopped_and_its_result_never_written(setup):
    controllers, doc, view, backend = setup
    controllers.of(doc).start(controllers.choices())
    settle(view)
    controllers.cancel()
    assert view.stage == "Cancelling…"
    backend.sent[0][2]({"type": "accepted", "job": "j2"}, None)
    assert backend.sent[-1][0] == {"type": "cancel", "job": "j2"}
    controllers.on_event({"type": "result", "job": "j2", "ran": []}, result_image(doc))
    assert layer(doc, RESULT_LAYER) is None and controllers.running is None
    assert view.said[-1] == "Cancelled."


def test_a_refused_job_ends_with_the_backends_message(setup):
    controllers, doc, view, backend = setup
    controllers.of(doc).start(controllers.choices())
    settle(view)
    backend.sent[0][2]({"type": "error", "message": "max size too large"}, None)
    assert controllers.running is None and view.said[-1] == "max size too large" and not view.running


def test_without_a_hint_layer_nothing_is_sent_and_the_artist_is_told_why(setup):
    controllers, doc, view, backend = setup
    layer(doc, HINT_LAYER).remove()
    assert not controllers.of(doc).start(controllers.choices())
    assert backend.sent == [] and "Add a hint layer" in view.said[-1]


def test_a_greyscale_page_is_refused_with_the_conversion_offered(setup):
    controllers, doc, view, backend = setup
    doc.setColorSpace("GRAYA", "U8", "")
    assert not controllers.of(doc).start(controllers.choices())
    assert backend.sent == [] and view.conversion is True


def test_losing_the_backend_ends_the_job_in_flight_with_the_reason(setup):
    controllers, doc, view, backend = setup
    controllers.of(doc).start(controllers.choices())
    settle(view)
    controllers.backend_lost("the backend process ended")
    assert controllers.running is None and "Lost the backend during the job" in view.said[-1]


def test_the_slider_blends_the_result_shown_one_request_at_a_time(setup):
    controllers, doc, view, backend = setup
    controllers.of(doc).start(controllers.choices())
    settle(view)
    backend.sent[0][2]({"type": "accepted", "job": "j3"}, None)
    controllers.on_event({"type": "result", "job": "j3", "ran": []}, result_image(doc))
    settle(view)  # the result written, a band a turn
    controller = controllers.of(doc)
    controller.blend(0.2, final=False)
    controller.blend(0.4, final=False)  # waits for the first
    controller.blend(0.9, final=True)
    knots = [h["ratio"] for h, _, _ in backend.sent if h["type"] == "blend" and h["ratio"] in KNOTS]
    assert knots == list(KNOTS)  # the drag's preview asked for once (preview.py)
    blends = [h for h, _, _ in backend.sent if h["type"] == "blend" and h["ratio"] not in KNOTS]
    assert [b["ratio"] for b in blends] == [0.2]
    backend.sent[-1][2]({"type": "blend"}, result_image(doc, (1, 2, 3)))
    blends = [h for h, _, _ in backend.sent if h["type"] == "blend" and h["ratio"] not in KNOTS]
    assert [b["ratio"] for b in blends] == [0.2, 0.9] and blends[-1]["size"] == "page"  # the final one, whole
    assert tuple(layer(doc, RESULT_LAYER).pixels[0, 0]) == (1, 2, 3, 255)


def test_live_starts_a_run_when_the_hints_change_and_rest(setup):
    controllers, doc, view, backend = setup
    controllers.live.grace = 0.0
    controllers.live_on()
    controllers.live_tick()  # the first look takes the hints as they are
    assert backend.sent == []
    layer(doc, HINT_LAYER).pixels[20:22, 5:9] = (220, 40, 40, 255)
    controllers.live_tick()  # changed
    controllers.live_tick()  # and still: a run
    settle(view)
    assert len(backend.sent) == 1 and controllers.running.live
    controllers.live_off()
    assert controllers.running.cancelled  # turning Live off stops its run


def test_a_selection_box_goes_out_at_the_pages_working_scale(setup):
    controllers, doc, view, backend = setup  # a 40x30 page: at Max size 64 it is worked at its size
    selection = krita.Selection(40, 30)
    selection.select(4, 4, 20, 10, 255)
    doc.setSelection(selection)
    assert controllers.of(doc).start(Choices(provider="flats", max_size=64))
    settle(view)
    assert backend.sent[0][0]["max_size"] == 64
    big = krita.Krita.instance().createDocument(2480, 3508, "A4", "RGBA", "U8", "", 300.0)
    hints = big.createNode(HINT_LAYER, "paintlayer")
    big.rootNode().addChildNode(hints, None)
    selection = krita.Selection(2480, 3508)
    selection.select(800, 1200, 1240, 1754, 255)  # a quarter of the page
    big.setSelection(selection)
    controllers.running.finished()
    assert controllers.of(big).start(Choices(provider="flats", max_size=768))
    settle(view)
    header, images, _ = backend.sent[-1]
    assert header["max_size"] == 384 and images["page"].width == 1240  # half the page's short side
    krita.Krita.instance().close(big)


def test_a_job_waiting_for_the_networks_to_load_says_so(setup):
    controllers, doc, view, backend = setup
    backend.hello["models"] = "loading"
    controllers.of(doc).start(controllers.choices())
    settle(view)
    backend.sent[0][2]({"type": "accepted", "job": "j9", "position": 0}, None)
    assert "the networks are loading" in view.stage


def test_the_time_left_counts_down_between_the_backends_events(setup, monkeypatch):
    controllers, doc, view, backend = setup
    import inknhue_krita.controller as controller_module

    now = [100.0]
    monkeypatch.setattr(controller_module.time, "monotonic", lambda: now[0])
    controllers.of(doc).start(controllers.choices())
    settle(view)
    backend.sent[0][2]({"type": "accepted", "job": "j8"}, None)
    controllers.on_event({"type": "progress", "job": "j8", "stage": "blend", "index": 6, "total": 6,
                          "seconds": None, "eta": 40.0}, None)
    assert view.stage.endswith("about 40 s left")
    now[0] += 20.0  # the backend makes the page-size output: no events
    controllers.tick()
    assert view.stage.endswith("about 20 s left")
    now[0] += 25.0  # past the estimate, still no word: no "few seconds" that last
    controllers.tick()
    assert view.stage.endswith("finishing…")


def test_the_first_estimate_stands_on_the_backends_calibration_and_says_so(setup):
    controllers, doc, view, backend = setup
    controllers.of(doc).start(controllers.choices())
    settle(view)
    backend.sent[0][2]({"type": "accepted", "job": "j7"}, None)
    # the job's first event, before any stage here was timed by a job: from the calibration
    controllers.on_event({"type": "progress", "job": "j7", "stage": "rough", "index": 1, "total": 6,
                          "seconds": None, "eta": 130.0, "eta_from": "calibration"}, None)
    assert view.stage == "1/6 Rough colours · roughly 2 min left"
    controllers.on_event({"type": "progress", "job": "j7", "stage": "shade", "index": 2, "total": 6,
                          "seconds": None, "fraction": 0.5, "eta": 40.0, "eta_from": "measured"}, None)
    assert view.stage == "2/6 Shading 50% · about 40 s left"


@pytest.fixture
def a4(setup, monkeypatch):
    """An A4 page at 300 dpi, its page and hints read one band a Qt turn (STEP_S at 0)."""
    import inknhue_krita.controller as controller_module

    controllers, _, view, backend = setup
    monkeypatch.setattr(controller_module, "STEP_S", 0.0)
    doc = krita.Krita.instance().createDocument(2480, 3508, "A4", "RGBA", "U8", "", 300.0)
    hints = doc.createNode(HINT_LAYER, "paintlayer")
    hints.pixels[100:140, 100:400] = (40, 40, 220, 255)
    doc.rootNode().addChildNode(hints, doc.topLevelNodes()[-1])
    doc.setActiveNode(doc.topLevelNodes()[0])
    yield controllers, doc, view, backend
    if doc in krita.Krita.instance().documents():
        krita.Krita.instance().close(doc)


def test_the_page_and_hints_are_read_a_band_a_turn_as_they_were_at_the_click(a4):
    controllers, doc, view, backend = a4
    hints = layer(doc, HINT_LAYER)
    hints.setVisible(False)  # the page as the artist sees it, without the plugin's layers
    page_then = bytes(doc.pixelData(0, 0, 2480, 3508))
    hints.setVisible(True)
    hints_then = hints.pixels.tobytes()
    assert controllers.of(doc).start(Choices(provider="flats"))
    assert backend.sent == [] and view.stage == "Reading the page…" and view.cancellable
    turns = 0
    while view.queued:  # the artist paints on, page and hints, between the bands
        assert hints.visible()  # the artist's canvas never loses the hints for the read
        layer(doc, "Background").pixels[turns * 200:turns * 200 + 50] = (0, 0, 0, 255)
        hints.pixels[turns * 200:turns * 200 + 50, :50] = (220, 40, 40, 255)
        view.queued.pop(0)()
        turns += 1
    bands = -(-3508 // ((2 << 20) // (2480 * 4)))  # slices.py's bands of the page
    assert turns >= 2 * bands - 1  # the page's bands and the hints' each on a turn of their own
    header, images, _ = backend.sent[0]
    assert bytes(images["page"].data) == page_then and bytes(images["hints"].data) == hints_then
    assert view.stage == "Sending the page…"
    assert all(copy.closed for copy in krita.Krita.instance().clones)


def test_cancel_while_the_page_is_read_sends_nothing(a4):
    controllers, doc, view, backend = a4
    controllers.of(doc).start(Choices(provider="flats"))
    view.queued.pop(0)()  # a band or two read
    controllers.cancel()
    settle(view)
    assert backend.sent == [] and controllers.running is None and not view.running
    assert view.said[-1] == "Cancelled."
    assert all(copy.closed for copy in krita.Krita.instance().clones)
    assert controllers.of(doc).start(Choices(provider="flats"))  # and the next Colorize goes out
    settle(view)
    assert backend.sent[0][0]["type"] == "colorize"


def test_a_document_closed_while_its_page_is_read_sends_nothing(a4):
    controllers, doc, view, backend = a4
    controllers.of(doc).start(Choices(provider="flats"))
    krita.Krita.instance().close(doc)
    settle(view)
    assert backend.sent == [] and controllers.running is None and "closed" in view.said[-1]
    assert all(copy.closed for copy in krita.Krita.instance().clones)
