"""Weights that hold NaN or infinite values (issue 23): said at load, and with every result.

Such files load strictly (their names and shapes are right) and used to give black or
garbage pixels without a word. The damaged folders here keep the parity shader (a link)
and rewrite the two small checkpoints: one NaN in kl-f8's encoder, one infinity in the
conditional decoder.
"""

from __future__ import annotations

import json
import os
import struct

import pytest
import torch
from drawing import Page
from PIL import Image
from servers import ServerProcess, raw

from inknhue import cli, weights
from inknhue.engine.pipeline import Engine
from inknhue.rough import RoughRequest, get_provider


def first_float_key(state: dict) -> str:
    return next(k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point() and v.numel())


@pytest.fixture(scope="module")
def damaged(parity_weights, tmp_path_factory):
    """(the folder, kl-f8's damaged tensor as the VAE names it, the conditional's)"""
    folder = tmp_path_factory.mktemp("nan-weights")
    for sub in ("pretrained_nets", "conditional_nets"):
        (folder / sub).mkdir()
    for name in (weights.SHADER, weights.KL_F8_CONFIG):
        (folder / name).symlink_to(parity_weights / name)
    kl = torch.load(parity_weights / weights.KL_F8, weights_only=True)
    nan_key = first_float_key({k: v for k, v in kl["state_dict"].items() if k.startswith("encoder.")})
    kl["state_dict"][nan_key] = kl["state_dict"][nan_key].clone()
    kl["state_dict"][nan_key].view(-1)[0] = float("nan")
    torch.save(kl, folder / weights.KL_F8)
    cond = torch.load(parity_weights / weights.CONDITIONAL, weights_only=True)
    inf_key = first_float_key(cond["cond_decoder_state_dict"])
    cond["cond_decoder_state_dict"][inf_key] = cond["cond_decoder_state_dict"][inf_key].clone()
    cond["cond_decoder_state_dict"][inf_key].view(-1)[-1] = float("inf")
    torch.save(cond, folder / weights.CONDITIONAL)
    return folder, nan_key, f"cond_decoder.{inf_key}"


def page():
    return Page(120, 160).rectangle(10, 10, 110, 150).stroke([(50, 80), (70, 80)], (220, 40, 40))


def check_lines(warnings, damaged):
    folder, nan_key, inf_key = damaged
    assert len(warnings) == 2, warnings
    kl, cond = warnings
    assert kl.startswith(f"{folder / weights.KL_F8}: 1 of its ") and f"hold NaN or infinite values ({nan_key})" in kl
    assert cond.startswith(f"{folder / weights.CONDITIONAL}: 1 of its ") and f"({inf_key})" in cond
    for line in warnings:
        assert "the results will be wrong" in line and "weights download" in line and "\n" not in line


def test_nan_weights_are_said_at_load_and_with_every_result(damaged, parity_weights):
    engine = Engine(damaged[0], "cpu")
    assert engine.weights_warnings == []  # not loaded yet
    engine.load()
    check_lines(engine.weights_warnings, damaged)
    drawn = page()
    result = engine.colorize(drawn.rgb, get_provider("flats"), RoughRequest(page=drawn.rgb, hints=drawn.hints),
                             max_size=64)
    assert result.warnings == engine.weights_warnings

    sound = Engine(parity_weights, "cpu")
    sound.load()
    assert sound.weights_warnings == []
    result = sound.colorize(drawn.rgb, get_provider("flats"), RoughRequest(page=drawn.rgb, hints=drawn.hints),
                            max_size=64)
    assert result.warnings == []


def test_the_command_line_says_it_once_at_load(damaged, tmp_path, capsys):
    drawn = page()
    Image.fromarray(drawn.grey).save(tmp_path / "page.png")
    Image.fromarray(drawn.hints, "RGBA").save(tmp_path / "hints.png")
    assert cli.main(["colorize", str(tmp_path / "page.png"), "--hints", str(tmp_path / "hints.png"), "-o",
                     str(tmp_path / "out.png"), "--weights", str(damaged[0]), "--device", "cpu",
                     "--max-size", "64"]) == 0
    said = capsys.readouterr().err.splitlines()
    lines = [line for line in said if "NaN" in line]
    check_lines([line.removeprefix("warning: ") for line in lines], damaged)
    loaded = next(i for i, line in enumerate(said) if line.startswith("[0/"))
    assert said.index(lines[0]) == loaded + 1  # right after the load


def test_a_chapter_says_it_once_not_with_each_page(damaged, tmp_path, capsys):
    (tmp_path / "pages").mkdir()
    (tmp_path / "hints").mkdir()
    for name in ("p1", "p2", "p3"):
        Image.fromarray(page().grey).save(tmp_path / "pages" / f"{name}.png")
        Image.fromarray(page().hints, "RGBA").save(tmp_path / "hints" / f"{name}.png")
    assert cli.main(["colorize", str(tmp_path / "pages"), "--hints", str(tmp_path / "hints"), "-o",
                     str(tmp_path / "out"), "--weights", str(damaged[0]), "--device", "cpu", "--max-size", "64"]) == 0
    captured = capsys.readouterr()
    lines = [line for line in (captured.out + captured.err).splitlines() if "NaN" in line]
    check_lines([line[line.index("warning: ") + len("warning: "):] for line in lines], damaged)
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["p1.png", "p2.png", "p3.png"]


def test_the_server_sends_it_with_each_result(damaged, tmp_path):
    server = ServerProcess(damaged[0], tmp_path)
    try:
        server.wait_until_ready()
        drawn = page()
        with server.client() as client:
            for _ in range(2):
                header, _ = client.wait(client.colorize(raw(drawn.rgb), raw(drawn.hints), max_size=64), timeout=60)
                check_lines(header["warnings"], damaged)
    finally:
        server.stop()
    log = (tmp_path / "home/.local/state/inknhue/log/server.log").read_text()
    assert log.count("hold NaN or infinite values") == 2  # once per file, at load


def poison_safetensors(path, value=float("nan")) -> str:
    """Write `value` over the first float of the first tensor in place (the size stays, as the
    converted graph records it); returns the tensor's name."""
    with open(path, "r+b") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
        name = next(k for k in sorted(header, key=lambda k: header.get(k, {}).get("data_offsets", [0])[0])
                    if k != "__metadata__")
        assert header[name]["dtype"] == "F32"
        f.seek(8 + size + header[name]["data_offsets"][0])
        f.write(struct.pack("<f", value))
    return name


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")  # NaN's own doing
def test_a_converted_style2paints_network_with_nan_is_said_with_its_results(tmp_path, parity_weights):
    from test_style2paints import REFERENCE, download, page_with_strokes, tiny_style2paints_files

    folder = tmp_path / "w"
    tiny_style2paints_files(tmp_path / "mine")
    assert download("--accept-terms", "--from", str(tmp_path / "mine"), weights_dir=folder) == 0
    for name in weights.FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(parity_weights / name, folder / name)
    reader = weights.style2paints_file(folder, "reader")
    tensor = poison_safetensors(reader)

    provider = get_provider("style2paints")
    engine = Engine(folder, "cpu")
    assert provider.weights_warnings(engine.weights_dir, engine.device) == []  # not loaded yet
    drawn = page_with_strokes()
    result = engine.colorize(drawn.rgb, provider, RoughRequest(page=drawn.rgb, hints=drawn.hints, reference=REFERENCE),
                             max_size=64)
    said = provider.weights_warnings(engine.weights_dir, engine.device)
    assert len(said) == 1 and said[0].startswith(f"{reader}: 1 of its ") and f"({tensor})" in said[0]
    assert "convert the Keras model again" in said[0]
    assert result.warnings == said  # the engine's own weights are sound
