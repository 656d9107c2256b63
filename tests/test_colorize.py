"""`inknhue colorize`: what the user gets, and a clear refusal for every bad input."""

import logging

import numpy as np
import pytest
from parity import case
from PIL import Image

from inknhue import cli
from inknhue.engine.pipeline import STAGES, Engine
from inknhue.errors import DeviceError, InputError
from inknhue.rough import RoughRequest, get_provider


@pytest.fixture
def files(tmp_path):
    """A 100x150 page and its rough colours, as files."""
    Image.fromarray(case("page_rgb_uint8")).save(tmp_path / "page.png")
    Image.fromarray(case("app_rough_uint8")).save(tmp_path / "rough.png")
    return tmp_path


def colorize(files, parity_weights, *extra, out="out.png"):
    """Run the command in-process, in float32 (the parity fixtures' numbers); returns the exit code."""
    argv = ["colorize", str(files / "page.png"), "--rough", str(files / "rough.png"), "-o", str(files / out),
            "--weights", str(parity_weights), "--device", "cpu", "--max-size", "64", "--precision", "reference",
            *extra]
    return cli.main(argv)


def error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines, "no message"
    return lines[-1]


def test_writes_the_result_at_the_page_size_by_default(files, parity_weights, capsys):
    assert colorize(files, parity_weights) == 0
    assert Image.open(files / "out.png").size == (100, 150)
    err = capsys.readouterr().err
    for index, stage in enumerate(STAGES, start=1):
        assert f"[{index}/{len(STAGES)}] {stage}" in err


def test_working_output_size_is_what_the_network_made(files, parity_weights):
    assert colorize(files, parity_weights, "--output-size", "working") == 0
    assert Image.open(files / "out.png").size == (64, 96)


def test_the_colour_layer_multiplied_by_the_page_gives_the_full_result(files, parity_weights):
    assert colorize(files, parity_weights, out="full.png") == 0
    assert colorize(files, parity_weights, "--layer", "colour", out="colour.png") == 0
    full, colour = (np.asarray(Image.open(files / n)).astype(int) for n in ("full.png", "colour.png"))
    page = np.asarray(Image.open(files / "page.png").convert("L")).astype(int)
    assert colour.shape == full.shape == (150, 100, 3)
    assert np.abs(np.rint(colour * page[..., None] / 255) - full).max() <= 1
    assert not np.array_equal(colour, full)


def test_ratio_one_keeps_the_rough_hues_and_zero_the_vae_colours(files, parity_weights):
    colorize(files, parity_weights, "--output-size", "working", "--ratio", "0", out="r0.png")
    colorize(files, parity_weights, "--output-size", "working", "--ratio", "1", out="r1.png")
    r0, r1 = (np.asarray(Image.open(files / n)) for n in ("r0.png", "r1.png"))
    assert np.abs(r0.astype(int) - case("app_generated_uint8")).max() <= 2
    assert not np.array_equal(r0, r1)


@pytest.mark.parametrize("ratio", ["1.5", "-0.1", "nan", "lots"])
def test_ratio_outside_zero_to_one_is_a_usage_error(files, parity_weights, capsys, ratio):
    with pytest.raises(SystemExit) as exit_info:
        colorize(files, parity_weights, "--ratio", ratio)
    assert exit_info.value.code == 2
    assert "--ratio" in error_line(capsys)


def test_unreadable_page(files, parity_weights, capsys):
    (files / "page.png").write_text("not a png")
    assert colorize(files, parity_weights) == 1
    assert error_line(capsys).startswith("inknhue: error: page ")
    assert not (files / "out.png").exists()


def test_rough_colours_of_another_shape_are_refused(files, parity_weights, capsys):
    Image.new("RGB", (150, 150), "red").save(files / "rough.png")
    assert colorize(files, parity_weights) == 1
    line = error_line(capsys)
    assert "differ in aspect ratio by 50.0%" in line and "at most 1%" in line


def test_rough_colours_within_one_percent_are_accepted(files, parity_weights):
    Image.fromarray(case("app_rough_uint8")).resize((201, 300)).save(files / "rough.png")  # 0.5% off
    assert colorize(files, parity_weights, "--output-size", "working") == 0
    assert Image.open(files / "out.png").size == (64, 96)


def test_the_result_never_overwrites_an_input(files, parity_weights, capsys):
    before = (files / "page.png").read_bytes()
    assert colorize(files, parity_weights, out="page.png") == 1
    assert "refusing to overwrite the input" in error_line(capsys)
    assert (files / "page.png").read_bytes() == before


@pytest.mark.parametrize("size", ["100", "32", "8192"])
def test_max_size_must_be_a_sensible_multiple_of_32(files, parity_weights, capsys, size):
    argv = ["colorize", str(files / "page.png"), "--rough", str(files / "rough.png"), "-o",
            str(files / "out.png"), "--weights", str(parity_weights), "--device", "cpu", "--max-size", size]
    assert cli.main(argv) == 1
    assert "max size must be a multiple of 32 between 64 and 2048" in error_line(capsys)


def test_asking_for_cuda_without_a_gpu_says_so(files, parity_weights, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = ["colorize", str(files / "page.png"), "--rough", str(files / "rough.png"), "-o",
            str(files / "out.png"), "--weights", str(parity_weights), "--device", "cuda"]
    assert cli.main(argv) == 1
    assert "CUDA was asked for but no usable GPU was found" in error_line(capsys)


def test_runs_are_logged_in_the_user_log_dir(files, parity_weights, isolated_user_dirs):
    colorize(files, parity_weights)
    logging.getLogger("inknhue").handlers[0].flush()
    log = (isolated_user_dirs / ".local/state/inknhue/log/inknhue.log").read_text()
    assert "colorize" in log


# --- the engine underneath ------------------------------------------------------------------

def test_auto_device_falls_back_to_the_cpu(parity_weights, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    engine = Engine(parity_weights, "auto")
    assert engine.device.type == "cpu"


def test_models_are_loaded_once_per_process(parity_weights):
    first, second = Engine(parity_weights, "cpu"), Engine(parity_weights, "cpu")
    assert first.vae is second.vae and first.generator is second.generator


def test_a_transparent_page_colorizes_like_the_same_page_on_white(parity_weights):
    engine = Engine(parity_weights, "cpu")
    page = case("page_rgb_uint8")
    from inknhue.page.imaging import to_rgb

    ink = 255 - page[..., 0]  # line art on a transparent layer: alpha = ink
    layer = np.dstack([np.zeros_like(ink)] * 3 + [ink])
    flattened = to_rgb(Image.fromarray(layer, "RGBA"))
    assert np.abs(flattened.astype(int) - page).max() <= 1
    a = engine.shade(flattened, 64)
    b = engine.shade(page, 64)
    assert np.abs(a.astype(int) - b).max() <= 2


def test_the_image_provider_needs_an_image(parity_weights):
    page = case("page_rgb_uint8")
    with pytest.raises(InputError, match="needs a rough-colour image"):
        Engine(parity_weights, "cpu").colorize(page, get_provider("image"), RoughRequest(page=page))


def test_unknown_provider_lists_the_known_ones():
    with pytest.raises(InputError, match="available: .*image"):
        get_provider("style2paints-v9")


@pytest.mark.parametrize("max_size, advice", [(128, r"try a smaller max size \(e.g. 64\)"),
                                               (64, "this is the smallest max size already")])
def test_out_of_memory_becomes_advice_to_lower_the_max_size(parity_weights, monkeypatch, max_size, advice):
    import torch

    engine = Engine(parity_weights, "cpu")

    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(engine, "condition", exhausted)
    page = case("page_rgb_uint8")
    with pytest.raises(DeviceError, match=f"ran out of memory colorizing at max size {max_size}; {advice}"):
        engine.colorize(page, get_provider("image"), RoughRequest(page=page, rough=case("app_rough_uint8")),
                        max_size=max_size)


def flats_argv(files, hints, weights):
    return ["colorize", str(files / "page.png"), "--hints", str(hints), "-o", str(files / "out.png"),
            "--weights", str(weights), "--device", "cpu", "--max-size", "64"]


@pytest.mark.parametrize("hints, said", [
    (np.full((10, 10, 4), (200, 0, 0, 255), np.uint8), "the hints are 10x10 but the page is 100x150"),
    (np.zeros((150, 100, 4), np.uint8), "are fully transparent"),
])
def test_hints_that_cannot_work_are_refused_before_any_weights_load(files, tmp_path, capsys, monkeypatch, hints,
                                                                    said):
    Image.fromarray(hints, "RGBA").save(files / "hints.png")

    def no_loading(*args, **kwargs):
        raise AssertionError("the weights were loaded")

    monkeypatch.setattr(Engine, "__init__", no_loading)
    assert cli.main(flats_argv(files, files / "hints.png", tmp_path / "no-weights")) == 1
    assert said in error_line(capsys) and not (files / "out.png").exists()


def test_a_missing_page_is_said_before_torch_is_imported(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from inknhue import cli; code = cli.main(['colorize', sys.argv[1], '-o', sys.argv[2]]); "
            "print('torch' in sys.modules); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "nothere.png"), str(tmp_path / "out.png")],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "page not found" in done.stderr and done.stdout.strip() == "False"


class Stream:
    def __init__(self, terminal):
        self.terminal, self.text = terminal, ""

    def isatty(self):
        return self.terminal

    def write(self, text):
        self.text += text

    def flush(self):
        pass


def test_a_terminal_sees_the_stage_move_and_a_file_gets_a_line_per_stage():
    from inknhue.engine.pipeline import StageEvent

    events = [StageEvent("shade", 2, 6, None, fraction=0.4, eta=30.0), StageEvent("shade", 2, 6, 12.5)]
    terminal, log_file = Stream(True), Stream(False)
    for event in events:
        cli._print_progress(event, terminal)
        cli._print_progress(event, log_file)
    assert "[2/6] shade      40%, about 30 s left" in terminal.text and terminal.text.endswith("12.50 s\n")
    assert log_file.text == "[2/6] shade      12.50 s\n"
