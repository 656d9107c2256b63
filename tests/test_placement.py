"""Where a new result layer goes (plugin placement.py), and how it gets there in Krita 5
without an undo step; slices (plugin slices.py)."""

import pytest

from inknhue_krita import placement, slices
from inknhue_krita.logic import Rect
from inknhue_krita.placement import HINTS, RESULT, Layer

PAPER = Layer("paper", "Background", opaque=True)
LINES = Layer("lines", "Line art")
HINT = Layer("hints", "inkn'hue hints", HINTS)
NEW = Layer("new", "inkn'hue colour under ink", RESULT, blending="multiply")


@pytest.mark.parametrize("opaque, index", [
    ([True, False], 0),         # white Background, transparent ink above: between them
    ([True, True], 1),          # a scanned page over the Background: multiplied over the scan
    ([True, True, False], 1),   # ... and under line art layers above it
    ([False, False], 0),        # nothing opaque: above the lowest layer
])
def test_the_colour_layer_goes_under_the_ink_and_over_the_paper(opaque, index):
    assert placement.under_ink([Layer(str(i), opaque=o) for i, o in enumerate(opaque)]) == index


def test_colour_under_the_ink_goes_above_an_opaque_earlier_result_where_it_is_seen():
    earlier = Layer("kept", "inkn'hue colour kept", RESULT, opaque=True)
    layers = [PAPER, earlier, LINES, HINT]
    assert placement.under_ink(layers) == 1
    stack = placement.order(layers, NEW, 1)
    assert [layer.id for layer in stack] == ["paper", "kept", "new", "lines", "hints"]
    assert placement.may_hide(stack, NEW) == [LINES]  # only measured: transparent line art hides nothing


def test_the_artists_layers_keep_their_order_and_the_hints_stay_above_the_line_art():
    layers = [PAPER, LINES, HINT]
    stack = placement.order(layers, NEW, placement.under_ink(layers))
    assert [layer.id for layer in stack] == ["paper", "new", "lines", "hints"]


def test_the_hint_layer_moves_only_when_the_new_layer_would_cover_it():
    layers = [PAPER, HINT, Layer("ink", "ink", opaque=True)]
    full = Layer("full", "inkn'hue colour", RESULT)
    stack = placement.order(layers, full, placement.coloured_page(layers))
    assert [layer.id for layer in stack] == ["paper", "ink", "full", "hints"]


def test_a_coloured_page_of_one_layer_goes_above_it_unless_an_opaque_layer_would_hide_it():
    page, cover, top = Layer("page"), Layer("cover", opaque=True), Layer("top")
    assert placement.coloured_page([PAPER, page, top, HINT], page=1) == 1
    assert placement.coloured_page([PAPER, page, cover, top, HINT], page=1) == 2


def krita_5_set_child_nodes(stack: list[str], given: list[str]) -> list[str]:
    """What Krita 5.1.5's Node.setChildNodes does: the bottom layer out, the given ones on top
    (those still in the stack are refused)."""
    rest = stack[1:]
    return rest + [layer for layer in given if layer not in rest]


@pytest.mark.parametrize("current, wanted", [
    (["a", "b", "c"], ["a", "new", "b", "c"]),
    (["a", "b", "c"], ["new", "a", "b", "c"]),
    (["a", "b", "c"], ["a", "b", "c", "new"]),
    (["a", "hints", "c"], ["a", "c", "new", "hints"]),  # the hints moved above a new result
    ([], ["new"]),
])
def test_krita_5_reaches_any_order_that_keeps_the_artists_layers_in_theirs(current, wanted):
    stack = list(current)
    for call in placement.moves(current, wanted):
        stack = krita_5_set_child_nodes(stack, call)
    assert stack == wanted


def test_no_moves_drop_a_layer():
    assert placement.moves(["a", "b"], ["a"]) is None


def test_slices_cover_the_area_once_within_their_budget():
    rect = Rect(3, 5, 100, 37)
    bands = slices.rows(rect, 4, budget=4 * 100 * 10)
    assert [b.height for b in bands] == [10, 10, 10, 7] and bands[0].y == 5 and bands[-1].y == 35
    page = bytes(i % 251 for i in range(100 * 37 * 4))
    written = {}
    list(slices.write(lambda data, x, y, w, h: written.__setitem__(y, data), bytes, page, rect, 4, 4000))
    assert b"".join(written[y] for y in sorted(written)) == page
    read = b"".join(slices.read(lambda x, y, w, h: written[y], rect, 4, 4000))
    assert read == page
