"""This machine timed at the backend's start (engine/calibration.py): the first job's time
left comes from it, a job stops it at once, and a job's own measure replaces it."""

import time

import pytest
from drawing import Page
from servers import ServerProcess, raw

from inknhue.engine.calibration import calibrate, fit
from inknhue.engine.pipeline import Engine
from inknhue.runtime.progress import JobProgress, Speeds


def test_a_fit_through_two_passes_has_a_fixed_part_and_a_rate():
    assert fit([(300.0, 5.0), (100.0, 3.0)]) == pytest.approx((2.0, 0.01))
    assert fit([(100.0, 3.0), (300.0, 2.0)]) == (0.0, 2.0 / 300.0)  # noise: no rise, a plain rate


def test_a_calibrated_stage_is_estimated_until_a_job_measures_it():
    speeds = Speeds()
    speeds.calibrate_work("shade", 2.0, 0.01)
    speeds.calibrate_pixels("blend", 0.001)
    progress = JobProgress({"shade": 1000.0}, lambda *_: None, {"blend": 1000.0}, speeds)
    assert progress.seconds_left() == pytest.approx(2.0 + 10.0 + 1.0) and progress.basis == "calibration"
    speeds.remember_work("shade", 4.0, 1000.0)  # a job ran it: its rate, no fixed part
    speeds.remember_pixels("blend", 1.0, 1000.0)
    speeds.calibrate_work("shade", 2.0, 0.01)    # a later calibration changes nothing a job measured
    progress = JobProgress({"shade": 1000.0}, lambda *_: None, {"blend": 1000.0}, speeds)
    assert progress.seconds_left() == pytest.approx(4.0 + 1.0) and progress.basis == "measured"


@pytest.fixture(scope="module")
def engine(parity_weights):
    engine = Engine(parity_weights, "cpu")
    engine.load()
    return engine


def test_the_calibration_fits_every_stage_and_a_waiting_job_stops_it(engine):
    speeds = Speeds()
    found = calibrate(engine, lambda: False, speeds=speeds, sides=(64, 96))
    assert found.state == "done" and found.seconds > 0
    assert set(found.stages) == {"rough", "shade", "condition", "encode", "decode", "blend", "output"}
    assert speeds.calibrated == set(found.stages) and all(speeds.per_work[s] > 0 for s in ("shade", "decode"))
    untouched = Speeds()
    stopped = calibrate(engine, lambda: True, speeds=untouched, sides=(64, 96))
    assert stopped.state == "stopped" and untouched.per_work == {} and untouched.calibrated == set()


def hello_until(client, done, timeout=240.0):
    deadline = time.monotonic() + timeout
    while True:
        hello = client.hello()
        if done(hello) or time.monotonic() > deadline:
            return hello
        time.sleep(0.5)


def page(width=600, height=800):
    drawn = Page(width, height).rectangle(20, 20, width - 20, height - 20).circle(width // 2, height // 2, 150)
    return drawn.stroke([(width // 2 - 20, height // 2), (width // 2 + 20, height // 2)], (220, 40, 40))


def first_estimate(client, drawn, max_size):
    """(the first progress event that says a time left, the job's seconds)"""
    events = []
    job = client.colorize(raw(drawn.rgb), raw(drawn.hints), max_size=max_size)
    header, _ = client.wait(job, on_event=events.append, timeout=300)
    timed = [e for e in events if e["type"] == "progress" and e.get("eta") is not None]
    return (timed[0] if timed else None), header["seconds"], events


def test_the_backend_times_this_machine_at_start_and_the_first_estimate_stands_on_it(parity_weights, tmp_path):
    server = ServerProcess(parity_weights, tmp_path, calibrate=True)
    try:
        with server.client(timeout=30) as client:
            hello = hello_until(client, lambda h: h["calibration"]["state"] not in ("not run", "running"))
            calibration = hello["calibration"]
            assert calibration["state"] == "done" and calibration["seconds"] > 0
            assert calibration["stages"]["shade"]["per_work"] > 0 and "per_pixel" in calibration["stages"]["blend"]
            first, seconds, events = first_estimate(client, page(), 256)
            assert first is not None and first["stage"] == "rough" and first["eta_from"] == "calibration"
            print(f"\nfirst estimate {first['eta']:.1f} s, the run {seconds:.1f} s "
                  f"({first['eta'] / seconds:.2f}x; calibration {calibration['seconds']:.1f} s, shared CPU)")
            again, _, _ = first_estimate(client, page(602, 800), 256)  # the same stages, now measured by a job
            assert again["eta_from"] == "measured"
    finally:
        server.stop()


def test_a_job_that_comes_first_stops_the_calibration(parity_weights, tmp_path):
    server = ServerProcess(parity_weights, tmp_path, calibrate=True)
    try:
        with server.client(timeout=30) as client:
            first, _, events = first_estimate(client, page(200, 300), 64)  # at once: the models may still load
            assert client.hello()["calibration"]["state"] == "stopped"
            assert all(e.get("eta_from") != "calibration" for e in events if e["type"] == "progress")
    finally:
        server.stop()
