"""Live colour's rules, without Krita or Qt (plugin/inknhue_krita/live.py): when a run starts,
when the run in flight is overtaken, when live colour is offered. The clock is a number."""

import zlib

import pytest
from inknhue_krita.live import (FAST_ENOUGH_S, GRACE_S, MAX_WAIT_S, Action, LiveScheduler, LiveState, fingerprint,
                                live_unavailable, rerun_estimate)
from inknhue_krita.logic import Rect


@pytest.fixture
def live():
    scheduler = LiveScheduler()
    scheduler.turn_on()
    return scheduler


def test_a_run_starts_once_the_hints_have_been_still_for_the_grace_period(live):
    assert live.due(0.0) is Action.WAIT  # nothing changed yet
    live.changed(10.0)
    live.changed(10.25)  # still painting
    assert live.due(10.5) is Action.WAIT
    assert live.due(10.25 + GRACE_S) is Action.START
    live.started(10.7)
    assert live.state is LiveState.RUNNING and live.due(20.0) is Action.WAIT  # nothing new since


def test_nothing_starts_while_live_is_off():
    live = LiveScheduler()
    live.changed(0.0)
    assert live.due(100.0) is Action.WAIT
    live.turn_on()
    assert live.due(100.0) is Action.WAIT  # changes from before it was on do not count


def test_one_run_at_a_time_changes_still_coming_do_not_touch_the_run_in_flight(live):
    live.changed(0.0)
    live.started(GRACE_S)
    for tick in range(1, 40):  # painting on, without a pause, for 10 s
        now = GRACE_S + 0.25 * tick
        live.changed(now)
        assert live.due(now) is Action.WAIT
    assert live.state is LiveState.RUNNING


def test_newest_wins_hints_that_settle_during_a_run_cancel_it_and_start_once_it_stopped(live):
    live.changed(0.0)
    live.started(0.5)
    live.changed(0.75)  # a new stroke while the first run is in flight
    assert live.due(0.75 + GRACE_S) is Action.CANCEL
    live.cancelling()
    assert live.state is LiveState.CANCELLING
    assert live.due(1.5) is Action.WAIT  # one cancel is enough; the newest waits for the run to stop
    live.stopped()
    assert live.due(1.6) is Action.START  # the newest hints, at once
    live.started(1.6)
    assert live.due(5.0) is Action.WAIT


def test_continuous_painting_gets_a_run_after_the_maximum_wait_and_that_run_is_not_cancelled(live):
    now = 0.0
    while now < MAX_WAIT_S:  # strokes with pauses shorter than the grace period
        live.changed(now)
        assert live.due(now) is Action.WAIT
        now += 0.25
    live.changed(now)
    assert live.due(now) is Action.START  # the first unsent change is MAX_WAIT_S old
    live.started(now)
    for _ in range(8):  # painting on: the run in flight is left to finish
        now += 0.25
        live.changed(now)
        assert live.due(now) is Action.WAIT
    live.stopped()  # its result is shown, and the changes since wait their turn
    assert live.due(now + 0.01) is Action.WAIT
    assert live.due(now + GRACE_S) is Action.START


def test_the_maximum_wait_counts_from_the_first_change_no_run_has_taken(live):
    live.changed(0.0)
    live.started(0.5)
    live.stopped()
    live.changed(10.0)
    live.changed(10.3)
    assert live.due(10.3) is Action.WAIT  # 10 s since the first change ever, but 0.3 s since the first unsent one


def test_a_change_during_cancellation_waits_for_its_own_grace_period(live):
    live.changed(0.0)
    live.started(0.5)
    live.changed(1.0)
    assert live.due(1.0 + GRACE_S) is Action.CANCEL
    live.cancelling()
    live.changed(1.5)  # yet another stroke while the backend stops the first run
    live.stopped()
    assert live.due(1.6) is Action.WAIT
    assert live.due(1.5 + GRACE_S) is Action.START


def test_turning_live_off_cancels_its_own_run_and_forgets_the_waiting_changes(live):
    live.changed(0.0)
    live.started(0.5)
    live.changed(0.6)
    assert live.turn_off() is True  # a live run in flight: cancel it
    assert not live.pending and live.due(10.0) is Action.WAIT
    live.cancelling()
    live.stopped()
    live.turn_on()
    assert live.due(20.0) is Action.WAIT


def test_turning_live_off_leaves_the_artists_own_run_alone(live):
    live.started(0.0, live=False)  # Colorize pressed
    assert live.turn_off() is False


def test_colorize_pressed_while_live_is_on_is_a_run_now_with_the_waiting_hints(live):
    live.changed(0.0)
    live.started(0.1, live=False)  # before the grace period is over
    live.stopped()
    assert live.due(5.0) is Action.WAIT  # its hints are done: no live run for them
    live.started(6.0, live=False)
    live.changed(6.5)
    assert live.due(6.5 + GRACE_S) is Action.CANCEL  # newer hints overtake it like any run


def test_a_run_that_could_not_start_is_not_tried_again_until_the_hints_change(live):
    live.changed(0.0)
    assert live.due(GRACE_S) is Action.START
    live.forget()  # e.g. the page is greyscale: the docker said so
    assert live.due(10.0) is Action.WAIT
    live.changed(11.0)
    assert live.due(11.0 + GRACE_S) is Action.START


def test_another_documents_job_is_waited_for_not_cancelled(live):
    live.changed(0.0)
    live.started(0.5)  # the job of the page that was active then
    live.changed(0.7)
    live.watch(run_is_this_documents=False)  # the artist switched to another page
    assert not live.pending
    live.changed(1.0)
    assert live.due(5.0) is Action.WAIT
    live.stopped()
    assert live.due(5.0) is Action.START


def test_the_fingerprint_sees_a_single_pixel_and_reads_in_bands_what_a_whole_read_gives():
    width, height = 40, 1000
    pixels = bytearray(width * height * 4)

    def read(x, y, w, h):
        reads.append((x, y, w, h))
        rows = [pixels[(y + r) * width * 4 + x * 4:(y + r) * width * 4 + (x + w) * 4] for r in range(h)]
        return b"".join(rows)

    whole = Rect(0, 0, width, height)
    reads = []
    first = fingerprint(whole, read, rows=256)
    assert [r[3] for r in reads] == [256, 256, 256, 232]  # in bands, every row once
    assert first[-1] == zlib.crc32(bytes(pixels))
    pixels[(500 * width + 7) * 4 + 3] = 1  # one pixel's alpha, by one step
    assert fingerprint(whole, read) != first
    assert fingerprint(Rect(3, 4, 0, 0), read) == (3, 4, 0, 0, 0)  # an empty layer reads nothing


def test_a_rerun_with_new_hints_costs_the_job_less_the_pages_own_stages_and_its_wait_in_the_queue():
    full = {"rough": 0.5, "shade": 30.0, "condition": 3.0, "encode": 4.0, "decode": 5.0, "blend": 0.1}
    assert rerun_estimate(45.0, 2.0, full, list(full)) == pytest.approx(10.0)
    rerun = {"rough": 0.5, "encode": 4.0, "decode": 5.0, "blend": 0.1}
    assert rerun_estimate(11.0, 0.0, rerun, list(rerun)) == pytest.approx(11.0)  # shading was reused
    assert rerun_estimate(1.0, 0.0, {"shade": 5.0, "decode": 0.1}, ["shade", "decode"]) == 0.0
    assert rerun_estimate(0.06, 0.0, {"blend": 0.01}, ["blend"]) is None  # the same hints: nothing measured


def test_live_is_offered_when_a_rerun_is_fast_enough_and_otherwise_says_why():
    assert live_unavailable(0.8, {"device": "cuda", "name": "NVIDIA GeForce RTX 3060"}) == ""
    assert live_unavailable(FAST_ENOUGH_S, {"device": "cpu", "name": "CPU"}) == ""
    assert "Colorize once to measure this computer's speed" in live_unavailable(None)
    assert "Change a hint and Colorize to measure" in live_unavailable(None, cached=True)
    slow = live_unavailable(40.2, {"device": "cpu", "name": "CPU"})
    assert slow.startswith("A re-run with new hints takes about 40 s on this computer (CPU); live colour needs "
                           f"{FAST_ENOUGH_S:g} s or less") and "NVIDIA GPU" in slow
    slow_gpu = live_unavailable(4.0, {"device": "cuda", "name": "NVIDIA GeForce GT 1030"})
    assert "about 4.0 s" in slow_gpu and "GT 1030" in slow_gpu and "smaller Max size" in slow_gpu
    assert "hint layer" in live_unavailable(0.5, provider="image")
    assert "Hint layer" in live_unavailable(0.5, hints_source="colorize_mask")


def test_the_live_advice_leaves_out_a_smaller_max_size_when_it_is_the_smallest():
    assert "a smaller Max size" in live_unavailable(30.0, {"device": "cpu"})
    at_minimum = live_unavailable(30.0, {"device": "cpu"}, at_smallest=True)
    assert "Max size" not in at_minimum and at_minimum.endswith("e.g. with an NVIDIA GPU, or a selection.")
