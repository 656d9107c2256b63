"""One document's colorize session: the job in flight, and the result layers it keeps up to date.

A result goes into the session's working layer of its kind ("inkn'hue colour", the
colour-under-ink layer, or the flats), updated in place on every Colorize, so iterating on the hints
never piles up layers. *Keep* turns the working layer into a kept version the plugin no
longer touches; the next result gets a new working layer. A new layer goes where it is seen
(placement.py), keeps the hint layer above it, and leaves the artist's layers in their order,
the active layer what it was and the undo history as it was (document.add_result_layer);
writing into a layer adds no undo step either, so Ctrl+Z undoes the artist's last stroke.

A session also keeps its job's times (sent, accepted, first event), from which the docker
measures what a re-run with new hints costs here (live colour, live.py), and the hint
layer's fingerprint the last job was sent with. A job cancelled, by the artist or because
newer hints overtook it (live colour, quietly), never has its result written.

No widgets here (the docker binds them), and Krita is only reached through document.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from . import document
from .logic import OUTPUT_LAYERS, RESULT_LAYER, Format, Rect, layer_name
from .upscaling import RESULTS


class JobState(Enum):
    IDLE = "idle"
    SENDING = "sending"        #: the request is on its way; no job id yet
    RUNNING = "running"
    CANCELLING = "cancelling"  #: asked to stop (sent once the job has an id): its result is dropped


@dataclass(frozen=True)
class Placement:
    """Where a job's result goes, decided when the job was sent."""

    rect: Rect
    format: Format
    kind: str                   #: an OUTPUT_LAYERS kind: "full", "colour" or "flats"
    page_layer: str = ""        #: the page's layer id when one layer is the page
    colouring: str = ""         #: Bring to page: the colouring layer's name (its result: a new layer)
    colouring_layer: str = ""   #: ... and its id


@dataclass
class ShownResult:
    """The result now in a working layer (what the ratio slider blends)."""

    job: str
    layer: str                  #: layer id
    placement: Placement


@dataclass
class Session:
    document: object
    state: JobState = JobState.IDLE
    job: str | None = None
    placement: Placement | None = None
    working: dict[str, str] = field(default_factory=dict)  #: kind -> the working layer's id
    shown: ShownResult | None = None
    warnings: list[str] = field(default_factory=list)
    live: bool = False          #: the job in flight was started by live colour
    quiet: bool = False         #: cancelled for newer hints: it ends without a word
    hints: tuple | None = None  #: the hint layer's fingerprint when the last job was sent
    progress: tuple | None = None  #: the job's last progress event and when it came (monotonic)
    preview: object = None      #: the shown result's preview.Preview (the slider's drag), once fetched
    preview_asked: str = ""     #: the job whose preview was asked for
    hidden_by: str = ""         #: what hides the layer just made, in the artist's words ("" if nothing)
    #: the job's times (monotonic seconds): sent (before the page was read), accepted, its first event
    sent_at: float = 0.0
    accepted_at: float | None = None
    started_at: float | None = None

    @property
    def busy(self) -> bool:
        return self.state is not JobState.IDLE

    @property
    def cancelled(self) -> bool:
        return self.state is JobState.CANCELLING

    def sent(self, placement: Placement, at: float = 0.0, live: bool = False, hints: tuple | None = None) -> None:
        self.state, self.placement, self.job, self.warnings = JobState.SENDING, placement, None, []
        self.live, self.quiet, self.hints = live, False, hints
        self.sent_at, self.accepted_at, self.started_at = at, None, None
        self.progress = None

    def accepted(self, job: str, at: float = 0.0) -> None:
        self.job, self.accepted_at = job, at
        if self.state is JobState.SENDING:  # not if it was cancelled on its way
            self.state = JobState.RUNNING

    def heard(self, at: float) -> None:
        """A job event arrived: the first one says when the backend started on it."""
        if self.started_at is None:
            self.started_at = at

    def cancel(self, quiet: bool = False) -> None:
        self.state, self.quiet = JobState.CANCELLING, quiet

    def queued(self) -> float:
        """How long the job waited in the backend's queue (another job, the models loading)."""
        if self.accepted_at is None or self.started_at is None:
            return 0.0
        return max(0.0, self.started_at - self.accepted_at)

    def finished(self) -> None:
        self.state, self.job, self.live = JobState.IDLE, None, False

    def show(self, job: str, data: bytes) -> object:
        """Write a result into the working layer of its kind (made if there is none) and
        make it visible, with the hints above it; returns the layer."""
        steps = self.showing(job, data)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value

    def showing(self, job: str, data: bytes):
        """show() in steps: a generator that yields after placing the layer and after each
        band written (the controller lets Qt draw between them); returns the layer."""
        placement = self.placement
        doc = self.document
        _, base_name, blending, _, _ = next(o for o in OUTPUT_LAYERS if o[0] == placement.kind)
        node = document.find_layer(doc, unique_id=self.working.get(placement.kind, ""))
        previous = self.shown.placement.rect if self.shown and self.shown.layer == self.working.get(
            placement.kind) else None
        self.hidden_by = ""
        if node is None:
            names = [n.name() for n in document.all_layers(doc)]
            page = document.find_layer(doc, unique_id=placement.page_layer) if placement.page_layer else None
            node, self.hidden_by = yield from document.add_result_layer(
                doc, layer_name(names, base_name), placement.rect, placement.format.dtype, placement.kind,
                blending, page)
            self.working[placement.kind] = document.layer_id(node)
            yield
        elif previous is not None and previous != placement.rect:
            document.clear_pixels(doc, node, previous, placement.format.dtype)  # another selection before
        if not node.visible():
            node.setVisible(True)
        yield from document.write_slices(doc, node, data, placement.rect, placement.format.dtype)
        self.shown = ShownResult(job, document.layer_id(node), placement)
        return node

    def bringing(self, data: bytes):
        """Bring to page's result (upscaling.py) in a new layer named after the colouring, placed
        as a result of its kind is, every time: nothing to update in place, no ratio to blend.
        A generator as showing() is; returns the layer."""
        placement = self.placement
        doc = self.document
        _, base, blending = RESULTS[placement.kind]
        names = [n.name() for n in document.all_layers(doc)]
        page = document.find_layer(doc, unique_id=placement.page_layer) if placement.page_layer else None
        colouring = document.find_layer(doc, unique_id=placement.colouring_layer) if placement.kind == "colour" \
            else None
        node, self.hidden_by = yield from document.add_result_layer(
            doc, layer_name(names, f"{base} {placement.colouring}"), placement.rect, placement.format.dtype,
            placement.kind, blending, page, see_through=colouring)
        yield
        yield from document.write_slices(doc, node, data, placement.rect, placement.format.dtype)
        return node

    def forget_shown(self) -> None:
        """The shown result's layer is gone: the next result makes a new one."""
        if self.shown is not None:
            self.working = {kind: layer for kind, layer in self.working.items() if layer != self.shown.layer}
            self.shown = None

    def keep(self) -> str | None:
        """The working layer becomes a kept version; returns its new name (None without one)."""
        if self.shown is None:
            return None
        node = document.find_layer(self.document, unique_id=self.shown.layer)
        if node is None:
            return None
        names = [n.name() for n in document.all_layers(self.document)]
        name = layer_name(names, f"{RESULT_LAYER} kept")
        node.setName(name)
        self.working = {kind: layer for kind, layer in self.working.items() if layer != self.shown.layer}
        self.shown = None
        return name


class Sessions:
    """The sessions of the open documents (Krita's Document wrappers compare equal per document)."""

    def __init__(self):
        self._sessions: list[Session] = []

    def of(self, doc) -> Session:
        for session in self._sessions:
            if session.document == doc:
                return session
        session = Session(doc)
        self._sessions.append(session)
        return session

    def busy(self) -> Session | None:
        return next((s for s in self._sessions if s.busy), None)

    def with_job(self, job: str) -> Session | None:
        return next((s for s in self._sessions if s.job == job), None)

    def forget_closed(self, open_documents) -> None:
        """Drop the sessions of closed documents, but not one whose job is still out."""
        self._sessions = [s for s in self._sessions if s.busy or any(s.document == d for d in open_documents)]
