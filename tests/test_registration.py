"""A colouring out of register with its page (another tool's padding, cropping or rounding)
is moved onto the page's lines before it is brought to the page's size; one in register,
one without lines and one of another page are used as they are."""

import corpus
import cv2
import numpy as np
import pytest

from inknhue.page import registration
from inknhue.page.color import rgb_to_lab
from inknhue.page.detail import PageDetail, line_art
from inknhue.page.imaging import working_size
from inknhue.page.upscale import upscale


@pytest.fixture(scope="module")
def setting():
    """A toned web scan, a colorization of it at 768 (softened as the VAE's), the page's ink at
    that size, and the paper beside the ink at the page's size."""
    page = corpus.test_set()[1]
    height, width = page.grey.shape
    working = working_size(width, height, 768)
    model = corpus.colorized(page, working)
    made = PageDetail.make(page.grey, (width, height), working)
    distance = cv2.distanceTransform((~line_art(page.grey)).view(np.uint8), cv2.DIST_L2, 5)
    return page, model, made, (distance >= 1) & (distance < 6)


def near_ink_error(page, result, beside):
    truth = rgb_to_lab(np.rint(corpus.painted(page) * 255).astype(np.uint8))
    return float(np.sqrt(((rgb_to_lab(result) - truth) ** 2).sum(-1))[beside].mean())


def test_a_colouring_a_few_pixels_off_is_moved_onto_the_pages_lines_and_said(setting):
    page, model, made, beside = setting
    off = np.roll(model, (-4, 6), axis=(0, 1))  # 6 px right and 4 up of the page's lines
    found = registration.fit(made.page_w, off)
    np.testing.assert_allclose(found.warp[:, 2], [6, -4], atol=0.3)
    np.testing.assert_allclose(found.warp[:, :2], np.eye(2), atol=0.002)
    assert "moved by -6.0, +4.0 px" in found.note
    notes = []
    result = upscale(page.rgb, off, notes=notes)
    assert notes == [found.note]
    in_register = near_ink_error(page, upscale(page.rgb, model), beside)
    assert near_ink_error(page, result, beside) <= in_register + 0.3
    unmoved = np.rint(made.full(off) * 255).astype(np.uint8)  # what bringing it as it is gives
    assert near_ink_error(page, unmoved, beside) >= in_register + 5


def test_a_colouring_padded_and_stretched_back_by_a_tool_is_fitted(setting):
    page, model, made, beside = setting
    height, width = model.shape[:2]
    padded = cv2.resize(np.pad(model, ((0, 11), (0, 8), (0, 0)), mode="edge"), (width, height),
                        interpolation=cv2.INTER_AREA)  # a tool's round-up to a multiple, stretched back
    found = registration.fit(made.page_w, padded)
    np.testing.assert_allclose(np.diag(found.warp[:, :2]), [width / (width + 8), height / (height + 11)], atol=0.002)
    assert "scaled by +1.0%" in found.note or "scaled by +1.1%" in found.note
    assert near_ink_error(page, upscale(page.rgb, padded), beside) <= \
        near_ink_error(page, upscale(page.rgb, model), beside) + 0.5


def test_a_colouring_in_register_is_used_as_it_is(setting):
    page, model, made, _ = setting
    notes = []
    assert registration.registered(made.page_w, model, notes) is model and notes == []
    np.testing.assert_array_equal(upscale(page.rgb, model), np.rint(made.full(model) * 255).astype(np.uint8))


def test_a_colouring_without_lines_or_of_another_page_or_tiny_is_used_as_it_is(setting):
    page, model, made, _ = setting
    broad_brush = cv2.GaussianBlur(model, (0, 0), 12)  # a hand colouring: patches, no lines
    other = corpus.test_set()[3]
    another = cv2.resize(corpus.colorized(other, (768, 1088)), model.shape[1::-1], interpolation=cv2.INTER_AREA)
    flats = cv2.resize(page.truth(), model.shape[1::-1], interpolation=cv2.INTER_AREA)  # flat colours, no lines
    for colouring in (broad_brush, flats, np.roll(flats, 3, axis=1), another, cv2.flip(model, 1)):
        assert registration.registered(made.page_w, colouring) is colouring
    tiny_page = cv2.resize(made.page_w, (90, 128), interpolation=cv2.INTER_AREA)
    tiny = np.roll(cv2.resize(model, (90, 128), interpolation=cv2.INTER_AREA), 3, axis=1)
    assert registration.registered(tiny_page, tiny) is tiny


def test_a_colouring_at_the_pages_own_size_is_fitted_at_a_working_size(setting, monkeypatch):
    page, model, _, _ = setting
    height, width = page.grey.shape
    monkeypatch.setattr(registration, "FIT_SIDE", 1024)  # this web scan's long side is larger
    page_w = PageDetail.make(page.grey, (width, height), (width, height)).page_w
    big = cv2.resize(model, (width, height), interpolation=cv2.INTER_CUBIC)
    found = registration.fit(page_w, np.roll(big, (5, -8), axis=(0, 1)))
    np.testing.assert_allclose(found.warp[:, 2], [-8, 5], atol=0.6)
    assert f"moved by +8.0, -5.0 px at its {width}x{height}" in found.note
