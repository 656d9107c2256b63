"""The `style2paints` provider: each step of Style2Paints V4.5's pre- and post-processing on
small hand-checked cases, the provider end to end on tiny stand-in networks (s2p_standins:
the converted networks' interface), the command line, the server, and
`inknhue weights download --style2paints` (terms, agreement, download, conversion)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import s2p_standins
import torch
from drawing import Page
from fakehub import FakeHub
from PIL import Image
from servers import in_process_server

from inknhue import cli, weights
from inknhue.errors import InputError, WeightsError
from inknhue.rough import RoughRequest, get_provider
from inknhue.rough import style2paints as s2p
from inknhue.weights import style2paints as style2paints_weights

RED, BLUE = (220, 40, 40), (40, 60, 220)


# --- resizing rules ----------------------------------------------------------------------------

def test_min_resize_sets_the_short_side_and_truncates_the_long_one():
    assert s2p.min_resize(np.zeros((300, 400), np.uint8), 512).shape == (512, 682)  # 512 / 300 * 400 = 682.7
    assert s2p.min_resize(np.zeros((600, 512, 3), np.uint8), 512).shape == (600, 512, 3)  # V4.5's example room
    assert s2p.min_resize(np.zeros((800, 300), np.uint8), 64).shape == (170, 64)


def test_min_resize_averages_down_and_uses_lanczos_up():
    image = np.arange(24, dtype=np.float32).reshape(4, 6)
    down = s2p.min_resize(image, 2)
    np.testing.assert_allclose(down, image.reshape(2, 2, 3, 2).mean(axis=(1, 3)))  # 2x2 block means
    up = s2p.min_resize(image, 8)
    np.testing.assert_array_equal(up, cv2.resize(image, (12, 8), interpolation=cv2.INTER_LANCZOS4))


def test_k_resize_short_side_16k_long_side_nearest_multiple_of_64():
    # The sketch of V4.5's example room (1200 x 1024 after the tail) becomes 1216 x 1024.
    assert s2p.k_resize(np.zeros((1200, 1024), np.uint8), 64).shape == (1216, 1024)
    # A reference: short side 224; 500 * 224 / 300 = 373 -> 384.
    assert s2p.k_resize(np.zeros((300, 500, 3), np.uint8), 14).shape == (224, 384, 3)
    assert s2p.k_resize(np.zeros((224, 300, 3), np.uint8), 14).shape == (224, 320, 3)  # 300 -> 320
    assert s2p.k_resize(np.zeros((224, 280, 3), np.uint8), 14).shape == (224, 256, 3)  # 280 -> 256
    assert s2p.k_resize(np.zeros((1000, 600), np.uint8), 64).shape == (1728, 1024)     # 1706 -> 1728


def test_d_resize_takes_the_height_and_width_of_a_shape():
    assert s2p.d_resize(np.zeros((10, 20, 3), np.uint8), (7, 9)).shape == (7, 9, 3)


def test_tf1_bilinear_samples_at_out_index_times_in_over_out_without_half_pixel():
    row = np.array([0.0, 10.0], np.float32).reshape(1, 2, 1)
    # x_src = 0, 0.5, 1, 1.5 -> the last one clamps to the last pixel
    np.testing.assert_allclose(s2p.resize_bilinear_tf1(row, 1, 4)[0, :, 0], [0, 5, 10, 10])
    square = np.array([[0, 10], [20, 30]], np.float32)[:, :, None]
    third = 20 / 3
    np.testing.assert_allclose(s2p.resize_bilinear_tf1(square, 3, 3)[:, :, 0],
                               [[0, third, 10], [2 * third, 3 * third, 10 + 2 * third], [20, 20 + third, 30]],
                               rtol=1e-5)
    # shrinking takes the left/top samples, not the centres (half-pixel would give 0.5, 2.5)
    np.testing.assert_allclose(s2p.resize_bilinear_tf1(np.arange(4, dtype=np.float32).reshape(1, 4, 1), 1, 2)[0, :, 0],
                               [0, 2])


# --- the sketch --------------------------------------------------------------------------------

def test_alpha_is_flattened_onto_white_and_truncated():
    rgba = np.array([[[100, 200, 10, 128], [7, 8, 9, 255], [7, 8, 9, 0]]], np.uint8)
    # 255 - (255 - c) * 128 / 255: 177.2, 227.4, 132.0
    np.testing.assert_array_equal(s2p.flatten_alpha(rgba), [[[177, 227, 132], [7, 8, 9], [255, 255, 255]]])
    rgb = np.zeros((2, 2, 3), np.uint8)
    assert s2p.flatten_alpha(rgb) is rgb


def test_the_channel_minimum_keeps_coloured_ink():
    assert s2p.channel_minimum(np.array([[[10, 200, 30], [250, 240, 255]]], np.uint8)).tolist() == [[10, 240]]


def test_cli_norm_maps_the_darkest_tenth_of_the_lines_to_90_percent_ink():
    paper = 230
    sketch = np.full((64, 64), paper, np.uint8)
    ink = [100, 110, 120, 130, 140, 150, 160, 170, 180, 190]  # ten line pixels (ink above 16)
    for i, value in enumerate(ink):
        sketch[10, i] = paper - value
    sketch[20, 0] = paper - 10  # faint: not a line, but scaled with them
    out = s2p.cli_norm(sketch)
    # sorted from the darkest: 190, 180, ...; the one at index int(10 * 0.1) = 1 is 180, -> 0.9
    assert out[10, 9] == 12   # 255 - 190 / 180 * 0.9 * 255 = 12.75
    assert out[10, 8] == 25   # 255 - 0.9 * 255 = 25.5
    assert out[10, 0] == 127  # 255 - 100 / 180 * 0.9 * 255 = 127.5
    assert out[20, 0] == 242  # 255 - 10 / 180 * 0.9 * 255 = 242.25
    assert out[0, 0] == 255   # the paper level (the brightest pixel of the shrunk sketch) is white


def test_cli_norm_of_a_sketch_without_lines_is_white():
    sketch = np.full((100, 80), 240, np.uint8)
    sketch[5, 5] = 230  # ink 10: not a line
    assert (s2p.cli_norm(sketch) == 255).all()


def test_tiles_of_64_px_with_the_remainder_in_the_last():
    assert s2p.tiles(600) == [(i * 64, (i + 1) * 64) for i in range(8)] + [(512, 600)]
    assert s2p.tiles(128) == [(0, 64), (64, 128)]
    assert s2p.tiles(127) == [(0, 127)]
    assert s2p.tiles(40) == [(0, 40)]


def test_the_tail_runs_on_tiles_with_20_px_context_and_its_2x_output_is_cut_by_41():
    rng = np.random.default_rng(1)
    sketch = rng.integers(0, 256, (150, 200), dtype=np.uint8)
    tail = s2p_standins.Tail()
    seen = []

    def run(batch):
        seen.extend(item.shape for item in batch)
        with torch.no_grad():
            return tail(torch.from_numpy(batch))[0].numpy()

    out = s2p.run_tail(sketch, run)
    # tiles 64 + 86 rows, 64 + 64 + 72 columns, each with 20 px of context a side
    assert sorted(set(seen)) == [(104, 104, 3), (104, 112, 3), (126, 104, 3), (126, 112, 3)]
    # The stand-in copies each pixel to a 2x2 block: the joined result is exactly the input
    # doubled (any misplaced cut or seam would show), through the original's float32 [0, 1].
    scaled = (sketch.astype(np.float32) / 255.0 * 255.0).clip(0, 255).astype(np.uint8)
    np.testing.assert_array_equal(out, np.repeat(np.repeat(scaled, 2, axis=0), 2, axis=1))


def test_the_tails_channels_are_averaged_and_rounded():
    def run(batch):  # channels 1, 1/2 and 0 of the input, at 2x + 2 px a side
        doubled = np.repeat(np.repeat(batch, 2, axis=1), 2, axis=2)
        doubled = np.pad(doubled, ((0, 0), (1, 1), (1, 1), (0, 0)))
        return doubled * np.array([1.0, 0.5, 0.0], np.float32)

    sketch = np.full((64, 64), 255, np.uint8)
    sketch[0, 0] = 9
    out = s2p.run_tail(sketch, run)
    assert out[0, 0] == 4      # (9 + 4 + 0) / 3 = 4.33
    assert out[5, 5] == 127    # (255 + 127 + 0) / 3 = 127.33


def test_a_tail_of_another_shape_is_refused():
    with pytest.raises(WeightsError, match="not twice the size plus 2"):
        s2p.run_tail(np.zeros((64, 64), np.uint8), lambda batch: batch)


def test_the_page_is_normalised_to_white_paper_and_keeps_its_lines():
    grey = np.full((60, 80), 200, np.uint8)
    grey[:, 40] = 0
    out = s2p.normalise_page(grey, (120, 160))
    assert out.shape == (120, 160)
    assert out[:, :40].min() >= 254 and out[:, 120:].min() >= 254  # paper at 200 -> white
    assert out[:, 80].max() < 80                                   # the line stays dark
    black = np.zeros((20, 20), np.uint8)  # a median of 0: kept, not divided by zero
    assert (s2p.normalise_page(black, (20, 20)) == 0).all()


# --- the reference and the hints ---------------------------------------------------------------

def test_saturation_is_doubled():
    pixels = np.array([[[200, 150, 150], [100, 150, 200], [90, 90, 90]]], np.uint8)
    # S 0.25 -> 0.5: (200, 100, 100); S 0.5 -> 1 (the minimum to 0, hue kept): (0, 100, 200); grey stays
    expected = np.array([[[200, 100, 100], [0, 100, 200], [90, 90, 90]]])
    assert np.abs(s2p.saturate(pixels).astype(int) - expected).max() <= 1
    # the original's RGB codes on BGR data: the same result in either order
    np.testing.assert_array_equal(s2p.saturate(pixels[:, :, ::-1].copy()), s2p.saturate(pixels)[:, :, ::-1])


def test_clicked_points_become_5x5_bgra_squares_cut_at_the_edges():
    grid = s2p.hint_map([(0.55, 0.05, 255, 10, 20)], 10, 10)
    expected = np.zeros((10, 10, 4), np.uint8)
    expected[0:3, 3:8] = (20, 10, 255, 255)  # x = int(5.5) = 5, y = int(0.5) = 0: B, G, R, alpha 255
    np.testing.assert_array_equal(grid, expected)
    grid = s2p.hint_map([(0.55, 0.05, 255, 10, 20), (0.75, 0.15, 1, 2, 3)], 10, 10)
    assert tuple(grid[2, 5]) == (3, 2, 1, 255)    # the later point paints over
    assert tuple(grid[0, 3]) == (20, 10, 255, 255)


def test_strokes_become_the_points_of_their_pixels_on_the_grid():
    hints = np.zeros((12, 10, 4), np.uint8)
    hints[2, 3] = (*RED, 255)
    hints[3, 4] = (*BLUE, 255)
    hints[8, 8] = (*RED, 100)  # below half opacity: no point
    expected = s2p.hint_map([(3.5 / 10, 2.5 / 12, *RED), (4.5 / 10, 3.5 / 12, *BLUE)], 12, 10)
    np.testing.assert_array_equal(s2p.stroke_hint_map(hints, 12, 10), expected)


def test_strokes_are_brought_to_the_grid_keeping_thin_strokes_colour():
    hints = np.zeros((40, 40, 4), np.uint8)
    hints[10:12, 0:40] = (*RED, 255)   # 2 px -> 1 px at half size
    hints[21, 0:40] = (*BLUE, 255)     # 1 px -> half-covered pixels: alpha 0.5, still a point
    grid = s2p.stroke_hint_map(hints, 20, 20)
    assert tuple(grid[5, 10]) == (RED[2], RED[1], RED[0], 255)
    assert tuple(grid[10, 10]) == (BLUE[2], BLUE[1], BLUE[0], 255)  # full colour, not darkened
    assert tuple(grid[3, 10]) == (RED[2], RED[1], RED[0], 255)      # widened by 2 px
    assert grid[0:3, :, 3].max() == 0 and grid[13:, :, 3].max() == 0


def test_the_hint_map_is_encoded_as_bgr_in_minus_one_to_one_times_alpha():
    grid = np.array([[[255, 0, 51, 255], [255, 0, 51, 51], [10, 20, 30, 0]]], np.uint8)
    np.testing.assert_allclose(s2p.encode_hints(grid)[0],
                               [[1, -1, -0.6], [0.2, -0.2, -0.12], [0, 0, 0]], atol=1e-6)


def test_vgg_outputs_are_decoded_by_adding_the_means_and_reversing_the_channels():
    np.testing.assert_allclose(s2p.decode_vgg(np.zeros((1, 1, 3), np.float32))[0, 0], [123.68, 116.779, 103.939],
                               rtol=1e-6)
    np.testing.assert_allclose(s2p.decode_vgg(np.array([[[1, 2, 3]]], np.float32))[0, 0],
                               [126.68, 118.779, 104.939], rtol=1e-6)


def test_grey_weighs_the_channels_in_order():
    np.testing.assert_allclose(s2p.to_grey(np.array([[[100, 50, 10]]], np.float32)), [[[60.6]]], rtol=1e-6)


# --- refine_image ------------------------------------------------------------------------------

def test_sketch_weights_favour_neighbours_of_like_grey():
    weights_ = s2p.sketch_weights(np.array([[0, 0, 4]], np.uint8))
    # order: up, left, self, right, down; edges mirror (the pixel itself)
    np.testing.assert_allclose(weights_[0, 1], np.array([8, 8, 8, 4, 8]) / 36)
    np.testing.assert_allclose(weights_[0, 2], np.array([8, 4, 8, 8, 8]) / 36)
    assert s2p.sketch_weights(np.array([[0, 255]], np.uint8))[0, 0, 3] == 0  # a line: no weight


def test_one_diffusion_step_by_hand():
    image = np.array([[0, 9, 0]], np.float32)[:, :, None]
    weight = np.full((1, 3, 5), 0.2, np.float32)
    out = s2p.diffuse(image, weight, steps=1)[0, :, 0]
    # middle: up and down mirror to itself: (9 + 0 + 9 + 0 + 9) / 5; left: (0 + 0 + 0 + 9 + 0) / 5
    np.testing.assert_allclose(out, [1.8, 5.4, 1.8], rtol=1e-6)


def test_diffusion_does_not_cross_lines():
    sketch = np.full((20, 21), 255, np.uint8)
    sketch[:, 10] = 0
    image = np.zeros((20, 21, 3), np.float32)
    image[:, :10], image[:, 11:] = 100, 200
    image[5, 3] = 0  # a speck on the left smooths out within the left side
    out = s2p.diffuse(image, s2p.sketch_weights(sketch), steps=64)
    np.testing.assert_array_equal(out[:, 11:], 200)
    assert 95 < out[5, 3, 0] < 100 and out[:, :10].max() <= 100


def test_unsharp_mask():
    flat = np.full((9, 9, 3), 50, np.float32)
    np.testing.assert_allclose(s2p.unsharp(flat), flat, atol=1e-3)
    step = np.zeros((9, 9, 3), np.float32)
    step[:, 5:] = 100
    out = s2p.unsharp(step)
    blurred = cv2.GaussianBlur(step, (0, 0), 1)
    np.testing.assert_allclose(out, step + 2 * (step - blurred), rtol=1e-6)
    assert out[:, 5].min() > 100 and out[:, 4].max() < 0  # overshoot on both sides of the edge


def _guided_by_hand(guide, src, radius, eps):
    """The guided filter with explicit windows (mirrored edges, BORDER_REFLECT)."""
    g = np.pad(guide.astype(np.float64), radius, "symmetric")
    p = np.pad(src.astype(np.float64), radius, "symmetric")
    h, w = guide.shape
    side = 2 * radius + 1

    def windows(x):
        return np.lib.stride_tricks.sliding_window_view(x, (side, side))

    mean_i, mean_p = windows(g).mean(axis=(2, 3)), windows(p).mean(axis=(2, 3))
    var_i = windows(g * g).mean(axis=(2, 3)) - mean_i ** 2
    cov = windows(g * p).mean(axis=(2, 3)) - mean_i * mean_p
    a = cov / (var_i + eps)
    b = mean_p - a * mean_i
    mean_a = windows(np.pad(a, radius, "symmetric")).mean(axis=(2, 3))
    mean_b = windows(np.pad(b, radius, "symmetric")).mean(axis=(2, 3))
    return mean_a * guide + mean_b


def test_guided_filter_with_a_flat_guide_is_a_double_box_blur():
    src = np.zeros((3, 3), np.float32)
    src[1, 1] = 9  # every mirrored 3x3 window holds it once
    np.testing.assert_allclose(s2p.guided_filter(np.full((3, 3), 100, np.uint8), src), 1, atol=1e-4)


def test_guided_filter_keeps_edges_of_the_guide():
    guide = np.zeros((8, 8), np.uint8)
    guide[:, 4:] = 255
    src = np.zeros((8, 8, 3), np.float32)
    src[:, 4:] = 200
    out = s2p.guided_filter(guide, src)
    np.testing.assert_allclose(out, src, atol=0.01)  # unguided, a 3x3 box would blur the step by 67


def test_guided_filter_matches_explicit_windows():
    rng = np.random.default_rng(3)
    guide = rng.integers(0, 256, (12, 15), dtype=np.uint8)
    src = rng.uniform(0, 255, (12, 15, 2)).astype(np.float32)
    out = s2p.guided_filter(guide, src, 1, 0.01)
    for c in range(2):
        np.testing.assert_allclose(out[:, :, c], _guided_by_hand(guide, src[:, :, c], 1, 0.01), atol=0.05)


def test_tone_points_by_hand():
    channel = np.array([0, 10, 20, 30, 40, 100], np.float32)
    image = np.stack([channel, channel * 2, channel + 5], axis=-1).reshape(2, 3, 3)
    low, mean, high = s2p.tone_points(image)
    # mean 33.3; bright: mean of >= 33.3 is 70, of >= 70 is 100; dark: 15, 5, 0, 0
    np.testing.assert_allclose(low.ravel(), [0, 0, 5], atol=1e-5)
    np.testing.assert_allclose(mean.ravel(), [200 / 6, 400 / 6, 200 / 6 + 5], rtol=1e-6)
    np.testing.assert_allclose(high.ravel(), [100, 200, 105], rtol=1e-6)


def test_the_tone_curve_passes_through_the_three_points():
    def levels(*values):
        return tuple(np.full((1, 1, 3), v, np.float32) for v in values)

    x = np.array([[[0, 25, 100]]], np.float32).transpose(0, 2, 1).repeat(3, axis=2)
    # (0, 50, 100) -> (0, 75, 100): y = -0.01 x^2 + 2 x, so 25 -> 43.75
    np.testing.assert_allclose(s2p.tone_curve(x, levels(0, 50, 100), levels(0, 75, 100))[0, :, 0], [0, 43.75, 100],
                               rtol=1e-5)
    # a flat channel (all three levels equal) is shifted to the target's mean level
    np.testing.assert_allclose(s2p.tone_curve(x, levels(7, 7, 7), levels(0, 20, 40))[0, :, 0], [13, 38, 113])
    image = np.zeros((2, 2, 3), np.float32)
    image[0] = 100  # levels (0, 50, 100) in every channel
    np.testing.assert_allclose(s2p.match_tones(image, levels(10, 60, 110)), image + 10, rtol=1e-5)


def test_yuv_blend_caps_the_lightness_at_the_page():
    grey = np.full((1, 1, 3), 128, np.float32)
    assert s2p.yuv_blend(grey, np.array([[255]], np.uint8)).tolist() == [[[128, 128, 128]]]
    assert s2p.yuv_blend(grey, np.array([[50]], np.uint8)).tolist() == [[[50, 50, 50]]]
    assert s2p.yuv_blend(grey + 0.9, np.array([[255]], np.uint8)).tolist() == [[[128, 128, 128]]]  # truncated
    # BGR (100, 120, 160): Y 129.7 -> 80, U and V kept: every channel about 50 darker
    dark = s2p.yuv_blend(np.array([[[100, 120, 160]]], np.float32), np.array([[80]], np.uint8))
    assert np.abs(dark[0, 0].astype(int) - (50, 70, 110)).max() <= 1


def test_refine_gives_the_sketch_size_and_keeps_a_flat_colour():
    image = np.zeros((40, 30, 3), np.uint8)
    image[:] = (30, 120, 200)
    out = s2p.refine(image, np.full((80, 60), 255, np.uint8), np.full((80, 60), 255, np.uint8))
    assert out.shape == (80, 60, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - (30, 120, 200)).max() <= 2


# --- the networks: stand-ins through the whole path ----------------------------------------------

class Recorder(torch.nn.Module):
    """Wraps a stand-in and keeps the inputs and outputs it saw."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, []

    def forward(self, *inputs):
        outputs = self.inner(*inputs)
        self.calls.append(([x.clone() for x in inputs], [y.clone() for y in outputs]))
        return outputs


def networks(wrap=False) -> s2p.Networks:
    nets = {name: (Recorder(net) if wrap else net).eval() for name, net in s2p_standins.standins().items()}
    return s2p.Networks(device=torch.device("cpu"), **nets)


def page_with_strokes() -> Page:
    page = Page(200, 300).rectangle(10, 10, 190, 140).rectangle(10, 160, 190, 290)
    return page.stroke(list(RED_STROKE), RED).stroke(list(BLUE_STROKE), BLUE)


REFERENCE = np.full((50, 80, 3), (200, 150, 50), np.uint8)


def test_the_networks_get_what_the_original_feeds_them():
    page = page_with_strokes()
    nets = networks(wrap=True)
    out = s2p.colourise(page.rgb, page.hints, REFERENCE, nets)
    # page 200 x 300 -> sketch 512 x 768 -> tail 1024 x 1536 (k_resize keeps it: a multiple of 64)
    assert out.shape == (1536, 1024, 3) and out.dtype == np.uint8
    # 768 x 512: 12 x 8 tiles of 64 px, each with 20 px of context a side, 16 at a time
    assert {tuple(x[0].shape[1:]) for x, _ in nets.tail.calls} == {(104, 104, 3)}
    assert sum(x[0].shape[0] for x, _ in nets.tail.calls) == 96
    (face,), features = nets.reader.calls[0]
    assert face.shape == (1, 224, 384, 3) and 0 <= face.min() and face.max() <= 1  # 80 * 224 / 50 -> 384
    expected_face = s2p.k_resize(s2p.saturate(REFERENCE[:, :, ::-1].copy()), 14).astype(np.float32) / 255
    np.testing.assert_allclose(face[0].numpy(), expected_face, rtol=1e-6)
    (sketch, hints, *vectors), head_out = nets.head.calls[0]
    assert sketch.shape == (1, 1536, 1024, 1) and hints.shape == (1, 1536, 1024, 3)
    assert [tuple(v.shape) for v in vectors] == [(1, 4), (1, 8)]
    np.testing.assert_allclose(vectors[1].numpy(), features[1].numpy().mean(axis=(1, 2)), rtol=1e-5)
    # the red stroke from (50, 60) to (120, 80) at 5.12x: its middle, in B, G, R order
    middle = hints[0, int(70 * 5.12), int(85 * 5.12)].numpy()
    np.testing.assert_allclose(middle, np.array(RED[::-1]) / 127.5 - 1, atol=1e-6)
    assert hints[0, 50, 50].abs().max() == 0
    (first, hints_again, *vectors_again), _ = nets.neck.calls[0]
    assert torch.equal(hints_again, hints)
    assert all(torch.equal(a, b) for a, b in zip(vectors, vectors_again, strict=True))
    head_colours = s2p.decode_vgg(head_out[-1][0].numpy())
    assert head_colours.shape[:2] == (768, 512)  # the stand-in head answers at half size
    grey = s2p.to_grey(head_colours / 255.0)
    np.testing.assert_allclose(first[0].numpy(), np.clip(1 - s2p.resize_bilinear_tf1(grey, 1536, 1024), 0, 1),
                               atol=1e-6)


@pytest.fixture(scope="module")
def result():
    page = page_with_strokes()
    return page, s2p.colourise(page.rgb, page.hints, REFERENCE, networks())


def along(image, page, start, end, samples=20):
    """The mean colour along a segment of page coordinates (3x3 page px around each sample)."""
    sy, sx = image.shape[0] / page.grey.shape[0], image.shape[1] / page.grey.shape[1]
    found = []
    for t in np.linspace(0.1, 0.9, samples):
        x, y = start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1])
        found.append(image[int((y - 1) * sy):int((y + 2) * sy), int((x - 1) * sx):int((x + 2) * sx)].reshape(-1, 3))
    return np.concatenate(found).astype(float).mean(axis=0)


RED_STROKE, BLUE_STROKE = ((50, 60), (120, 80)), ((50, 220), (120, 230))


def region_mean(image, page, x0, y0, x1, y1):
    sy, sx = image.shape[0] / page.grey.shape[0], image.shape[1] / page.grey.shape[1]
    return image[int(y0 * sy):int(y1 * sy), int(x0 * sx):int(x1 * sx)].reshape(-1, 3).astype(float).mean(axis=0)


def test_the_strokes_colours_reach_their_places_and_the_lines_stay_dark(result):
    page, out = result
    red, blue = along(out, page, *RED_STROKE), along(out, page, *BLUE_STROKE)
    assert red[0] > red[1] + 60 and red[0] > red[2] + 60
    assert blue[2] > blue[0] + 60 and blue[2] > blue[1] + 60
    paper = region_mean(out, page, 150, 100, 180, 130)
    assert paper.min() > 200 and np.ptp(paper) < 30  # no stroke near: light, near grey
    line = region_mean(out, page, 9, 40, 11, 100)
    assert line.max() < 60


def test_the_provider_is_deterministic_and_follows_the_reference(result):
    page, out = result
    again = s2p.colourise(page.rgb, page.hints, REFERENCE, networks())
    np.testing.assert_array_equal(out, again)
    other = s2p.colourise(page.rgb, page.hints, REFERENCE[:, :, ::-1].copy(), networks())
    assert not np.array_equal(other, out)


# --- availability, the provider, the command line, the server ---------------------------------

def test_without_the_converter_or_the_networks_the_provider_says_why(tmp_path, monkeypatch):
    provider = get_provider("style2paints")
    monkeypatch.setitem(sys.modules, "inknhue.networks.keras", None)  # as if it were not there
    assert "inknhue.networks.keras" in provider.unavailable(tmp_path)
    s2p_standins.install(monkeypatch)
    reason = provider.unavailable(tmp_path)
    assert "tail, reader, head, neck" in reason and "weights download --style2paints" in reason
    s2p_standins.install(monkeypatch, tmp_path)
    assert provider.unavailable(tmp_path) is None


def test_the_provider_runs_through_the_engine(tmp_path, monkeypatch):
    from inknhue.engine.pipeline import Engine

    s2p_standins.install(monkeypatch, tmp_path)
    page = page_with_strokes()
    provider = get_provider("style2paints")
    engine = Engine(tmp_path, "cpu")
    rough = provider(RoughRequest(page=page.rgb, hints=page.hints), engine)
    assert rough.shape == (1536, 1024, 3)
    assert provider.check(RoughRequest(page=page.rgb, hints=page.hints)) == []
    empty = RoughRequest(page=page.rgb, hints=np.zeros_like(page.hints))
    assert "No strokes and no reference" in provider.check(empty)[0]
    assert provider.check(RoughRequest(page=page.rgb, hints=np.zeros_like(page.hints), reference=REFERENCE)) == []
    with pytest.raises(InputError, match="hint strokes"):
        provider(RoughRequest(page=page.rgb), engine)


@pytest.fixture
def files(tmp_path):
    page = page_with_strokes()
    Image.fromarray(page.rgb).save(tmp_path / "page.png")
    Image.fromarray(page.hints).save(tmp_path / "hints.png")
    Image.fromarray(REFERENCE).save(tmp_path / "ref.png")
    return tmp_path


def test_the_command_line_refuses_before_any_work_when_the_networks_are_missing(files, weights_copy, capsys,
                                                                                  monkeypatch):
    s2p_standins.install(monkeypatch)
    code = cli.main(["colorize", str(files / "page.png"), "--hints", str(files / "hints.png"), "--prior",
                     "style2paints", "-o", str(files / "out.png"), "--weights", str(weights_copy),
                     "--device", "cpu", "--max-size", "64"])
    assert code == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "'style2paints' provider is not available" in error and "weights download --style2paints" in error
    assert not (files / "out.png").exists()


def test_colorize_and_rough_with_prior_style2paints(files, weights_copy, monkeypatch):
    s2p_standins.install(monkeypatch, weights_copy)
    common = ["--hints", str(files / "hints.png"), "--reference", str(files / "ref.png"), "--prior", "style2paints",
              "--weights", str(weights_copy), "--device", "cpu", "--max-size", "64"]
    assert cli.main(["rough", str(files / "page.png"), "-o", str(files / "rough.png"), *common]) == 0
    rough = np.asarray(Image.open(files / "rough.png"))
    assert rough.shape == (300, 200, 3)  # at the page's size
    red = along(rough, page_with_strokes(), *RED_STROKE)
    assert red[0] > red[1] + 60 and red[0] > red[2] + 60
    assert cli.main(["colorize", str(files / "page.png"), "-o", str(files / "out.png"), *common]) == 0
    assert np.asarray(Image.open(files / "out.png")).shape == (300, 200, 3)


@pytest.fixture
def local_server(weights_copy, tmp_path):
    with in_process_server(weights_copy, tmp_path / "server.json") as server:
        yield server


def test_the_server_offers_style2paints_only_with_its_networks(local_server, weights_copy, monkeypatch):
    from servers import array, raw

    from inknhue.engine.pipeline import Engine
    from inknhue_krita.client import Client, ServerError

    s2p_standins.install(monkeypatch)
    page = page_with_strokes()
    with Client(local_server.address, local_server.token, timeout=10, curve=local_server.curve) as client:
        hello = client.hello()
        assert [p["name"] for p in hello["providers"]] == ["flats", "shader", "image"]
        (unavailable,) = hello["unavailable_providers"]
        assert unavailable["name"] == "style2paints" and "weights download --style2paints" in unavailable["reason"]
        with pytest.raises(ServerError) as refused:
            client.colorize(raw(page.rgb), raw(page.hints), provider="style2paints", max_size=64)
        assert refused.value.code == "weights" and "not available" in refused.value.message

        s2p_standins.install(monkeypatch, weights_copy)
        hello = client.hello()
        assert [p["name"] for p in hello["providers"]] == ["flats", "shader", "image", "style2paints"]
        assert hello["unavailable_providers"] == []
        job = client.colorize(raw(page.rgb), raw(page.hints), raw(REFERENCE), provider="style2paints",
                              max_size=64, ratio=1.0, output={"size": "page", "channels": "RGB"})
        header, image = client.wait(job, timeout=120)
    assert header["type"] == "result" and "rough" in header["ran"]
    engine = Engine(weights_copy, "cpu")
    here = engine.colorize(page.rgb, get_provider("style2paints"),
                           RoughRequest(page=page.rgb, hints=page.hints, reference=REFERENCE), max_size=64, ratio=1.0)
    np.testing.assert_array_equal(array(image), here.final(1.0, "page"))  # the server ran the same provider


# --- weights download --style2paints --------------------------------------------------------------

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """A stand-in for the Space's files: nets/*.net (small HDF5-looking files), and more."""
    root = tmp_path_factory.mktemp("space")
    (root / "nets").mkdir()
    rng = np.random.default_rng(5)
    for name in ("tail", "reader", "head", "neck", "inception", "render_head"):
        (root / "nets" / f"{name}.net").write_bytes(HDF5_MAGIC + rng.bytes(200_000 if name == "head" else 3000))
    (root / "app.py").write_text("print('a Gradio app')\n")
    return root


@pytest.fixture
def space(mirror):
    with FakeHub(mirror, style2paints_weights.MIRROR_REPO, repo_type="space", lfs=(".net",)) as server:
        yield server


def download(*extra, weights_dir):
    return cli.main(["weights", "download", "--style2paints", "--weights", str(weights_dir), *extra])


class Terminal:
    def __init__(self, tty: bool):
        self.tty = tty

    def isatty(self):
        return self.tty


def test_download_shows_source_and_terms_then_fetches_verifies_and_converts(space, mirror, tmp_path, monkeypatch,
                                                                           capsys):
    monkeypatch.setenv("HF_ENDPOINT", space.url)
    keras = s2p_standins.install(monkeypatch)
    target = tmp_path / "w"
    assert download("--accept-terms", weights_dir=target) == 0
    said = capsys.readouterr().err
    assert "HighCWu/Style2Paints-4.5-Gradio" in said and "https://github.com/lllyasviel/style2paints" in said
    assert "We preserve all rights on all pretrained deep learning models and binary releases." in said
    assert "terms accepted with --accept-terms" in said
    for name in weights.STYLE2PAINTS_NETWORKS:
        original = target / "style2paints" / "original" / "nets" / f"{name}.net"
        assert original.read_bytes() == (mirror / "nets" / f"{name}.net").read_bytes()
        assert f"nets/{name}.net: verified (sha256" in said
        assert json.loads(weights.style2paints_file(target, name).read_text()) == {"network": name}
        assert (target / "style2paints" / f"{name}.json").is_file()  # what the converter writes beside it
    assert [dst.name for _, dst in keras.calls] == [f"{n}.safetensors" for n in weights.STYLE2PAINTS_NETWORKS]
    assert keras.bilinear == ["legacy"] * 4  # V4.5 ran on TF 1.14: its bilinear rule, whatever wrote the files
    assert not (target / "style2paints" / ".converting").exists()
    fetched = {path for method, path, _ in space.requests if "/resolve/" in path}
    assert fetched == {f"/spaces/{style2paints_weights.MIRROR_REPO}/resolve/main/nets/{n}.net"
                       for n in weights.STYLE2PAINTS_NETWORKS}  # only the four used
    assert get_provider("style2paints").unavailable(target) is None

    space.requests.clear()
    assert download("--accept-terms", weights_dir=target) == 0
    assert not [r for r in space.requests if "/resolve/" in r[1] or "paths-info" in r[1]]
    assert capsys.readouterr().err.count(": present") == 4


def test_without_a_terminal_or_accept_terms_nothing_is_fetched(space, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_ENDPOINT", space.url)
    s2p_standins.install(monkeypatch)
    monkeypatch.setattr(sys, "stdin", Terminal(False))
    assert download(weights_dir=tmp_path / "w") == 1
    said = capsys.readouterr().err
    assert "We preserve all rights" in said  # the terms are shown all the same
    assert "add --accept-terms" in said.strip().splitlines()[-1]
    assert not [r for r in space.requests if "/resolve/" in r[1] or "paths-info" in r[1]]
    assert not (tmp_path / "w" / "style2paints").exists()


@pytest.mark.parametrize("answer, code", [("y", 0), ("yes", 0), ("n", 1), ("", 1)])
def test_a_terminal_is_asked(space, tmp_path, monkeypatch, capsys, answer, code):
    monkeypatch.setenv("HF_ENDPOINT", space.url)
    s2p_standins.install(monkeypatch)
    monkeypatch.setattr(sys, "stdin", Terminal(True))
    asked = []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or answer)
    assert download(weights_dir=tmp_path / "w") == code
    assert asked == ["Do you accept these terms? [y/N] "]
    if code:
        assert "terms not accepted: nothing was downloaded" in capsys.readouterr().err
        assert not [r for r in space.requests if "/resolve/" in r[1] or "paths-info" in r[1]]
    else:
        assert get_provider("style2paints").unavailable(tmp_path / "w") is None


@pytest.mark.parametrize("layout", ["flat", "nets"])
def test_from_a_folder_converts_the_users_files_without_the_network(mirror, tmp_path, monkeypatch, capsys, layout):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing answers there
    keras = s2p_standins.install(monkeypatch)
    given = tmp_path / "mine"
    (given / "nets" if layout == "nets" else given).mkdir(parents=True)
    for name in weights.STYLE2PAINTS_NETWORKS:
        data = (mirror / "nets" / f"{name}.net").read_bytes()
        (given / ("nets" if layout == "nets" else "") / f"{name}.net").write_bytes(data)
    assert download("--accept-terms", "--from", str(given), weights_dir=tmp_path / "w") == 0
    assert f"your folder {given}" in capsys.readouterr().err
    assert [src.parent.name for src, _ in keras.calls] == [given.name if layout == "flat" else "nets"] * 4
    assert not (tmp_path / "w" / "style2paints" / "original").exists()
    assert get_provider("style2paints").unavailable(tmp_path / "w") is None


def test_from_a_folder_without_the_files_says_which(tmp_path, monkeypatch, capsys):
    s2p_standins.install(monkeypatch)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "tail.net").write_bytes(HDF5_MAGIC)
    assert download("--accept-terms", "--from", str(tmp_path / "mine"), weights_dir=tmp_path / "w") == 1
    assert "has no reader.net (nor nets/reader.net)" in capsys.readouterr().err


def test_without_the_converter_nothing_is_downloaded(space, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_ENDPOINT", space.url)
    monkeypatch.setitem(sys.modules, "inknhue.networks.keras", None)
    assert download("--accept-terms", weights_dir=tmp_path / "w") == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "cannot convert Keras networks yet" in error and "nothing was downloaded" in error
    assert not [r for r in space.requests if "/resolve/" in r[1] or "paths-info" in r[1]]


def test_a_file_that_does_not_convert_is_one_line_and_leaves_nothing_half_done(tmp_path, monkeypatch, capsys):
    s2p_standins.install(monkeypatch)
    given = tmp_path / "mine"
    given.mkdir()
    for name in weights.STYLE2PAINTS_NETWORKS:
        (given / f"{name}.net").write_bytes(HDF5_MAGIC if name != "head" else b"not a Keras file")
    assert download("--accept-terms", "--from", str(given), weights_dir=tmp_path / "w") == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "head.net could not be converted (ValueError" in error and "--style2paints" in error
    assert weights.missing_style2paints(tmp_path / "w") == ["head", "neck"]


def test_an_interrupted_download_from_the_space_resumes(space, mirror, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_ENDPOINT", space.url)
    s2p_standins.install(monkeypatch)
    target = tmp_path / "w"
    space.cut_after["nets/head.net"] = 50_000
    assert download("--accept-terms", weights_dir=target) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "run again to resume" in error and "weights download --style2paints" in error
    assert weights.missing_style2paints(target) == list(weights.STYLE2PAINTS_NETWORKS)  # converted: none yet
    assert (target / "style2paints" / "original" / "nets" / "reader.net").is_file()
    space.requests.clear()
    assert download("--accept-terms", weights_dir=target) == 0
    assert ("GET", f"/spaces/{style2paints_weights.MIRROR_REPO}/resolve/main/nets/head.net",
            "bytes=50000-") in space.requests
    assert weights.missing_style2paints(target) == []


def test_accept_terms_and_from_belong_to_style2paints(tmp_path, capsys):
    assert cli.main(["weights", "download", "--accept-terms", "--weights", str(tmp_path)]) == 1
    assert "go with --style2paints" in capsys.readouterr().err


def test_the_terms_are_the_readme_licence_section_word_for_word():
    assert style2paints_weights.TERMS.splitlines() == [
        "All codes are released in Apache-2.0 License.",
        "We preserve all rights on all pretrained deep learning models and binary releases.",
        "Your colorized images are yours, and we do not add any extra lisences to colorized results. "
        "Use your colorized images in any commercial or non-commercial cases."]
    assert style2paints_weights.MIRROR_FILES == ("nets/tail.net", "nets/reader.net", "nets/head.net", "nets/neck.net")


def test_agreement_functions_directly():
    said = []
    style2paints_weights.agree(Path("w"), None, False, said.append, ask=lambda _: "Y", interactive=lambda: True)
    with pytest.raises(InputError, match="terms not accepted"):
        style2paints_weights.agree(Path("w"), None, False, said.append, ask=lambda _: "no",
                                   interactive=lambda: True)

    def closed(_):
        raise EOFError

    with pytest.raises(InputError, match="terms not accepted"):
        style2paints_weights.agree(Path("w"), None, False, said.append, ask=closed, interactive=lambda: True)
    assert all("lllyasviel" in text for text in said)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_the_provider_gives_what_it_gives_on_the_cpu(result):
    page, out = result
    nets = networks()
    cuda = s2p.Networks(device=torch.device("cuda"), **{name: getattr(nets, name).to("cuda")
                                                        for name in s2p.NETWORKS})
    on_gpu = s2p.colourise(page.rgb, page.hints, REFERENCE, cuda)
    assert np.abs(on_gpu.astype(int) - out).mean() < 1.0


# --- on networks really converted ---------------------------------------------------------

def write_keras_224(path: Path, layers: list[dict], inputs: list[str], outputs: list[str], weights: dict) -> None:
    """A functional model as Keras 2.2.4 (TF 1.x) wrote it, by h5py: `layers` in its config
    form, `weights` {layer: [arrays in Keras's order and layout]}."""
    import h5py

    config = {"class_name": "Model", "config": {"name": path.stem, "layers": layers,
                                                "input_layers": [[n, 0, 0] for n in inputs],
                                                "output_layers": [[n, 0, 0] for n in outputs]}}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.2.4"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode()
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = [layer["name"].encode() for layer in layers]
        for layer in layers:
            name, arrays = layer["name"], weights.get(layer["name"], [])
            sub = group.create_group(name)
            kinds = ["kernel:0", "bias:0"][:len(arrays)]
            sub.attrs["weight_names"] = [f"{name}/{kind}".encode() for kind in kinds]
            for kind, array in zip(kinds, arrays, strict=True):
                sub[f"{name}/{kind}"] = array.astype(np.float32)


def keras_layer(name, kind, inbound, **config):
    return {"name": name, "class_name": kind, "config": {"name": name, "trainable": True, **config},
            "inbound_nodes": [[[source, 0, 0, {}] for source in inbound]] if inbound else []}


def keras_input(name, shape):
    return keras_layer(name, "InputLayer", [], batch_input_shape=[None, *shape], dtype="float32", sparse=False)


def conv(name, inbound, filters, kernel=3, strides=1, padding="same", activation="linear", transpose=False):
    return keras_layer(name, "Conv2DTranspose" if transpose else "Conv2D", [inbound], filters=filters,
                       kernel_size=[kernel, kernel], strides=[strides, strides], padding=padding,
                       data_format="channels_last", dilation_rate=[1, 1], activation=activation, use_bias=True)


def tiny_style2paints_files(folder: Path) -> None:
    """tail, reader, head and neck with the originals' inputs and outputs (as the V4.5
    server calls them), a few random convolutions each."""
    rng = np.random.default_rng(7)

    def w(*shape, scale=0.2):
        return rng.normal(0, scale, shape)

    folder.mkdir(parents=True)
    write_keras_224(folder / "tail.net", [
        keras_input("tile", [None, None, 3]),
        conv("up", "tile", 3, kernel=4, strides=2, padding="valid", activation="sigmoid", transpose=True),
    ], ["tile"], ["up"], {"up": [w(4, 4, 3, 3), np.zeros(3)]})
    write_keras_224(folder / "reader.net", [
        keras_input("image", [None, None, 3]),
        conv("first", "image", 4, activation="relu"),
        keras_layer("pool", "AveragePooling2D", ["first"], pool_size=[2, 2], strides=[2, 2], padding="valid",
                    data_format="channels_last"),
        conv("second", "pool", 8, activation="relu"),
    ], ["image"], ["first", "second"], {"first": [w(3, 3, 3, 4), np.zeros(4)], "second": [w(3, 3, 4, 8), np.zeros(8)]})
    for name in ("head", "neck"):
        write_keras_224(folder / f"{name}.net", [
            keras_input("sketch", [None, None, 1]), keras_input("hints", [None, None, 3]),
            keras_input("features", [4]), keras_input("more", [8]),
            keras_layer("both", "Concatenate", ["sketch", "hints"], axis=-1),
            conv("mix", "both", 3),
            keras_layer("vectors", "Concatenate", ["features", "more"], axis=-1),
            keras_layer("tint", "Dense", ["vectors"], units=3, activation="linear", use_bias=True),
            keras_layer("colour", "Add", ["mix", "tint"]),
        ], ["sketch", "hints", "features", "more"], ["mix", "colour"],
            {"mix": [w(3, 3, 4, 3, scale=40.0), np.zeros(3)], "tint": [w(12, 3, scale=10.0), np.zeros(3)]})


def test_the_provider_runs_end_to_end_on_networks_converted_from_keras_files(tmp_path, capsys):
    """Keras files of the originals' shapes through the real converter (`weights download
    --from`) and loader: the provider gets a page-shaped, deterministic rough image."""
    tiny_style2paints_files(tmp_path / "mine")
    assert download("--accept-terms", "--from", str(tmp_path / "mine"), weights_dir=tmp_path / "w") == 0
    provider = get_provider("style2paints")
    assert provider.unavailable(tmp_path / "w") is None
    from inknhue.engine.pipeline import Engine

    page = page_with_strokes()
    engine = Engine(tmp_path / "w", "cpu")
    request = RoughRequest(page=page.rgb, hints=page.hints, reference=REFERENCE)
    first, again = provider(request, engine), provider(request, engine)
    assert first.shape == (1536, 1024, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert len(np.unique(first.reshape(-1, 3), axis=0)) > 100  # the networks' colours, not a blank
