"""Image bytes for upload tests: PNG/JPEG/GIF from pixels, and a decompression-bomb header."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def noise(seed: int, size: int = 16, channels: int = 1) -> np.ndarray:
    """Random uint8 pixels (HxW, or HxWx3): every seed a distinct picture."""
    shape = (size, size) if channels == 1 else (size, size, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def png_declaring(width: int, height: int) -> bytes:
    """A few hundred bytes of valid PNG whose header claims ``width`` x ``height`` pixels (a
    decompression bomb as far as anything that trusts the header is concerned)."""
    data = bytearray(encode(np.zeros((1, 1), np.uint8)))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)
