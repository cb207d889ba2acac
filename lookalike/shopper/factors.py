"""The shopper model's trained weights as numpy arrays: what either loss (``model``'s BCE,
``softmax``) produces and what a bundle ships and scores with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Factors:
    """Trained weights as numpy arrays (what a bundle ships)."""

    user_gmf: np.ndarray
    item_gmf: np.ndarray
    item_bias: np.ndarray
    w_gmf: np.ndarray
    out_bias: float = 0.0
    user_mlp: np.ndarray | None = None
    item_mlp: np.ndarray | None = None
    dense: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    w_mlp: np.ndarray | None = None

    @property
    def has_head(self) -> bool:
        """True when the model has a NeuMF head (candidates from the index are re-ranked by it)."""
        return self.user_mlp is not None

    def query_vectors(self, users: np.ndarray) -> np.ndarray:
        """Augmented GMF queries: ``[p_u * w_g, 1]`` against ``item_vectors`` rows."""
        q = self.user_gmf[users] * self.w_gmf[None, :]
        return np.concatenate([q, np.ones((len(users), 1), np.float32)], axis=1).astype(np.float32)

    def item_vectors(self) -> np.ndarray:
        """``[q_i, b_i]``: the maximum-inner-product index rows."""
        return np.concatenate([self.item_gmf, self.item_bias[:, None]], axis=1).astype(np.float32)

    def scores(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """(len(users), len(items)) scores; all items by default."""
        item_rows = np.arange(len(self.item_gmf)) if items is None else np.asarray(items)
        s = self.query_vectors(users) @ self.item_vectors()[item_rows].T + self.out_bias
        if self.has_head:
            s = s + self._mlp_scores(users, item_rows)
        return s.astype(np.float32)

    def _mlp_scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        assert self.user_mlp is not None and self.item_mlp is not None and self.w_mlp is not None
        w1, b1 = self.dense[0]
        du = self.user_mlp.shape[1]
        a = self.user_mlp[users] @ w1[:du]  # first layer is linear in the concatenation
        b = self.item_mlp[items] @ w1[du:]
        out = np.empty((len(users), len(items)), np.float32)
        for r in range(len(users)):
            h = np.maximum(a[r][None, :] + b + b1, 0.0)
            for w, bias in self.dense[1:]:
                h = np.maximum(h @ w + bias, 0.0)
            out[r] = h @ self.w_mlp
        return out

    def save(self, path: Path) -> None:
        """Write the factors to an ``.npz`` file (part of the bundle)."""
        arrays: dict[str, Any] = {
            "user_gmf": self.user_gmf,
            "item_gmf": self.item_gmf,
            "item_bias": self.item_bias,
            "w_gmf": self.w_gmf,
            "out_bias": np.float32(self.out_bias),
        }
        if self.has_head:
            arrays |= {"user_mlp": self.user_mlp, "item_mlp": self.item_mlp, "w_mlp": self.w_mlp}
            for j, (w, b) in enumerate(self.dense):
                arrays[f"dense{j}_w"], arrays[f"dense{j}_b"] = w, b
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> Factors:
        """Read factors written by ``save``."""
        z = np.load(path)
        dense = []
        j = 0
        while f"dense{j}_w" in z:
            dense.append((z[f"dense{j}_w"], z[f"dense{j}_b"]))
            j += 1
        head = "user_mlp" in z
        return cls(
            user_gmf=z["user_gmf"],
            item_gmf=z["item_gmf"],
            item_bias=z["item_bias"],
            w_gmf=z["w_gmf"],
            out_bias=float(z["out_bias"]),
            user_mlp=z["user_mlp"] if head else None,
            item_mlp=z["item_mlp"] if head else None,
            dense=dense,
            w_mlp=z["w_mlp"] if head else None,
        )


# ---------------------------------------------------------------- Keras
