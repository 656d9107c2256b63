"""`--layer flats`: the flat colours of the strokes alone, RGBA, transparent where paper stays,
with no network and no weights: on the command line, in chapters and from the server."""

import numpy as np
import pytest
from drawing import Page
from PIL import Image
from servers import ServerProcess, raw

from inknhue import cli
from inknhue.rough.flats import flat_layer
from inknhue_krita.client import ServerError

RED, BLUE = (220, 40, 40), (40, 60, 220)


def drawn() -> Page:
    page = Page(300, 240).rectangle(10, 10, 290, 230).rectangle(40, 40, 140, 200).circle(210, 120, 50)
    return page.stroke([(70, 100), (110, 140)], RED).stroke([(200, 110), (220, 130)], BLUE)


@pytest.fixture
def files(tmp_path):
    page = drawn()
    Image.fromarray(page.grey).save(tmp_path / "page.png")
    Image.fromarray(page.hints, "RGBA").save(tmp_path / "hints.png")
    (tmp_path / "no-weights").mkdir()
    return tmp_path, page


def flats_command(folder, *extra, out="flats.png"):
    return cli.main(["colorize", str(folder / "page.png"), "--hints", str(folder / "hints.png"), "--layer", "flats",
                     "-o", str(folder / out), "--weights", str(folder / "no-weights"), *extra])


def error_line(capsys) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_the_command_writes_the_flats_as_rgba_with_no_weights_at_all(files, capsys):
    folder, page = files
    assert flats_command(folder) == 0
    written = np.array(Image.open(folder / "flats.png"))
    assert written.shape == (240, 300, 4)
    np.testing.assert_array_equal(written, flat_layer(page.rgb, page.hints))
    assert (written[120, 90, :3] == RED).all() and written[120, 90, 3] == 255
    assert written[20, 250, 3] == 0  # unhinted paper is transparent
    assert "wrote the flats" in capsys.readouterr().err


def test_a_jpeg_cannot_hold_the_flats_transparency_and_nothing_is_written(files, capsys):
    folder, _ = files
    assert flats_command(folder, out="flats.jpg") == 1
    assert "cannot hold" in error_line(capsys) and not (folder / "flats.jpg").exists()


def test_the_flats_come_from_the_flats_provider_only(files, capsys):
    folder, _ = files
    assert flats_command(folder, "--prior", "shader") == 1
    assert "--layer flats" in error_line(capsys)


def test_hints_of_another_size_are_one_line(files, capsys):
    folder, page = files
    Image.fromarray(page.hints[:, :200], "RGBA").save(folder / "hints.png")
    assert flats_command(folder) == 1
    assert "the hints are 200x240 but the page is 300x240" in error_line(capsys)


def test_a_chapter_of_flats_needs_no_weights(files, tmp_path):
    folder, page = files
    pages, hints = tmp_path / "pages", tmp_path / "hints"
    pages.mkdir(), hints.mkdir()
    for name in ("p1", "p2"):
        Image.fromarray(page.grey).save(pages / f"{name}.png")
        Image.fromarray(page.hints, "RGBA").save(hints / f"{name}.png")
    out = tmp_path / "out"
    assert cli.main(["colorize", str(pages), "--hints", str(hints), "--layer", "flats", "-o", str(out),
                     "--weights", str(folder / "no-weights")]) == 0
    for name in ("p1", "p2"):
        np.testing.assert_array_equal(np.array(Image.open(out / f"{name}.png")), flat_layer(page.rgb, page.hints))


@pytest.fixture(scope="module")
def server_without_weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flats-server")
    (folder / "empty").mkdir()
    process = ServerProcess(folder / "empty", folder)
    yield process
    process.stop()


def test_the_server_makes_flats_without_weights_and_offers_the_layer(server_without_weights):
    page = drawn()
    with server_without_weights.client() as client:
        assert "flats" in client.hello()["layers"]
        job = client.colorize(raw(page.rgb), raw(page.hints), output={"channels": "RGBA", "layer": "flats"})
        header, image = client.wait(job, timeout=60)
    got = np.frombuffer(image.data, np.uint8).reshape(240, 300, 4)
    np.testing.assert_array_equal(got, flat_layer(page.rgb, page.hints))
    assert header["ran"] == ["rough"]


def test_a_flats_job_has_no_colour_blend_and_other_providers_give_no_flats(server_without_weights):
    page = drawn()
    with server_without_weights.client() as client:
        job = client.colorize(raw(page.rgb), raw(page.hints), output={"channels": "RGBA", "layer": "flats"})
        client.wait(job, timeout=60)
        with pytest.raises(ServerError) as blended:
            client.blend(job, 0.5, layer="full")
        assert blended.value.code == "bad_input"
        with pytest.raises(ServerError) as other:
            client.wait(client.colorize(raw(page.rgb), raw(page.hints), provider="shader",
                                        output={"layer": "flats"}), timeout=60)
        assert other.value.code == "bad_input" and "provider flats" in other.value.message
