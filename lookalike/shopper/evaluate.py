"""Leave-last-out ranking metrics, one function for MF, ALS and popularity alike.

For every user with a held-out item: rank it among ALL items the user has not interacted
with in train (full ranking: HR@10, NDCG@10) and, for comparison with published numbers,
among 99 sampled items the user never interacted with (He et al. 2017's protocol). Item
coverage is the share of items that appear in anyone's full-ranking top 10.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lookalike.shopper.data import Split

ScoreFn = Callable[[np.ndarray], np.ndarray]  # user rows -> (len, n_items) scores


def rank_metrics(
    score: ScoreFn,
    split: Split,
    *,
    k: int = 10,
    sampled: int = 99,
    seed: int = 0,
    max_users: int | None = None,
    chunk: int = 256,
) -> dict[str, float]:
    """HR@k, NDCG@k (full ranking over unseen items, ties count against the model), the same
    on 99 sampled negatives, and item coverage, for ``max_users`` users at most (seeded)."""
    users = np.flatnonzero(split.test_items >= 0)
    if max_users is not None and len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    if len(users) == 0:
        raise ValueError("no user has a held-out item (every user has a single item)")
    indptr, seen_items = split.seen()
    rng = np.random.default_rng(seed)
    n_items = split.n_items
    hits = ndcg = s_hits = s_ndcg = 0.0
    covered = np.zeros(n_items, dtype=bool)
    for lo in range(0, len(users), chunk):
        rows = users[lo : lo + chunk]
        scores = np.asarray(score(rows), dtype=np.float32).copy()
        tests = split.test_items[rows]
        target = scores[np.arange(len(rows)), tests].copy()
        for r, u in enumerate(rows):
            scores[r, seen_items[indptr[u] : indptr[u + 1]]] = -np.inf
        scores[np.arange(len(rows)), tests] = target
        # Ties count against the model (a constant scorer must not look perfect).
        rank = (scores > target[:, None]).sum(1) + (scores == target[:, None]).sum(1) - 1
        top = np.argpartition(-scores, min(k, n_items - 1), axis=1)[:, :k]
        covered[top.ravel()] = True
        hit = rank < k
        hits += hit.sum()
        ndcg += (hit / np.log2(rank + 2.0)).sum()
        for r, u in enumerate(rows if sampled else ()):  # sampled=0: full ranking only
            seen = seen_items[indptr[u] : indptr[u + 1]]
            cand = rng.integers(0, n_items, size=sampled * 2 + len(seen) + 2)
            cand = cand[~np.isin(cand, seen) & (cand != tests[r])][:sampled]
            s = scores[r, cand]
            sr = int((s > target[r]).sum() + (s == target[r]).sum())
            if sr < k:
                s_hits += 1
                s_ndcg += 1.0 / np.log2(sr + 2.0)
    n = float(len(users))
    return {
        f"hr_at_{k}": float(hits / n),
        f"ndcg_at_{k}": float(ndcg / n),
        f"sampled_hr_at_{k}": float(s_hits / n),
        f"sampled_ndcg_at_{k}": float(s_ndcg / n),
        "item_coverage": float(covered.mean()),
        "eval_users": n,
    }


def popularity_scorer(split: Split) -> ScoreFn:
    """Every user gets the same scores: item popularity (the baseline any model must beat)."""
    pop = split.item_popularity()
    # a tiny, fixed tie-break so equally popular items do not all tie with the target
    pop = pop + np.linspace(0, 1e-3, len(pop), dtype=np.float32)[::-1]
    return lambda rows: np.broadcast_to(pop, (len(rows), len(pop)))


def factor_scorer(users: np.ndarray, items: np.ndarray) -> ScoreFn:
    """Scores as user-factor x item-factor inner products (ALS, or any factor model)."""
    return lambda rows: users[rows] @ items.T
