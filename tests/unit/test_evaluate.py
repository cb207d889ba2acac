"""The shared retrieval metrics, checked against hand-computed values."""

import numpy as np
import pytest

from lookalike.similarity.evaluate import raw_pixel_embeddings, retrieval_metrics


def test_perfect_embeddings_score_one():
    labels = np.repeat([0, 1, 2], 5)
    emb = np.eye(3)[labels] + 0.01 * np.random.default_rng(0).normal(size=(15, 3))
    m = retrieval_metrics(emb, labels, emb, labels, category_names={0: "a", 1: "b", 2: "c"})
    assert m["precision_at_1"] == m["recall_at_5"] == m["map_at_r"] == 1.0
    assert m["per_category_precision_at_1"] == {"a": 1.0, "b": 1.0, "c": 1.0}


def test_map_at_r_matches_a_hand_computed_ranking():
    # One query (label 0); index ranked by similarity: rel, not, rel, not. R = 2.
    index = np.array([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.7, 0.3]])
    labels = np.array([0, 1, 0, 1])
    m = retrieval_metrics(np.array([[1.0, 0.0]]), np.array([0]), index, labels, ks=(1, 2, 3))
    # top R=2 positions: rel at 1 (P=1), not at 2 -> AP@R = (1 + 0) / 2
    assert m["map_at_r"] == pytest.approx(0.5)
    assert m["precision_at_1"] == 1.0 and m["recall_at_2"] == 1.0


def test_wrong_neighbour_counts_against_precision():
    index = np.array([[1.0, 0.0], [0.0, 1.0]])
    m = retrieval_metrics(np.array([[1.0, 0.1]]), np.array([1]), index, np.array([0, 1]), ks=(1, 2))
    assert m["precision_at_1"] == 0.0 and m["recall_at_2"] == 1.0


def test_raw_pixel_baseline_is_normalised():
    x = np.random.default_rng(1).integers(0, 256, (4, 28, 28, 1), dtype=np.uint8)
    e = raw_pixel_embeddings(x)
    assert e.shape == (4, 784)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
