"""*Bring to page*'s decisions without Krita (plugin/inknhue_krita/upscaling.py): which part of
the layer is the colouring, what cannot be brought, what is asked of the backend."""

import pytest

from inknhue.errors import InputError
from inknhue.page.upscale import check_fits
from inknhue_krita.logic import Rect
from inknhue_krita.upscaling import colouring_area, fits, refusal, request

PAGE = (2480, 3508)


@pytest.mark.parametrize("bounds, read", [
    (Rect(0, 0, *PAGE), Rect(0, 0, *PAGE)),                   # scaled up to the canvas
    (Rect(-3, -3, 2490, 3520), Rect(0, 0, *PAGE)),            # a transform a little past the edges
    (Rect(100, 200, 768, 1086), Rect(100, 200, 768, 1086)),   # pasted at its own size
    (Rect(0, 0, 768, 1086), Rect(0, 0, 768, 1086)),
    (Rect(100, 200, 900, 900), Rect(0, 0, *PAGE)),            # painted over part of the page: the canvas
    (Rect(0, 0, 2480, 1000), Rect(0, 0, *PAGE)),
    (Rect(2000, 3000, 768, 1086), Rect(0, 0, *PAGE)),         # cut by the canvas: not the page's shape
])
def test_the_colouring_is_the_canvas_unless_the_layer_is_a_smaller_copy_of_the_page(bounds, read):
    assert colouring_area(bounds, PAGE) == read


def test_the_plugin_and_the_backend_agree_on_the_pages_shape():
    for page in [(2480, 3508), (3508, 2480), (1, 20000), (848, 1200), (300, 300)]:
        for width in range(1, 1200, 7):
            for height in (round(width * page[1] / page[0]) + d for d in (-40, -9, -2, -1, 0, 1, 2, 9)):
                if height < 1:
                    continue
                try:
                    check_fits(page, (width, height))
                    backend = True
                except InputError:
                    backend = False
                assert fits(page, (width, height)) == backend, (page, width, height)


@pytest.mark.parametrize("node_type, hints, empty, words", [
    (None, False, False, "Select the layer that holds your colouring"),
    ("paintlayer", True, False, "is the hint layer"),
    ("transparencymask", False, False, "is a mask"),
    ("paintlayer", False, True, "is empty"),
])
def test_what_cannot_be_brought_is_said(node_type, hints, empty, words):
    assert words in refusal(node_type, hints, empty)


def test_a_paint_group_or_file_layer_can_be_brought():
    assert all(refusal(kind, False, False) == "" for kind in ("paintlayer", "grouplayer", "filelayer"))


def test_only_a_colouring_read_at_the_canvass_size_is_read_at_max_size():
    output = {"layer": "full"}
    assert request("full", output, Rect(0, 0, *PAGE), PAGE, 768) == {"type": "upscale", "output": output,
                                                                      "max_size": 768}
    assert "max_size" not in request("full", output, Rect(5, 5, 768, 1086), PAGE, 768)


def test_an_older_backend_is_told_apart():
    from inknhue_krita.upscaling import older

    assert "run the inkn'hue installer again" in older({"type": "error", "code": "unknown_type", "message": "x"})[
        "message"]
    assert older({"type": "accepted", "job": "j-1"}) == {"type": "accepted", "job": "j-1"}
