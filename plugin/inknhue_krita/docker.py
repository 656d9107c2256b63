"""The "inkn'hue" docker: hints in, a colour layer out, a live blend slider.

Widgets and their bindings only: the run's flow (start, events, cancel, live looks, blends)
is controller.py's, which this docker serves as its `View`.
"""

from __future__ import annotations

import logging

from krita import DockWidget

from . import config, document
from .backend import Backend
from .controller import Choices, Controllers
from .live import POLL_S, seconds_text
from .logic import (HINT_LAYER, MAX_MAX_SIZE, MIN_MAX_SIZE, OUTPUT_LAYERS, RESULT_LAYER, document_format,
                    ratio_to_slider, slider_to_ratio, snap_max_size)
from .qt import Qt, QtCore, QtWidgets

log = logging.getLogger("inknhue_krita")

TITLE = "inkn'hue"
LIVE_TIP = ("Live colour: the result updates by itself shortly after you lift the pen on the hint layer, "
            "in the same layer (a re-run with new hints takes about {} here).")
STATE_TEXT = {"off": "Backend: off", "connecting": "Backend: connecting…", "starting": "Backend: starting…",
              "connected": "Backend: connected", "not_installed": "Backend: not installed",
              "error": "Backend: error"}
LAYERS_POLL_MS = 300
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
        self.controllers = Controllers(self.backend, self, self.choices)  # the run's flow, per document
        self.live_timer = QtCore.QTimer(self)
        self.live_timer.setInterval(round(POLL_S * 1000))
        self.live_timer.timeout.connect(self._live_tick)
        self.layers_timer = QtCore.QTimer(self)  # a deleted result layer noticed, the time left counted down
        self.layers_timer.setInterval(LAYERS_POLL_MS)
        self.layers_timer.timeout.connect(self.controllers.tick)
        self.layers_timer.start()
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
        self._after_conversion = ""  # "hints": Convert then adds the hint layer the artist asked for
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
        self._build_bring_to_page(layout)
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

    def _build_bring_to_page(self, layout) -> None:
        self.bring_button = self._widget(QtWidgets.QPushButton, "bring_to_page", "Bring to page")
        self.bring_button.setToolTip(
            "Bring the active layer's colouring to the page's own size and lines: for a colouring made at a "
            "lower resolution (another tool's, an older one, painted small), pasted and scaled up to the canvas "
            "or pasted as it is. The result is a new layer (Result: Colour under the ink gives a Multiply layer "
            "beneath your ink); your layer stays as it is. Page says where the lines come from.")
        self.bring_button.clicked.connect(self.bring_to_page)
        self.bring_button.setEnabled(False)
        layout.addWidget(self.bring_button)

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

    # what the controllers show (controller.View) ------------------------------------------

    def say(self, text: str) -> None:
        self.message.setText(text)
        if text:
            log.info("%s", text)

    def show_progress(self, value: int | None = None, stage: str | None = None) -> None:
        if value is not None:
            self.progress.setValue(value)
        if stage is not None:
            self.stage.setText(stage)

    def job_running(self, running: bool, cancellable: bool = False) -> None:
        self.cancel_button.setEnabled(running and cancellable)
        self.colorize_button.setEnabled(not running and self.backend.connected)
        self.bring_button.setEnabled(not running and self.backend.connected)

    def result_shown(self) -> None:
        self.keep_button.setEnabled(True)
        self._update_live_offer()

    def result_gone(self) -> None:
        self.keep_button.setEnabled(False)

    def offer_conversion(self, visible: bool) -> None:
        self.convert.setVisible(visible)

    def live_failed(self, reason: str) -> None:
        self.live_switch.setChecked(False)
        self.say(reason)

    def later(self, fn) -> None:
        QtCore.QTimer.singleShot(0, fn)

    def choices(self) -> Choices:
        """The panel's choices now, for a run."""
        return Choices(provider=self.provider.currentData() or "flats", page_source=self.page_source.currentData(),
                       hints_source=self.hints_source.currentData(), max_size=snap_max_size(self.max_size.value()),
                       fill_all=self.fill_all.isChecked(), transfer=self.transfer.isChecked(),
                       ratio=slider_to_ratio(self.ratio.value()), layer=self.output_layer.currentData() or "full",
                       reference=self.reference.currentData() or "", reference_path=self.reference_path)

    # the controllers' state, as the docker's tests read it ---------------------------------

    @property
    def sessions(self):
        return self.controllers.sessions

    @property
    def live(self):
        return self.controllers.live

    @property
    def throttle(self):
        return self.controllers.throttle

    @property
    def rerun_s(self) -> float | None:
        return self.controllers.rerun_s

    @rerun_s.setter
    def rerun_s(self, seconds: float | None) -> None:
        self.controllers.rerun_s = seconds

    @property
    def running(self):
        """The session whose job is in flight (one at a time: one backend)."""
        return self.controllers.running

    @property
    def job(self) -> str | None:
        running = self.running
        return running.job if running else None

    # backend ----------------------------------------------------------------------------

    def _on_state(self, state: str, detail: str) -> None:
        text = STATE_TEXT.get(state, state)
        self.status.setText(f"{text}\n{detail}" if detail else text)
        self.colorize_button.setEnabled(state == "connected" and self.running is None)
        self.bring_button.setEnabled(state == "connected" and self.running is None)
        if state != "connected":
            self.controllers.backend_lost(detail)

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
        self.controllers.hello_changed(hello)
        self._update_live_offer()
        if not hello.get("weights", {}).get("present", True):
            folder = hello.get("weights", {}).get("folder", "the weights folder")
            self.say(f"The networks' weights are missing in {folder}: run the inkn'hue installer again "
                     f"(it resumes), or add --weights-from DIR with the files downloaded elsewhere.")

    def _on_event(self, event: dict, images) -> None:
        self.controllers.on_event(event, images)

    # hints, reference, conversions -------------------------------------------------------

    def add_hint_layer(self) -> None:
        doc = document.active_document()
        if doc is None:
            return self.say("Open a page first.")
        fmt, problem = document_format(doc.colorModel(), doc.colorDepth(), doc.colorProfile())
        if fmt is None:  # a greyscale layer cannot hold colour strokes
            self.offer_conversion(doc.colorModel() == "GRAYA")
            self._after_conversion = "hints"  # what the artist asked for, done once converted
            return self.say(problem)
        self.offer_conversion(False)
        self._after_conversion = ""
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
        self._update_live_offer()  # its advice names Max size only while it can go lower

    def convert_to_rgb(self) -> None:
        doc = document.active_document()
        if doc is not None and doc.setColorSpace("RGBA", doc.colorDepth(), ""):
            self.convert.hide()
            if self._after_conversion == "hints":
                self.add_hint_layer()
                self.say("Converted to RGB. " + self.message.text())
            else:
                self.say("Converted to RGB. Colorize again.")
            self._after_conversion = ""

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

    # colorize ---------------------------------------------------------------------------

    def colorize(self) -> None:
        """The Colorize button (with Live on too: a run now)."""
        self._after_conversion = ""
        controller = self.controllers.active()
        if controller is None:
            return self.say("Open a page first.")
        controller.start(self.choices(), live=False)

    def bring_to_page(self) -> None:
        """The Bring to page button: the active layer's colouring at the page's size (upscaling.py)."""
        controller = self.controllers.active()
        if controller is None:
            return self.say("Open a page first.")
        controller.bring_to_page(self.choices())

    def cancel(self) -> None:
        self.controllers.cancel()

    def keep_result(self) -> None:
        """Keep the current result as its own layer; the next Colorize starts a new one."""
        controller = self.controllers.active()
        name = controller.keep() if controller is not None else None
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

    # live colour (the rules: live.py; the looks: controller.py) ------------------------------

    def _update_live_offer(self) -> None:
        """Offer Live when a re-run with new hints is fast enough here, else say why; turn
        it off when it stops being so, and on again when the artist had it on last time."""
        reason = self.controllers.live_unavailable(self.provider.currentData() or self._wanted_provider,
                                                   self.hints_source.currentData(),
                                                   self.max_size.value() <= self.max_size.minimum())
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
            self.controllers.live_on()
            self.live_timer.start()
            self._live_tick()
        else:
            self.live_timer.stop()
            self.controllers.live_off()

    def _live_tick(self) -> None:
        self.controllers.live_tick()

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

    def _blend(self, ratio: float, final: bool) -> None:
        controller = self.controllers.active()
        if controller is not None:
            controller.blend(ratio, final)
