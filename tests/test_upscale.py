"""`inknhue upscale PAGE COLOURED -o OUT`: any colouring at a lower resolution brought to the
page's size with the page's own ink, one page or a chapter; bad input is one line, never a
traceback, never a partial file under the output's name."""

import json
import os

import corpus
import cv2
import numpy as np
import pytest
from PIL import Image

from inknhue.cli import main
from inknhue.page.color import rgb_to_lab
from inknhue.page.imaging import working_size


def save(path, array):
    Image.fromarray(array).save(path)
    return str(path)


def read(path):
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def toned():
    """A toned web-scan page and a perfect colouring of it at 512 px, as another tool would give."""
    page = corpus.test_set()[2]
    height, width = page.grey.shape
    return page, corpus.colorized(page, working_size(width, height, 512), soften=0)


def one_line_error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("inknhue: error: "), err
    return err[0]


def test_a_colouring_comes_to_the_pages_size_with_the_pages_ink(tmp_path, toned):
    page, colouring = toned
    out = tmp_path / "out.png"
    assert main(["upscale", save(tmp_path / "p.png", page.grey), save(tmp_path / "c.png", colouring),
                 "-o", str(out)]) == 0
    result = read(out)
    assert result.shape == (*page.grey.shape, 3)
    back = cv2.resize(result, (colouring.shape[1], colouring.shape[0]), interpolation=cv2.INTER_AREA)
    difference = np.sqrt(((rgb_to_lab(back) - rgb_to_lab(colouring)) ** 2).sum(-1))
    assert difference.mean() <= 2.5, difference.mean()
    ink = page.lines & (page.grey < 128)
    assert rgb_to_lab(result)[..., 0][ink].mean() <= rgb_to_lab(page.rgb)[..., 0][ink].mean()


def test_the_colour_layer_multiplied_by_the_page_gives_the_full_result_wherever_a_multiply_can(tmp_path, toned):
    page, colouring = toned
    args = ["upscale", save(tmp_path / "p.png", page.grey), save(tmp_path / "c.png", colouring)]
    assert main([*args, "-o", str(tmp_path / "full.png")]) == 0
    assert main([*args, "-o", str(tmp_path / "colour.png"), "--layer", "colour"]) == 0
    full, colour = read(tmp_path / "full.png").astype(float), read(tmp_path / "colour.png").astype(float)
    grey = page.grey[..., None].astype(float)
    multiplied = colour * grey / 255
    reachable = full <= grey  # a Multiply layer only darkens: not where full is lighter than the page
    assert np.abs(multiplied - full)[reachable].max() <= 1.5
    assert (multiplied <= full + 1.5).all()  # elsewhere the page as drawn, never lighter than full
    ink = page.lines & (page.grey < 128)
    assert reachable.all(axis=-1)[ink].mean() >= 0.99


def test_a_colouring_of_another_shape_is_refused_in_one_line(tmp_path, toned, capsys):
    page, colouring = toned
    out = tmp_path / "out.png"
    cropped = colouring[: colouring.shape[0] * 9 // 10]
    assert main(["upscale", save(tmp_path / "p.png", page.grey), save(tmp_path / "c.png", cropped),
                 "-o", str(out)]) == 1
    assert "does not have the page's shape" in one_line_error(capsys)
    assert not out.exists() and not list(tmp_path.glob(".out.png*"))


def test_a_colouring_larger_than_the_page_is_brought_down_to_it(tmp_path, toned, capsys):
    page, colouring = toned
    height, width = page.grey.shape
    large = cv2.resize(colouring, (width * 2, height * 2), interpolation=cv2.INTER_CUBIC)
    out = tmp_path / "out.png"
    assert main(["upscale", save(tmp_path / "p.png", page.grey), save(tmp_path / "c.png", large),
                 "-o", str(out)]) == 0
    assert read(out).shape == (height, width, 3)
    assert "larger than the page" in capsys.readouterr().err


def test_a_greyscale_colouring_gives_a_grey_page(tmp_path, toned):
    page, colouring = toned
    grey = cv2.cvtColor(colouring, cv2.COLOR_RGB2GRAY)
    out = tmp_path / "out.png"
    assert main(["upscale", save(tmp_path / "p.png", page.grey), save(tmp_path / "c.png", grey),
                 "-o", str(out)]) == 0
    result = read(out).astype(int)
    assert result.shape == (*page.grey.shape, 3)
    assert np.abs(result - result[..., :1]).max() <= 1


def test_a_transparent_colouring_is_flattened_onto_paper_and_said(tmp_path, toned, capsys):
    page, colouring = toned
    rgba = np.dstack([colouring, np.full(colouring.shape[:2], 255, np.uint8)])
    rgba[: rgba.shape[0] // 2, :, 3] = 0
    out = tmp_path / "out.png"
    assert main(["upscale", save(tmp_path / "p.png", page.grey), save(tmp_path / "c.png", rgba),
                 "-o", str(out)]) == 0
    assert "transparent parts" in capsys.readouterr().err
    top = read(out)[: page.grey.shape[0] // 3]
    paper = page.grey[: page.grey.shape[0] // 3] > 250
    assert top[paper].min() >= 245  # white where the page is paper


@pytest.mark.parametrize("kind", ["black", "tone", "thin"])
def test_pages_all_black_all_tone_or_one_pixel_wide_give_a_sensible_result(tmp_path, kind):
    if kind == "black":
        grey = np.full((600, 400), 12, np.uint8)
    elif kind == "tone":  # a 65 LPI screen at 300 dpi, 30% dots, as scanned
        grey = cv2.GaussianBlur(np.where(corpus._halftone((600, 400), np.float32(0.3), 4.6), 30, 255)
                                .astype(np.uint8), (0, 0), 0.5)
    else:  # 1 x 12000: a line's worth of page
        grey = np.where(np.arange(12000) % 50 < 3, 0, 255).astype(np.uint8)[:, None]
    colour = np.array([200, 120, 60], np.uint8)
    small = np.broadcast_to(colour, (grey.shape[0] // 2, max(1, grey.shape[1] // 2), 3)).copy()
    out = tmp_path / "out.png"
    assert main(["upscale", save(tmp_path / "p.png", grey), save(tmp_path / "c.png", small), "-o", str(out)]) == 0
    result = read(out).astype(int)
    assert result.shape == (*grey.shape, 3)
    assert (result <= grey[..., None].astype(int) + 1).all() or kind == "tone"  # ink as dark as drawn
    if kind == "tone":  # the colouring painted the tone over: its colours on average
        mean = cv2.resize(result.astype(np.float32), (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA)
        assert np.abs(mean.mean(axis=(0, 1)) - colour).max() <= 3


def test_a_page_beyond_the_size_limit_is_one_line(tmp_path, capsys):
    grey = np.full((20000, 1), 255, np.uint8)
    out = tmp_path / "out.png"
    colouring = np.full((10000, 1, 3), 200, np.uint8)
    assert main(["upscale", save(tmp_path / "p.png", grey), save(tmp_path / "c.png", colouring),
                 "-o", str(out)]) == 1
    assert "larger than the limit" in one_line_error(capsys) and not out.exists()


def test_a_damaged_colouring_is_one_line_and_leaves_no_file(tmp_path, toned, capsys):
    page, _ = toned
    damaged = tmp_path / "c.png"
    damaged.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    out = tmp_path / "out.png"
    assert main(["upscale", save(tmp_path / "p.png", page.grey), str(damaged), "-o", str(out)]) == 1
    one_line_error(capsys)
    assert not out.exists() and not list(tmp_path.glob(".out.png*"))


def test_an_input_is_never_written_over(tmp_path, toned, capsys):
    page, colouring = toned
    coloured = save(tmp_path / "c.png", colouring)
    assert main(["upscale", save(tmp_path / "p.png", page.grey), coloured, "-o", coloured]) == 1
    assert "refusing to overwrite" in one_line_error(capsys)
    np.testing.assert_array_equal(read(coloured), colouring)


def test_a_chapter_matches_colourings_to_pages_by_name(tmp_path, toned):
    page, colouring = toned
    pages, coloured, out = tmp_path / "pages", tmp_path / "coloured", tmp_path / "out"
    pages.mkdir(), coloured.mkdir()
    for name in ("p1", "p2"):
        save(pages / f"{name}.png", page.grey)
        save(coloured / f"{name}.jpg", colouring)
    assert main(["upscale", str(pages), str(coloured), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["p1.png", "p2.png"]
    assert read(out / "p1.png").shape == (*page.grey.shape, 3)


def test_a_chapter_page_without_its_colouring_stops_it_before_any_work(tmp_path, toned, capsys):
    page, colouring = toned
    pages, coloured, out = tmp_path / "pages", tmp_path / "coloured", tmp_path / "out"
    pages.mkdir(), coloured.mkdir()
    for name in ("p1", "p2"):
        save(pages / f"{name}.png", page.grey)
    save(coloured / "p1.png", colouring)
    assert main(["upscale", str(pages), str(coloured), "-o", str(out)]) == 1
    assert "no colouring" in one_line_error(capsys) and not out.exists()


# --- chapters: done, done again, kept (chapter.py's manifest and lock) -------------------------

@pytest.fixture
def chapter(tmp_path, toned):
    """Two pages and their colourings; `run(*extra)` upscales them into out/ and gives
    (exit code, what it said)."""
    page, colouring = toned
    pages, coloured, out = tmp_path / "pages", tmp_path / "coloured", tmp_path / "out"
    pages.mkdir(), coloured.mkdir()
    for name in ("p1", "p2"):
        save(pages / f"{name}.png", page.grey)
        save(coloured / f"{name}.png", colouring)

    def run(*extra, capsys=None):
        code = main(["upscale", str(pages), str(coloured), "-o", str(out), *extra])
        return code, capsys.readouterr().err if capsys else ""

    run.pages, run.coloured, run.out, run.colouring = pages, coloured, out, colouring
    return run


def written_times(out):
    return {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}


def test_a_chapter_run_again_skips_the_pages_done_with_the_same_inputs(chapter, capsys):
    assert chapter(capsys=capsys)[0] == 0
    before = written_times(chapter.out)
    code, said = chapter(capsys=capsys)
    assert code == 0
    assert "skipped p1: done" in said and "skipped p2: done" in said
    assert "0 done, 2 skipped, 0 failed" in said
    assert written_times(chapter.out) == before
    records = json.loads((chapter.out / ".inknhue-chapter.json").read_text())["pages"]
    assert sorted(records) == ["p1.png", "p2.png"]
    assert records["p1.png"]["settings"] == {"command": "upscale", "layer": "full"}


def test_a_changed_colouring_or_layer_does_its_pages_again(chapter, capsys):
    assert chapter(capsys=capsys)[0] == 0
    recoloured = chapter.colouring.copy()
    recoloured[..., 0] = 255 - recoloured[..., 0]
    save(chapter.coloured / "p2.png", recoloured)
    before = read(chapter.out / "p2.png")
    code, said = chapter(capsys=capsys)
    assert code == 0 and "skipped p1: done" in said
    assert "p2: coloured changed since it was done; doing it again" in said
    assert "1 done, 1 skipped" in said
    assert not np.array_equal(read(chapter.out / "p2.png"), before)
    code, said = chapter("--layer", "colour", capsys=capsys)
    assert code == 0 and said.count("layer changed since it was done") == 2


def test_an_output_retouched_since_is_kept_when_its_inputs_change(chapter, capsys):
    assert chapter(capsys=capsys)[0] == 0
    retouched = read(chapter.out / "p1.png").copy()
    retouched[:20, :20] = (255, 0, 0)
    save(chapter.out / "p1.png", retouched)
    code, said = chapter(capsys=capsys)
    assert code == 0 and "skipped p1: done" in said  # retouched, inputs the same: still done
    save(chapter.pages / "p1.png", 255 - read(chapter.pages / "p1.png"))
    code, said = chapter(capsys=capsys)
    assert code == 0
    assert "its page changed, but" in said and "was changed after inkn'hue wrote it: kept" in said
    np.testing.assert_array_equal(read(chapter.out / "p1.png"), retouched)
    assert chapter("--overwrite", capsys=capsys)[0] == 0
    assert not np.array_equal(read(chapter.out / "p1.png"), retouched)


def test_an_output_not_written_by_a_chapter_run_is_kept(chapter, capsys):
    chapter.out.mkdir()
    save(chapter.out / "p1.png", np.zeros((4, 4, 3), np.uint8))
    code, said = chapter(capsys=capsys)
    assert code == 0 and "p1.png exists (--overwrite redoes it)" in said
    assert read(chapter.out / "p1.png").shape == (4, 4, 3)


def test_an_interrupted_chapter_keeps_whole_pages_and_the_same_command_goes_on(chapter, capsys, monkeypatch):
    from inknhue.batch import upscale as batch_upscale

    made = batch_upscale.upscale
    calls = []

    def interrupted_on_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return made(*args, **kwargs)

    monkeypatch.setattr(batch_upscale, "upscale", interrupted_on_the_second)
    code, said = chapter(capsys=capsys)
    assert code == 130 and "interrupted: 1 done, 0 skipped, 0 failed, 1 not done" in said
    assert [p.name for p in chapter.out.glob("*.png")] == ["p1.png"]
    assert not (chapter.out / ".inknhue-chapter.json.lock").exists()
    monkeypatch.setattr(batch_upscale, "upscale", made)
    code, said = chapter(capsys=capsys)
    assert code == 0 and "skipped p1: done" in said and "1 done, 1 skipped" in said


def test_a_second_run_into_the_folder_is_refused_naming_the_first(chapter, capsys):
    from inknhue.batch.chapter import Manifest

    chapter.out.mkdir()
    lock = Manifest.lock(chapter.out)
    lock.acquire()
    try:
        code, _ = chapter()
        message = one_line_error(capsys)
    finally:
        lock.release()
    assert code == 1 and "is locked by another run: pid " in message and str(os.getpid()) in message
    assert not list(chapter.out.glob("*.png"))


def test_a_chapter_into_its_own_colourings_folder_is_refused(chapter, capsys):
    assert main(["upscale", str(chapter.pages), str(chapter.coloured), "-o", str(chapter.coloured)]) == 1
    assert "also the folder of the colourings" in one_line_error(capsys)


def test_a_gpu_asked_for_where_there_is_none_is_one_line_and_leaves_no_file(tmp_path, toned, capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    page, colouring = toned
    out = tmp_path / "out.png"
    assert main(["upscale", save(tmp_path / "p.png", page.grey), save(tmp_path / "c.png", colouring),
                 "-o", str(out), "--device", "cuda"]) != 0
    assert "no usable GPU" in one_line_error(capsys) and not out.exists()


def test_on_the_cpu_and_on_auto_the_result_is_the_same(tmp_path, toned):
    page, colouring = toned
    args = ["upscale", save(tmp_path / "p.png", page.grey), save(tmp_path / "c.png", colouring)]
    assert main([*args, "-o", str(tmp_path / "cpu.png"), "--device", "cpu"]) == 0
    assert main([*args, "-o", str(tmp_path / "auto.png")]) == 0
    # auto on a GPU machine renders there (detail_gpu.py): the same within a level
    assert np.abs(read(tmp_path / "cpu.png").astype(int) - read(tmp_path / "auto.png")).max() <= 1
