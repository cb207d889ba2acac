"""Image validation and normalisation: what is accepted, what is rejected and why."""

import io

import numpy as np
import pytest
from PIL import Image

from lookalike.images import ImageRejected, decode_png, encode_pixels, normalise_image, pixel_hash
from tests.support.images import png_declaring


def _bytes(image: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kw)
    return out.getvalue()


def _rgb(w=40, h=30, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_png_round_trips_pixels_exactly():
    src = _rgb()
    img = normalise_image(_bytes(src, "PNG"))
    assert (img.width, img.height, img.channels) == (40, 30, 3)
    np.testing.assert_array_equal(decode_png(img.png), np.asarray(src))


def test_jpeg_is_accepted_and_stored_as_png():
    img = normalise_image(_bytes(_rgb(), "JPEG", quality=90))
    assert img.png.startswith(b"\x89PNG") and img.channels == 3


def test_grayscale_stays_one_channel():
    gray = Image.fromarray(np.arange(64 * 32, dtype=np.uint8).reshape(32, 64) % 255, mode="L")
    img = normalise_image(_bytes(gray, "PNG"))
    assert img.channels == 1 and decode_png(img.png).shape == (32, 64)


def test_transparency_is_flattened_over_white():
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 0))  # fully transparent red
    img = normalise_image(_bytes(rgba, "PNG"))
    assert img.channels == 3
    assert decode_png(img.png)[0, 0].tolist() == [255, 255, 255]


def test_exif_orientation_is_applied():
    src = _rgb(w=40, h=20)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    img = normalise_image(_bytes(src, "JPEG", exif=exif))
    assert (img.width, img.height) == (20, 40)


def test_large_photo_is_bounded_keeping_aspect():
    img = normalise_image(_bytes(_rgb(w=1000, h=500), "PNG"), max_side=128)
    assert (img.width, img.height) == (128, 64)


def test_hash_depends_on_pixels_not_on_encoding():
    pixels = np.asarray(_rgb())
    a = normalise_image(_bytes(Image.fromarray(pixels), "PNG", compress_level=1))
    b = normalise_image(_bytes(Image.fromarray(pixels), "PNG", compress_level=9))
    assert a.content_hash == b.content_hash == pixel_hash(pixels)
    changed = pixels.copy()
    changed[0, 0, 0] ^= 1
    assert encode_pixels(changed).content_hash != a.content_hash


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"hello, I am a text file", "not an image"),
        (_bytes(_rgb(), "PNG")[:200], "corrupt image"),
        (_bytes(_rgb(), "GIF"), "unsupported image format GIF"),
        (_bytes(_rgb(w=4, h=40), "PNG"), "image too small"),
    ],
    ids=["empty", "text", "truncated", "gif", "tiny"],
)
def test_bad_input_is_rejected_with_a_reason(data, reason):
    with pytest.raises(ImageRejected, match=reason):
        normalise_image(data)


def test_decompression_bomb_is_rejected_before_decoding():
    bomb = png_declaring(30000, 30000)
    assert len(bomb) < 200
    with pytest.raises(ImageRejected, match="decompression bomb"):
        normalise_image(bomb, max_pixels=10_000_000)


def test_oversized_file_is_rejected():
    with pytest.raises(ImageRejected, match="file too large"):
        normalise_image(_bytes(_rgb(), "PNG"), max_bytes=100)
