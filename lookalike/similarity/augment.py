"""Batch augmentations that run in the sampler, outside the model.

Outside the model so the saved encoder stays plain Keras layers (no custom objects to
register when MLflow or the service loads it) and so they are testable with numpy alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class RandomErasing:
    """Random erasing (Zhong et al., 2017): with probability ``p`` per image, one rectangle
    covering ``area`` of the image with aspect ratio in ``[ratio, 1/ratio]`` is filled with
    uniform noise in the pixels' range. It makes the encoder use the whole garment rather
    than one telltale patch (a collar, a logo), which is what confuses shirts with T-shirts.

    The call signature is TF Similarity's sampler ``augmenter``: ``(x, y, n, is_warmup)``.
    """

    def __init__(
        self,
        p: float,
        *,
        area: tuple[float, float] = (0.02, 0.25),
        ratio: float = 0.3,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"erase: probability must be in [0, 1], got {p!r}")
        self.p = p
        self.area = area
        self.ratio = ratio
        self.rng = np.random.default_rng(seed)

    def erase(self, x: np.ndarray) -> np.ndarray:
        """A copy of ``x`` (batch, height, width[, channels]) with rectangles erased."""
        x = np.array(x, copy=True)
        b, h, w = x.shape[:3]
        rng = self.rng
        hit = rng.random(b) < self.p
        area = rng.uniform(*self.area, size=b) * h * w
        aspect = np.exp(rng.uniform(np.log(self.ratio), -np.log(self.ratio), size=b))
        eh = np.clip(np.round(np.sqrt(area * aspect)), 1, h).astype(np.int64)
        ew = np.clip(np.round(np.sqrt(area / aspect)), 1, w).astype(np.int64)
        y0 = (rng.random(b) * (h - eh + 1)).astype(np.int64)
        x0 = (rng.random(b) * (w - ew + 1)).astype(np.int64)
        rows = np.arange(h)[None, :]
        cols = np.arange(w)[None, :]
        in_rows = (rows >= y0[:, None]) & (rows < (y0 + eh)[:, None])
        in_cols = (cols >= x0[:, None]) & (cols < (x0 + ew)[:, None])
        mask = in_rows[:, :, None] & in_cols[:, None, :] & hit[:, None, None]
        mask = mask.reshape(mask.shape + (1,) * (x.ndim - 3))
        mask = np.broadcast_to(mask, x.shape)
        noise = rng.integers(0, 256, size=x.shape).astype(x.dtype)  # pixels are 0-255
        x[mask] = noise[mask]
        return x

    def __call__(self, x: Any, y: Any, n: int = 1, is_warmup: bool = False) -> tuple[Any, Any]:
        """TF Similarity's augmenter call: erase rectangles in the batch, labels unchanged."""
        return self.erase(np.asarray(x)), y
