"""The docker against a fake `krita` and a real backend that the plugin starts itself."""

import json
import os
import sys
import time
from pathlib import Path

import krita
import numpy as np
import pytest
from drawing import Page
from parity import write_released_layout

from inknhue.engine.pipeline import Engine
from inknhue.rough import RoughRequest, get_provider
from inknhue_krita import preview
from inknhue_krita.qt import Qt

RED, BLUE = (220, 40, 40), (40, 60, 220)
INKNHUE = Path(sys.executable).parent / "inknhue"


def pump(until, timeout=60.0):
    app = krita.application()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.processEvents()
        if until():
            return
        time.sleep(0.01)
    raise TimeoutError(f"timed out waiting for {until}")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_released_layout(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, weights):
    """A user data dir with the installer's configuration, as the plugin reads it."""
    data = tmp_path_factory.mktemp("data")
    os.environ["XDG_DATA_HOME"] = str(data)
    (data / "inknhue").mkdir()
    (data / "inknhue" / "plugin.json").write_text(json.dumps(
        {"version": 1, "backend": {"command": [str(INKNHUE), "serve"], "weights": str(weights), "device": "cpu"}}))
    yield data
    from inknhue_krita.docker import stop_backend

    stop_backend()


@pytest.fixture
def docker(data_dir):
    krita.application()
    app = krita.Krita.instance()
    app.settings.clear()  # each test starts from the defaults
    app.writeSetting("inknhue", "max_size", "64")
    from inknhue_krita.docker import InknhueDocker

    widget = InknhueDocker()
    pump(lambda: widget.backend.state in ("connected", "error", "not_installed"), timeout=90)
    assert widget.backend.state == "connected", widget.status.text()
    yield widget
    widget.live_switch.setChecked(False)  # its timer would go on looking at the next test's page
    widget.deleteLater()


def new_document(page: Page, depth="U8", model="RGBA"):
    app = krita.Krita.instance()
    doc = app.createDocument(page.grey.shape[1], page.grey.shape[0], "page", model, depth, "", 300.0)
    layer = doc.createNode("ink", "paintlayer")
    bgra = np.dstack([page.grey, page.grey, page.grey, np.full_like(page.grey, 255)])
    scale = {"U8": 1, "U16": 257}.get(depth)
    layer.pixels[...] = bgra.astype(layer.pixels.dtype) * scale if scale else bgra / 255.0
    doc.rootNode().addChildNode(layer, doc.topLevelNodes()[-1])
    doc.setActiveNode(layer)
    return doc, layer


def drawn(scale: int = 1):
    """The test page (120 x 180; `scale` times that for a run slow enough to be caught in flight)."""
    k = scale
    page = Page(120 * k, 180 * k).rectangle(5, 5, 120 * k - 5, 180 * k - 5).circle(60 * k, 90 * k, 35 * k)
    page.stroke([(50 * k, 85 * k), (70 * k, 95 * k)], RED).stroke([(12 * k, 12 * k), (30 * k, 20 * k)], BLUE)
    return page


def paint_hints(docker, doc, page):
    docker.add_hints.click()
    hints = next(n for n in doc.topLevelNodes() if n.name() == "inkn'hue hints")
    hints.pixels[...] = page.hints[..., [2, 1, 0, 3]]
    return hints


def expected(weights, page, ratio):
    engine = Engine(weights, "cpu")
    result = engine.colorize(page.rgb, get_provider("flats"), RoughRequest(page=page.rgb, hints=page.hints),
                             max_size=64, ratio=ratio)
    return result


def result_layers(doc):
    return [n for n in doc.topLevelNodes() if n.name().startswith("inkn'hue colour")]


def run_colorize(docker):
    docker.colorize_button.click()
    assert docker.running is not None, docker.message.text()
    pump(lambda: docker.running is None, timeout=90)


def colorize(docker, doc):
    """Press Colorize and wait for the job; returns the layer that shows the result."""
    run_colorize(docker)
    shown = docker.sessions.of(doc).shown
    assert shown is not None, docker.message.text()
    return next(n for n in doc.topLevelNodes() if n.uniqueId().toString() == shown.layer)


def test_the_panel_shows_the_backend_and_its_providers(docker):
    assert "connected" in docker.status.text()
    offered = [docker.provider.itemData(i) for i in range(docker.provider.count())
               if docker.provider.model().item(i).isEnabled()]
    assert offered == ["flats", "shader", "image"]  # no Style2Paints networks in the test weights


def test_unavailable_providers_are_shown_greyed_out_with_the_reason(docker):
    hello = dict(docker.backend.hello)
    hello["providers"] = [{"name": "flats", "description": "strokes into regions", "needs_weights": False}]
    hello["unavailable_providers"] = [{"name": "style2paints", "description": "Style2Paints V4.5",
                                       "reason": "its networks are missing: run the download"}]
    docker.provider.setCurrentIndex(docker.provider.findData("flats"))
    docker._on_hello(hello)
    assert [docker.provider.itemData(i) for i in range(docker.provider.count())] == ["flats", "style2paints"]
    assert not docker.provider.model().item(1).isEnabled()
    assert docker.provider.itemData(1, Qt.ItemDataRole.ToolTipRole) == \
        "Style2Paints V4.5\nNot available: its networks are missing: run the download"
    docker.provider.setCurrentIndex(1)  # e.g. the saved choice, from when it was available
    docker._on_hello(hello)
    assert docker.provider.currentData() == "flats"  # never a greyed-out choice
    docker._on_hello(docker.backend.hello)


def test_colorize_adds_a_colour_layer_and_leaves_the_artists_layers_alone(docker, weights):
    page = drawn()
    doc, ink = new_document(page)
    ink_before = ink.pixels.copy()
    hints = paint_hints(docker, doc, page)
    names = [n.name() for n in doc.topLevelNodes()]
    assert names == ["Background", "ink", "inkn'hue hints"]
    hints_before = hints.pixels.copy()
    layer = colorize(docker, doc)
    assert [n.name() for n in doc.topLevelNodes()] == ["Background", "ink", "inkn'hue colour", "inkn'hue hints"]
    want = expected(weights, page, 0.8).final(0.8, "page")
    np.testing.assert_array_equal(layer.pixels[..., [2, 1, 0]], want)
    assert (layer.pixels[..., 3] == 255).all()
    np.testing.assert_array_equal(ink.pixels, ink_before)
    np.testing.assert_array_equal(hints.pixels, hints_before)
    assert docker.progress.value() == 100


def test_the_ratio_slider_updates_the_layer_live_then_at_full_resolution(docker, weights):
    page = drawn()
    doc, _ = new_document(page)
    paint_hints(docker, doc, page)
    layer = colorize(docker, doc)
    reference = expected(weights, page, 0.8)
    docker.ratio.setSliderDown(True)
    writes = layer.writes
    docker.ratio.setValue(20)
    pump(lambda: layer.writes > writes and docker.throttle.in_flight is None)
    docker.ratio.setSliderDown(False)
    docker.ratio.sliderReleased.emit()
    writes = layer.writes
    pump(lambda: layer.writes > writes and docker.throttle.in_flight is None)
    np.testing.assert_array_equal(layer.pixels[..., [2, 1, 0]], reference.final(0.2, "page"))
    assert krita.Krita.instance().readSetting("inknhue", "ratio", "") == "0.2"


def test_a_selection_limits_the_result_to_it(docker, weights):
    page = drawn()
    doc, _ = new_document(page)
    paint_hints(docker, doc, page)
    selection = krita.Selection(120, 180)
    selection.select(20, 30, 80, 100, 255)
    doc.setSelection(selection)
    layer = colorize(docker, doc)
    inside = layer.pixels[30:130, 20:100]
    assert (inside[..., 3] == 255).all() and (layer.pixels[:30, :, 3] == 0).all()
    assert (layer.pixels[:, :20] == 0).all()  # nothing written outside the box
    crop = Page(80, 100)
    crop.grey, crop.hints = page.grey[30:130, 20:100].copy(), page.hints[30:130, 20:100].copy()
    np.testing.assert_array_equal(inside[..., [2, 1, 0]], expected(weights, crop, 0.8).final(0.8, "page"))


def test_a_selection_that_selects_nothing_colorizes_the_whole_page(docker, weights):
    page = drawn()
    doc, _ = new_document(page)
    paint_hints(docker, doc, page)
    doc.setSelection(krita.Selection(120, 180))  # selects nothing: as without a selection
    layer = colorize(docker, doc)
    assert (layer.pixels[..., 3] == 255).all()


def test_colorizing_again_updates_the_result_in_place_and_keep_makes_a_version(docker, weights):
    page = drawn()
    doc, _ = new_document(page)
    hints = paint_hints(docker, doc, page)
    layer = colorize(docker, doc)
    first = layer.pixels.copy()
    hints.pixels[150:160, 20:40] = (0, 200, 0, 255)
    page.hints[150:160, 20:40] = (0, 200, 0, 255)
    writes = layer.writes
    run_colorize(docker)
    assert "shading reused" in docker.stage.text()
    assert result_layers(doc) == [layer] and layer.writes > writes  # the same layer, new colours
    assert not np.array_equal(layer.pixels, first)
    np.testing.assert_array_equal(layer.pixels[..., [2, 1, 0]], expected(weights, page, 0.8).final(0.8, "page"))
    docker.keep_button.click()
    assert layer.name() == "inkn'hue colour kept" and "Kept" in docker.message.text()
    kept = layer.pixels.copy()
    hints.pixels[20:30, 80:100] = (200, 0, 200, 255)
    newer = colorize(docker, doc)
    assert newer is not layer and newer.name() == "inkn'hue colour"
    np.testing.assert_array_equal(layer.pixels, kept)  # a kept version is never touched again
    names = [n.name() for n in doc.topLevelNodes()]
    assert names.index("inkn'hue colour") > names.index("inkn'hue colour kept")  # the new one is seen


def test_a_greyscale_document_is_explained_and_converted_on_request(docker):
    page = drawn()
    doc, _ = new_document(page)
    doc._model = "GRAYA"
    docker.colorize_button.click()
    assert "greyscale" in docker.message.text() and not docker.convert.isHidden()
    docker.convert.click()
    assert doc.colorModel() == "RGBA" and docker.convert.isHidden()


def test_a_sixteen_bit_document_gets_a_sixteen_bit_result(docker, weights):
    page = drawn()
    doc, _ = new_document(page, depth="U16")
    paint_hints(docker, doc, page)
    hints = next(n for n in doc.topLevelNodes() if n.name() == "inkn'hue hints")
    hints.pixels[...] = page.hints[..., [2, 1, 0, 3]].astype(np.uint16) * 257
    layer = colorize(docker, doc)
    assert layer.pixels.dtype == np.uint16
    want = np.rint(expected(weights, page, 0.8).render(0.8, "page") * 65535).astype(np.uint16)
    np.testing.assert_array_equal(layer.pixels[..., [2, 1, 0]], want)
    assert (layer.pixels % 257 != 0).any()  # not 8 bits widened


@pytest.mark.parametrize("ink_opaque", [True, False])
def test_colour_under_the_ink_is_a_multiply_layer_beneath_the_line_art(docker, weights, ink_opaque):
    page = drawn()
    doc, ink = new_document(page)
    if not ink_opaque:  # line art on its own transparent layer over the white Background
        ink.pixels[..., 3] = 255 - page.grey
        ink.pixels[..., :3] = 0
    paint_hints(docker, doc, page)
    docker.output_layer.setCurrentIndex(docker.output_layer.findData("colour"))
    layer = colorize(docker, doc)
    assert layer.name() == "inkn'hue colour under ink" and layer.blendingMode() == "multiply"
    names = [n.name() for n in doc.topLevelNodes()]
    expected_stack = (["Background", "ink", layer.name()] if ink_opaque else ["Background", layer.name(), "ink"])
    assert names == expected_stack + ["inkn'hue hints"]
    result = expected(weights, page, 0.8)
    np.testing.assert_array_equal(layer.pixels[..., [2, 1, 0]], result.final(0.8, "page", layer="colour"))
    doc.topLevelNodes()[-1].setVisible(False)  # the canvas without the hints shows the coloured page
    canvas = np.frombuffer(bytes(doc.pixelData(0, 0, 120, 180)), np.uint8).reshape(180, 120, 4)
    assert np.abs(canvas[..., [2, 1, 0]].astype(int) - result.final(0.8, "page")).max() <= 2
    assert krita.Krita.instance().readSetting("inknhue", "output_layer", "") == "colour"
    docker.output_layer.setCurrentIndex(0)


def test_settings_persist_through_kritas_settings(docker):
    docker.fill_all.setChecked(True)
    docker.max_size.setValue(100)
    docker.max_size.editingFinished.emit()
    settings = krita.Krita.instance()
    assert settings.readSetting("inknhue", "fill_all", "") == "True"
    assert settings.readSetting("inknhue", "max_size", "") == "96"
    docker.fill_all.setChecked(False)


def test_without_an_installed_backend_the_panel_says_so(tmp_path, monkeypatch):
    from inknhue_krita.backend import Backend

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    backend = Backend()
    backend.connect_or_start()
    assert backend.state == "not_installed" and "run the inkn'hue installer" in backend.detail
    backend.stop()


def test_cancel_stops_a_long_job_and_says_so(docker):
    page = Page(1024, 1536).rectangle(20, 20, 1000, 1500).stroke([(100, 100), (200, 200)], RED)
    doc, _ = new_document(page)
    paint_hints(docker, doc, page)
    docker.max_size.setValue(1024)
    docker.colorize_button.click()
    pump(lambda: "Shading" in docker.stage.text(), timeout=60)
    assert docker.cancel_button.isEnabled()
    docker.cancel_button.click()
    pump(lambda: docker.job is None, timeout=30)
    assert docker.message.text() == "Cancelled." and result_layers(doc) == []
    assert docker.colorize_button.isEnabled()


def test_the_backend_the_plugin_starts_ends_with_the_plugin(docker):
    from inknhue_krita.backend import LEASE_S

    assert docker.backend.hello["lease"] == LEASE_S and docker.backend.owns_backend


def start_backend(weights, data, *extra):
    import subprocess

    process = subprocess.Popen([str(INKNHUE), "serve", "--port", "0", "--weights", str(weights), "--device", "cpu",
                                "--connection-file", str(data / "inknhue" / "server.json"), *extra],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert "listening on" in process.stdout.readline()
    return process


@pytest.mark.parametrize("leased", [True, False])
def test_a_backend_left_by_a_killed_krita_is_adopted_and_stopped_at_exit(weights, tmp_path, monkeypatch, leased):
    from inknhue_krita.backend import Backend

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    orphan = start_backend(weights, tmp_path, *(["--lease", "60"] if leased else []))
    try:
        backend = Backend()
        backend.connect_or_start()
        pump(lambda: backend.state in ("connected", "error"), timeout=30)
        assert backend.state == "connected" and backend.owns_backend is leased
        backend.stop()
        if leased:  # adopted: ours to stop
            assert orphan.wait(timeout=15) == 0
        else:  # started by hand: not ours
            time.sleep(1)
            assert orphan.poll() is None
    finally:
        orphan.kill()
        orphan.wait()
        orphan.stdout.close()


# --- what an artist meets (issue: the docker as an artist meets it) ---------------------------

def canvas(doc):
    width, height = doc.width(), doc.height()
    return np.frombuffer(bytes(doc.pixelData(0, 0, width, height)), doc.topLevelNodes()[0].pixels.dtype).reshape(
        height, width, 4)


def test_the_result_is_seen_whatever_the_stack_and_the_active_layer(docker):
    page = drawn()
    doc, ink = new_document(page)  # an opaque ink layer above the Background
    background = doc.topLevelNodes()[0]
    doc.setActiveNode(background)  # the artist had the Background selected
    hints = paint_hints(docker, doc, page)
    assert [n.name() for n in doc.topLevelNodes()] == ["Background", "inkn'hue hints", "ink"]  # under the ink
    before = canvas(doc).copy()
    layer = colorize(docker, doc)
    names = [n.name() for n in doc.topLevelNodes()]
    assert names == ["Background", "ink", "inkn'hue colour", "inkn'hue hints"]
    painted = page.hints[..., 3] > 0
    assert (np.abs(canvas(doc)[painted].astype(int) - before[painted]).max(axis=-1) > 30).mean() > 0.5
    assert layer.visible() and hints.visible()


def test_the_hints_stay_visible_and_editable_above_the_result(docker):
    page = drawn()
    doc, _ = new_document(page)
    hints = paint_hints(docker, doc, page)
    layer = colorize(docker, doc)
    order = doc.topLevelNodes()
    assert order.index(hints) == order.index(layer) + 1 and hints.visible()
    hints.pixels[100:110, 10:20] = (0, 0, 255, 255)  # still the hint layer the next Colorize reads
    assert docker.sessions.of(doc).shown.layer == layer.uniqueId().toString()


def test_an_empty_hint_layer_is_said_to_the_artist(docker):
    page = drawn()
    doc, _ = new_document(page)
    docker.add_hints.click()  # and no strokes painted
    run_colorize(docker)
    assert "hint layer is empty" in docker.message.text()


def test_progress_moves_within_the_stages_and_says_the_time_left(docker):
    page = Page(600, 900).rectangle(10, 10, 590, 890).circle(300, 450, 200).stroke([(290, 440), (310, 460)], RED)
    doc, _ = new_document(page)
    paint_hints(docker, doc, page)
    docker.max_size.setValue(384)
    seen = []
    docker.backend.job_event.connect(lambda event, images: seen.append((docker.progress.value(),
                                                                        docker.stage.text())))
    try:
        run_colorize(docker)
    finally:
        docker.backend.job_event.disconnect()
        docker.backend.job_event.connect(docker._on_event)
        docker.max_size.setValue(64)
    values = [v for v, _ in seen]
    assert values == sorted(values) and len(set(values)) > 8  # not a few coarse steps
    assert any("%" in text for _, text in seen) and any(" left" in text for _, text in seen)


def test_a_linear_sixteen_bit_document_gets_linear_sixteen_bit_colours(docker, weights):
    page = drawn()
    doc, _ = new_document(page, depth="U16")
    doc._profile = "sRGB-elle-V2-g10.icc"

    def linear(encoded):
        return np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)

    ink = doc.topLevelNodes()[-1]  # in a linear document, layers hold linear light
    ink.pixels[..., :3] = np.rint(65535 * linear(page.grey / 255.0))[..., None]
    paint_hints(docker, doc, page)
    hints = next(n for n in doc.topLevelNodes() if n.name() == "inkn'hue hints")
    hints.pixels[..., :3] = np.rint(65535 * linear(page.hints[..., [2, 1, 0]] / 255.0))
    hints.pixels[..., 3] = page.hints[..., 3].astype(np.uint16) * 257
    layer = colorize(docker, doc)
    want = linear(expected(weights, page, 0.8).render(0.8, "page").astype(np.float64))
    got = layer.pixels[..., [2, 1, 0]] / 65535.0
    assert np.abs(got - want).max() < 0.002  # linear light, not sRGB-encoded values
    assert (layer.pixels % 257 != 0).any()


def test_a_hint_layer_on_a_greyscale_page_offers_the_conversion_first(docker):
    page = drawn()
    doc, _ = new_document(page)
    doc._model = "GRAYA"
    docker.add_hints.click()
    assert "greyscale" in docker.message.text() and not docker.convert.isHidden()
    assert all(n.name() != "inkn'hue hints" for n in doc.topLevelNodes())
    docker.convert.click()
    docker.add_hints.click()
    assert any(n.name() == "inkn'hue hints" for n in doc.topLevelNodes())


def test_a_result_for_a_closed_document_is_not_announced_as_done(docker):
    page = drawn()
    doc, _ = new_document(page)
    paint_hints(docker, doc, page)
    docker.colorize_button.click()
    assert docker.running is not None
    krita.Krita.instance().close(doc)
    docker.canvasChanged(None)
    pump(lambda: docker.running is None, timeout=90)
    assert "closed" in docker.message.text() and "Done" not in docker.stage.text()
    assert docker.progress.value() != 100


def test_the_panel_explains_itself_in_the_artists_words(docker):
    assert "detail" in docker.max_size.toolTip() and "result" in docker.max_size.toolTip()
    assert "flats" in docker.provider.toolTip() and "strokes" in docker.provider.toolTip()
    assert docker.keep_button.toolTip()


def test_the_models_state_is_kept_up_to_date(docker):
    pump(lambda: "models ready" in docker.status.text(), timeout=60)


# --- live colour (issue: speed): the result follows the hint layer by itself --------------------

GREEN, PURPLE, ORANGE, TEAL = (0, 200, 0), (200, 0, 200), (230, 140, 20), (20, 160, 160)


@pytest.fixture
def fast_enough(monkeypatch):
    """Live offered whatever this machine's load: the tests of what it does, not of its threshold."""
    monkeypatch.setattr("inknhue_krita.live.FAST_ENOUGH_S", 60.0)


def paint(hints, page, box, colour):
    """A stroke on the hint layer, as the artist's brush leaves it (and in the test's copy)."""
    y0, y1, x0, x1 = box
    hints.pixels[y0:y1, x0:x1] = (colour[2], colour[1], colour[0], 255)
    page.hints[y0:y1, x0:x1] = (*colour, 255)


_signatures = iter(range(1, 250))


def measured(docker, doc, hints, page):
    """Colorize with a stroke no other test sends, so that the job measures this machine (one
    served from the backend's cache measures nothing); returns the layer with the result."""
    n = next(_signatures)
    paint(hints, page, (170, 174, 100, 110), (n, 255 - n, 128))
    layer = colorize(docker, doc)
    assert docker.rerun_s is not None
    return layer


def measured_page(docker, scale: int = 1):
    """A drawn page with a hint layer, colorized once so that this machine is measured:
    (page, document, hint layer, result layer)."""
    page = drawn(scale)
    doc, _ = new_document(page)
    hints = paint_hints(docker, doc, page)
    return page, doc, hints, measured(docker, doc, hints, page)


def turn_live_on(docker):
    assert docker.live_switch.isEnabled(), docker.live_switch.toolTip()
    docker.live_switch.setChecked(True)


def live_settled(docker):
    from inknhue_krita.live import LiveState

    return docker.running is None and not docker.live.pending and docker.live.state is LiveState.IDLE


def job_events(docker):
    """The backend's job events, in order, as (type, job)."""
    seen = []
    docker.backend.job_event.connect(lambda event, images: seen.append((event.get("type"), event.get("job"))))
    return seen


def test_live_is_offered_once_a_job_has_measured_this_computer_and_says_why_not(docker, monkeypatch):
    assert not docker.live_switch.isEnabled()
    assert "Colorize once to measure this computer's speed" in docker.live_switch.toolTip()
    page = drawn()
    doc, _ = new_document(page)
    hints = paint_hints(docker, doc, page)
    monkeypatch.setattr("inknhue_krita.live.FAST_ENOUGH_S", 60.0)
    measured(docker, doc, hints, page)
    assert docker.live_switch.isEnabled() and "updates by itself" in docker.live_switch.toolTip()
    assert docker.rerun_s < 60.0
    run_colorize(docker)  # the same hints again: all from the backend's cache, the measure stands
    assert docker.live_switch.isEnabled()
    monkeypatch.setattr("inknhue_krita.live.FAST_ENOUGH_S", 0.0)  # this computer, as if it were slow
    measured(docker, doc, hints, page)
    assert not docker.live_switch.isEnabled() and not docker.live_switch.isChecked()
    tip = docker.live_switch.toolTip()
    assert tip.startswith("A re-run with new hints takes about ") and "on this computer (CPU)" in tip
    assert "NVIDIA GPU" in tip


def test_live_updates_the_result_layer_in_place_shortly_after_a_stroke(docker, weights, fast_enough):
    page = drawn()
    doc, ink = new_document(page)
    ink_before = ink.pixels.copy()
    hints = paint_hints(docker, doc, page)  # the hint layer is the active one, as while painting
    layer = measured(docker, doc, hints, page)
    turn_live_on(docker)
    assert docker.live_timer.isActive() and krita.Krita.instance().readSetting("inknhue", "live", "") == "True"
    writes = layer.writes
    paint(hints, page, (150, 160, 20, 40), GREEN)
    pump(lambda: layer.writes > writes and live_settled(docker), timeout=90)
    assert result_layers(doc) == [layer] and layer.writes == writes + 1  # one layer, written once, in place
    np.testing.assert_array_equal(layer.pixels[..., [2, 1, 0]], expected(weights, page, 0.8).final(0.8, "page"))
    assert doc.activeNode() is hints and "Live: done" in docker.stage.text()
    np.testing.assert_array_equal(ink.pixels, ink_before)
    assert [n.name() for n in doc.topLevelNodes()] == ["Background", "ink", "inkn'hue colour", "inkn'hue hints"]
    time.sleep(2 * docker.live.grace)
    pump(lambda: True)
    assert layer.writes == writes + 1  # nothing new on the hint layer: no run
    docker.live_switch.setChecked(False)
    assert not docker.live_timer.isActive()


def test_newer_hints_cancel_the_live_run_in_flight_and_the_newest_win(docker, weights, fast_enough):
    page, doc, hints, layer = measured_page(docker, scale=8)  # a run that lasts longer than a cancel's trip
    events = job_events(docker)
    docker.live.grace = 0.0  # the looks below are the timer's, made by hand so that they fall in the run
    turn_live_on(docker)
    writes = layer.writes
    # strokes no other test paints: the backend's cache would make their run a mere blend
    paint(hints, page, (150, 160, 20, 40), ORANGE)
    docker._live_tick()  # a look: the hints changed and are still: a run starts
    first = docker.running
    assert first is not None and first.live
    pump(lambda: first.job is not None)  # its page read and sent: in flight on the backend
    paint(hints, page, (20, 30, 80, 100), PURPLE)  # a second stroke while the first run is on its way
    docker._live_tick()
    assert first.cancelled  # overtaken: cancelled as soon as the backend names its job
    pump(lambda: any(kind == "cancelled" for kind, _ in events), timeout=60)
    overtaken = next(job for kind, job in events if kind == "cancelled")
    pump(lambda: ("result", overtaken) not in events and any(
        kind == "result" for kind, _ in events[events.index(("cancelled", overtaken)):]) and live_settled(docker),
        timeout=90)
    one_result = writes  # the measuring run wrote the new layer once (in slices)
    assert layer.writes == writes + one_result and result_layers(doc) == [layer]  # only the newest was written
    np.testing.assert_array_equal(layer.pixels[..., [2, 1, 0]], expected(weights, page, 0.8).final(0.8, "page"))
    assert docker.message.text() == "" and doc.activeNode() is hints  # no "Cancelled." for the artist
    docker.live_switch.setChecked(False)


def test_no_live_run_starts_while_a_stroke_is_in_progress(docker, fast_enough):
    page, doc, hints, layer = measured_page(docker)
    turn_live_on(docker)
    writes = layer.writes
    doc.stroke_in_progress = True  # the pen is on the canvas (and would be waited for by waitForDone)
    paint(hints, page, (150, 160, 20, 40), GREEN)
    deadline = time.monotonic() + 4 * docker.live.grace
    pump(lambda: time.monotonic() > deadline)
    assert docker.running is None and layer.writes == writes
    doc.stroke_in_progress = False  # the pen is lifted
    pump(lambda: layer.writes > writes and live_settled(docker), timeout=90)
    docker.live_switch.setChecked(False)


def test_turning_live_off_cancels_its_run_in_flight(docker, fast_enough):
    page, doc, hints, layer = measured_page(docker, scale=8)  # a run that lasts longer than a cancel's trip
    events = job_events(docker)
    docker.live.grace = 0.0
    turn_live_on(docker)
    writes = layer.writes
    paint(hints, page, (150, 160, 20, 40), TEAL)  # not in the backend's cache: a run that takes a while
    docker._live_tick()
    running = docker.running
    assert running is not None and running.live
    pump(lambda: running.job is not None)  # sent (turned off while its page is read, it never goes out)
    docker.live_switch.setChecked(False)
    pump(lambda: docker.running is None, timeout=60)
    assert [kind for kind, _ in events if kind in ("cancelled", "result")] == ["cancelled"] and layer.writes == writes
    assert krita.Krita.instance().readSetting("inknhue", "live", "") == "False"


def test_live_turns_itself_off_with_the_reason_when_runs_become_slow(docker, monkeypatch):
    monkeypatch.setattr("inknhue_krita.live.FAST_ENOUGH_S", 60.0)
    page = drawn()
    doc, _ = new_document(page)
    hints = paint_hints(docker, doc, page)
    measured(docker, doc, hints, page)
    turn_live_on(docker)
    monkeypatch.setattr("inknhue_krita.live.FAST_ENOUGH_S", 0.0)  # e.g. the max size raised
    paint(hints, page, (150, 160, 20, 40), GREEN)
    pump(lambda: not docker.live_switch.isChecked(), timeout=90)
    assert docker.message.text().startswith("Live colour is off. A re-run with new hints takes about ")
    assert not docker.live_switch.isEnabled() and not docker.live_timer.isActive()
    assert krita.Krita.instance().readSetting("inknhue", "live", "") == "False"


def test_the_live_switch_comes_back_on_once_live_colour_is_offered_again(docker, fast_enough):
    krita.Krita.instance().writeSetting("inknhue", "live", "True")  # on when Krita was last closed
    docker._update_live_offer()
    assert not docker.live_switch.isChecked()  # nothing measured yet in this Krita
    page = drawn()
    doc, _ = new_document(page)
    hints = paint_hints(docker, doc, page)
    measured(docker, doc, hints, page)
    assert docker.live_switch.isChecked() and docker.live_timer.isActive()
    docker.live_switch.setChecked(False)
    colorize(docker, doc)
    assert not docker.live_switch.isChecked()  # turned off by the artist: it stays off


def test_live_colour_that_fails_stops_once_and_says_why(docker, monkeypatch):
    page = drawn()
    doc, _ = new_document(page)
    paint_hints(docker, doc, page)
    docker.rerun_s = 0.5  # as measured by a Colorize
    docker._update_live_offer()

    def broken(document, node):
        raise RuntimeError("the layer went away")

    monkeypatch.setattr("inknhue_krita.document.layer_fingerprint", broken)
    docker.live_switch.setChecked(True)  # it looks at once, and fails: off, not a dialog every quarter second
    assert not docker.live_switch.isChecked() and not docker.live_timer.isActive()
    assert docker.message.text() == "Live colour stopped: the layer went away"


def test_the_active_layer_stays_the_artists_after_every_kind_of_result(docker):
    page = drawn()
    doc, ink = new_document(page)
    hints = paint_hints(docker, doc, page)
    doc.setActiveNode(hints)  # the artist paints on the hint layer
    colorize(docker, doc)  # the first result makes a layer
    assert doc.activeNode() is hints
    run_colorize(docker)  # a re-run, in place
    assert doc.activeNode() is hints
    docker.keep_button.click()
    colorize(docker, doc)  # after Keep: a new layer
    assert doc.activeNode() is hints
    selection = krita.Selection(120, 180)
    selection.select(20, 30, 60, 60, 255)
    doc.setSelection(selection)
    colorize(docker, doc)
    doc.setSelection(None)
    doc.setActiveNode(ink)  # now the ink is the active one
    docker.output_layer.setCurrentIndex(docker.output_layer.findData("colour"))
    colorize(docker, doc)
    assert doc.activeNode() is ink, (doc.activeNode().name(), [n.name() for n in doc.topLevelNodes()])
    docker.output_layer.setCurrentIndex(0)


@pytest.mark.parametrize("kind", ["full", "colour"])
def test_colorize_adds_no_step_to_the_undo_history(docker, kind):
    page = drawn()
    doc, _ = new_document(page)
    paint_hints(docker, doc, page)
    doc.undo_steps.append("Freehand Brush Stroke")  # the artist's last stroke
    docker.output_layer.setCurrentIndex(docker.output_layer.findData(kind))
    layer = colorize(docker, doc)
    assert doc.undo_steps[-1] == "Freehand Brush Stroke"  # Ctrl+Z undoes the stroke, not the colours
    assert layer.blendingMode() == ("multiply" if kind == "colour" else "normal")
    assert all(not d.name().startswith("inknhue scratch") for d in krita.Krita.instance().documents())
    docker.output_layer.setCurrentIndex(0)


def test_colour_under_the_ink_is_seen_over_an_earlier_opaque_result(docker, weights):
    page = drawn()
    doc, ink = new_document(page)
    ink.pixels[..., 3] = 255 - page.grey  # line art of its own over the white Background
    ink.pixels[..., :3] = 0
    ink.setName("Line art")
    paint_hints(docker, doc, page)
    earlier = colorize(docker, doc)  # an opaque coloured page, above the line art
    docker.keep_button.click()
    docker.output_layer.setCurrentIndex(docker.output_layer.findData("colour"))
    before = canvas(doc).copy()
    layer = colorize(docker, doc)
    names = [n.name() for n in doc.topLevelNodes()]
    assert names == ["Background", "Line art", "inkn'hue colour kept", layer.name(), "inkn'hue hints"]
    assert (canvas(doc) != before).any()  # the canvas changed
    earlier.setVisible(False)
    result = expected(weights, page, 0.8)
    doc.topLevelNodes()[-1].setVisible(False)
    assert np.abs(canvas(doc)[..., [2, 1, 0]].astype(int) - result.final(0.8, "page")).max() <= 2
    docker.output_layer.setCurrentIndex(0)


def test_the_artist_is_told_when_an_earlier_result_hides_the_new_colours(docker):
    page = drawn()
    doc, ink = new_document(page)
    ink.pixels[..., 3] = 255 - page.grey  # line art of its own: the colours go beneath it
    paint_hints(docker, doc, page)
    cover = doc.createNode("inkn'hue colour kept", "paintlayer")  # an earlier result, opaque over most
    cover.pixels[:150] = (200, 200, 200, 255)
    doc.rootNode().addChildNode(cover, doc.topLevelNodes()[-2])
    docker.output_layer.setCurrentIndex(docker.output_layer.findData("colour"))
    colorize(docker, doc)
    assert "\u201cinkn'hue colour kept\u201d above hides 83% of the new colours" in docker.message.text()
    docker.output_layer.setCurrentIndex(0)


def test_a_deleted_result_layer_is_noticed_at_once(docker):
    page = drawn()
    doc, _ = new_document(page)
    paint_hints(docker, doc, page)
    layer = colorize(docker, doc)
    assert docker.keep_button.isEnabled() and "Done" in docker.stage.text()
    layer.remove()  # the artist deletes it (or undoes it away)
    pump(lambda: not docker.keep_button.isEnabled(), timeout=2)
    assert docker.stage.text() == "" and "gone" in docker.message.text()
    assert docker.sessions.of(doc).shown is None
    colorize(docker, doc)  # the next Colorize makes a new one
    assert len(result_layers(doc)) == 1


def test_dragging_the_slider_mixes_a_preview_here_and_the_release_blends_the_page(docker, weights):
    page = drawn()
    doc, _ = new_document(page)
    paint_hints(docker, doc, page)
    layer = colorize(docker, doc)
    reference = expected(weights, page, 0.8)
    session = docker.sessions.of(doc)
    docker.ratio.setSliderDown(True)
    docker.ratio.setValue(70)  # the first move: the backend blends it, and the ends are asked for
    pump(lambda: session.preview is not None and docker.throttle.in_flight is None)
    sent = docker.backend._callbacks.copy()
    for value, ratio in ((0, 0.0), (100, 1.0), (50, 0.5), (62, 0.62)):
        docker.ratio.setValue(value)  # each move written at once, without the backend
        assert docker.backend._callbacks == sent and docker.throttle.in_flight is None
        got = layer.pixels[..., [2, 1, 0]].astype(int)
        difference = np.abs(got - reference.final(ratio, "page"))
        if ratio in preview.KNOTS:  # the backend's own blends, reduced (here: the page is small)
            assert difference.max() <= 1
        else:  # mixed between the two nearest: close
            assert difference.max() <= 24 and difference.mean() < 2, (ratio, difference.max(), difference.mean())
    docker.ratio.setSliderDown(False)
    docker.ratio.sliderReleased.emit()
    writes = layer.writes
    pump(lambda: layer.writes > writes and docker.throttle.in_flight is None)
    np.testing.assert_array_equal(layer.pixels[..., [2, 1, 0]], reference.final(0.62, "page"))


def test_add_hint_layer_on_a_greyscale_page_converts_and_then_makes_the_layer(docker):
    page = drawn()
    doc, _ = new_document(page)
    doc._model = "GRAYA"
    docker.add_hints.click()
    docker.convert.click()  # what the artist asked for follows the conversion
    assert any(n.name() == "inkn'hue hints" for n in doc.topLevelNodes())
    assert docker.message.text().startswith("Converted to RGB. Paint colour strokes on the hint layer")
    assert "Colorize again" not in docker.message.text()


def test_the_live_advice_names_max_size_only_while_it_can_go_lower(docker, monkeypatch):
    docker.rerun_s = 30.0
    docker.max_size.setValue(docker.max_size.minimum())
    docker.max_size.editingFinished.emit()
    assert "smaller Max size" not in docker.live_switch.toolTip() and "selection" in docker.live_switch.toolTip()
    docker.max_size.setValue(256)
    docker.max_size.editingFinished.emit()
    assert "smaller Max size" in docker.live_switch.toolTip()
    docker.rerun_s = None


def test_the_status_shows_no_command_line_while_the_backend_starts(docker):
    docker._on_state("starting", "")
    assert docker.status.text() == "Backend: starting…"
    docker._on_state(docker.backend.state, docker.backend.detail)
