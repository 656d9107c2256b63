"""What a long job tells while it runs: each stage timed on its own, progress within the
network stages, the time left, and warnings about inputs that look like a mistake."""

import time

import pytest
import torch
from drawing import Page

from inknhue.engine.options import EngineOptions
from inknhue.engine.pipeline import STAGES, Engine
from inknhue.rough import RoughRequest, get_provider
from inknhue.runtime.progress import JobProgress, Speeds, measure_work

RED = (220, 40, 40)


def page_with_hints(strokes=True):
    page = Page(300, 400).rectangle(10, 10, 290, 390).circle(150, 200, 80)
    if strokes:
        page.stroke([(140, 190), (160, 210)], RED)
    return page


def run(engine, page, **options):
    events = []
    result = engine.colorize(page.rgb, get_provider("flats"), RoughRequest(page=page.rgb, hints=page.hints),
                             max_size=options.pop("max_size", 128), progress=events.append, **options)
    return result, events


@pytest.fixture(scope="module")
def engine(parity_weights):
    engine = Engine(parity_weights, "cpu")
    engine.load()
    return engine


def test_each_stage_is_timed_on_its_own(engine, monkeypatch):
    real_condition = engine.condition

    def shade(page, max_size):
        time.sleep(0.2)
        return page

    def condition(shaded):
        time.sleep(0.6)
        return real_condition(shaded)

    monkeypatch.setattr(engine, "shade", shade)
    monkeypatch.setattr(engine, "condition", condition)
    result, events = run(engine, page_with_hints())
    assert set(result.timings) == set(STAGES)
    assert 0.2 <= result.timings["shade"] < 0.6 <= result.timings["condition"]
    assert result.timings["encode"] != result.timings["decode"]
    started = [e.stage for e in events if e.seconds is None and e.fraction is None]
    assert started == list(STAGES)  # every stage says when it starts, grouped or not


def test_network_stages_report_progress_within_them_and_the_time_left(engine, monkeypatch):
    import inknhue.runtime.progress

    monkeypatch.setattr(inknhue.runtime.progress, "REPORT_EVERY_S", 0.0)  # every convolution, to see them all
    monkeypatch.setattr(inknhue.runtime.progress, "SPEEDS", Speeds())  # nothing measured before this job
    _, events = run(engine, page_with_hints(), max_size=160)
    within = [e for e in events if e.fraction is not None]
    for stage in ("shade", "condition", "encode", "decode"):
        fractions = [e.fraction for e in within if e.stage == stage]
        assert len(fractions) > 5 and fractions == sorted(fractions) and 0 < fractions[-1] < 1
    done = [e.done for e in events if e.done is not None]
    assert done == sorted(done) and done[-1] == 1.0
    assert all(e.eta is not None and e.eta >= 0 for e in within[5:])
    assert events[-1].eta == 0.0  # the page-size output was never timed in this process: not counted


def test_stages_run_in_row_bands_report_progress_to_their_end(parity_weights, monkeypatch):
    """Bands recompute part of their work: the engine plans with it, so the bar does not
    stop short of a stage's end and wait there."""
    import inknhue.runtime.progress
    from inknhue.networks.banded import Banding

    monkeypatch.setattr(inknhue.runtime.progress, "REPORT_EVERY_S", 0.0)
    engine = Engine(parity_weights, "cpu", options=EngineOptions("reference", Banding(enabled=True, band_rows=8)))
    _, events = run(engine, page_with_hints(), max_size=160)
    for stage in ("condition", "encode", "decode"):
        fractions = [e.fraction for e in events if e.stage == stage and e.fraction is not None]
        assert fractions == sorted(fractions) and 0.9 < fractions[-1] < 1
    done = [e.done for e in events if e.done is not None]
    assert done == sorted(done) and done[-1] == 1.0


def test_stages_from_the_cache_are_not_waited_for(engine):
    from inknhue.runtime.cache import StageCache

    cache = StageCache()
    page = page_with_hints()
    run(engine, page, cache=cache)
    page.stroke([(30, 350), (60, 360)], (40, 60, 220))  # new hints: the shading is reused
    _, events = run(engine, page, cache=cache)
    assert {e.stage for e in events if e.cached} == {"shade", "condition"}
    done = [e.done for e in events if e.done is not None]
    assert done[-1] == 1.0 and done == sorted(done)


def test_the_time_left_follows_the_measured_speed():
    reports = []
    progress = JobProgress({"a": 100.0, "b": 300.0}, lambda stage, fraction: reports.append(fraction),
                           speeds=Speeds())
    conv = torch.nn.Conv2d(1, 1, 1, bias=False)
    with progress.stage("a"):
        time.sleep(0.05)
        with torch.no_grad():
            conv(torch.zeros(1, 1, 10, 10))  # 100 multiply-adds: all of stage a
    assert progress.fraction_done() == pytest.approx(0.25)
    # 300 more at the speed of the first 100
    assert progress.seconds_left() == pytest.approx(3 * progress.busy_seconds, rel=0.01)


def test_nothing_measured_yet_is_no_time_left_rather_than_a_guess():
    assert JobProgress({"a": 100.0}, lambda *_: None, {"blend": 10.0}, speeds=Speeds()).seconds_left() is None


def test_each_stage_is_estimated_at_its_own_speed_measured_on_an_earlier_job():
    speeds = Speeds()
    speeds.remember_work("shade", 2.0, 100.0)    # the shading network: 0.02 s a multiply-add here
    speeds.remember_work("decode", 1.0, 1000.0)  # the VAE: 0.001 s
    speeds.remember_pixels("output", 3.0, 1000.0)
    progress = JobProgress({"shade": 100.0, "decode": 2000.0}, lambda *_: None, {"output": 2000.0}, speeds)
    # 2 s of shading, 2 s of decoding, 6 s of page-size output: not one rate for all
    assert progress.seconds_left() == pytest.approx(10.0)


def test_a_stage_without_networks_is_timed_for_the_next_job():
    speeds = Speeds()
    progress = JobProgress({}, lambda *_: None, {"blend": 100.0}, speeds)
    with progress.stage("blend"):
        time.sleep(0.02)
    assert speeds.per_pixel["blend"] == pytest.approx(0.0002, rel=0.5) and progress.tail == {}


def test_the_work_of_a_network_is_counted_without_running_it():
    conv = torch.nn.Conv2d(4, 8, 3, padding=1, device="meta")
    assert measure_work(lambda: conv(torch.empty(1, 4, 10, 20, device="meta"))) == 4 * 9 * 8 * 10 * 20


def test_an_empty_hint_layer_is_a_warning_for_the_artist(engine):
    result, _ = run(engine, page_with_hints(strokes=False))
    assert any("hint layer is empty" in w for w in result.warnings)
    result, _ = run(engine, page_with_hints())
    assert result.warnings == []
