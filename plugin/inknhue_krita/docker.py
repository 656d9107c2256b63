"""The "inkn'hue" docker: hints in, a colour layer out, a live blend slider."""

from __future__ import annotations

import logging
import time

from krita import DockWidget

from . import config, document
from .backend import Backend
from .live import POLL_S, Action, LiveScheduler, live_unavailable, rerun_estimate, seconds_text
from .logic import (HINT_LAYER, MAX_MAX_SIZE, MIN_MAX_SIZE, OUTPUT_LAYERS, RESULT_LAYER, BlendThrottle, Format,
                    Rect, document_format, preview_size, progress_text, progress_value, ratio_to_slider,
                    slider_to_ratio, snap_max_size, work_area)
from .messages import PROVIDER_NEEDS
from .session import Placement, Sessions
from .protocol import RawImage
from .qt import Qt, QtCore, QtWidgets

log = logging.getLogger("inknhue_krita")

TITLE = "inkn'hue"
LIVE_TIP = ("Live colour: the result updates by itself shortly after you lift the pen on the hint layer, "
            "in the same layer (a re-run with new hints takes about {} here).")
STATE_TEXT = {"off": "Backend: off", "connecting": "Backend: connecting…", "starting": "Backend: starting…",
              "connected": "Backend: connected", "not_installed": "Backend: not installed",
              "error": "Backend: error"}
_backend: Backend | None = None


def shared_backend() -> Backend:
    """One backend link for all of Krita's windows."""
    global _backend
    if _backend is None:
        _backend = Backend()
        _backend.connect_or_start()
    return _backend


def stop_backend() -> None:
    global _backend
    if _backend is not None:
        _backend.stop()
        _backend = None


class _RefreshingComboBox(QtWidgets.QComboBox):
    before_popup = None

    def showPopup(self):
        if self.before_popup:
            self.before_popup()
        super().showPopup()


class InknhueDocker(DockWidget):
    def __init__(self):
        super().__init__()
        self.setWindowTitle(TITLE)
        self.backend = shared_backend()
        self.sessions = Sessions()           # one per open document
        self.throttle = BlendThrottle()
        self.live = LiveScheduler()          # when a live run starts
        self.rerun_s: float | None = None    # a re-run with new hints, measured on the last job
        self._rerun_device = None            # ... on this backend device
        self._rerun_cached = False           # jobs came back, all from the backend's cache: none measured
        self._live_doc = None                # the document live colour watches (the active one)
        self._live_seen = None               # its hint layer's fingerprint at the last poll
        self.live_timer = QtCore.QTimer(self)
        self.live_timer.setInterval(round(POLL_S * 1000))
        self.live_timer.timeout.connect(self._live_tick)
        self._build()
        self.backend.state_changed.connect(self._on_state)
        self.backend.hello_changed.connect(self._on_hello)
        self.backend.job_event.connect(self._on_event)
        self._on_state(self.backend.state, self.backend.detail)
        if self.backend.hello:
            self._on_hello(self.backend.hello)

    # the panel --------------------------------------------------------------------------

    def _widget(self, cls, name, *args):
        widget = cls(*args)
        widget.setObjectName(f"inknhue_{name}")
        return widget

    def _build(self) -> None:
        root = QtWidgets.QWidget(self)
        layout = QtWidgets.QVBoxLayout(root)
        self.status = self._widget(QtWidgets.QLabel, "status", STATE_TEXT["off"])
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

        form = QtWidgets.QFormLayout()
        self.page_source = self._widget(QtWidgets.QComboBox, "page_source")
        self.page_source.addItem("Visible image", "visible")
        self.page_source.addItem("Active layer", "layer")
        form.addRow("Page", self.page_source)
        hints_row = QtWidgets.QHBoxLayout()
        self.hints_source = self._widget(QtWidgets.QComboBox, "hints_source")
        self.hints_source.addItem("Hint layer", "layer")
        self.hints_source.addItem("Colorize Mask strokes", "colorize_mask")
        self.add_hints = self._widget(QtWidgets.QPushButton, "add_hints", "Add hint layer")
        self.add_hints.clicked.connect(self.add_hint_layer)
        hints_row.addWidget(self.hints_source, 1)
        hints_row.addWidget(self.add_hints)
        form.addRow("Hints", hints_row)
        self.reference = self._widget(_RefreshingComboBox, "reference")
        self.reference.before_popup = self._list_reference_layers
        self.reference.addItem("None", "")
        self.reference.addItem("Image file…", "file")
        self.reference.activated.connect(self._on_reference)
        self.reference_path = ""
        self.transfer = self._widget(QtWidgets.QCheckBox, "transfer", "Match its colours")
        reference_row = QtWidgets.QHBoxLayout()
        reference_row.addWidget(self.reference, 1)
        reference_row.addWidget(self.transfer)
        form.addRow("Reference", reference_row)
        self.provider = self._widget(QtWidgets.QComboBox, "provider")
        self.provider.addItem("flats", "flats")
        self.provider.setToolTip("Where the first, rough colours come from before inkn'hue cleans them up: "
                                 "flats fills each area your ink lines enclose with the colour of the strokes "
                                 "inside it; shader lets the shading network spread your strokes; image uses a "
                                 "rough colour picture you made elsewhere.")
        form.addRow("Rough colours", self.provider)
        self.max_size = self._widget(QtWidgets.QSpinBox, "max_size")
        self.max_size.setRange(MIN_MAX_SIZE, MAX_MAX_SIZE)
        self.max_size.setSingleStep(32)
        self.max_size.setToolTip("How much of the page's detail the networks see, as the short side in pixels "
                                 "while they work (the result always comes back at the page's own size, with "
                                 "your own lines). 768 is what inkn'hue was made for; higher follows small "
                                 "areas better but is slower and needs more memory.")
        form.addRow("Max size", self.max_size)
        self.fill_all = self._widget(QtWidgets.QCheckBox, "fill_all", "Colour regions without strokes")
        form.addRow("", self.fill_all)
        self.output_layer = self._widget(QtWidgets.QComboBox, "output_layer")
        for kind, _, _, label, tip in OUTPUT_LAYERS:
            self.output_layer.addItem(label, kind)
            self.output_layer.setItemData(self.output_layer.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        form.addRow("Result", self.output_layer)
        layout.addLayout(form)

        buttons = QtWidgets.QHBoxLayout()
        self.colorize_button = self._widget(QtWidgets.QPushButton, "colorize", "Colorize")
        self.colorize_button.clicked.connect(self.colorize)
        self.cancel_button = self._widget(QtWidgets.QPushButton, "cancel", "Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        self.keep_button = self._widget(QtWidgets.QPushButton, "keep", "Keep")
        self.keep_button.setToolTip("Keep this result as its own layer. Colorize updates one layer in place "
                                    "while you try other hints; keep the versions you like.")
        self.keep_button.clicked.connect(self.keep_result)
        self.keep_button.setEnabled(False)
        self.live_switch = self._widget(QtWidgets.QCheckBox, "live", "Live")
        self.live_switch.setEnabled(False)
        buttons.addWidget(self.colorize_button, 1)
        buttons.addWidget(self.live_switch)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.keep_button)
        layout.addLayout(buttons)
        self.progress = self._widget(QtWidgets.QProgressBar, "progress")
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        layout.addWidget(self.progress)
        self.stage = self._widget(QtWidgets.QLabel, "stage", "")
        layout.addWidget(self.stage)

        ratio_row = QtWidgets.QHBoxLayout()
        self.ratio = self._widget(QtWidgets.QSlider, "ratio", Qt.Orientation.Horizontal)
        self.ratio.setRange(0, 100)
        self.ratio.setToolTip("0: the aligned colours; 1: the rough colours' hues")
        self.ratio.valueChanged.connect(self._on_ratio_moved)
        self.ratio.sliderReleased.connect(self._on_ratio_released)
        self.ratio_label = self._widget(QtWidgets.QLabel, "ratio_label", "")
        ratio_row.addWidget(QtWidgets.QLabel("Colour"))
        ratio_row.addWidget(self.ratio, 1)
        ratio_row.addWidget(self.ratio_label)
        layout.addLayout(ratio_row)

        self.message = self._widget(QtWidgets.QLabel, "message", "")
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        self.convert = self._widget(QtWidgets.QPushButton, "convert", "Convert to RGB")
        self.convert.clicked.connect(self.convert_to_rgb)
        self.convert.hide()
        layout.addWidget(self.convert)
        layout.addStretch(1)
        self.setWidget(root)
        self._load_settings()

    def _load_settings(self) -> None:
        self.page_source.setCurrentIndex(max(0, self.page_source.findData(config.read_setting("page_source"))))
        self.max_size.setValue(snap_max_size(config.read_setting("max_size")))
        self.fill_all.setChecked(config.read_setting("fill_all"))
        self.output_layer.setCurrentIndex(max(0, self.output_layer.findData(config.read_setting("output_layer"))))
        self.ratio.blockSignals(True)
        self.ratio.setValue(ratio_to_slider(config.read_setting("ratio")))
        self.ratio.blockSignals(False)
        self.ratio_label.setText(f"{slider_to_ratio(self.ratio.value()):.2f}")
        self.reference_path = config.read_setting("reference")
        self._wanted_provider = config.read_setting("provider")
        self.page_source.currentIndexChanged.connect(
            lambda _: config.write_setting("page_source", self.page_source.currentData()))
        self.max_size.editingFinished.connect(self._on_max_size)
        self.fill_all.toggled.connect(lambda on: config.write_setting("fill_all", on))
        self.output_layer.currentIndexChanged.connect(
            lambda _: config.write_setting("output_layer", self.output_layer.currentData()))
        self.provider.currentIndexChanged.connect(
            lambda _: config.write_setting("provider", self.provider.currentData()))
        self.provider.currentIndexChanged.connect(lambda _: self._update_live_offer())
        self.hints_source.currentIndexChanged.connect(lambda _: self._update_live_offer())
        self.live_switch.toggled.connect(self._on_live_toggled)
        self._update_live_offer()

    def say(self, text: str) -> None:
        self.message.setText(text)
        if text:
            log.info("%s", text)

    # backend ----------------------------------------------------------------------------

    @property
    def running(self):
        """The session whose job is in flight (one at a time: one backend)."""
        return self.sessions.busy()

    @property
    def job(self) -> str | None:
        running = self.running
        return running.job if running else None

    def _on_state(self, state: str, detail: str) -> None:
        text = STATE_TEXT.get(state, state)
        self.status.setText(f"{text}\n{detail}" if detail else text)
        self.colorize_button.setEnabled(state == "connected" and self.running is None)
        if state != "connected" and self.running is not None:
            self._finish_job(self.running, f"Lost the backend during the job: {detail}")

    def _on_hello(self, hello: dict) -> None:
        limits = hello.get("limits", {}).get("max_size")
        if isinstance(limits, list) and len(limits) == 2:
            self.max_size.setRange(*limits)
        current = self.provider.currentData() or self._wanted_provider
        self.provider.blockSignals(True)
        self.provider.clear()
        for provider in hello.get("providers", []):
            self.provider.addItem(provider["name"], provider["name"])
            self.provider.setItemData(self.provider.count() - 1, provider["description"],
                                      Qt.ItemDataRole.ToolTipRole)
        for provider in hello.get("unavailable_providers", []):  # shown, greyed out, with the reason
            self.provider.addItem(provider["name"], provider["name"])
            self.provider.setItemData(self.provider.count() - 1,
                                      f"{provider['description']}\nNot available: {provider['reason']}",
                                      Qt.ItemDataRole.ToolTipRole)
            self.provider.model().item(self.provider.count() - 1).setEnabled(False)
        index = self.provider.findData(current)
        offered = index >= 0 and self.provider.model().item(index).isEnabled()
        self.provider.setCurrentIndex(index if offered else 0)
        self.provider.blockSignals(False)
        layers = hello.get("layers", ["full"])
        for index in range(self.output_layer.count()):  # an older backend makes only the full page
            offered = self.output_layer.itemData(index) in layers
            self.output_layer.model().item(index).setEnabled(offered)
        if self.output_layer.currentData() not in layers:
            self.output_layer.setCurrentIndex(0)
        device = hello.get("device") if isinstance(hello.get("device"), dict) else {}
        if self._rerun_device is not None and device.get("name") != self._rerun_device:
            self.rerun_s = None  # another backend: its speed is not known yet
        self._update_live_offer()
        if not hello.get("weights", {}).get("present", True):
            folder = hello.get("weights", {}).get("folder", "the weights folder")
            self.say(f"The networks' weights are missing in {folder}: run the inkn'hue installer again "
                     f"(it resumes), or add --weights-from DIR with the files downloaded elsewhere.")

    # hints, reference, conversions -------------------------------------------------------

    def add_hint_layer(self) -> None:
        doc = document.active_document()
        if doc is None:
            return self.say("Open a page first.")
        fmt, problem = document_format(doc.colorModel(), doc.colorDepth(), doc.colorProfile())
        if fmt is None:  # a greyscale layer cannot hold colour strokes
            self.convert.setVisible(doc.colorModel() == "GRAYA")
            return self.say(problem)
        self.convert.hide()
        existing = document.find_layer(doc, HINT_LAYER)
        if existing is not None:
            doc.setActiveNode(existing)
            return self.say("The hint layer is there: paint colour strokes on it, any brush.")
        document.add_hint_layer(doc, doc.activeNode())
        self.say("Paint colour strokes on the hint layer, then Colorize.")

    def _on_reference(self, index: int) -> None:
        if self.reference.itemData(index) == "file":
            path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Reference image", self.reference_path,
                                                            "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff)")
            if path:
                self.reference_path = path
                config.write_setting("reference", path)
                self.reference.setItemText(index, path.rsplit("/", 1)[-1])
            else:
                self.reference.setCurrentIndex(0)

    def _on_max_size(self) -> None:
        value = snap_max_size(self.max_size.value())
        self.max_size.setValue(value)
        config.write_setting("max_size", value)

    def convert_to_rgb(self) -> None:
        doc = document.active_document()
        if doc is not None and doc.setColorSpace("RGBA", doc.colorDepth(), ""):
            self.convert.hide()
            self.say("Converted to RGB. Colorize again.")

    def _list_reference_layers(self) -> None:
        """Offer the document's layers as references (refreshed each time the list opens)."""
        doc = document.active_document()
        chosen = self.reference.currentData()
        while self.reference.count() > 2:
            self.reference.removeItem(2)
        for node in document.all_layers(doc) if doc is not None else []:
            if node.name() not in (HINT_LAYER,) and not node.name().startswith(RESULT_LAYER):
                self.reference.addItem(f"Layer: {node.name()}", f"layer:{document.layer_id(node)}")
        self.reference.setCurrentIndex(max(0, self.reference.findData(chosen)))

    def _reference_image(self, doc, fmt: Format) -> RawImage | None:
        choice = self.reference.currentData() or ""
        if choice.startswith("layer:"):
            node = document.find_layer(doc, unique_id=choice[len("layer:"):])
            if node is None:
                self.say("The reference layer is gone; colorizing without it.")
                return None
            whole = Rect(0, 0, *document.size(doc))
            return fmt.image(bytes(node.projectionPixelData(0, 0, whole.width, whole.height)),
                             whole.width, whole.height)
        if choice != "file" or not self.reference_path:
            return None
        loaded = document.load_reference_file(self.reference_path)
        if loaded is None:
            self.say(f"Cannot read the reference {self.reference_path}; colorizing without it.")
            return None
        width, height, data = loaded
        return RawImage(width, height, "BGRA", data)

    # colorize ---------------------------------------------------------------------------

    def colorize(self) -> None:
        """The Colorize button (with Live on too: a run now)."""
        self._start_run(live=False)

    def _start_run(self, live: bool) -> bool:
        """Colorize the active document; returns whether the job went out."""
        started = time.monotonic()
        doc = document.active_document()
        if doc is None:
            return self._refuse("Open a page first.")
        fmt, problem = document_format(doc.colorModel(), doc.colorDepth(), doc.colorProfile())
        if fmt is None:
            self.convert.setVisible(doc.colorModel() == "GRAYA")
            return self._refuse(problem)
        self.convert.hide()
        rect = work_area(document.size(doc), document.selection_rect(doc))
        if rect.empty:
            return self._refuse("The selection is outside the image.")
        session = self.sessions.of(doc)
        provider = self.provider.currentData() or "flats"
        page_node = doc.activeNode()
        source = self.page_source.currentData()
        if live and source == "layer" and page_node is not None and document.is_plugin_layer(page_node) \
                and session.placement is not None and session.placement.page_layer:
            # painting on the hint layer makes it the active one: the page stays the last job's layer
            page_node = document.find_layer(doc, unique_id=session.placement.page_layer) or page_node
        hints_node = document.find_layer(doc, HINT_LAYER)
        seen = document.layer_fingerprint(doc, hints_node) if hints_node is not None else None
        hints = None
        if PROVIDER_NEEDS.get(provider) == "hints":
            if self.hints_source.currentData() == "colorize_mask":
                data = document.colorize_mask_hints(doc, rect)
                if data is None:
                    return self._refuse("This Krita does not give plugins a Colorize Mask's strokes: use a hint layer.")
                hints = RawImage(rect.width, rect.height, "BGRA", data)
            else:
                if hints_node is None:
                    return self._refuse("Add a hint layer and paint colour strokes on it first.")
                if source == "layer" and page_node is not None and \
                        document.layer_id(page_node) == document.layer_id(hints_node):
                    return self._refuse("The active layer is the hint layer: select the page's layer.")
                hints = fmt.image(document.layer_pixels(hints_node, rect), rect.width, rect.height)
        images = {"page": fmt.image(document.page_pixels(doc, rect, source, page_node), rect.width, rect.height)}
        if hints is not None:
            images["hints"] = hints
        reference = self._reference_image(doc, fmt)
        if reference is not None:
            images["reference"] = reference
        mask = document.selection_mask(doc, rect)
        if mask is not None:
            images["mask"] = RawImage(rect.width, rect.height, "L", mask)
        kind = self.output_layer.currentData() or "full"
        header = {"type": "colorize", "provider": provider, "ratio": slider_to_ratio(self.ratio.value()),
                  "max_size": snap_max_size(self.max_size.value()), "fill_all": self.fill_all.isChecked(),
                  "transfer": self.transfer.isChecked() and reference is not None,
                  "output": fmt.output("page", kind)}
        page_layer = document.layer_id(page_node) if source == "layer" and page_node is not None else ""
        session.sent(Placement(rect, fmt, kind, page_layer), at=started, live=live, hints=seen)
        self.live.started(started, live=live)
        if self._live_doc is not None and self._live_doc == doc:
            self._live_seen = seen  # these hints are on their way: no live run for them
        try:
            self.backend.request(header, images, callback=lambda reply, _: self._on_accepted(session, reply),
                                 timeout=1.0)
        except Exception as exc:
            self._finish_job(session, f"Could not send the page: {exc}")
            return False
        self.colorize_button.setEnabled(False)
        self.progress.setValue(0)
        self.stage.setText("Live: sending the page…" if live else "Sending the page…")
        self.say("")
        return True

    def _refuse(self, reason: str) -> bool:
        self.say(reason)
        return False

    def _on_accepted(self, session, reply: dict) -> None:
        if reply.get("type") == "error":
            self.stage.setText("")
            return self._finish_job(session, reply.get("message", "The backend refused the job."))
        session.accepted(reply["job"], time.monotonic())
        if session.cancelled:  # overtaken (or cancelled) while it was on its way
            return self._send_cancel(session)
        self.cancel_button.setEnabled(True)
        self.stage.setText("Waiting for the backend…" if reply.get("position") else "Starting…")

    def cancel(self) -> None:
        session = self.running
        if session is not None:
            self._cancel(session)

    def _cancel(self, session, quiet: bool = False) -> None:
        """Stop the session's job; its result, if it still comes, is dropped. `quiet`: for
        newer hints (live colour), so no "Cancelled." for the artist."""
        session.cancel(quiet)
        self.live.cancelling()
        if session.job:
            self._send_cancel(session)
        if not quiet:
            self.stage.setText("Cancelling…")

    def _send_cancel(self, session) -> None:
        try:
            self.backend.request({"type": "cancel", "job": session.job})
        except Exception as exc:
            self.say(f"Could not cancel: {exc}")

    def _on_event(self, event: dict, images) -> None:
        session = self.sessions.with_job(event.get("job"))
        if session is None:
            return
        kind = event.get("type")
        session.heard(time.monotonic())
        on_screen = session.document == document.active_document()
        if kind == "progress":
            if on_screen and not session.cancelled:
                self.progress.setValue(progress_value(event["index"], event["total"], event.get("seconds") is not None,
                                                      event.get("done")))
                self.stage.setText(progress_text(event["stage"], event["index"], event["total"],
                                                 event.get("cached"), event.get("fraction"), event.get("eta")))
        elif kind in ("result", "cancelled") and session.cancelled:  # a result is never written then
            self._finish_job(session, "" if session.quiet else "Cancelled.", clear=True)
        elif kind == "result":
            if not any(session.document == d for d in document.open_documents()):
                return self._finish_job(session, "The document was closed before its colours came back.")
            live = session.live
            session.show(event["job"], bytes(images["result"].data))
            self._measured(session, event)
            session.warnings = [str(w) for w in event.get("warnings", []) if isinstance(w, str)]
            self._finish_job(session, "")
            if on_screen:
                self.progress.setValue(100)
                ran = event.get("ran", [])
                self.stage.setText(("Live: done" if live else "Done") + f" in {event.get('seconds', 0):.1f} s"
                                   + ("" if "shade" in ran else " (shading reused)"))
                self.say(" ".join(session.warnings))
            self.keep_button.setEnabled(True)
            self._update_live_offer()
        elif kind == "cancelled":
            self._finish_job(session, "Cancelled.")
        elif kind == "error":
            self._finish_job(session, event.get("message", "The job failed."))

    def _measured(self, session, event: dict) -> None:
        """What a re-run with new hints costs here, from the job just written."""
        timings = event.get("timings") if isinstance(event.get("timings"), dict) else {}
        ran = event.get("ran") if isinstance(event.get("ran"), list) else []
        estimate = rerun_estimate(time.monotonic() - session.sent_at, session.queued(), timings, ran)
        if estimate is None:  # nothing computed on hints: the last measure stands
            self._rerun_cached = self.rerun_s is None
            return
        self.rerun_s = estimate
        device = self.backend.hello.get("device")
        self._rerun_device = device.get("name") if isinstance(device, dict) else None

    def _finish_job(self, session, message: str, clear: bool = False) -> None:
        session.finished()
        self.live.stopped()
        self.cancel_button.setEnabled(False)
        self.colorize_button.setEnabled(self.backend.connected)
        if message or clear:
            self.stage.setText("")
            self.progress.setValue(0)
            self.say(message)
        if self.live.on:  # the newest hints may be waiting for this one to stop
            QtCore.QTimer.singleShot(0, self._live_tick)

    # live colour (the rules: live.py) ------------------------------------------------------

    def _update_live_offer(self) -> None:
        """Offer Live when a re-run with new hints is fast enough here, else say why; turn
        it off when it stops being so, and on again when the artist had it on last time."""
        reason = live_unavailable(self.rerun_s, self.backend.hello.get("device"),
                                  self.provider.currentData() or self._wanted_provider,
                                  self.hints_source.currentData(), self._rerun_cached)
        self.live_switch.setEnabled(not reason)
        self.live_switch.setToolTip(reason or LIVE_TIP.format(seconds_text(self.rerun_s)))
        if reason and self.live_switch.isChecked():
            self.live_switch.setChecked(False)
            self.say(f"Live colour is off. {reason}")
        elif not reason and not self.live_switch.isChecked() and config.read_setting("live"):
            self.live_switch.setChecked(True)

    def _on_live_toggled(self, on: bool) -> None:
        config.write_setting("live", on)
        if on:
            self.live.turn_on()
            self._live_doc = None  # the first look takes the active document's hints as they are
            self.live_timer.start()
            self._live_tick()
        else:
            self.live_timer.stop()
            self._live_doc = self._live_seen = None
            if self.live.turn_off() and self.running is not None:
                self._cancel(self.running, quiet=True)

    def _live_tick(self) -> None:
        """Look at the active document's hint layer; start or overtake a run when due."""
        if not self.live.on:
            return
        try:
            self._live_look()
        except Exception as exc:  # noqa: BLE001  (on a timer: one report, not one a quarter second)
            log.exception("live colour failed")
            self.live_switch.setChecked(False)
            self.say(f"Live colour stopped: {exc}")

    def _live_look(self) -> None:
        now = time.monotonic()
        doc = document.active_document()
        if doc is None:
            return
        hints = document.find_layer(doc, HINT_LAYER)
        seen = document.layer_fingerprint(doc, hints) if hints is not None else None
        if self._live_doc is None or not self._live_doc == doc:
            # newly watched: compare with the hints its last job had, if any
            running = self.running
            self.live.watch(running is None or running.document == doc)
            self._live_doc = doc
            self._live_seen = self.sessions.of(doc).hints or seen
        if seen is not None and self._live_seen is not None and seen != self._live_seen:
            self.live.changed(now)
        self._live_seen = seen
        action = self.live.due(now)
        if action is Action.START and self.running is None and self.backend.connected and document.idle(doc):
            if not self._start_run(live=True):
                self.live.forget()  # tried again when the hints change
        elif action is Action.CANCEL and self.running is not None:
            self._cancel(self.running, quiet=True)

    def keep_result(self) -> None:
        """Keep the current result as its own layer; the next Colorize starts a new one."""
        doc = document.active_document()
        name = self.sessions.of(doc).keep() if doc is not None else None
        self.keep_button.setEnabled(False)
        self.say(f"Kept as \"{name}\". The next Colorize makes a new layer." if name else "No result to keep.")

    def canvasChanged(self, canvas) -> None:  # Krita's DockWidget API: another view became active
        self.sessions.forget_closed(document.open_documents())
        doc = document.active_document()
        session = self.sessions.of(doc) if doc is not None else None
        if session is None or not session.busy:  # texts about another document's job are stale here
            self.progress.setValue(0)
            self.stage.setText("")
            self.say(" ".join(session.warnings) if session else "")
        self.keep_button.setEnabled(session is not None and session.shown is not None)

    # the ratio slider -------------------------------------------------------------------

    def _on_ratio_moved(self, value: int) -> None:
        self.ratio_label.setText(f"{slider_to_ratio(value):.2f}")
        final = not self.ratio.isSliderDown()  # keyboard and clicks land at full resolution
        if final:
            config.write_setting("ratio", slider_to_ratio(value))
        self._blend(slider_to_ratio(value), final)

    def _on_ratio_released(self) -> None:
        config.write_setting("ratio", slider_to_ratio(self.ratio.value()))
        self._blend(slider_to_ratio(self.ratio.value()), final=True)

    def _shown(self):
        doc = document.active_document()
        session = self.sessions.of(doc) if doc is not None else None
        return (session, session.shown) if session is not None and session.shown is not None else (None, None)

    def _blend(self, ratio: float, final: bool) -> None:
        session, shown = self._shown()
        if shown is None or not self.backend.connected:
            return
        request = self.throttle.request(ratio, final)
        if request is None:
            return
        ratio, final = request
        rect, fmt = shown.placement.rect, shown.placement.format
        # previews are 8-bit and upscaled here; other depths blend at full size
        size = "page" if final or fmt.dtype != "uint8" else preview_size(rect.width, rect.height)
        header = {"type": "blend", "job": shown.job, "ratio": ratio, **fmt.output(size, shown.placement.kind)}
        try:
            self.throttle.sent(self.backend.request(
                header, callback=lambda reply, images: self._on_blended(session, shown, reply, images)))
        except Exception as exc:
            self.throttle.done()
            self.say(f"Could not blend: {exc}")

    def _on_blended(self, session, shown, reply: dict, images) -> None:
        following = self.throttle.done()
        if reply.get("type") == "error":
            self.say(reply.get("message", "The blend failed."))
        elif session.shown is shown:  # still the working result (not kept, not replaced)
            rect = shown.placement.rect
            node = document.find_layer(session.document, unique_id=shown.layer)
            if node is None:
                self.say("The colour layer is gone: Colorize again to get a new one.")
            else:
                image = images["result"]
                data = bytes(image.data)
                if (image.width, image.height) != (rect.width, rect.height):
                    data = document.scale_bgra(data, image.width, image.height, rect.width, rect.height)
                document.write_pixels(session.document, node, data, rect)
        if following is not None:
            self._blend(*following)
