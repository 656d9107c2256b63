"""The "inkn'hue" docker: hints in, a colour layer out, a live blend slider."""

from __future__ import annotations

import logging

from krita import DockWidget

from . import config, document
from .backend import Backend
from .logic import (HINT_LAYER, MAX_MAX_SIZE, MIN_MAX_SIZE, OUTPUT_LAYERS, RESULT_LAYER, BlendThrottle, Format,
                    Rect, document_format, preview_size, progress_text, progress_value, ratio_to_slider,
                    slider_to_ratio, snap_max_size, work_area)
from .session import JobState, Placement, Sessions
from .messages import PROVIDER_NEEDS
from .protocol import RawImage
from .qt import Qt, QtWidgets

log = logging.getLogger("inknhue_krita")

TITLE = "inkn'hue"
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
        buttons.addWidget(self.colorize_button, 1)
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
        doc = document.active_document()
        if doc is None:
            return self.say("Open a page first.")
        fmt, problem = document_format(doc.colorModel(), doc.colorDepth(), doc.colorProfile())
        if fmt is None:
            self.convert.setVisible(doc.colorModel() == "GRAYA")
            return self.say(problem)
        self.convert.hide()
        rect = work_area(document.size(doc), document.selection_rect(doc))
        if rect.empty:
            return self.say("The selection is outside the image.")
        provider = self.provider.currentData() or "flats"
        page_node = doc.activeNode()
        source = self.page_source.currentData()
        images = {"page": fmt.image(document.page_pixels(doc, rect, source, page_node), rect.width, rect.height)}
        if PROVIDER_NEEDS.get(provider) == "hints":
            hints = None
            if self.hints_source.currentData() == "colorize_mask":
                data = document.colorize_mask_hints(doc, rect)
                if data is None:
                    return self.say("This Krita does not give plugins a Colorize Mask's strokes: use a hint layer.")
                hints = RawImage(rect.width, rect.height, "BGRA", data)
            else:
                hints_node = document.find_layer(doc, HINT_LAYER)
                if hints_node is None:
                    return self.say("Add a hint layer and paint colour strokes on it first.")
                if source == "layer" and page_node is not None and \
                        document.layer_id(page_node) == document.layer_id(hints_node):
                    return self.say("The active layer is the hint layer: select the page's layer.")
                hints = fmt.image(document.layer_pixels(hints_node, rect), rect.width, rect.height)
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
        session = self.sessions.of(doc)
        page_layer = document.layer_id(page_node) if source == "layer" and page_node is not None else ""
        session.sent(Placement(rect, fmt, kind, page_layer))
        try:
            self.backend.request(header, images, callback=lambda reply, _: self._on_accepted(session, reply),
                                 timeout=1.0)
        except Exception as exc:
            session.finished()
            return self.say(f"Could not send the page: {exc}")
        self.colorize_button.setEnabled(False)
        self.progress.setValue(0)
        self.stage.setText("Sending the page…")
        self.say("")

    def _on_accepted(self, session, reply: dict) -> None:
        if reply.get("type") == "error":
            session.finished()
            self.stage.setText("")
            self.colorize_button.setEnabled(self.backend.connected)
            return self.say(reply.get("message", "The backend refused the job."))
        session.accepted(reply["job"])
        self.cancel_button.setEnabled(True)
        self.stage.setText("Waiting for the backend…" if reply.get("position") else "Starting…")

    def cancel(self) -> None:
        session = self.running
        if session is not None and session.job:
            try:
                self.backend.request({"type": "cancel", "job": session.job})
            except Exception as exc:
                self.say(f"Could not cancel: {exc}")
            session.state = JobState.CANCELLING
            self.stage.setText("Cancelling…")

    def _on_event(self, event: dict, images) -> None:
        session = self.sessions.with_job(event.get("job"))
        if session is None:
            return
        kind = event.get("type")
        on_screen = session.document == document.active_document()
        if kind == "progress":
            if on_screen:
                self.progress.setValue(progress_value(event["index"], event["total"], event.get("seconds") is not None,
                                                      event.get("done")))
                self.stage.setText(progress_text(event["stage"], event["index"], event["total"],
                                                 event.get("cached"), event.get("fraction"), event.get("eta")))
        elif kind == "result":
            if not any(session.document == d for d in document.open_documents()):
                return self._finish_job(session, "The document was closed before its colours came back.")
            session.show(event["job"], bytes(images["result"].data))
            session.warnings = [str(w) for w in event.get("warnings", []) if isinstance(w, str)]
            self._finish_job(session, "")
            if on_screen:
                self.progress.setValue(100)
                ran = event.get("ran", [])
                self.stage.setText(f"Done in {event.get('seconds', 0):.1f} s"
                                   + ("" if "shade" in ran else " (shading reused)"))
                self.say(" ".join(session.warnings))
            self.keep_button.setEnabled(True)
        elif kind == "cancelled":
            self._finish_job(session, "Cancelled.")
        elif kind == "error":
            self._finish_job(session, event.get("message", "The job failed."))

    def _finish_job(self, session, message: str) -> None:
        session.finished()
        self.cancel_button.setEnabled(False)
        self.colorize_button.setEnabled(self.backend.connected)
        if message:
            self.stage.setText("")
            self.progress.setValue(0)
            self.say(message)

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
