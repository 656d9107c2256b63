"""Drives a real Krita through the inkn'hue docker, as an artist would, then quits.

Reads its instructions from $INKNHUE_E2E_SPEC (JSON) and writes what it saw to the spec's
"report" file: JSON plus raw pixel files. Any exception ends the run with its traceback
in the report (Krita's own excepthook would open a modal dialog and hang the test).
"""

import json
import os
import sys
import time
import traceback

from krita import Extension, Krita, Selection
from PyQt5.QtCore import QByteArray, QTimer
from PyQt5.QtWidgets import QApplication

SPEC = json.loads(open(os.environ["INKNHUE_E2E_SPEC"]).read())
REPORT = {"steps": []}


def save_report():
    with open(SPEC["report"], "w") as f:
        json.dump(REPORT, f, indent=2)


def quit_krita():
    save_report()
    for doc in Krita.instance().documents():
        doc.setModified(False)
    Krita.instance().action("file_quit").trigger()


def fail(kind, value, tb):
    REPORT["error"] = "".join(traceback.format_exception(kind, value, tb))
    quit_krita()


def step(name):
    REPORT["steps"].append(name)
    save_report()


def undo_text():
    QApplication.processEvents()
    undo = Krita.instance().action("edit_undo")
    return undo.text() if undo is not None and undo.isEnabled() else ""


def find_docker():
    for docker in Krita.instance().dockers():
        if type(docker).__name__ == "InknhueDocker":
            return docker
    return None


def find_layer(doc, prefix):
    return next((n for n in doc.topLevelNodes() if n.name().startswith(prefix)), None)


def brought_layers(doc):
    """Bring to page's coloured-page layers, bottom first."""
    return [n for n in doc.topLevelNodes() if n.name().startswith("inkn'hue colour from")]


class Driver:
    def __init__(self):
        self.started = time.monotonic()

    def wait(self, condition, then, timeout=120.0, what=""):
        deadline = time.monotonic() + timeout

        def poll():
            if condition():
                then()
            elif time.monotonic() > deadline:
                status = self.docker.status.text() if getattr(self, "docker", None) else "no docker"
                message = self.docker.message.text() if getattr(self, "docker", None) else ""
                raise TimeoutError(f"timed out: {what}; the docker says: {status!r} {message!r}")
            else:
                QTimer.singleShot(100, poll)

        QTimer.singleShot(100, poll)

    def start(self):
        sys.excepthook = fail
        if SPEC["mode"] == "poll_cost":
            return self.poll_cost()
        app = Krita.instance()
        width, height = SPEC["width"], SPEC["height"]
        self.doc = app.createDocument(width, height, "page", "RGBA", "U8", "", 300.0)
        app.activeWindow().addView(self.doc)
        ink = self.doc.createNode("ink", "paintlayer")
        self.doc.rootNode().addChildNode(ink, None)
        ink.setPixelData(QByteArray(open(SPEC["page"], "rb").read()), 0, 0, width, height)
        self.doc.setActiveNode(ink)
        self.doc.refreshProjection()
        self.doc.waitForDone()
        step("document")
        self.docker = find_docker()
        REPORT["docker"] = self.docker is not None
        if self.docker is None:
            raise RuntimeError("no inkn'hue docker in this Krita")
        if SPEC["mode"] == "responsive":
            return self.wait(lambda: self.docker.backend.state == "connected", self.quiet_backend,
                             what="a connected backend")
        if SPEC["mode"] == "bring":
            return self.wait(lambda: self.docker.backend.state == "connected", self.bring,
                             what="a connected backend")
        if SPEC["mode"] == "no_backend":
            self.wait(lambda: self.docker.backend.state in ("not_installed", "error"), self.no_backend,
                      timeout=30, what="the backend state")
        else:
            self.wait(lambda: self.docker.backend.state == "connected", self.paint_hints,
                      what="a connected backend")

    def no_backend(self):
        REPORT["status"] = self.docker.status.text()
        # Krita keeps working: paint on the page and read it back
        layer = self.doc.createNode("still working", "paintlayer")
        self.doc.rootNode().addChildNode(layer, None)
        layer.setPixelData(QByteArray(b"\x10\x20\x30\xff" * 16), 0, 0, 4, 4)
        REPORT["painted"] = bytes(layer.pixelData(0, 0, 1, 1)) == b"\x10\x20\x30\xff"
        self.docker.colorize_button.click()  # disabled without a backend: nothing happens
        REPORT["message"] = self.docker.message.text()
        self.screenshot()
        step("no backend")
        quit_krita()

    def paint_hints(self):
        REPORT["status"] = self.docker.status.text()
        self.docker.max_size.setValue(SPEC["max_size"])
        # as an artist may have it: the Background active, an opaque ink layer above it
        self.doc.setActiveNode(find_layer(self.doc, "Background"))
        self.docker.add_hints.click()
        hints = find_layer(self.doc, "inkn'hue hints")
        hints.setPixelData(QByteArray(open(SPEC["hints"], "rb").read()), 0, 0, SPEC["width"], SPEC["height"])
        self.doc.refreshProjection()
        self.doc.waitForDone()
        REPORT["layers_before"] = [n.name() for n in self.doc.topLevelNodes()]
        # the artist's last step before Colorize, one the undo history names: clearing a sketch layer
        self.sketch = self.doc.createNode("sketch", "paintlayer")
        self.doc.rootNode().addChildNode(self.sketch, None)
        self.activate("sketch", self.clear_sketch)

    def activate(self, name, then):
        """Make a layer the active one, as clicking it does (Krita settles it on its event loop)."""
        node = find_layer(self.doc, name)

        def active():
            if self.doc.activeNode() is not None and self.doc.activeNode().name() == name:
                return True
            self.doc.setActiveNode(node)
            return False

        self.wait(active, then, timeout=10, what=f"{name} active")

    def clear_sketch(self):
        Krita.instance().action("clear").trigger()
        self.doc.waitForDone()
        self.activate("inkn'hue hints", self.press_colorize)  # the artist paints on the hint layer

    def press_colorize(self):
        REPORT["undo_before"] = undo_text()
        REPORT["active_before"] = self.doc.activeNode().name()
        step("hints")
        self.docker.colorize_button.click()
        self.wait(lambda: find_layer(self.doc, "inkn'hue colour") is not None and self.docker.running is None,
                  self.read_result, what="the colour layer")

    def read_result(self):
        QTimer.singleShot(300, self.read_result_settled)  # whatever Krita does on a new layer, done

    def read_result_settled(self):
        REPORT["active_after"] = self.doc.activeNode().name()
        REPORT["undo_after"] = undo_text()
        layer = find_layer(self.doc, "inkn'hue colour")
        self.dump(layer, "result_0.8")
        self.doc.refreshProjection()
        self.doc.waitForDone()
        self.dump_canvas("canvas_result")
        REPORT["layers_after"] = [n.name() for n in self.doc.topLevelNodes()]
        REPORT["ink_unchanged"] = bytes(find_layer(self.doc, "ink").pixelData(
            0, 0, SPEC["width"], SPEC["height"])) == open(SPEC["page"], "rb").read()
        REPORT["stage"] = self.docker.stage.text()
        step("result")
        self.before = bytes(layer.pixelData(0, 0, SPEC["width"], SPEC["height"]))
        self.docker.ratio.setValue(round(SPEC["ratio"] * 100))
        self.wait(lambda: self.docker.throttle.in_flight is None and bytes(
            layer.pixelData(0, 0, SPEC["width"], SPEC["height"])) != self.before, self.read_blend,
            what="the blended layer")

    def read_blend(self):
        self.dump(find_layer(self.doc, "inkn'hue colour"), f"result_{SPEC['ratio']}")
        step("blend")
        self.screenshot()
        # the colours alone, as a Multiply layer under the ink
        self.docker.output_layer.setCurrentIndex(self.docker.output_layer.findData("colour"))
        self.canvas_before_colour = bytes(self.doc.pixelData(0, 0, SPEC["width"], SPEC["height"]))
        self.docker.colorize_button.click()
        self.wait(lambda: find_layer(self.doc, "inkn'hue colour under ink") is not None and self.docker.running is None,
                  self.read_colour_layer, what="the colour-under-ink layer")

    def read_colour_layer(self):
        QTimer.singleShot(300, self.read_colour_layer_settled)

    def read_colour_layer_settled(self):
        REPORT["active_after_colour"] = self.doc.activeNode().name()
        self.doc.refreshProjection()
        self.doc.waitForDone()
        REPORT["canvas_changed_by_colour"] = bytes(
            self.doc.pixelData(0, 0, SPEC["width"], SPEC["height"])) != self.canvas_before_colour
        REPORT["colour_message"] = self.docker.message.text()
        REPORT["undo_after_colour"] = undo_text()
        undo = Krita.instance().action("edit_undo")  # Ctrl+Z: the artist's last step goes, not our layers
        undo.trigger()
        self.doc.waitForDone()
        QApplication.processEvents()
        REPORT["undo_after_ctrl_z"] = undo_text()
        layer = find_layer(self.doc, "inkn'hue colour under ink")
        REPORT["colour_layer_blending"] = layer.blendingMode()
        REPORT["layers_with_colour"] = [n.name() for n in self.doc.topLevelNodes()]
        self.dump(layer, "colour_layer")
        for node in self.doc.topLevelNodes():  # the canvas as the artist sees it without our other layers
            if node.name() in ("inkn'hue hints", "inkn'hue colour"):
                node.setVisible(False)
        self.doc.refreshProjection()
        self.doc.waitForDone()
        self.dump_canvas("canvas_colour")
        step("colour layer")
        if SPEC.get("live_hints"):
            self.live()
        else:
            quit_krita()

    def live(self):
        """Live colour: on, a new stroke on the hint layer, the colour layer follows in place."""
        for node in self.doc.topLevelNodes():
            node.setVisible(True)
        self.docker.output_layer.setCurrentIndex(self.docker.output_layer.findData("full"))
        REPORT["rerun_s"] = self.docker.rerun_s  # what this Krita measured on its jobs
        REPORT["live_offered"] = self.docker.live_switch.isEnabled()
        REPORT["live_tooltip"] = self.docker.live_switch.toolTip()
        # offered whatever this machine's load: what live colour does is tested here, not its threshold
        sys.modules["inknhue_krita.live"].FAST_ENOUGH_S = 60.0
        self.docker._update_live_offer()
        hints = find_layer(self.doc, "inkn'hue hints")
        self.doc.setActiveNode(hints)  # the artist paints on the hint layer
        self.layer = next(n for n in self.doc.topLevelNodes() if n.name() == "inkn'hue colour")
        self.layer_id = self.layer.uniqueId().toString()
        undo = Krita.instance().action("edit_undo")
        REPORT["undo_before_live"] = [undo.isEnabled(), undo.text()] if undo else None
        self.docker.live_switch.setChecked(True)
        self.before = bytes(self.layer.pixelData(0, 0, SPEC["width"], SPEC["height"]))
        hints.setPixelData(QByteArray(open(SPEC["live_hints"], "rb").read()), 0, 0, SPEC["width"], SPEC["height"])
        self.live_started = time.monotonic()
        self.wait(lambda: self.docker.running is None and not self.docker.live.pending and bytes(
            self.layer.pixelData(0, 0, SPEC["width"], SPEC["height"])) != self.before, self.read_live,
            what="the live update")

    def read_live(self):
        REPORT["live_seconds"] = round(time.monotonic() - self.live_started, 2)
        REPORT["layers_live"] = [n.name() for n in self.doc.topLevelNodes()]
        REPORT["live_same_layer"] = self.layer.uniqueId().toString() == self.layer_id
        REPORT["live_active"] = self.doc.activeNode().name()
        REPORT["live_stage"] = self.docker.stage.text()
        undo = Krita.instance().action("edit_undo")
        REPORT["undo_after_live"] = [undo.isEnabled(), undo.text()] if undo else None
        self.dump(self.layer, "result_live")
        self.docker.live_switch.setChecked(False)
        step("live")
        quit_krita()

    def quiet_backend(self):
        """Wait for the backend to be idle (its models in, its calibration over): what the plugin
        holds Krita for is measured with the backend's load set aside."""
        answers = []

        def ask():
            reply = answers[-1] if answers else None
            if reply is not None:
                REPORT["calibration"] = reply.get("calibration")
                if reply.get("models") == "ready" and (reply.get("calibration") or {}).get("state") != "running":
                    return True
            if not answers or reply is not None:  # one hello at a time
                answers.append(None)
                protocol = sys.modules["inknhue_krita.protocol"].PROTOCOL
                self.docker.backend.request({"type": "hello", "protocol": protocol},
                                            callback=lambda reply, _: answers.__setitem__(-1, reply))
            return False

        self.wait(ask, self.responsive_run, timeout=200, what="an idle backend")

    def responsive_run(self):
        """Krita's UI thread during a run and a drag of the slider: a 50 ms timer's missed
        ticks and longest gap, and the longest call into the plugin's own code (what the
        plugin holds the UI thread for, the backend's load on the CPU set aside)."""
        self.docker.max_size.setValue(SPEC["max_size"])
        self.docker.add_hints.click()
        hints = find_layer(self.doc, "inkn'hue hints")
        hints.setPixelData(QByteArray(open(SPEC["hints"], "rb").read()), 0, 0, SPEC["width"], SPEC["height"])
        self.doc.refreshProjection()
        self.doc.waitForDone()
        self.longest, self.calls, self.spans = {}, {}, []
        controller = sys.modules["inknhue_krita.controller"].Controller
        for owner, name in ((controller, "start"), (controller, "_reading"), (controller, "on_event"),
                            (controller, "_written"),
                            (self.docker.backend.connection, "receive"), (self.docker.backend, "request"),
                            (sys.modules["inknhue_krita.document"], "page_pixels"),
                            (sys.modules["inknhue_krita.document"], "snapshot"),
                            (sys.modules["inknhue_krita.document"], "without_ours"),
                            (sys.modules["inknhue_krita.document"], "layer_fingerprint"),
                            (sys.modules["inknhue_krita.document"], "arrange"),
                            (sys.modules["inknhue_krita.document"], "new_layer")):
            self.timed(owner, name)
        self.sent_at = None  # when the page went out: the ticks before it are the read's alone
        request = self.docker.backend.request

        def sending(header, *args, **kwargs):
            if header.get("type") == "colorize" and self.sent_at is None:
                self.sent_at = time.monotonic()
            return request(header, *args, **kwargs)

        self.docker.backend.request = sending

        def heard(event, images):  # the first time left the docker was told, and what it stood on
            if event.get("type") == "progress" and event.get("eta") is not None and "first_eta" not in REPORT:
                REPORT["first_eta"] = [round(event["eta"], 2), event.get("eta_from"), self.docker.stage.text()]
            elif event.get("type") == "result":
                REPORT["run_seconds"] = event.get("seconds")

        self.docker.backend.job_event.connect(heard)
        self.ticks = []
        self.ticker = QTimer()
        self.ticker.setInterval(50)
        self.ticker.timeout.connect(lambda: self.ticks.append(time.monotonic()))
        self.ticker.start()
        self.run_started = time.monotonic()
        self.docker.colorize_button.click()
        self.wait(lambda: self.docker.running is None and self.docker.sessions.of(self.doc).shown is not None,
                  self.responsive_drag, timeout=200, what="the result")

    def timed(self, owner, name):
        original = getattr(owner, name, None)  # a class's function or an object's bound method
        if original is None:  # not in this plugin (an older one, measured for comparison)
            return

        def call(*args, **kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            started, at = time.perf_counter(), time.monotonic()
            try:
                return original(*args, **kwargs)
            finally:
                self.longest[name] = max(self.longest.get(name, 0.0), time.perf_counter() - started)
                self.spans.append((at, time.monotonic(), name))

        setattr(owner, name, call)

    def gaps(self, since, until=None):
        until = time.monotonic() if until is None else until
        ticks = [since] + [t for t in self.ticks if since <= t <= until] + [until]  # a stretch at either end counts
        gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
        expected = (until - since) / 0.05
        worst = max(range(len(gaps)), key=gaps.__getitem__) if gaps else None
        # the plugin's calls in the longest gap (the rest of it was Krita's or the machine's)
        within = [] if worst is None else [
            f"{name} {end - start:.3f}" for start, end, name in self.spans
            if start < ticks[worst + 1] and end > ticks[worst]]
        return {"seconds": round(until - since, 2), "ticks": len(ticks) - 2, "expected": round(expected),
                "missed": max(0, round(expected) - len(ticks) + 2), "longest_gap": round(max(gaps, default=0), 3),
                "plugin_calls_in_it": within}

    def responsive_drag(self):
        REPORT["run"] = self.gaps(self.run_started)
        REPORT["read"] = self.gaps(self.run_started, self.sent_at)  # the page and hints read, before any backend work
        REPORT["run_longest_call"] = {k: round(v, 3) for k, v in self.longest.items()}
        REPORT["stage"] = self.docker.stage.text()
        ratio = self.docker.ratio
        ratio.setSliderDown(True)
        ratio.setValue(70)  # the first move asks for the preview
        self.wait(lambda: self.docker.sessions.of(self.doc).preview is not None and
                  self.docker.throttle.in_flight is None, self.responsive_moves, timeout=60, what="the preview")

    def responsive_moves(self):
        REPORT["write_steps"] = self.calls.get("_written", 0)
        requests = self.calls.get("request", 0)
        moves = []
        for value in (10, 30, 50, 80, 95):
            started = time.perf_counter()
            self.docker.ratio.setValue(value)
            self.doc.waitForDone()  # Krita has the new pixels in its projection
            moves.append(round(time.perf_counter() - started, 3))
        REPORT["moves_s"] = moves
        REPORT["blends_during_moves"] = self.calls.get("request", 0) - requests
        REPORT["longest_call_all"] = {k: round(v, 3) for k, v in self.longest.items()}
        self.docker.ratio.setSliderDown(False)
        self.docker.ratio.sliderReleased.emit()
        step("responsive")
        quit_krita()

    def poll_cost(self):
        """What live colour's look at the hint layer costs in this Krita (benchmarks/bench_live_poll.py):
        the plugin's own fingerprint of a hint layer, against reading it whole in one piece."""
        import zlib

        document = sys.modules["inknhue_krita.document"]
        app = Krita.instance()
        width, height = SPEC["width"], SPEC["height"]
        doc = app.createDocument(width, height, "page", "RGBA", "U8", "", 300.0)
        app.activeWindow().addView(doc)
        row = bytearray(width * 4)
        for x in range(0, width, 40):  # strokes all over the page: 8 px wide, every 40 px
            row[x * 4:(x + 8) * 4] = b"\x20\x40\xd0\xff" * 8
        layers = {}
        for name, rows in (("full", height), ("quarter", height // 4)):
            node = doc.createNode(name, "paintlayer")
            doc.rootNode().addChildNode(node, None)
            node.setPixelData(QByteArray(bytes(row) * rows), 0, 0, width, rows)
            layers[name] = node
        doc.refreshProjection()
        doc.waitForDone()

        def median_ms(fn):
            times = []
            for _ in range(15):
                started = time.perf_counter()
                fn()
                times.append(time.perf_counter() - started)
            return round(1000 * sorted(times)[len(times) // 2], 2)

        full = layers["full"]
        REPORT["fingerprint_full_ms"] = median_ms(lambda: document.layer_fingerprint(doc, full))
        REPORT["fingerprint_quarter_ms"] = median_ms(lambda: document.layer_fingerprint(doc, layers["quarter"]))
        REPORT["whole_read_crc_ms"] = median_ms(lambda: zlib.crc32(full.pixelData(0, 0, width, height)))
        REPORT["whole_read_ms"] = median_ms(lambda: full.pixelData(0, 0, width, height))
        REPORT["idle_check_ms"] = median_ms(lambda: document.idle(doc))
        doc.setModified(False)
        step("poll cost")
        quit_krita()

    # Bring to page: a colouring pasted and scaled up, brought to the page as a new layer

    def bring(self):
        self.docker.max_size.setValue(SPEC["max_size"])
        colours = self.doc.createNode("colours", "paintlayer")
        self.doc.rootNode().addChildNode(colours, find_layer(self.doc, "ink"))
        colours.setPixelData(QByteArray(open(SPEC["colouring"], "rb").read()), 0, 0, SPEC["width"], SPEC["height"])
        self.doc.refreshProjection()
        self.doc.waitForDone()
        self.activate("colours", self.press_bring)

    def press_bring(self):
        REPORT["undo_before"] = undo_text()
        REPORT["active_before"] = self.doc.activeNode().name()
        self.docker.bring_button.click()
        self.wait(lambda: find_layer(self.doc, "inkn'hue colour from") is not None and self.docker.running is None,
                  lambda: QTimer.singleShot(300, self.read_brought), what="the brought layer")

    def read_brought(self):
        REPORT["active_after"] = self.doc.activeNode().name()
        REPORT["undo_after"] = undo_text()
        REPORT["layers_after"] = [n.name() for n in self.doc.topLevelNodes()]
        REPORT["stage"], REPORT["message"] = self.docker.stage.text(), self.docker.message.text()
        colours = find_layer(self.doc, "colours")
        REPORT["colours_unchanged"] = bytes(colours.pixelData(0, 0, SPEC["width"], SPEC["height"])) == open(
            SPEC["colouring"], "rb").read()
        REPORT["colours_visible"] = colours.visible()
        self.dump(find_layer(self.doc, "inkn'hue colour from"), "brought")
        step("brought")
        self.screenshot()
        self.docker.output_layer.setCurrentIndex(self.docker.output_layer.findData("colour"))
        self.docker.bring_button.click()
        self.wait(lambda: find_layer(self.doc, "inkn'hue colour under ink from") is not None
                  and self.docker.running is None, lambda: QTimer.singleShot(300, self.read_brought_colour),
                  what="the brought colour layer")

    def read_brought_colour(self):
        layer = find_layer(self.doc, "inkn'hue colour under ink from")
        REPORT["colour_blending"] = layer.blendingMode()
        REPORT["layers_with_colour"] = [n.name() for n in self.doc.topLevelNodes()]
        REPORT["active_after_colour"] = self.doc.activeNode().name()
        REPORT["undo_after_colour"] = undo_text()
        REPORT["colour_message"] = self.docker.message.text()
        self.dump(layer, "brought_colour")
        step("brought colour")
        # with a selection: the new layer holds the colours inside it only
        selection = Selection()
        selection.select(*SPEC["selection"], 255)
        self.doc.setSelection(selection)
        self.docker.output_layer.setCurrentIndex(self.docker.output_layer.findData("full"))
        self.docker.bring_button.click()
        self.wait(lambda: len(brought_layers(self.doc)) == 2 and self.docker.running is None,
                  lambda: QTimer.singleShot(300, self.read_brought_selection), what="the brought selection")

    def read_brought_selection(self):
        REPORT["layers_with_selection"] = [n.name() for n in self.doc.topLevelNodes()]
        REPORT["selection_message"] = self.docker.message.text()
        self.dump(brought_layers(self.doc)[-1], "brought_selection")
        step("brought selection")
        quit_krita()

    def dump_canvas(self, name):
        path = os.path.join(SPEC["folder"], name + ".bgra")
        with open(path, "wb") as f:
            f.write(bytes(self.doc.pixelData(0, 0, SPEC["width"], SPEC["height"])))
        REPORT[name] = path

    def dump(self, layer, name):
        path = os.path.join(SPEC["folder"], name + ".bgra")
        with open(path, "wb") as f:
            f.write(bytes(layer.pixelData(0, 0, SPEC["width"], SPEC["height"])))
        REPORT[name] = path

    def screenshot(self):
        QApplication.processEvents()
        QApplication.primaryScreen().grabWindow(0).save(SPEC["screenshot"])
        REPORT["screenshot"] = SPEC["screenshot"]


class DriverExtension(Extension):
    def setup(self):
        Krita.instance().notifier().windowCreated.connect(lambda: QTimer.singleShot(1500, self.go))

    def go(self):
        try:
            Driver().start()
        except Exception:
            fail(*sys.exc_info())

    def createActions(self, window):
        pass


Krita.instance().addExtension(DriverExtension(Krita.instance()))
