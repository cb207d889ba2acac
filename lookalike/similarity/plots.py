"""Evaluation artifacts as PNG files: neighbour grid, 2-D projection, loss curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def neighbour_grid(
    path: Path,
    queries: np.ndarray,
    query_labels: np.ndarray,
    neighbours: np.ndarray,
    neighbour_labels: np.ndarray,
    names: dict[int, str],
) -> Path:
    """One row per query: the query, then its nearest neighbours (red title = other category)."""
    plt = _plt()
    rows, cols = neighbours.shape[0], neighbours.shape[1] + 1
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.5 * rows), squeeze=False)
    for r in range(rows):
        cells = [(queries[r], query_labels[r], "query")] + [
            (neighbours[r, c], neighbour_labels[r, c], None) for c in range(cols - 1)
        ]
        for c, (img, label, title) in enumerate(cells):
            ax = axes[r, c]
            ax.imshow(img.squeeze(), cmap="gray" if img.shape[-1] == 1 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            wrong = title is None and label != query_labels[r]
            ax.set_title(
                title or names.get(int(label), str(label)),
                fontsize=7,
                color="red" if wrong else "black",
            )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def projection(
    path: Path, embeddings: np.ndarray, labels: np.ndarray, names: dict[int, str]
) -> Path:
    """2-D PCA of embeddings, coloured by category."""
    plt = _plt()
    centred = embeddings - embeddings.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    fig, ax = plt.subplots(figsize=(7, 6))
    for c in np.unique(labels):
        m = labels == c
        ax.scatter(xy[m, 0], xy[m, 1], s=3, label=names.get(int(c), str(c)))
    ax.legend(markerscale=4, fontsize=7)
    ax.set_title("embeddings (PCA), coloured by category")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def loss_curve(path: Path, history: dict[str, list[float]]) -> Path:
    """Loss per epoch as a PNG at ``path`` (an evaluation artifact of the run)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, values in history.items():
        ax.plot(range(1, len(values) + 1), values, marker="o", label=key)
    ax.set_xlabel("epoch")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
