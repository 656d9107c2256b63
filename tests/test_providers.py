"""The `shader` and `image` providers, the reference colour transfer, and their command line."""

import numpy as np
import pytest
import torch
from drawing import Page
from parity import case
from PIL import Image

from inknhue.defaults import PROVIDER_NAMES
from inknhue.engine.pipeline import Engine
from inknhue.errors import InputError
from inknhue.page.color import rgb_to_lab
from inknhue.rough import PROVIDERS, RoughRequest, get_provider
from inknhue.rough.shader import encode_hints, hints_at
from inknhue.rough.transfer import transfer_colours

# The parity generator case: a 96x64 page padded to 128x64, a hint square of colour
# (0.9, 0.25, 0.55) at rows 20-39, columns 10-29.
HINT_COLOUR = (0.9, 0.25, 0.55)


@pytest.fixture(scope="module")
def engine(parity_weights):
    return Engine(parity_weights, "cpu")


def parity_page():
    grey = np.round(case("generator_in_f32")[0, 0] * 255).astype(np.uint8)[:96]
    return np.repeat(grey[:, :, None], 3, axis=2)


def parity_hint_mask():
    mask = np.zeros((128, 64), np.float32)
    mask[20:40, 10:30] = 1
    return mask


def test_every_provider_is_offered_by_name():
    assert sorted(PROVIDERS) == sorted(PROVIDER_NAMES)


def test_hint_channels_are_encoded_as_manga_colorization_v2_does():
    mask = parity_hint_mask()
    rgb = np.broadcast_to(np.array(HINT_COLOUR, np.float32), (128, 64, 3))
    np.testing.assert_allclose(encode_hints(rgb, mask).numpy()[0], case("generator_in_f32")[0, 1:], atol=1e-6)


def test_the_generator_with_hints_matches_the_parity_case(engine):
    mask = parity_hint_mask()
    rgb = np.broadcast_to(np.array(HINT_COLOUR, np.float32), (128, 64, 3))
    grey = parity_page()[..., 0]
    padded = np.concatenate([grey, np.repeat(grey.max(axis=0)[None], 32, axis=0)])
    colour = engine.run_generator(padded, encode_hints(rgb, mask))
    np.testing.assert_allclose(colour.numpy(), case("generator_out_f32"), atol=1e-4, rtol=0)


def test_page_sized_strokes_become_the_same_hint_channels(engine):
    page = parity_page()
    hints = np.zeros((96, 64, 4), np.uint8)
    hints[20:40, 10:30] = (230, 64, 140, 255)  # the parity colour, rounded to 8 bits
    channels = hints_at(hints, 64, 96, (32, 0))
    np.testing.assert_allclose(channels.numpy()[0], case("generator_in_f32")[0, 1:], atol=2 / 255)
    rough = get_provider("shader")(RoughRequest(page=page, hints=hints, max_size=64), engine)
    expected = ((torch.from_numpy(case("generator_out_f32"))[0].permute(1, 2, 0) * 0.5 + 0.5) * 255)[:96]
    assert rough.shape == (96, 64, 3)
    assert np.abs(rough.astype(float) - expected.numpy()).max() <= 3


def test_thin_strokes_survive_downscaling_with_their_colour():
    hints = np.zeros((800, 800, 4), np.uint8)
    hints[400:403, 100:700] = (200, 30, 30, 255)  # a 3-px line, shrunk 4x below
    channels = hints_at(hints, 200, 200, (0, 0)).numpy()[0]
    row = channels[:, 100, 30:170]
    assert (row[3] == 1).all()
    np.testing.assert_allclose(row[0] * 0.5 + 0.5, 200 / 255, atol=1e-3)


def test_shader_provider_through_the_pipeline(engine):
    page = Page(100, 150).rectangle(10, 10, 90, 140).stroke([(30, 30), (60, 60)], (200, 40, 40))
    result = engine.colorize(page.rgb, get_provider("shader"), RoughRequest(page=page.rgb, hints=page.hints),
                             max_size=64)
    assert result.rough.shape == result.generated.shape == (96, 64, 3)


# --- the reference ------------------------------------------------------------------------------

def test_transfer_moves_hues_towards_the_reference_and_keeps_lightness():
    rng = np.random.default_rng(0)
    colours = np.clip(rng.normal((200, 80, 80), 25, (64, 64, 3)), 0, 255).astype(np.uint8)  # reddish
    reference = np.clip(rng.normal((60, 90, 200), 25, (64, 64, 3)), 0, 255).astype(np.uint8)  # bluish
    moved = transfer_colours(colours, reference)
    before, after, target = (rgb_to_lab(x).reshape(-1, 3) for x in (colours, moved, reference))
    assert np.abs(after[:, 1:].mean(axis=0) - target[:, 1:].mean(axis=0)).max() < 6
    assert np.abs(after[:, 0] - before[:, 0]).mean() < 3


def test_transfer_leaves_paper_and_ink_neutral():
    colours = np.full((32, 32, 3), 255, np.uint8)
    colours[:8] = 0
    colours[16:] = (200, 60, 60)
    moved = transfer_colours(colours, np.full((8, 8, 3), (40, 80, 220), np.uint8))
    assert (moved[8:16] == 255).all() and (moved[:8] == 0).all()
    assert moved[20, 20, 2] > moved[20, 20, 0]  # the red became bluish


def test_transfer_needs_a_reference():
    page = Page(50, 50)
    with pytest.raises(InputError, match="needs a reference image"):
        get_provider("flats")(RoughRequest(page=page.rgb, hints=page.hints, transfer=True), None)


# --- the command line ---------------------------------------------------------------------------

@pytest.fixture
def drawn(tmp_path):
    page = Page(100, 150).rectangle(5, 5, 95, 145).circle(50, 75, 30)
    page.stroke([(40, 70), (60, 80)], (220, 40, 40)).stroke([(10, 10), (30, 20)], (40, 60, 220))
    Image.fromarray(page.grey).save(tmp_path / "page.png")
    Image.fromarray(page.hints, "RGBA").save(tmp_path / "hints.png")
    return tmp_path


def run(cli_main, *argv):
    return cli_main(list(map(str, argv)))


def test_rough_command_writes_flats_at_the_page_size(drawn, parity_weights):
    from inknhue import cli

    assert run(cli.main, "rough", drawn / "page.png", "--hints", drawn / "hints.png", "-o", drawn / "r.png",
               "--weights", parity_weights) == 0
    rough = np.asarray(Image.open(drawn / "r.png"))
    assert rough.shape == (150, 100, 3)
    assert tuple(rough[75, 50]) == (220, 40, 40) and tuple(rough[120, 20]) == (40, 60, 220)


def test_colorize_from_hints_with_each_network_free_and_network_prior(drawn, parity_weights):
    from inknhue import cli

    for prior in ("flats", "shader"):
        out = drawn / f"{prior}.png"
        assert run(cli.main, "colorize", drawn / "page.png", "--hints", drawn / "hints.png", "--prior", prior,
                   "-o", out, "--weights", parity_weights, "--device", "cpu", "--max-size", "64") == 0
        assert Image.open(out).size == (100, 150)


def test_colorize_with_a_reference_and_transfer(drawn, parity_weights):
    from inknhue import cli

    Image.new("RGB", (40, 40), (30, 90, 220)).save(drawn / "ref.png")
    assert run(cli.main, "rough", drawn / "page.png", "--hints", drawn / "hints.png", "--reference",
               drawn / "ref.png", "--transfer", "-o", drawn / "r.png") == 0
    rough = np.asarray(Image.open(drawn / "r.png")).astype(int)
    assert rough[75, 50, 2] > rough[75, 50, 0]  # the red circle moved towards the blue reference


def test_hints_of_another_size_are_refused(drawn, parity_weights, capsys):
    from inknhue import cli

    Image.new("RGBA", (99, 150)).save(drawn / "hints.png")
    assert run(cli.main, "rough", drawn / "page.png", "--hints", drawn / "hints.png", "-o", drawn / "r.png") == 1
    assert "the hints are 99x150 but the page is 100x150" in capsys.readouterr().err


def test_hints_without_alpha_are_refused(drawn, capsys):
    from inknhue import cli

    Image.new("RGB", (100, 150), "white").save(drawn / "hints.png")
    assert run(cli.main, "rough", drawn / "page.png", "--hints", drawn / "hints.png", "-o", drawn / "r.png") == 1
    assert "have no transparency" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--prior", "flats"], "--prior flats needs hint strokes"),
    (["--prior", "shader", "--rough", "page.png"], "--rough is the input of --prior image"),
    (["--hints", "hints.png", "--transfer"], "--transfer needs a reference image"),
])
def test_inconsistent_options_are_explained(drawn, capsys, argv, message):
    from inknhue import cli

    argv = [a if not a.endswith(".png") else str(drawn / a) for a in argv]
    assert cli.main(["rough", str(drawn / "page.png"), *argv, "-o", str(drawn / "r.png")]) == 1
    assert message in capsys.readouterr().err
