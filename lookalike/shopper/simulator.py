"""A reproducible shopper simulator over the catalogue (the default interaction data).

Generative model (everything drawn from one ``numpy`` generator seeded by ``seed``):

1. Items: popularity ``p_i ~ Zipf``-like (``rank^-popularity_exponent`` over a random
   permutation), and a visual style vector = the item's embedding (unit length).
2. Users: a taste over categories ``theta_u ~ Dirichlet(category_alpha)`` and a visual style
   ``s_u`` = the normalised mean of ``style_anchors`` item vectors drawn from the user's
   favourite categories; activity (events) ~ log-normal, scaled so the total is ``events``.
3. An item's appeal to a user: ``log p_i + log theta_u[c_i] + style_weight * cos(s_u, v_i)``.
   Each user gets a pool of distinct interesting items sampled from the softmax of that appeal.
4. Events: sessions of geometric length; each event views a pool item, or with probability
   ``repeat_view`` re-views an item from the user's recent views; a view becomes an
   ``add_to_cart`` with probability ``cart_rate`` and a cart a ``purchase`` with
   ``purchase_rate`` (purchases are rarer than views). Timestamps increase within a session
   by seconds to minutes, sessions are hours to days apart, over ``days`` days.

The output is an events-format table (``user_id, item_id, event_type, ts, session_id``) that
goes through the same ingest and validation as any retailer file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from lookalike.catalog.table import TS


@dataclass(frozen=True)
class SimConfig:
    """The simulator's knobs (see the module docstring); the defaults are the documented 5,000
    shoppers and 500,000 events."""

    users: int = 5000
    events: int = 500_000
    seed: int = 0
    popularity_exponent: float = 0.8
    category_alpha: float = 0.3
    style_weight: float = 6.0
    style_anchors: int = 3
    pool_min: int = 5
    pool_share: float = 0.35  # distinct items ~ this share of a user's events
    repeat_view: float = 0.25
    cart_rate: float = 0.12
    purchase_rate: float = 0.35
    mean_session_events: float = 6.0
    days: int = 90
    start: str = "2026-01-01T00:00:00+00:00"

    def to_dict(self) -> dict:
        """The settings as JSON-ready values (the command's output)."""
        return asdict(self)


def _softmax_rows(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def simulate(
    cfg: SimConfig, item_ids: list[str], categories: np.ndarray, vectors: np.ndarray
) -> pa.Table:
    """Events for ``cfg.users`` shoppers over the given items (ids, category ints, vectors)."""
    n_items = len(item_ids)
    if n_items == 0:
        raise ValueError("the catalogue has no items to simulate shoppers over")
    if len(categories) != n_items or len(vectors) != n_items:
        raise ValueError("item_ids, categories and vectors must be row-aligned")
    rng = np.random.default_rng(cfg.seed)
    vectors = np.asarray(vectors, dtype=np.float32)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    cats, cat_idx = np.unique(np.asarray(categories), return_inverse=True)
    n_cats = len(cats)

    ranks = rng.permutation(n_items) + 1
    log_pop = -cfg.popularity_exponent * np.log(ranks).astype(np.float32)

    taste = rng.dirichlet([cfg.category_alpha] * n_cats, size=cfg.users).astype(np.float32)
    activity = rng.lognormal(mean=0.0, sigma=0.8, size=cfg.users)
    n_events = np.maximum(4, np.round(activity / activity.sum() * cfg.events)).astype(int)
    styles = _user_styles(cfg, rng, taste, cat_idx, vectors)

    span = cfg.days * 86_400.0
    parts: list[tuple[np.ndarray, ...]] = []
    chunk = 256
    for lo in range(0, cfg.users, chunk):
        hi = min(lo + chunk, cfg.users)
        logits = (
            log_pop[None, :]
            + np.log(taste[lo:hi][:, cat_idx] + 1e-9)
            + cfg.style_weight * (styles[lo:hi] @ vectors.T)
        )
        probs = _softmax_rows(logits.astype(np.float64))
        cdf = np.cumsum(probs, axis=1)
        for r, u in enumerate(range(lo, hi)):
            m = int(n_events[u])
            parts.append((np.full(m, u), *_user_events(cfg, rng, cdf[r], m, span)))
    users, items, kinds, secs, sessions = (
        np.concatenate(column) for column in zip(*parts, strict=True)
    )
    return _events_table(cfg, item_ids, users, items, kinds, secs, sessions)


def _user_styles(
    cfg: SimConfig,
    rng: np.random.Generator,
    taste: np.ndarray,
    cat_idx: np.ndarray,
    vectors: np.ndarray,
) -> np.ndarray:
    """Each user's visual style: the normalised mean of ``style_anchors`` item vectors drawn
    from categories picked by the user's taste."""
    n_items, n_cats = len(vectors), taste.shape[1]
    by_cat = [np.flatnonzero(cat_idx == c) for c in range(n_cats)]
    styles = np.empty((cfg.users, vectors.shape[1]), dtype=np.float32)
    for u in range(cfg.users):
        fav = rng.choice(n_cats, size=cfg.style_anchors, p=taste[u])
        anchors = [rng.choice(by_cat[c]) if len(by_cat[c]) else rng.integers(n_items) for c in fav]
        s = vectors[anchors].mean(axis=0)
        styles[u] = s / max(float(np.linalg.norm(s)), 1e-12)
    return styles


def _user_events(
    cfg: SimConfig, rng: np.random.Generator, cdf: np.ndarray, m: int, span: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One user's ``m`` events from the cumulative appeal ``cdf`` over the items:
    (item rows, kinds 0 view / 1 cart / 2 purchase, seconds from the start, session numbers)."""
    n_items = len(cdf)
    pool_size = max(cfg.pool_min, round(m * cfg.pool_share))
    draws = np.searchsorted(cdf, rng.random(pool_size * 2) * cdf[-1])
    pool = np.unique(np.minimum(draws, n_items - 1))
    rng.shuffle(pool)
    # The event sequence: walk the pool, re-viewing recent items now and then.
    seq = np.empty(m, dtype=np.int64)
    nxt = 0
    for e in range(m):
        if e > 0 and rng.random() < cfg.repeat_view:
            seq[e] = seq[max(0, e - int(rng.integers(1, 6)))]
        else:
            seq[e] = pool[nxt % len(pool)]
            nxt += 1
    kinds = np.zeros(m, dtype=np.int8)
    carts = rng.random(m) < cfg.cart_rate
    kinds[carts] = 1
    kinds[carts & (rng.random(m) < cfg.purchase_rate)] = 2
    # Sessions and times.
    breaks = rng.random(m) < 1.0 / cfg.mean_session_events
    breaks[0] = True
    session_no = np.cumsum(breaks) - 1
    gaps = np.where(breaks, rng.exponential(span / max(1, breaks.sum()), m), 0.0)
    gaps += rng.exponential(60.0, m)
    t0 = rng.uniform(0, span * 0.1)
    secs = t0 + np.cumsum(gaps)
    return seq, kinds, secs, session_no


def _events_table(
    cfg: SimConfig,
    item_ids: list[str],
    users: np.ndarray,
    items: np.ndarray,
    kinds: np.ndarray,
    secs: np.ndarray,
    sessions: np.ndarray,
) -> pa.Table:
    """The events-format table (names for the user, item and kind numbers; timestamps from
    ``cfg.start``)."""
    start = datetime.fromisoformat(cfg.start).astimezone(UTC)
    width = len(str(cfg.users))
    user_names = np.array([f"u{u:0{width}d}" for u in range(cfg.users)], dtype=object)
    ids = np.asarray(item_ids, dtype=object)
    type_names = np.asarray(["view", "add_to_cart", "purchase"], dtype=object)
    micros = np.round(secs * 1e6).astype(np.int64)
    base = int(start.timestamp() * 1e6)
    ts = pa.array(base + micros, pa.int64()).cast(TS)
    return pa.table(
        {
            "user_id": pa.array(user_names[users], pa.string()),
            "item_id": pa.array(ids[items], pa.string()),
            "event_type": pa.array(type_names[kinds], pa.string()),
            "ts": ts,
            "session_id": pa.array(
                [f"{user_names[u]}-s{s}" for u, s in zip(users, sessions, strict=True)],
                pa.string(),
            ),
        }
    )


def end_time(cfg: SimConfig) -> datetime:
    """When the simulated period ends (``start`` + ``days``)."""
    return datetime.fromisoformat(cfg.start).astimezone(UTC) + timedelta(days=cfg.days)
