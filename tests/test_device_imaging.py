"""The GPU twin of the published app's working-size resize (imaging_gpu.py) gives
Pillow's LANCZOS result, checked with torch on the CPU: at most one level apart, where a
float32 sum falls within rounding of a half that Pillow's fixed point rounds the other way."""

import numpy as np
import pytest
import torch
from parity import level_differences
from PIL import Image

from inknhue.page import imaging_gpu
from inknhue.page.imaging import to_working_size

CPU = torch.device("cpu")


def pillow(rgb, width, height):
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.LANCZOS))


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (301, 233, 3), dtype=np.uint8)
    rgb[100:140, 50:90] = 0  # hard edges, where Lanczos rings and clips
    rgb[100:140, 90:130] = 255
    return rgb


@pytest.mark.parametrize("size", [(77, 100), (233, 150), (120, 301), (500, 640), (8, 8), (233, 301)])
def test_the_resize_is_pillows_lanczos(image, size):
    got = imaging_gpu.resize(torch.from_numpy(image), *size).numpy()
    assert got.shape == (size[1], size[0], 3)
    worst, share = level_differences(got, pillow(image, *size))
    assert worst <= 1 and share < 0.002, (worst, share)


@pytest.mark.parametrize("max_size", [64, 128, 96, 400])
def test_the_working_size_is_the_apps(image, max_size):
    got = imaging_gpu.to_working_size(image, max_size, CPU)
    expected = to_working_size(image, max_size)
    assert got.shape == expected.shape
    worst, share = level_differences(got, expected)
    assert worst <= 1 and share < 0.002, (worst, share)


def test_a_page_already_at_the_working_size_is_left_as_it_is(image):
    page = image[:296, :232]
    assert imaging_gpu.to_working_size(page, 400, CPU) is page
