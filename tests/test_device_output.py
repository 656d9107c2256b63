"""The GPU fast path of the blend and the page-size result (color_gpu.py, detail_gpu.py) computes
what the numpy reference computes, checked here with torch on the CPU.

Tolerances: one 8-bit level (float32 pow/cbrt and grid_sample's weights round
differently from numpy's and cv2.remap's), on at most a few pixels in a thousand.
"""

import corpus
import cv2
import numpy as np
import pytest
import torch
from drawing import print_page, region_colours
from parity import level_differences

from inknhue.page import color, color_gpu, detail, detail_gpu
from inknhue.page.imaging import working_size
from inknhue.page.output import Colorization

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def colours():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (61, 47, 3), dtype=np.uint8)
    image[0, :4] = [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 0, 255]]  # the gamut's corners
    return image, rng.integers(0, 256, (61, 47, 3), dtype=np.uint8)


def test_cielab_matches_the_numpy_conversion(colours):
    image, _ = colours
    expected = color.rgb_to_lab(image)
    got = color_gpu.rgb_to_lab(torch.from_numpy(image)).numpy()
    np.testing.assert_allclose(got, expected, atol=2e-3, rtol=0)
    back = color_gpu.to_uint8(color_gpu.lab_to_srgb(torch.from_numpy(expected))).numpy()
    assert level_differences(back, color.lab_to_rgb(expected))[0] <= 1


@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.8, 1.0])
def test_the_blend_on_a_device_is_the_blend(colours, ratio):
    generated, rough = colours
    worst, share = level_differences(color_gpu.DeviceLabBlend(generated, rough, CPU)(ratio).numpy(),
                           color.LabBlend(generated, rough)(ratio))
    assert worst <= 1 and share < 0.01


@pytest.mark.parametrize("sigma", [0.8, 3.0, 10.0, 40.0])
@pytest.mark.parametrize("shape", [(64, 90), (9, 7)])  # 9 x 7: kernels wider than the image reflect again
def test_gaussian_blur_is_opencvs(sigma, shape):
    image = np.random.default_rng(1).random((*shape, 3), dtype=np.float32)
    expected = cv2.GaussianBlur(image, (0, 0), sigma)
    got = detail_gpu.gaussian_blur(torch.from_numpy(image), sigma).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("sigma", [3.0, 10.0, 40.0])
@pytest.mark.parametrize("shape", [(137, 90), (9, 7)])  # 137 x 90: no whole multiple of the pyramid's factor
def test_wide_blurs_at_a_smaller_size_are_details(sigma, shape):
    image = np.random.default_rng(2).random((*shape, 3), dtype=np.float32)
    expected = detail.wide_blur(image, sigma)
    got = detail_gpu.wide_blur(torch.from_numpy(image), sigma).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_the_tones_gain_is_details():
    rng = np.random.default_rng(3)
    colour = rng.random((40, 30, 3), dtype=np.float32)
    tone = rng.random((40, 30), dtype=np.float32)
    tone[0, :3] = [0.0, 1.0, 0.5]  # all ink, all paper
    colour[0, :3] = [[0, 0, 0], [1, 1, 1], [0.5, 0.5, 0.5]]
    expected = detail.tone_gain(colour, tone)
    got = detail_gpu.tone_gain(torch.from_numpy(colour), torch.from_numpy(tone)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def page():
    """A drawn page at 1240 x 1754 (A4 at 150 dpi) and what a model following it gives at 384."""
    grey = cv2.resize(print_page(), (1240, 1754), interpolation=cv2.INTER_AREA)
    paper = grey.astype(np.float32) / 255
    truth = np.rint(region_colours(grey) * paper[..., None] * 255).astype(np.uint8)
    working = working_size(1240, 1754, 384)
    generated = cv2.resize(truth, working, interpolation=cv2.INTER_AREA)
    return grey, generated, working


def test_the_colour_over_the_page_is_details(page):
    grey, generated, working = page
    made = detail.PageDetail.make(grey, (1240, 1754), working)
    model = generated.astype(np.float32) / 255
    expected = detail.colour_over_page(model, made.page_w)
    got = detail_gpu.colour_over_page(torch.from_numpy(model), torch.from_numpy(made.page_w)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("layer", ["full", "colour"])
@pytest.mark.parametrize("size", ["page", (620, 877), "working"])
def test_a_result_rendered_on_a_device_is_the_numpy_result(page, layer, size):
    grey, generated, _ = page
    rough = np.roll(generated, 9, axis=1)

    def result(device):
        return Colorization(page_size=(1240, 1754), shaded=generated, rough=rough, generated=generated,
                            page_grey=grey, device=device)

    reference, on_device = result(None), result(CPU)
    for ratio in (0.8, 0.25):
        worst, share = level_differences(on_device.final(ratio, size, layer), reference.final(ratio, size, layer))
        assert worst <= 1 and share < 0.005, (worst, share)
        floats = on_device.render(ratio, size, layer)
        assert floats.dtype == np.float32 and 0 <= floats.min() and floats.max() <= 1
        np.testing.assert_allclose(floats, reference.render(ratio, size, layer), atol=1.01 / 255, rtol=0)


def test_a_toned_page_whose_tone_the_model_painted_over_renders_the_same_on_a_device():
    page = corpus.test_set()[1]
    height, width = page.grey.shape
    working = working_size(width, height, 512)
    generated = corpus.colorized(page, working)

    def result(device):
        return Colorization(page_size=(width, height), shaded=generated, rough=generated, generated=generated,
                            page_grey=page.grey, device=device)

    reference, on_device = result(None), result(CPU)
    for layer in ("full", "colour"):
        worst, share = level_differences(on_device.final(1.0, "page", layer), reference.final(1.0, "page", layer))
        assert worst <= 1 and share < 0.005, (layer, worst, share)
