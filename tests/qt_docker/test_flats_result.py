"""*Result: Flats* in the docker: the flat colours of the strokes as a layer beneath the line art,
transparent where paper stays, made without the networks."""

import numpy as np
from test_docker_widget import colorize, data_dir, docker, drawn, new_document, paint_hints, weights  # noqa: F401

from inknhue.rough.flats import flat_layer


def test_flats_are_a_multiply_layer_beneath_the_line_art_transparent_where_paper_stays(docker):  # noqa: F811
    page = drawn()
    doc, ink = new_document(page)
    ink.pixels[..., 3] = 255 - page.grey  # line art on its own layer over the white Background
    ink.pixels[..., :3] = 0
    paint_hints(docker, doc, page)
    docker.output_layer.setCurrentIndex(docker.output_layer.findData("flats"))
    layer = colorize(docker, doc)
    assert layer.name() == "inkn'hue colour flats" and layer.blendingMode() == "multiply"
    assert [n.name() for n in doc.topLevelNodes()] == ["Background", layer.name(), "ink", "inkn'hue hints"]
    expected = flat_layer(page.rgb, page.hints)
    np.testing.assert_array_equal(layer.pixels[..., [2, 1, 0, 3]], expected)
    assert (layer.pixels[..., 3] == 0).any() and (layer.pixels[..., 3] == 255).any()
    assert not docker.live_switch.isChecked()
    docker.ratio.setValue(20)  # no blend for flats: the layer stays as it is
    np.testing.assert_array_equal(layer.pixels[..., [2, 1, 0, 3]], expected)
    docker.output_layer.setCurrentIndex(0)
