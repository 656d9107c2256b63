"""Reading pages of any mode, the size limits, and the published app's resizing rules."""

import numpy as np
import pytest
from PIL import Image

from inknhue.errors import InputError
from inknhue.page.imaging import (
    MAX_SIDE,
    open_image, read_header,
    read_rgb,
    resize_max,
    resize_pad,
    to_rgb,
    to_rgba,
    to_working_size,
    write_image,
)


def saved(tmp_path, image, name="page.png", **kwargs):
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


# --- modes -------------------------------------------------------------------------------

def test_greyscale_page_becomes_grey_rgb(tmp_path):
    rgb = read_rgb(saved(tmp_path, Image.new("L", (8, 6), 77)))
    assert rgb.shape == (6, 8, 3) and rgb.dtype == np.uint8 and (rgb == 77).all()


def test_transparent_pixels_become_paper_white_not_black(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent black, like an empty Krita layer
    rgba[0, 0] = (10, 20, 30, 255)
    rgb = read_rgb(saved(tmp_path, Image.fromarray(rgba, "RGBA")))
    assert tuple(rgb[0, 0]) == (10, 20, 30)
    assert (rgb[1:, :] == 255).all()


def test_half_transparent_ink_is_blended_on_white(tmp_path):
    rgb = read_rgb(saved(tmp_path, Image.new("LA", (2, 2), (0, 128))))
    assert 125 <= rgb[0, 0, 0] <= 129


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    path = saved(tmp_path, Image.fromarray(values))  # a 16-bit PNG
    assert Image.open(path).mode.startswith("I")
    assert read_rgb(path)[0, :, 0].tolist() == [0, 128, 255]


def test_float_image_in_unit_range_is_scaled(tmp_path):
    values = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    rgb = read_rgb(saved(tmp_path, Image.fromarray(values, "F"), "page.tif"))
    assert rgb[0, :, 0].tolist() == [0, 128, 255]


def test_palette_and_bilevel_images(tmp_path):
    assert (read_rgb(saved(tmp_path, Image.new("1", (3, 3), 1))) == 255).all()
    palette = Image.new("P", (3, 3), 1)
    palette.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    assert tuple(read_rgb(saved(tmp_path, palette, "p.png"))[0, 0]) == (200, 100, 50)


def test_cmyk_jpeg(tmp_path):
    rgb = read_rgb(saved(tmp_path, Image.new("CMYK", (4, 4), (0, 0, 0, 0)), "page.jpg"))
    assert rgb.shape == (4, 4, 3) and rgb.min() > 240


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (20, 10), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = saved(tmp_path, image, "photo.jpg", exif=exif)
    assert read_rgb(path).shape == (20, 10, 3)


def test_hints_keep_their_alpha():
    rgba = to_rgba(Image.new("RGBA", (2, 2), (255, 0, 0, 0)))
    assert rgba.shape == (2, 2, 4) and (rgba[..., 3] == 0).all()
    assert to_rgb(Image.new("RGBA", (1, 1), (255, 0, 0, 0)))[0, 0].tolist() == [255, 255, 255]


# --- bad files ---------------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="page not found"):
        read_rgb(tmp_path / "nope.png", "page")


def test_not_an_image(tmp_path):
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(InputError, match="not an image Pillow can read"):
        read_rgb(tmp_path / "notes.png", "page")


def test_truncated_image(tmp_path):
    path = saved(tmp_path, Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)))
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(InputError, match="could not be decoded"):
        read_rgb(path, "page")


def test_oversized_image_is_refused_before_decoding(tmp_path):
    path = saved(tmp_path, Image.new("1", (MAX_SIDE + 1, 1)))
    with pytest.raises(InputError, match=f"{MAX_SIDE + 1}x1: larger than the limit"):
        open_image(path, "page")


def test_a_huge_page_is_said_to_be_over_the_size_limit_not_unreadable(tmp_path):
    for side in (12000, 15000):  # over the limit; over Pillow's own bomb limit (twice ours) too
        path = saved(tmp_path, Image.new("1", (side, side)))
        for read in (open_image, read_header):
            with pytest.raises(InputError, match=f"is ({side}x{side}|{side * side // 10 ** 6} MP): larger than "
                                                 f"the limit") as error:
                read(path, "page")
            assert "Pillow" not in str(error.value)


def test_write_refuses_an_unknown_format(tmp_path):
    with pytest.raises(InputError, match="image format"):
        write_image(np.zeros((2, 2, 3), np.uint8), tmp_path / "out.unknown")


def test_write_is_atomic(tmp_path):
    out = tmp_path / "results" / "out.png"
    out.parent.mkdir()
    out.write_bytes(b"the previous result")
    with pytest.raises((TypeError, ValueError)):
        write_image(np.zeros((2, 2, 7), np.uint8), out)  # Pillow cannot save 7 channels
    assert out.read_bytes() == b"the previous result"
    assert [p.name for p in out.parent.iterdir()] == ["out.png"]


# --- resizing rules ----------------------------------------------------------------------

@pytest.mark.parametrize("shape, size, padded_shape, pad", [
    ((150, 100), 64, (128, 64), (32, 0)),    # portrait: width -> size; 96 is a multiple of 32: +32
    ((100, 100), 64, (96, 64), (32, 0)),     # square behaves as portrait
    ((100, 150), 64, (96, 160), (0, 16)),    # landscape: height -> 1.5 x size
    ((3508, 2480), 768, (1088, 768), (1, 0)),  # an A4 page at 300 dpi: 1087 rows + 1
])
def test_resize_pad_for_the_shader(shape, size, padded_shape, pad):
    padded, got_pad = resize_pad(np.full(shape, 200, np.uint8), size)
    assert padded.shape == padded_shape and got_pad == pad


def test_resize_pad_pads_with_each_column_maximum():
    grey = np.zeros((64, 64), np.uint8)
    grey[10, 3] = 250
    padded, (pad_h, _) = resize_pad(grey, 64)
    assert (padded[-pad_h:, 3] == 250).all() and (padded[-pad_h:, 4] == 0).all()


def test_resize_max_only_shrinks_and_sets_the_short_side():
    small = Image.new("RGB", (100, 60))
    assert resize_max(small, 128) is small
    assert resize_max(Image.new("RGB", (2480, 3508)), 768).size == (768, 1086)
    assert resize_max(Image.new("RGB", (3508, 2480)), 768).size == (1086, 768)


def test_working_size_is_a_multiple_of_eight():
    working = to_working_size(np.zeros((3508, 2480, 3), np.uint8), 768)
    assert working.shape == (1088, 768, 3)
