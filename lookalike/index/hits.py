"""What every search answers, in both products (an item, its category and its score), and the
error a bundle that does not answer sensibly is refused with."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hit:
    """One answer: an item, its category and its score (for similar items the cosine, 1.0
    for the item itself; for a shopper the model's score, see docs/api.md)."""

    item_id: str
    category: int
    category_name: str
    score: float


class BundleCheckError(RuntimeError):
    """A bundle loaded but does not answer correctly; it must not be served."""
