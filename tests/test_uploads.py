"""Pictures users send, through the intake the handlers use (``load_upload`` then
``normalized_png``): stored upright, in sensible 8-bit colours, or refused with a message
that names the picture's own size."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from engine.errors import UserFacingError
from handlers.images import header_size, load_upload, normalized_png
from locales import tr
from tests.images import encoded

RED, BLUE, WHITE, BLACK = (255, 0, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)


def stored(data: bytes, mode: str = "RGB") -> Image.Image:
    """What the bot keeps of an upload, decoded again."""
    image = Image.open(io.BytesIO(normalized_png(load_upload(data), mode=mode)))
    image.load()
    return image


def near(pixel: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=True))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width``×``height`` and carries almost no data: a bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


# --- orientation ------------------------------------------------------------------------


def test_a_phone_photo_with_exif_orientation_6_is_stored_upright() -> None:
    # The sensor's pixels lie on their side: left half red, right half blue, 60x40. Orientation 6
    # says "turn 90° clockwise to view": the viewer sees a 40x60 portrait, red on top.
    sensor = Image.new("RGB", (60, 40), BLUE)
    sensor.paste(RED, (0, 0, 30, 40))
    exif = Image.Exif()
    exif[0x0112] = 6
    photo = encoded(sensor, "JPEG", exif=exif.tobytes(), quality=95)

    assert load_upload(photo).size == (40, 60)  # the size the handlers use for the job's shape
    picture = stored(photo)
    assert picture.size == (40, 60)
    assert near(picture.getpixel((20, 5)), RED) and near(picture.getpixel((20, 55)), BLUE)
    assert picture.getexif().get(0x0112) is None
    assert ImageOps.exif_transpose(picture).size == (40, 60)  # the engine turns nothing a second time


# --- colour modes -----------------------------------------------------------------------


def grey(values: np.ndarray) -> bytes:
    return encoded(Image.fromarray(values))


@pytest.mark.parametrize(("data", "expected"), [
    pytest.param(grey(np.full((8, 8), 32768, np.uint16)), (128, 128, 128), id="16-bit grey PNG (I;16)"),
    pytest.param(grey(np.full((8, 8), 65535, np.uint16)), WHITE, id="16-bit white"),
    pytest.param(encoded(Image.fromarray(np.full((8, 8), 32768, np.int32)), "TIFF"), (128, 128, 128),
                 id="32-bit int (I)"),
    pytest.param(encoded(Image.fromarray(np.full((8, 8), 0.5, np.float32)), "TIFF"), (128, 128, 128),
                 id="float 0..1 (F)"),
    pytest.param(encoded(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"), RED, id="CMYK JPEG"),
])
def test_deep_and_print_colour_modes_become_the_same_picture_in_8_bit_rgb(data: bytes, expected: tuple) -> None:
    picture = stored(data)
    assert picture.mode == "RGB" and near(picture.getpixel((4, 4)), expected, tolerance=3 if expected != RED else 40)


def half_transparent(mode: str) -> bytes:
    """Left half fully transparent, right half opaque dark."""
    if mode == "P":
        image = Image.new("P", (8, 8), 1)
        image.putpalette([0, 0, 0, 20, 20, 20] + [0] * 762)
        image.paste(0, (0, 0, 4, 8))
        return encoded(image, transparency=0)
    colour = {"RGBA": ((200, 0, 0, 0), (20, 20, 20, 255)), "LA": ((200, 0), (20, 255))}[mode]
    image = Image.new(mode, (8, 8), colour[1])
    image.paste(colour[0], (0, 0, 4, 8))
    return encoded(image)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_laid_on_white_for_pictures(mode: str) -> None:
    picture = stored(half_transparent(mode))
    assert picture.mode == "RGB"
    assert picture.getpixel((1, 4)) == WHITE and near(picture.getpixel((6, 4)), (20, 20, 20), tolerance=2)


def test_transparency_in_a_mask_means_keep() -> None:
    mask = stored(half_transparent("RGBA"), mode="L")
    assert mask.mode == "L" and mask.getpixel((1, 4)) == 0 and mask.getpixel((6, 4)) == 20


# --- shapes and sizes -------------------------------------------------------------------


def test_a_thin_strip_is_refused_for_its_shape_with_its_own_size() -> None:
    with pytest.raises(UserFacingError) as e:
        load_upload(encoded(Image.new("RGB", (1, 40000))))
    assert e.value.key == "error-image-too-thin"
    assert tr("en", e.value.key, **e.value.args_) == (
        "The picture is 1×40000 pixels: too thin to work with. "
        "Its long side may be at most 8 times its short side.")
    assert "1×40000" in tr("zh-CN", e.value.key, **e.value.args_)


def test_a_panorama_within_the_ratio_is_taken() -> None:
    assert load_upload(encoded(Image.new("RGB", (1600, 240)))).size == (1600, 240)


@pytest.mark.parametrize(("width", "height"), [(10000, 10000), (20000, 20000)])
def test_a_decompression_bomb_is_refused_with_the_size_its_header_declares(width: int, height: int) -> None:
    bomb = png_header_only(width, height)
    assert header_size(bomb) == (width, height)
    with pytest.raises(UserFacingError) as e:
        load_upload(bomb, what="mask")
    assert e.value.key == "error-image-too-many-pixels"
    assert f"({width}×{height})" in tr("en", e.value.key, **e.value.args_)


def test_a_picture_over_our_own_pixel_bound_names_its_size() -> None:
    with pytest.raises(UserFacingError) as e:
        load_upload(png_header_only(5000, 4000))
    assert tr("en", e.value.key, **e.value.args_) == "The picture is too large (5000×4000); at most 4096×4096."


def test_bytes_that_are_no_picture_are_corrupt_and_have_no_header_size() -> None:
    assert header_size(b"<html>nope</html>") is None
    with pytest.raises(UserFacingError) as e:
        load_upload(b"<html>nope</html>")
    assert e.value.key == "error-image-corrupt"
