"""Decoding, validation and normalisation of product photos.

Shared by catalogue ingest (on Spark executors) and the service (uploaded photos), so a photo
is judged the same way wherever it enters. Pure functions over bytes: no Spark, no I/O.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ACCEPTED_FORMATS = ("PNG", "JPEG")


class ImageRejected(ValueError):
    """The bytes are not an acceptable product photo; the message says why."""


@dataclass(frozen=True)
class NormalisedImage:
    """A validated photo as stored in the catalogue: normalised PNG, its size and channels, and
    the hash of its pixels (what change detection and the splits key on)."""

    png: bytes
    width: int
    height: int
    channels: int
    content_hash: str


def pixel_hash(pixels: np.ndarray) -> str:
    """Hash of decoded pixels and shape: stable across PNG encoders and re-encodings."""
    arr = np.ascontiguousarray(pixels, dtype=np.uint8)
    h = hashlib.sha256("x".join(map(str, arr.shape)).encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def encode_pixels(pixels: np.ndarray) -> NormalisedImage:
    """PNG-encode an HxW (grayscale) or HxWx3 (RGB) uint8 array."""
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise ImageRejected(
            f"expected uint8 HxW or HxWx3 pixels, got {pixels.dtype} {pixels.shape}"
        )
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 3 and pixels.shape[2] != 3:
        raise ImageRejected(f"expected 1 or 3 channels, got {pixels.shape[2]}")
    image = Image.fromarray(pixels, mode="L" if pixels.ndim == 2 else "RGB")
    out = io.BytesIO()
    image.save(out, format="PNG")
    h, w = pixels.shape[:2]
    return NormalisedImage(
        png=out.getvalue(),
        width=w,
        height=h,
        channels=1 if pixels.ndim == 2 else 3,
        content_hash=pixel_hash(pixels),
    )


def _flatten_to_rgb_or_l(image: Image.Image) -> Image.Image:
    """Grayscale stays 1 channel, everything else becomes RGB; transparency goes over white."""
    if image.mode in ("L", "RGB"):
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit / float grayscale
        arr = np.asarray(image, dtype=np.float64)
        scale = 255.0 / 65535.0 if arr.max(initial=0) > 255 else 1.0
        return Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), mode="L")
    if image.mode in ("LA", "RGBA", "PA", "P") or "transparency" in image.info:
        gray = image.mode == "LA"
        rgba = image.convert("RGBA")
        flat = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        return flat.convert("L" if gray else "RGB")
    return image.convert("L" if image.mode == "1" else "RGB")


def _open_checked(data: bytes, max_pixels: int) -> Image.Image:
    """Decode PNG/JPEG bytes (EXIF-rotated); anything else, a decompression bomb or a
    corrupt file is an ``ImageRejected`` with the reason."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in ACCEPTED_FORMATS:
                raise ImageRejected(
                    f"unsupported image format {image.format} (accepted: PNG, JPEG)"
                )
            width, height = image.size
            if width * height > max_pixels:
                raise ImageRejected(
                    f"decompression bomb: {width}x{height} pixels > limit {max_pixels}"
                )
            image.load()
            return ImageOps.exif_transpose(image) or image
    except ImageRejected:
        raise
    except UnidentifiedImageError:
        raise ImageRejected("not an image (unrecognised file content)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageRejected(f"decompression bomb: {e}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageRejected(f"corrupt image: {e}") from None


def normalise_image(
    data: bytes,
    *,
    max_side: int = 512,
    min_side: int = 8,
    max_pixels: int = 40_000_000,
    max_bytes: int = 20 * 1024 * 1024,
) -> NormalisedImage:
    """Validate PNG/JPEG bytes and return the normalised PNG (EXIF-rotated, L or RGB, bounded).

    Raises ``ImageRejected`` with a human-readable reason for anything that is not a usable
    photo: empty, too large, not an image, unsupported format, corrupt or truncated,
    decompression bomb, too small.
    """
    if not data:
        raise ImageRejected("empty file")
    if len(data) > max_bytes:
        raise ImageRejected(f"file too large ({len(data)} bytes > limit {max_bytes})")
    image = _open_checked(data, max_pixels)
    image = _flatten_to_rgb_or_l(image)
    if min(image.size) < min_side:
        raise ImageRejected(
            f"image too small ({image.size[0]}x{image.size[1]}, min side {min_side})"
        )
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return encode_pixels(np.asarray(image, dtype=np.uint8))


def decode_png(png: bytes) -> np.ndarray:
    """Pixels of a normalised PNG: HxW (grayscale) or HxWx3 uint8."""
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image, dtype=np.uint8)


def to_model_input(image: bytes | np.ndarray, size: int, channels: int) -> np.ndarray:
    """An encoder's input, uint8 ``(size, size, channels)``: the one preprocessing shared by
    training, catalogue embedding and uploaded photos.

    Non-square photos are letterboxed on white (product photos sit on white) before resizing;
    pixels stay 0..255 here, the model itself scales them (exactly once).
    """
    pixels = decode_png(image) if isinstance(image, bytes) else image
    img = Image.fromarray(pixels)
    mode = "L" if channels == 1 else "RGB"
    if img.mode != mode:
        img = img.convert(mode)
    w, h = img.size
    if w != h:
        side = max(w, h)
        canvas = Image.new(mode, (side, side), 255 if mode == "L" else (255, 255, 255))
        canvas.paste(img, ((side - w) // 2, (side - h) // 2))
        img = canvas
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[..., None] if channels == 1 else arr
