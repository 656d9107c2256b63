"""Live colour: the result layer follows the hint layer by itself. No Krita, no Qt here.

Krita 5's Python API says nothing when a stroke ends: a Document has no change signal, and
the notifier only tells of images created, saved or closed and of views and windows. So
the docker polls the hint layer every POLL_S while Live is on, takes its `fingerprint`
(the layer's exact bounds, which Krita keeps cached, and a CRC-32 of its pixels inside
them) and tells a `LiveScheduler` when it changed. The page itself is read only when a run
starts. On an A4 page at 300 dpi painted all over, a look costs 12 to 24 ms in Krita 5.1 on
two busy CPU cores, a third of reading the layer whole (benchmarks/bench_live_poll.py); a
layer with strokes on part of the page costs less. The scheduler alone decides when a run
starts and when the run in flight has been overtaken; it is told the time, so it is tested
with a fake clock.

The rules, and their numbers:

- **Grace period** (GRACE_S = 0.4 s): a run starts once the hints have not changed for
  0.4 s, i.e. two quiet polls: the pen is off the canvas, and a hatching artist who puts
  it down again within half a second does not get a run per stroke.
- **Maximum wait** (MAX_WAIT_S = 3 s, as krita-ai-diffusion's live mode): hints that keep
  changing (continuous hatching, each pause shorter than the grace period) still get a
  run once their first unsent change is 3 s old, when no run is in flight. Such a run is
  never cancelled by later changes that have not settled yet, or painting without pause
  would cancel every one of them and show nothing until the pen rests.
- **One run at a time; newest wins**: hints that settle while a run is in flight make
  the scheduler ask to cancel that run (`Action.CANCEL`); the newest hints start once it
  has stopped (its result, if it still comes, is dropped by the docker, never written).
  A run is cancelled only when newer hints are ready to go: until then it may finish
  and show a result closer to the newest than what is on the canvas.
- A run the artist started (Colorize) counts like any run: newer hints may overtake it
  if it is for the watched document (`replaceable`); another document's job is waited for.
- A run that failed is not retried until the hints change again.
- Turning Live off forgets waiting changes and asks to cancel the live run in flight.

The docker adds one condition the scheduler cannot see: it starts a run only while Krita
is idle (`Document.tryBarrierLock()` succeeds), i.e. with no stroke in progress. Reading
the visible page needs `waitForDone()`, which waits for every open stroke, so a run
started with the pen down would freeze Krita until the pen is lifted.

**Fast enough** (FAST_ENOUGH_S = 2.5 s): Live is offered when a re-run with new hints
(everything but the page's shading, which the backend caches: `rerun_estimate`) takes at
most 2.5 s as the artist waits for it, Krita's reads and writes and the transfers
included. Then the result lands within about 3 s of lifting the pen (grace plus run),
the same as the maximum wait, so while painting on, each result is at most one update
behind. Slower, the artist waits rather than watches, and *Colorize* serves better.
"""

from __future__ import annotations

import zlib
from enum import Enum
from typing import Callable

from .logic import Rect
from .messages import PROVIDER_NEEDS

POLL_S = 0.25          #: how often the hint layer is looked at while Live is on
GRACE_S = 0.4          #: hints still for this long: the pen is lifted
MAX_WAIT_S = 3.0       #: hints changing for this long get a run anyway
FAST_ENOUGH_S = 2.5    #: the longest re-run with new hints that still feels live
#: rows per read while fingerprinting: Krita copies each read into a new buffer; bands of
#: a few MB stay in the CPU's caches, where one 35 MB read of an A4 page costs 3x more
BAND_ROWS = 256
#: the stages a re-run with new hints takes from the backend's cache (docs/protocol.md)
PAGE_STAGES = ("shade", "condition")
_EPSILON = 1e-9  #: seconds are floats: 1.4 - 1.0 is a hair under 0.4


class LiveState(Enum):
    IDLE = "idle"               #: no run in flight
    RUNNING = "running"
    CANCELLING = "cancelling"   #: the run in flight was overtaken by newer hints


class Action(Enum):
    WAIT = "wait"
    START = "start"             #: start a run with the hints as they are now
    CANCEL = "cancel"           #: cancel the run in flight: newer hints are ready


class LiveScheduler:
    """When a live run starts (see the module's docstring for the rules). Every method
    takes `now`, seconds on a monotonic clock."""

    def __init__(self, grace: float = GRACE_S, max_wait: float = MAX_WAIT_S):
        self.grace, self.max_wait = grace, max_wait
        self.on = False
        self.state = LiveState.IDLE
        self.first_change: float | None = None   #: the oldest change no run has taken yet
        self.last_change: float | None = None
        self.run_is_live = False                 #: the run in flight was started by Live
        self.run_replaceable = False             #: ... and newer hints may cancel it

    @property
    def pending(self) -> bool:
        return self.first_change is not None

    def turn_on(self) -> None:
        self.on = True

    def turn_off(self) -> bool:
        """Stop; returns whether to cancel the run in flight (a live run)."""
        self.on = False
        self.forget()
        return self.state is LiveState.RUNNING and self.run_is_live

    def forget(self) -> None:
        """Drop the changes waiting (e.g. a run with them could not start: the same hints
        are not tried again until they change)."""
        self.first_change = self.last_change = None

    def watch(self, run_is_this_documents: bool) -> None:
        """Another document is watched now: its changes count from here, and the run in
        flight may be overtaken only if it is that document's."""
        self.forget()
        self.run_replaceable = self.run_replaceable and run_is_this_documents

    def changed(self, now: float) -> None:
        """The hints changed (seen at `now`)."""
        if not self.on:
            return
        if self.first_change is None:
            self.first_change = now
        self.last_change = now

    def due(self, now: float) -> Action:
        """What to do now."""
        if not self.on or not self.pending:
            return Action.WAIT
        settled = now - self.last_change >= self.grace - _EPSILON
        overdue = now - self.first_change >= self.max_wait - _EPSILON
        if self.state is LiveState.IDLE:
            return Action.START if settled or overdue else Action.WAIT
        if self.state is LiveState.RUNNING and settled and self.run_replaceable:
            return Action.CANCEL
        return Action.WAIT

    def started(self, now: float, live: bool = True, replaceable: bool = True) -> None:
        """A run was sent, with the hints as they were at `now` (Live's or the artist's own)."""
        self.state, self.run_is_live, self.run_replaceable = LiveState.RUNNING, live, replaceable
        self.forget()

    def cancelling(self) -> None:
        """The run in flight is being cancelled."""
        if self.state is LiveState.RUNNING:
            self.state = LiveState.CANCELLING

    def stopped(self) -> None:
        """The run in flight ended: a result, an error, or cancelled."""
        self.state, self.run_is_live, self.run_replaceable = LiveState.IDLE, False, False


def fingerprint(bounds: Rect, read: Callable[[int, int, int, int], object], rows: int = BAND_ROWS) -> tuple:
    """What tells one state of a layer from another: its bounds (the smallest rectangle
    holding all its pixels) and a CRC-32 of the pixels inside them, read by
    `read(x, y, width, height)` (any buffer) `rows` rows at a time."""
    crc = 0
    if not bounds.empty:
        for y in range(bounds.y, bounds.y + bounds.height, rows):
            crc = zlib.crc32(read(bounds.x, y, bounds.width, min(rows, bounds.y + bounds.height - y)), crc)
    return bounds.x, bounds.y, bounds.width, bounds.height, crc


def rerun_estimate(seconds: float, queued: float, timings: dict, ran: list) -> float | None:
    """How long a re-run with new hints takes, from a finished job: the job's time as the
    artist waited for it (`seconds`, from reading the page to the result written), less the
    time it waited in the backend's queue (e.g. for the models to load) and the page's own
    stages if they ran (`timings`, `ran` from the result event). None when the job did not
    run the networks on hints (all taken from the cache: another ratio or output only)."""
    if "decode" not in ran:
        return None
    page_work = sum(float(timings.get(stage, 0.0)) for stage in PAGE_STAGES if stage in ran)
    return max(0.0, seconds - queued - page_work)


def seconds_text(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{round(seconds)} s"
    return f"{round(seconds / 60)} min"


def live_unavailable(estimate: float | None, device: dict | None = None, provider: str = "flats",
                     hints_source: str = "layer", cached: bool = False, at_smallest: bool = False) -> str:
    """Why Live is not offered, in the artist's words; "" when it is. `cached`: jobs came back,
    but from the backend's cache, so none measured a re-run; `at_smallest`: Max size is at
    its minimum already (so no advice to lower it)."""
    if PROVIDER_NEEDS.get(provider) != "hints":
        return "Live colour follows the hint layer: choose rough colours made from your strokes."
    if hints_source != "layer":
        return "Live colour follows the hint layer: choose Hints: Hint layer."
    if estimate is None:
        first = "Change a hint and Colorize to measure this computer's speed (that result came from the " \
                "backend's cache)" if cached else "Colorize once to measure this computer's speed"
        return f"{first}: live colour needs a re-run with new hints to take {FAST_ENOUGH_S:g} s or less."
    if estimate > FAST_ENOUGH_S:
        device = device or {}
        on_cpu = device.get("device", "cpu") == "cpu"
        name = "CPU" if on_cpu else device.get("name") or "GPU"
        ways = (["an NVIDIA GPU"] if on_cpu else []) + ([] if at_smallest else ["a smaller Max size"]) + \
            ["a selection"]
        advice = ("e.g. with " if on_cpu else "try ") + ", ".join(ways[:-1]) + ", or " + ways[-1]
        return f"A re-run with new hints takes about {seconds_text(estimate)} on this computer ({name}); " \
               f"live colour needs {FAST_ENOUGH_S:g} s or less: {advice}."
    return ""
