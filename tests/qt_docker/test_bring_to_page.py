"""*Bring to page* in the docker: the active layer's colouring, made at a lower resolution
(pasted and scaled up to the canvas, or pasted as it is), brought to the page's size with the
page's own ink as a new layer; the artist's layers, the active layer and the undo history as
they were."""

import cv2
import numpy as np
from test_docker_widget import data_dir, docker, drawn, new_document, pump, weights  # noqa: F401

from inknhue.page.upscale import at_working_size, upscale

SMALL = (40, 60)  #: the colouring as made, a third of the 120 x 180 page


def small_colouring():
    colouring = np.full((SMALL[1], SMALL[0], 3), (235, 215, 180), np.uint8)
    cv2.circle(colouring, (20, 30), 12, (210, 60, 50), -1)
    return colouring


def colouring_layer(doc, rgb, at=(0, 0)):
    """A layer holding `rgb` (opaque) at `at`, transparent elsewhere, above the others, made active."""
    layer = doc.createNode("colours", "paintlayer")
    x, y = at
    layer.pixels[y:y + rgb.shape[0], x:x + rgb.shape[1]] = np.dstack([rgb[..., ::-1],
                                                                     np.full(rgb.shape[:2], 255, np.uint8)])
    doc.rootNode().addChildNode(layer, doc.topLevelNodes()[-1])
    doc.setActiveNode(layer)
    doc.undo_steps.clear()
    return layer


def bring(docker, doc):  # noqa: F811
    """Press Bring to page and wait; returns the new layer."""
    before = {n.uniqueId().toString() for n in doc.topLevelNodes()}
    docker.bring_button.click()
    assert docker.running is not None, docker.message.text()
    pump(lambda: docker.running is None, timeout=90)
    new = [n for n in doc.topLevelNodes() if n.uniqueId().toString() not in before]
    assert len(new) == 1, docker.message.text()
    return new[0]


def test_a_colouring_scaled_up_to_the_canvas_comes_back_crisp_as_a_new_layer(docker):  # noqa: F811
    page = drawn()
    doc, ink = new_document(page)
    blurry = cv2.resize(small_colouring(), (120, 180), interpolation=cv2.INTER_CUBIC)
    colours = colouring_layer(doc, blurry)
    theirs = colours.pixels.copy()
    layer = bring(docker, doc)
    assert layer.name() == "inkn'hue colour from colours" and layer.blendingMode() == "normal"
    assert [n.name() for n in doc.topLevelNodes()] == ["Background", "ink", "colours", layer.name()]
    # the page as seen without the colouring; the colouring read at Max size (64) first
    expected = upscale(page.rgb, at_working_size(blurry, 64))
    np.testing.assert_array_equal(layer.pixels[..., [2, 1, 0]], expected)
    assert (layer.pixels[..., 3] == 255).all()
    np.testing.assert_array_equal(colours.pixels, theirs)
    assert colours.visible() and doc.undo_steps == []
    pump(lambda: doc.activeNode() is colours, timeout=5)
    assert "Brought \u201ccolours\u201d to the page" in docker.stage.text() and "from 64x96" in docker.stage.text()
    assert "was read at 64x96 (Max size 64)" in docker.message.text()
    assert not docker.keep_button.isEnabled()  # it is a layer of its own already


def test_a_colouring_pasted_at_its_own_size_is_read_within_its_bounds(docker):  # noqa: F811
    page = drawn()
    doc, ink = new_document(page)
    colouring = small_colouring()
    colouring_layer(doc, colouring, at=(30, 50))  # where Krita put the paste
    layer = bring(docker, doc)
    np.testing.assert_array_equal(layer.pixels[..., [2, 1, 0]], upscale(page.rgb, colouring))
    assert "from 40x60" in docker.stage.text()


def test_colour_under_the_ink_goes_beneath_the_line_art_as_a_multiply_layer(docker):  # noqa: F811
    page = drawn()
    doc, ink = new_document(page)
    ink.pixels[..., 3] = 255 - page.grey  # line art on its own layer over the white Background
    ink.pixels[..., :3] = 0
    colours = colouring_layer(doc, cv2.resize(small_colouring(), (120, 180), interpolation=cv2.INTER_LINEAR))
    docker.output_layer.setCurrentIndex(docker.output_layer.findData("colour"))
    try:
        layer = bring(docker, doc)
    finally:
        docker.output_layer.setCurrentIndex(0)
    assert layer.name() == "inkn'hue colour under ink from colours" and layer.blendingMode() == "multiply"
    assert [n.name() for n in doc.topLevelNodes()] == ["Background", layer.name(), "ink", "colours"]
    assert "\u201ccolours\u201d above hides 100% of the new colours" in docker.message.text()
    assert colours.visible() and doc.activeNode() is colours


def test_each_bring_to_page_is_a_new_layer_and_a_second_keeps_the_first(docker):  # noqa: F811
    page = drawn()
    doc, _ = new_document(page)
    colouring_layer(doc, small_colouring(), at=(0, 0))
    first = bring(docker, doc)
    second = bring(docker, doc)
    assert first.name() == "inkn'hue colour from colours" and second.name() == "inkn'hue colour from colours 2"
    assert first.parentNode() is not None


def test_what_cannot_be_brought_to_the_page_is_said(docker):  # noqa: F811
    page = drawn()
    doc, ink = new_document(page)
    empty = doc.createNode("empty", "paintlayer")
    doc.rootNode().addChildNode(empty, ink)
    doc.setActiveNode(empty)
    docker.bring_button.click()
    assert docker.running is None and "The active layer is empty" in docker.message.text()
    docker.add_hints.click()  # the hint layer, made active
    docker.bring_button.click()
    assert docker.running is None and "is the hint layer" in docker.message.text()
    colouring_layer(doc, small_colouring()[:30])  # not the page's shape, at its own size: read as the canvas
    docker.page_source.setCurrentIndex(docker.page_source.findData("layer"))
    try:
        layer = bring(docker, doc)  # the page: the layer right beneath the colouring (the hints: blank)
    finally:
        docker.page_source.setCurrentIndex(0)
    assert layer.name() == "inkn'hue colour from colours"


def test_a_cancelled_bring_to_page_writes_nothing(docker):  # noqa: F811
    page = drawn(8)
    doc, _ = new_document(page)
    colouring_layer(doc, cv2.resize(small_colouring(), (960, 1440), interpolation=cv2.INTER_CUBIC))
    before = [n.name() for n in doc.topLevelNodes()]
    docker.bring_button.click()
    pump(lambda: docker.cancel_button.isEnabled(), timeout=30)
    docker.cancel_button.click()
    pump(lambda: docker.running is None, timeout=90)
    assert [n.name() for n in doc.topLevelNodes()] == before
    assert docker.message.text() == "Cancelled."


def test_with_a_selection_the_new_layer_holds_the_colours_inside_it_only(docker):  # noqa: F811
    import krita
    page = drawn()
    doc, ink = new_document(page)
    colouring = small_colouring()
    colouring_layer(doc, colouring, at=(30, 50))
    selection = krita.Selection(120, 180)
    selection.select(10, 20, 60, 80, 255)
    selection.select(70, 20, 10, 80, 128)  # a feathered edge
    doc.setSelection(selection)
    layer = bring(docker, doc)
    np.testing.assert_array_equal(layer.pixels[..., 3], selection.mask)  # its alpha is the selection, as drawn
    inside = selection.mask > 0
    np.testing.assert_array_equal(layer.pixels[..., [2, 1, 0]][inside], upscale(page.rgb, colouring)[inside])
    assert doc.undo_steps == []


def test_a_selection_that_selects_nothing_brings_the_whole_page(docker):  # noqa: F811
    import krita
    page = drawn()
    doc, _ = new_document(page)
    colouring = small_colouring()
    colouring_layer(doc, colouring, at=(30, 50))
    doc.setSelection(krita.Selection(120, 180))  # selects nothing: as without a selection
    layer = bring(docker, doc)
    assert (layer.pixels[..., 3] == 255).all()
    np.testing.assert_array_equal(layer.pixels[..., [2, 1, 0]], upscale(page.rgb, colouring))
