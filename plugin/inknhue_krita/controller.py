"""The run's flow, without widgets: start, accept, events, finish, cancel, live ticks, blends.

One `Controller` per open document drives its `Session` (session.py: the job and the result
layers): it reads the page and the hints when a run starts, sends the job, follows its
events and writes the result. `Controllers` holds what the documents share: the backend
link (one job at a time), the live-colour scheduler (live.py), which watches the active
document, and what a re-run with new hints has been measured to cost here.

The docker (docker.py) only binds widgets: it gives a controller the panel's choices as a
`Choices` when a run starts and shows what the controller tells its `View`. So this flow is
tested with a fake view and a fake backend, as logic.py and live.py are. Krita is reached
only through document.py.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from . import document, slices, upscaling
from .live import Action, LiveScheduler, live_unavailable, rerun_estimate
from .logic import (BYTES, HINT_LAYER, MIN_MAX_SIZE, BlendThrottle, Format, Rect, box_max_size, document_format,
                    preview_size, progress_text, progress_value, work_area)
from .messages import PROVIDER_NEEDS
from .preview import DEPTHS as PREVIEW_DEPTHS
from .preview import KNOTS as PREVIEW_KNOTS
from .preview import Preview
from .protocol import RawImage
from .session import Placement, Session, Sessions

log = logging.getLogger("inknhue_krita")
STEP_S = 0.03  #: the longest stretch of reading a page or writing a result before Qt gets the UI thread back
OVERDUE_S = 3.0  #: a time left counted down this far past zero reads "finishing…"


@dataclass(frozen=True)
class Choices:
    """What the panel says when a run starts."""

    provider: str = "flats"
    page_source: str = "visible"   #: "visible" (the image as seen) or "layer" (the active layer)
    hints_source: str = "layer"    #: "layer" (the hint layer) or "colorize_mask"
    max_size: int = 768
    fill_all: bool = False
    transfer: bool = False         #: match the reference's colours
    ratio: float = 0.8
    layer: str = "full"            #: an OUTPUT_LAYERS kind
    reference: str = ""            #: "", "file" or "layer:<id>"
    reference_path: str = ""


class View(Protocol):
    """What the controllers show; the docker is one."""

    def say(self, text: str) -> None: ...
    def show_progress(self, value: int | None = None, stage: str | None = None) -> None:
        """Set the bar and/or the stage line (None: leave as it is)."""
    def job_running(self, running: bool, cancellable: bool = False) -> None:
        """A job went out (Colorize off) or ended (Colorize on if the backend is there)."""
    def result_shown(self) -> None:
        """A result was written: Keep becomes possible, and Live may be offered now."""
    def result_gone(self) -> None:
        """The result's layer was deleted (or undone away): nothing to keep or blend."""
    def offer_conversion(self, visible: bool) -> None:
        """The one-click conversion of a greyscale document to RGB."""
    def live_failed(self, reason: str) -> None:
        """Live colour stops (its switch off), saying why."""
    def later(self, fn: Callable[[], None]) -> None:
        """Call fn once the current event is handled."""


class Backend(Protocol):
    """What the controllers use of backend.Backend."""

    hello: dict

    @property
    def connected(self) -> bool: ...
    def request(self, header: dict, images=None, callback=None, timeout: float = 0.0) -> str: ...


class Controllers:
    """The documents' controllers and what they share."""

    def __init__(self, backend: Backend, view: View, choices: Callable[[], Choices]):
        self.backend, self.view = backend, view
        self.choices = choices               # the panel's choices now (for live runs)
        self.sessions = Sessions()           # one per open document
        self.throttle = BlendThrottle()      # one blend in flight
        self.live = LiveScheduler()          # when a live run starts
        self.rerun_s: float | None = None    # a re-run with new hints, measured on the last job
        self.rerun_device = None             # ... on this backend device
        self.rerun_cached = False            # jobs came back, all from the backend's cache: none measured
        self._live_doc = None                # the document live colour watches (the active one)
        self._live_seen = None               # its hint layer's fingerprint at the last poll

    def of(self, doc) -> Controller:
        return Controller(self, self.sessions.of(doc))

    @property
    def running(self) -> Session | None:
        """The session whose job is in flight (one at a time: one backend)."""
        return self.sessions.busy()

    def active(self) -> Controller | None:
        doc = document.active_document()
        return self.of(doc) if doc is not None else None

    # the backend ------------------------------------------------------------------------

    def backend_lost(self, detail: str) -> None:
        if self.running is not None:
            self.of(self.running.document).finish(f"Lost the backend during the job: {detail}")

    def hello_changed(self, hello: dict) -> None:
        device = hello.get("device") if isinstance(hello.get("device"), dict) else {}
        if self.rerun_device is not None and device.get("name") != self.rerun_device:
            self.rerun_s = None  # another backend: its speed is not known yet

    def on_event(self, event: dict, images) -> None:
        session = self.sessions.with_job(event.get("job"))
        if session is not None:
            Controller(self, session).on_event(event, images)

    def cancel(self) -> None:
        if self.running is not None:
            self.of(self.running.document).cancel()

    def tick(self) -> None:
        """The docker's timer: a deleted result noticed, the time left counted down."""
        self.check_layers()
        running = self.running
        if running is not None and running.progress is not None and not running.cancelled:
            controller = self.of(running.document)
            if controller.on_screen:
                self.view.show_progress(stage=controller.progress_line())

    def check_layers(self) -> None:
        """Notice at once when the active document's result layer is gone (the artist deleted
        it, or undid it away): the docker then offers nothing for it (the docker's timer)."""
        doc = document.active_document()
        session = self.sessions.of(doc) if doc is not None else None
        if session is None or session.shown is None or session.busy:
            return
        if document.find_layer(doc, unique_id=session.shown.layer) is None:
            session.forget_shown()
            self.view.result_gone()
            self.view.show_progress(0, "")
            self.view.say("The colour layer is gone: Colorize makes a new one.")

    # what a re-run costs here -------------------------------------------------------------

    def measured(self, session: Session, event: dict) -> None:
        """What a re-run with new hints costs here, from the job just written."""
        timings = event.get("timings") if isinstance(event.get("timings"), dict) else {}
        ran = event.get("ran") if isinstance(event.get("ran"), list) else []
        estimate = rerun_estimate(time.monotonic() - session.sent_at, session.queued(), timings, ran)
        if estimate is None:  # nothing computed on hints: the last measure stands
            self.rerun_cached = self.rerun_s is None
            return
        self.rerun_s = estimate
        device = self.backend.hello.get("device")
        self.rerun_device = device.get("name") if isinstance(device, dict) else None

    def live_unavailable(self, provider: str, hints_source: str, at_smallest: bool = False) -> str:
        """Why Live is not offered now ("" when it is)."""
        return live_unavailable(self.rerun_s, self.backend.hello.get("device"), provider, hints_source,
                                self.rerun_cached, at_smallest)

    # live colour (the rules: live.py) ------------------------------------------------------

    def live_on(self) -> None:
        self.live.turn_on()
        self._live_doc = None  # the first look takes the active document's hints as they are

    def live_off(self) -> None:
        self._live_doc = self._live_seen = None
        if self.live.turn_off() and self.running is not None:
            self.of(self.running.document).cancel(quiet=True)

    def live_sent(self, doc, seen) -> None:
        """A run went out for doc with these hints: no live run for them."""
        if self._live_doc is not None and self._live_doc == doc:
            self._live_seen = seen

    def live_tick(self) -> None:
        """Look at the active document's hint layer; start or overtake a run when due."""
        if not self.live.on:
            return
        try:
            self._live_look()
        except Exception as exc:  # noqa: BLE001  (on a timer: one report, not one a quarter second)
            log.exception("live colour failed")
            self.view.live_failed(f"Live colour stopped: {exc}")

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
            if not self.of(doc).start(self.choices(), live=True):
                self.live.forget()  # tried again when the hints change
        elif action is Action.CANCEL and self.running is not None:
            self.of(self.running.document).cancel(quiet=True)


class Controller:
    """One document's runs: what its session does, step by step."""

    def __init__(self, shared: Controllers, session: Session):
        self.shared, self.session = shared, session
        self.view, self.backend = shared.view, shared.backend

    @property
    def doc(self):
        return self.session.document

    @property
    def on_screen(self) -> bool:
        return self.doc == document.active_document()

    def refuse(self, reason: str) -> bool:
        self.view.say(reason)
        return False

    # starting ---------------------------------------------------------------------------

    def page_format(self) -> Format | None:
        """The document's pixel format as the backend takes it, or None, refused with the reason
        (and the one-click conversion offered for a greyscale page)."""
        doc = self.doc
        fmt, problem = document_format(doc.colorModel(), doc.colorDepth(), doc.colorProfile())
        self.view.offer_conversion(fmt is None and doc.colorModel() == "GRAYA")
        if fmt is None:
            self.refuse(problem)
        return fmt

    def start(self, choices: Choices, live: bool = False) -> bool:
        """Colorize the document; returns whether the job is on its way (its pixels read from a
        snapshot of this moment a band at a time, Qt's event loop between, then sent)."""
        started = time.monotonic()
        doc, session = self.doc, self.session
        fmt = self.page_format()
        if fmt is None:
            return False
        rect = work_area(document.size(doc), document.selection_rect(doc))
        if rect.empty:
            return self.refuse("The selection is outside the image.")
        page_node = doc.activeNode()
        source = choices.page_source
        if live and source == "layer" and page_node is not None and document.is_plugin_layer(page_node) \
                and session.placement is not None and session.placement.page_layer:
            # painting on the hint layer makes it the active one: the page stays the last job's layer
            page_node = document.find_layer(doc, unique_id=session.placement.page_layer) or page_node
        hints_node = document.find_layer(doc, HINT_LAYER)
        # what live colour compares later hints with: only while it is on (0.1 s on an A4 page)
        seen = document.layer_fingerprint(doc, hints_node) if hints_node is not None and self.shared.live.on \
            else None
        hints = None  # a Colorize Mask's strokes, made here; a hint layer is read with the page
        read_hints = None
        if PROVIDER_NEEDS.get(choices.provider) == "hints":
            if choices.hints_source == "colorize_mask":
                data = document.colorize_mask_hints(doc, rect)
                if data is None:
                    return self.refuse("This Krita does not give plugins a Colorize Mask's strokes: use a hint layer.")
                hints = RawImage(rect.width, rect.height, "BGRA", data)
            else:
                if hints_node is None:
                    return self.refuse("Add a hint layer and paint colour strokes on it first.")
                if source == "layer" and page_node is not None and \
                        document.layer_id(page_node) == document.layer_id(hints_node):
                    return self.refuse("The active layer is the hint layer: select the page's layer.")
                read_hints = hints_node
        reference_node, reference = self.reference_source(choices)
        max_size = choices.max_size
        if rect != Rect(0, 0, *document.size(doc)):  # a selection box: at the page's scale
            limits = self.backend.hello.get("limits", {}).get("max_size")
            low = limits[0] if isinstance(limits, list) and limits and isinstance(limits[0], int) else MIN_MAX_SIZE
            max_size = box_max_size(choices.max_size, document.size(doc), rect, low)
        header = {"type": "colorize", "provider": choices.provider, "ratio": choices.ratio,
                  "max_size": max_size, "fill_all": choices.fill_all,
                  "transfer": choices.transfer and (reference is not None or reference_node is not None),
                  "output": fmt.output("page", choices.layer)}
        page_layer = document.layer_id(page_node) if source == "layer" and page_node is not None else ""
        session.sent(Placement(rect, fmt, choices.layer, page_layer), at=started, live=live, hints=seen)
        self.shared.live.started(started, live=live)
        self.shared.live_sent(doc, seen)
        self.view.job_running(True, cancellable=True)  # Cancel works while the page is read
        self.view.show_progress(0, "Live: reading the page…" if live else "Reading the page…")
        gone = choices.reference.startswith("layer:") and reference_node is None
        self.view.say("The reference layer is gone; colorizing without it." if gone else "")
        steps = document.reading(doc, rect, 4 * BYTES[fmt.dtype], source, page_node, read_hints, reference_node,
                                 document.active_selection(doc))

        def read(pixels: dict) -> None:
            whole = Rect(0, 0, *document.size(doc))
            images = {"page": fmt.image(pixels["page"], rect.width, rect.height)}
            if "hints" in pixels:
                images["hints"] = fmt.image(pixels["hints"], rect.width, rect.height)
            elif hints is not None:
                images["hints"] = hints
            if "reference" in pixels:
                images["reference"] = fmt.image(pixels["reference"], whole.width, whole.height)
            elif reference is not None:
                images["reference"] = reference
            if "mask" in pixels:
                images["mask"] = RawImage(rect.width, rect.height, "L", pixels["mask"])
            self.send(header, images, live)

        self._reading(steps, read)
        return True

    def _reading(self, steps, then: Callable) -> None:
        """Read the job's pixels for at most STEP_S at a time, Qt drawing and handling input
        between (view.later), then `then(pixels)`; a Cancel (or newer hints) meanwhile stops
        the read and nothing is sent."""
        started = time.monotonic()
        try:
            while True:
                if self.session.cancelled or not any(self.doc == d for d in document.open_documents()):
                    steps.close()  # the snapshot closed
                    if self.session.cancelled:
                        return self.finish("" if self.session.quiet else "Cancelled.", clear=True)
                    return self.finish("The document was closed before its page was sent.")
                if next(steps) is slices.TURN or time.monotonic() - started > STEP_S:
                    return self.view.later(lambda: self._reading(steps, then))
        except StopIteration as done:
            then(done.value)
        except Exception as exc:  # noqa: BLE001  (on a timer: said, and the job ends)
            log.exception("reading the page failed")
            steps.close()
            self.finish(f"Could not read the page: {exc}")

    def send(self, header: dict, images: dict, live: bool) -> None:
        """The job out to the backend, its pixels read."""
        try:
            self.backend.request(header, images, callback=lambda reply, _: self.accepted(reply), timeout=1.0)
        except Exception as exc:
            return self.finish(f"Could not send the page: {exc}")
        self.view.show_progress(0, "Live: sending the page…" if live else "Sending the page…")

    def bring_to_page(self, choices: Choices) -> bool:
        """Bring to page (upscaling.py): the active layer's colouring brought to the page's
        size with the page's ink, as a new layer; returns whether the job went out."""
        started = time.monotonic()
        doc, session = self.doc, self.session
        fmt = self.page_format()
        if fmt is None:
            return False
        node = doc.activeNode()
        bounds = document.layer_bounds(doc, node) if node is not None else None
        reason = upscaling.refusal(node.type() if node is not None else None,
                                   node is not None and node.name() == HINT_LAYER, bounds is None or bounds.empty)
        if reason:
            return self.refuse(reason)
        page_size = document.size(doc)
        if work_area(page_size, document.selection_rect(doc)).empty:
            return self.refuse("The selection is outside the image.")
        whole, area = Rect(0, 0, *page_size), upscaling.colouring_area(bounds, page_size)
        page_node = document.layer_below(node) if choices.page_source == "layer" else None
        if choices.page_source == "layer" and page_node is None:
            return self.refuse("Page: Active layer reads the page from the layer right beneath your colouring; "
                               "there is none. Move the colouring above the page, or choose Page: Visible image.")
        kind = upscaling.result_kind(choices.layer)
        header = upscaling.request(kind, fmt.output("page", kind), area, page_size, choices.max_size)
        session.sent(Placement(whole, fmt, kind, document.layer_id(page_node) if page_node is not None else "",
                               colouring=node.name(), colouring_layer=document.layer_id(node)), at=started)
        self.shared.live.started(started, live=False, replaceable=False)  # new hints do not cancel it
        self.view.job_running(True, cancellable=True)  # Cancel works while the page is read
        self.view.show_progress(0, "Reading the page and the colouring…")
        self.view.say("")
        steps = document.reading(doc, whole, 4 * BYTES[fmt.dtype], "layer" if page_node is not None else "visible",
                                 page_node, selection=document.active_selection(doc), colouring=node,
                                 colouring_area=area)

        def read(pixels: dict) -> None:
            images = {"page": fmt.image(pixels["page"], whole.width, whole.height),
                      "coloured": fmt.image(pixels["coloured"], area.width, area.height)}
            if "mask" in pixels:  # a selection: the new layer holds the colours inside it only
                images["mask"] = RawImage(whole.width, whole.height, "L", pixels["mask"])
            try:
                self.backend.request(header, images, callback=lambda reply, _: self.accepted(upscaling.older(reply)),
                                     timeout=1.0)
            except Exception as exc:
                return self.finish(f"Could not send the page: {exc}")
            self.view.show_progress(0, "Sending the page and the colouring…")

        self._reading(steps, read)
        return True

    def _brought(self, event: dict, images) -> None:
        """Bring to page's result, written into a new layer a band at a time."""
        if not any(self.doc == d for d in document.open_documents()):
            return self.finish("The document was closed before its colours came back.")
        doc, active, on_screen, session = self.doc, self.doc.activeNode(), self.on_screen, self.session
        name = session.placement.colouring
        size = event.get("working_size")

        def shown(node) -> None:
            self.view.later(lambda: document.keep_active(doc, active, unless_changed_from=document.layer_id(node)))
            warnings = [str(w) for w in event.get("warnings", []) if isinstance(w, str)]
            self.finish("")
            if on_screen:
                self.view.show_progress(100, upscaling.done_text(name, event.get("seconds"), size))
                self.view.say(" ".join(warnings + ([session.hidden_by] if session.hidden_by else [])))

        self._written(session.bringing(bytes(images["result"].data)), shown)

    def reference_source(self, choices: Choices) -> tuple[object, RawImage | None]:
        """The reference: a layer (read with the page, from its snapshot) or a file's image."""
        if choices.reference.startswith("layer:"):
            return document.find_layer(self.doc, unique_id=choices.reference[len("layer:"):]), None
        return None, self.reference_file(choices)

    def reference_file(self, choices: Choices) -> RawImage | None:
        """A reference file's image, or None."""
        if choices.reference != "file" or not choices.reference_path:
            return None
        loaded = document.load_reference_file(choices.reference_path)
        if loaded is None:
            self.view.say(f"Cannot read the reference {choices.reference_path}; colorizing without it.")
            return None
        width, height, data = loaded
        return RawImage(width, height, "BGRA", data)

    # the job ----------------------------------------------------------------------------

    def accepted(self, reply: dict) -> None:
        session = self.session
        if reply.get("type") == "error":
            self.view.show_progress(stage="")
            return self.finish(reply.get("message", "The backend refused the job."))
        session.accepted(reply["job"], time.monotonic())
        if session.cancelled:  # overtaken (or cancelled) while it was on its way
            return self._send_cancel()
        self.view.job_running(True, cancellable=True)
        if reply.get("position"):
            stage = "Waiting for the backend's job before this one…"
        elif self.backend.hello.get("models") in ("loading", "not loaded"):
            stage = "Starting: the networks are loading (once a session, up to a minute on a CPU)…"
        else:
            stage = "Starting…"
        self.view.show_progress(stage=stage)

    def progress_line(self) -> str:
        """The stage line of the last progress event, its time left counted down since (the
        backend says nothing while it makes the page-size output)."""
        event, at = self.session.progress
        eta, overdue = event.get("eta"), False
        if isinstance(eta, (int, float)) and not isinstance(eta, bool):
            left = eta - (time.monotonic() - at)
            eta, overdue = max(0.0, left), left < -OVERDUE_S
        else:
            eta = None
        basis = event.get("eta_from") if isinstance(event.get("eta_from"), str) else None
        return progress_text(event["stage"], event["index"], event["total"], event.get("cached"),
                             event.get("fraction"), eta, running=event.get("seconds") is None, eta_from=basis,
                             overdue=overdue)

    def cancel(self, quiet: bool = False) -> None:
        """Stop the job; its result, if it still comes, is dropped. `quiet`: for newer hints
        (live colour), so no "Cancelled." for the artist."""
        self.session.cancel(quiet)
        self.shared.live.cancelling()
        if self.session.job:
            self._send_cancel()
        if not quiet:
            self.view.show_progress(stage="Cancelling…")

    def _send_cancel(self) -> None:
        try:
            self.backend.request({"type": "cancel", "job": self.session.job})
        except Exception as exc:
            self.view.say(f"Could not cancel: {exc}")

    def on_event(self, event: dict, images) -> None:
        session = self.session
        kind = event.get("type")
        session.heard(time.monotonic())
        on_screen = self.on_screen
        if kind == "progress":
            session.progress = (event, time.monotonic())
            if on_screen and not session.cancelled:
                self.view.show_progress(
                    progress_value(event["index"], event["total"], event.get("seconds") is not None,
                                   event.get("done")), self.progress_line())
        elif kind in ("result", "cancelled") and session.cancelled:  # a result is never written then
            self.finish("" if session.quiet else "Cancelled.", clear=True)
        elif kind == "result" and session.placement is not None and session.placement.colouring:
            self._brought(event, images)
        elif kind == "result":
            if not any(self.doc == d for d in document.open_documents()):
                return self.finish("The document was closed before its colours came back.")
            doc, active, live = self.doc, self.doc.activeNode(), session.live
            steps = session.showing(event["job"], bytes(images["result"].data))
            self._written(steps, lambda node: self._shown(event, node, live, on_screen, doc, active))
        elif kind == "cancelled":
            self.finish("Cancelled.")
        elif kind == "error":
            self.finish(event.get("message", "The job failed."))

    def _written(self, steps, then: Callable) -> None:
        """Run a result's writing steps for at most STEP_S at a time, the rest after Qt has
        drawn and handled input (view.later), then `then(layer)`."""
        started = time.monotonic()
        try:
            while True:
                if next(steps) is slices.TURN or time.monotonic() - started > STEP_S:
                    if not any(self.doc == d for d in document.open_documents()):
                        return self.finish("The document was closed before its colours came back.")
                    return self.view.later(lambda: self._written(steps, then))
        except StopIteration as done:
            then(done.value)
        except Exception as exc:  # noqa: BLE001  (on a timer: said, and the job ends)
            log.exception("writing the result failed")
            self.finish(f"Could not write the colours: {exc}")

    def _shown(self, event: dict, node, live: bool, on_screen: bool, doc, active) -> None:
        session = self.session
        layer = document.layer_id(node)
        self.view.later(lambda: document.keep_active(doc, active, unless_changed_from=layer))
        self.shared.measured(session, event)
        session.warnings = [str(w) for w in event.get("warnings", []) if isinstance(w, str)]
        if session.hidden_by:
            session.warnings.append(session.hidden_by)
        self.finish("")
        if on_screen:
            ran = event.get("ran", [])
            self.view.show_progress(100, ("Live: done" if live else "Done") + f" in {event.get('seconds', 0):.1f} s"
                                    + ("" if "shade" in ran else " (shading reused)"))
            self.view.say(" ".join(session.warnings))
        self.view.result_shown()

    def finish(self, message: str, clear: bool = False) -> None:
        self.session.finished()
        self.shared.live.stopped()
        self.view.job_running(False)
        if message or clear:
            self.view.show_progress(0, "")
            self.view.say(message)
        if self.shared.live.on:  # the newest hints may be waiting for this one to stop
            self.view.later(self.shared.live_tick)

    # the result -------------------------------------------------------------------------

    def keep(self) -> str | None:
        """Keep the current result as its own layer; the next Colorize starts a new one."""
        return self.session.keep()

    def blend(self, ratio: float, final: bool) -> None:
        """Show the result at another ratio: while dragging, a mix of the result's two ends
        made here (preview.py; until they have come, the backend's reduced 8-bit blends, one
        in flight at a time); the backend's blend of the whole page when `final`."""
        throttle = self.shared.throttle
        shown = self.session.shown
        if shown is None or not self.backend.connected or shown.placement.kind == "flats":
            return  # flats have no colour blend
        if not final:
            preview = self.session.preview
            if preview is not None and preview.job == shown.job:  # mixed here: no round trip
                return self._write_blend(shown, preview.frame(ratio))
            self._fetch_preview(shown)  # for the next moves; this one the backend blends
        request = throttle.request(ratio, final)
        if request is None:
            return
        ratio, final = request
        rect, fmt = shown.placement.rect, shown.placement.format
        # previews are 8-bit and upscaled here; other depths blend at full size
        size = "page" if final or fmt.dtype != "uint8" else preview_size(rect.width, rect.height)
        header = {"type": "blend", "job": shown.job, "ratio": ratio, **fmt.output(size, shown.placement.kind)}
        try:
            throttle.sent(self.backend.request(
                header, callback=lambda reply, images: self._blended(shown, reply, images)))
        except Exception as exc:
            throttle.done()
            self.view.say(f"Could not blend: {exc}")

    def _fetch_preview(self, shown) -> None:
        """Ask the backend once per result for it at a few ratios, reduced (preview.py mixes them)."""
        fmt = shown.placement.format
        if fmt.dtype not in PREVIEW_DEPTHS or self.session.preview_asked == shown.job:
            return
        self.session.preview_asked = shown.job
        rect = shown.placement.rect
        size = preview_size(rect.width, rect.height)
        knots: dict[float, object] = {}

        def arrived(ratio, reply, images):
            if reply.get("type") == "error" or images is None or "result" not in images:
                return
            knots[ratio] = images["result"]
            if len(knots) == len(PREVIEW_KNOTS) and self.session.shown is shown:
                first = knots[PREVIEW_KNOTS[0]]
                self.session.preview = Preview(shown.job, first.width, first.height,
                                               {r: bytes(image.data) for r, image in knots.items()},
                                               rect.width, rect.height, fmt.dtype)

        for knot in PREVIEW_KNOTS:
            header = {"type": "blend", "job": shown.job, "ratio": knot,
                      **Format("uint8", fmt.linear).output(size, shown.placement.kind)}
            try:
                self.backend.request(header, callback=lambda reply, images, knot=knot: arrived(knot, reply, images))
            except Exception as exc:  # noqa: BLE001  (the backend's blends go on without it)
                log.warning("no preview: %s", exc)
                return

    def _write_blend(self, shown, data: bytes) -> None:
        node = document.find_layer(self.doc, unique_id=shown.layer)
        if node is None:
            self.view.say("The colour layer is gone: Colorize again to get a new one.")
        else:
            document.write_pixels(self.doc, node, data, shown.placement.rect)

    def _blended(self, shown, reply: dict, images) -> None:
        following = self.shared.throttle.done()
        if reply.get("type") == "error":
            self.view.say(reply.get("message", "The blend failed."))
        elif self.session.shown is shown:  # still the working result (not kept, not replaced)
            rect = shown.placement.rect
            node = document.find_layer(self.doc, unique_id=shown.layer)
            if node is None:
                self.view.say("The colour layer is gone: Colorize again to get a new one.")
            else:
                image = images["result"]
                data = bytes(image.data)
                if (image.width, image.height) != (rect.width, rect.height):
                    data = document.scale_bgra(data, image.width, image.height, rect.width, rect.height)
                document.write_pixels(self.doc, node, data, rect)
        if following is not None:
            self.blend(*following)
