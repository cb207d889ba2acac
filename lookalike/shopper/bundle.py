"""A shopper bundle: trained factors + a ScaNN maximum-inner-product index + what answering
needs (each user's seen items and last item, item metadata, visual vectors, the fallback list).

Built once per training run (``build_bundle``), shipped inside the ``lookalike-shopper-model``
pyfunc, loaded by the service. Every file is checksummed in ``manifest.json`` and verified on
load; the index's recall@10 against exact inner-product search is measured before a bundle is
written, and a bundle below ``min_recall`` is refused. Recall is ann-benchmarks' (an item whose
exact score is within ``recall_tolerance`` of the 10th best counts, lookalike.index.recall), so
items with equal scores are ties, not misses; strict recall is recorded beside it.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lookalike.index.hits import BundleCheckError, Hit
from lookalike.index.recall import DEFAULT_TOLERANCE, RecallResult, recall_at_k, rows_of
from lookalike.index.scann_index import IndexVersionError, RecallTooLow, SearchTuning, file_sha256
from lookalike.shopper.data import Split
from lookalike.shopper.factors import Factors
from lookalike.shopper.items import ItemSpace

MANIFEST = "manifest.json"
FILES = ("factors.npz", "users.parquet", "items.parquet", "visual.npy", "fallback.npy")
SEARCHER = "searcher"
FALLBACK_SIZE = 200
CANDIDATES = 200  # re-ranked when there is a NeuMF head or a visual blend
BRUTE_FORCE_BELOW = 2_000


log = logging.getLogger(__name__)


def _leaves(n: int) -> int:
    return int(min(2000, max(50, round(math.sqrt(n)))))


def build_searcher(vectors: np.ndarray) -> Any:
    """Maximum inner product over ``vectors`` (not normalised: the GMF scores themselves)."""
    from scann import scann_ops_pybind

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    builder = scann_ops_pybind.builder(vectors, 10, "dot_product")
    n = len(vectors)
    if n < BRUTE_FORCE_BELOW:
        return builder.score_brute_force().build()
    leaves = _leaves(n)
    return (
        builder.tree(
            num_leaves=leaves,
            num_leaves_to_search=max(20, leaves // 8),
            training_sample_size=min(n, 250_000),
        )
        .score_ah(2, anisotropic_quantization_threshold=0.2)
        .reorder(300)
        .build()
    )


def search_ladder(n: int) -> list[SearchTuning]:
    """Query-time settings to try, cheapest first, until the recall gate is met: the built
    ones, then more partitions searched and more candidates re-ordered. Why a ladder: how
    clustered the factors are depends on the data and the model (a BCE MF on the 70k-item
    simulator reached recall 0.87 at the built eighth of the partitions)."""
    if n < BRUTE_FORCE_BELOW:
        return [SearchTuning()]
    leaves = _leaves(n)
    ladder = [SearchTuning()]
    for share, reorder in ((4, 300), (2, 600), (1, 1000)):
        ladder.append(SearchTuning(leaves_to_search=max(20, leaves // share), reorder=reorder))
    return ladder


def searcher_recall(
    searcher: Any,
    items: np.ndarray,
    queries: np.ndarray,
    k: int = 10,
    tolerance: float = DEFAULT_TOLERANCE,
    tuning: SearchTuning | None = None,
) -> RecallResult:
    """recall@k of the MIPS searcher (row ids) against exact inner-product search, with the
    query-time ``tuning`` (None: the built-in settings)."""
    options = (tuning or SearchTuning()).options(k)
    found, distances = searcher.search_batched(queries, final_num_neighbors=k, **options)
    return recall_at_k(rows_of(found, distances), items, queries, k, tolerance)


def popular_diverse(
    popularity: np.ndarray, visual: np.ndarray, n: int = FALLBACK_SIZE, pool: int = 1000
) -> np.ndarray:
    """Greedy maximal-marginal-relevance over the most popular items: each pick trades
    popularity (0.7) against visual closeness to what was already picked (0.3)."""
    order = np.argsort(-popularity, kind="stable")[:pool]
    if len(order) == 0:
        return order.astype(np.int32)
    pop = popularity[order] / max(float(popularity[order].max()), 1e-9)
    vis = visual[order] if visual.size else np.zeros((len(order), 1), np.float32)
    picked: list[int] = []
    closest = np.full(len(order), -1.0, np.float32)
    available = np.ones(len(order), bool)
    for _ in range(min(n, len(order))):
        value = np.where(available, 0.7 * pop - 0.3 * np.maximum(closest, 0.0), -np.inf)
        j = int(np.argmax(value))
        picked.append(j)
        available[j] = False
        closest = np.maximum(closest, vis @ vis[j])
    return order[picked].astype(np.int32)


def build_bundle(
    out_dir: Path,
    factors: Factors,
    split: Split,
    space: ItemSpace | None,
    *,
    config: dict[str, Any],
    interactions_version: int | None,
    metrics: dict[str, float],
    min_recall: float,
    recall_tolerance: float = DEFAULT_TOLERANCE,
) -> dict[str, Any]:
    """Write a bundle directory; refuses (RecallTooLow) when the MIPS index misses: recall@10
    with ties (scores within ``recall_tolerance`` of the 10th count) below ``min_recall``."""
    out_dir = Path(out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    factors.save(out_dir / "factors.npz")
    _write_users(out_dir / "users.parquet", split)
    popularity = split.item_popularity()
    visual = _write_items(out_dir / "items.parquet", split, space, popularity)
    np.save(out_dir / "visual.npy", visual)
    np.save(out_dir / "fallback.npy", popular_diverse(popularity, visual))
    searcher, recall, tuning = _checked_searcher(factors, split, min_recall, recall_tolerance)
    (out_dir / SEARCHER).mkdir()
    searcher.serialize(str(out_dir / SEARCHER), relative_path=True)  # the bundle moves
    checksums = {f: file_sha256(out_dir / f) for f in FILES}
    checksums |= {
        f"{SEARCHER}/{p.name}": file_sha256(p) for p in sorted((out_dir / SEARCHER).iterdir())
    }
    manifest = {
        "kind": "shopper",
        "created": datetime.now(UTC).isoformat(),
        "config": config,
        "users": split.n_users,
        "items": split.n_items,
        "events": split.events,
        "interactions_version": interactions_version,
        "item_space": space.source if space is not None else "none",
        "index": {
            "recall_at_10": recall.with_ties,
            "recall_at_10_strict": recall.strict,
            "recall_tolerance": recall.tolerance,
            "size": split.n_items,
            "search": {k: v for k, v in asdict(tuning).items() if v},
        },
        "metrics": metrics,
        "checksums": checksums,
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def _write_users(path: Path, split: Split) -> None:
    """Per user: the items they have seen (train and the held-out item: never recommended
    again) and their last item."""
    users = np.concatenate([split.train_users, np.flatnonzero(split.test_items >= 0)])
    items = np.concatenate([split.train_items, split.test_items[split.test_items >= 0]])
    order = np.lexsort((items, users))
    users, items = users[order], items[order]
    bounds = np.searchsorted(users, np.arange(split.n_users + 1))
    seen = pa.ListArray.from_arrays(pa.array(bounds, pa.int32()), pa.array(items, pa.int32()))
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array(split.user_ids, pa.string()),
                "seen": seen,
                "last_item": pa.array(split.last_items, pa.int32()),
            }
        ),
        path,
    )


def _write_items(
    path: Path, split: Split, space: ItemSpace | None, popularity: np.ndarray
) -> np.ndarray:
    """Item metadata (category from the catalogue's item space when there is one, else -1)
    and popularity; returns the items' visual vectors (zeros for items the space lacks; no
    columns without a space)."""
    if space is not None:
        row = {i: j for j, i in enumerate(space.item_ids)}
        at = np.asarray([row.get(i, -1) for i in split.item_ids])
        known = at >= 0
        cats = np.where(known, space.categories[np.maximum(at, 0)], -1).astype(np.int32)
        names = [space.category_names[a] if a >= 0 else "" for a in at]
        visual = np.zeros((split.n_items, space.vectors.shape[1]), np.float32)
        visual[known] = space.vectors[at[known]]
    else:
        cats = np.full(split.n_items, -1, np.int32)
        names = [""] * split.n_items
        visual = np.zeros((split.n_items, 0), np.float32)
    pq.write_table(
        pa.table(
            {
                "item_id": pa.array(split.item_ids, pa.string()),
                "category": pa.array(cats, pa.int32()),
                "category_name": pa.array(names, pa.string()),
                "popularity": pa.array(popularity, pa.float32()),
            }
        ),
        path,
    )
    return visual


def _checked_searcher(
    factors: Factors, split: Split, min_recall: float, recall_tolerance: float
) -> tuple[Any, RecallResult, SearchTuning]:
    """The MIPS searcher over the item vectors and the cheapest query-time settings of
    ``search_ladder`` whose recall on 300 sampled users' query vectors meets ``min_recall``;
    when none does it is refused (RecallTooLow)."""
    item_vectors = factors.item_vectors()
    searcher = build_searcher(item_vectors)
    rng = np.random.default_rng(0)
    sample = rng.choice(split.n_users, size=min(300, split.n_users), replace=False)
    queries = factors.query_vectors(sample)
    for tuning in search_ladder(len(item_vectors)):
        recall = searcher_recall(
            searcher, item_vectors, queries, tolerance=recall_tolerance, tuning=tuning
        )
        if recall.with_ties >= min_recall:
            log.info(f"shopper index {recall.describe()} >= {min_recall} ({tuning})")
            return searcher, recall, tuning
        log.info(f"shopper index {recall.describe()} < {min_recall} with {tuning}: wider")
    raise RecallTooLow(f"shopper index {recall.describe()} < {min_recall}")


class ShopperRecommender:
    """Answers "for this shopper" from one bundle directory."""

    def __init__(self, directory: Path) -> None:
        from scann import scann_ops_pybind

        directory = Path(directory)
        manifest_path = directory / MANIFEST
        if not manifest_path.is_file():
            raise IndexVersionError(f"shopper bundle {directory}: no {MANIFEST}")
        self.manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        for name, digest in self.manifest["checksums"].items():
            path = directory / name
            if not path.is_file() or file_sha256(path) != digest:
                raise IndexVersionError(f"shopper bundle {directory}: {name} is damaged or missing")
        self.factors = Factors.load(directory / "factors.npz")
        users = pq.read_table(directory / "users.parquet")
        self.user_ids: list[str] = users.column("user_id").to_pylist()
        self.user_row = {u: j for j, u in enumerate(self.user_ids)}
        seen = users.column("seen").combine_chunks()
        self._seen_offsets = np.asarray(seen.offsets, dtype=np.int64)
        self._seen_items = np.asarray(seen.values, dtype=np.int32)
        self.last_items = np.asarray(users.column("last_item"), dtype=np.int32)
        items = pq.read_table(directory / "items.parquet")
        self.item_ids: list[str] = items.column("item_id").to_pylist()
        self.item_row = {i: j for j, i in enumerate(self.item_ids)}
        self.categories = np.asarray(items.column("category"), dtype=np.int32)
        self.category_names: list[str] = items.column("category_name").to_pylist()
        self.popularity = np.asarray(items.column("popularity"), dtype=np.float32)
        self.visual = np.load(directory / "visual.npy")
        self.fallback = np.load(directory / "fallback.npy")
        self.item_vectors = self.factors.item_vectors()
        self.searcher = scann_ops_pybind.load_searcher(str(directory / SEARCHER))
        self.bundle_version: str | None = None
        if len(self.item_ids) != len(self.item_vectors) or len(self.user_ids) != len(
            self.factors.user_gmf
        ):
            raise IndexVersionError(f"shopper bundle {directory}: factors and ids disagree")
        self.check()

    def __len__(self) -> int:
        return len(self.item_ids)

    def _search(self, want: int) -> dict[str, int]:
        """The query-time settings the bundle's recall check chose (none: built-in)."""
        return SearchTuning(**self.manifest["index"].get("search", {})).options(want)

    def versions(self) -> dict[str, Any]:
        """Which model and interactions version answer (``/v1/version``, every response's
        provenance)."""
        return {
            "model_version": self.bundle_version or "unregistered",
            "interactions_version": self.manifest.get("interactions_version"),
            "users": len(self.user_ids),
            "items": len(self.item_ids),
        }

    def seen(self, row: int) -> np.ndarray:
        """Item rows the user at ``row`` interacted with (excluded from their recommendations)."""
        return self._seen_items[self._seen_offsets[row] : self._seen_offsets[row + 1]]

    def _hits(self, rows: np.ndarray, scores: np.ndarray) -> list[Hit]:
        return [
            Hit(self.item_ids[j], int(self.categories[j]), self.category_names[j], float(s))
            for j, s in zip(rows.tolist(), scores.tolist(), strict=True)
        ]

    def fallback_hits(self, k: int, exclude: np.ndarray | None = None) -> list[Hit]:
        """The popular-and-diverse list (minus ``exclude``), for shoppers the model does not know;
        scores are popularity relative to the most popular item."""
        rows = self.fallback
        if exclude is not None and len(exclude):
            rows = rows[~np.isin(rows, exclude)]
        rows = rows[:k]
        top = max(float(self.popularity.max()), 1e-9) if len(self.popularity) else 1.0
        return self._hits(rows, self.popularity[rows] / top)

    def recommend(
        self, user_id: str, k: int = 10, *, exclude_seen: bool = True, blend: float = 0.0
    ) -> tuple[list[Hit], str]:
        """Top-k items and how they were chosen: ``personal``, ``personal+visual`` or
        ``fallback:popular-diverse`` (a user the model does not know)."""
        if not 0.0 <= blend <= 1.0:
            raise ValueError(f"blend: must be within 0..1, got {blend}")
        row = self.user_row.get(user_id)
        if row is None:
            return self.fallback_hits(k), "fallback:popular-diverse"
        seen = self.seen(row) if exclude_seen else np.zeros(0, np.int32)
        n_items = len(self.item_ids)
        rerank = self.factors.has_head or blend > 0
        want = min(n_items, k + len(seen) + (CANDIDATES if rerank else 0))
        query = self.factors.query_vectors(np.asarray([row]))[0]
        cand, scores = self.searcher.search(query, final_num_neighbors=want, **self._search(want))
        cand = np.asarray(cand, dtype=np.int64)
        last = int(self.last_items[row])
        use_visual = blend > 0 and self.visual.shape[1] > 0 and last >= 0
        if use_visual:  # candidates that look like the last item, too
            sims = self.visual @ self.visual[last]
            near = np.argpartition(-sims, min(50, n_items - 1))[:50]
            cand = np.unique(np.concatenate([cand, near]))
        if rerank:
            scores = self.factors.scores(np.asarray([row]), cand)[0]
        scores = np.asarray(scores, dtype=np.float32)
        if len(seen):
            keep = ~np.isin(cand, seen)
            cand, scores = cand[keep], scores[keep]
        mode = "personal"
        if use_visual and len(cand):
            lo, hi = float(scores.min()), float(scores.max())
            mf = (scores - lo) / max(hi - lo, 1e-9)
            vis = (self.visual[cand] @ self.visual[last] + 1.0) / 2.0
            scores = (1.0 - blend) * mf + blend * vis
            mode = "personal+visual"
        order = np.argsort(-scores, kind="stable")[:k]
        hits = self._hits(cand[order], scores[order])
        if len(hits) < k:  # a user who has seen almost everything: top up from the fallback
            have = np.concatenate([seen, cand[order]]).astype(np.int32)
            hits += self.fallback_hits(k - len(hits), exclude=have)
        return hits, mode

    def check(self) -> None:
        """A loaded bundle answers sensibly for a known and an unknown user, or is refused."""
        if not self.item_ids:
            raise BundleCheckError("shopper bundle has no items")
        if self.user_ids:
            hits, _ = self.recommend(self.user_ids[0], 5)
            if not hits or any(not math.isfinite(h.score) for h in hits):
                raise BundleCheckError("shopper bundle gives no finite scores for a known user")
            seen = {self.item_ids[j] for j in self.seen(0)}
            if seen & {h.item_id for h in hits}:
                raise BundleCheckError("shopper bundle recommends items the user has seen")
        if not self.fallback_hits(3):
            raise BundleCheckError("shopper bundle has no fallback items")

    def scorer_for(self, split: Split) -> Any:
        """Score ``split``'s users over ``split``'s items with this bundle (the gate's
        evaluation): unknown users get popularity, items the bundle lacks score lowest."""
        umap = np.asarray([self.user_row.get(u, -1) for u in split.user_ids])
        imap = np.asarray([self.item_row.get(i, -1) for i in split.item_ids])
        known_items = imap >= 0
        pop = np.where(known_items, self.popularity[np.maximum(imap, 0)], -1.0)

        def score(rows: np.ndarray) -> np.ndarray:
            out = np.broadcast_to(pop, (len(rows), len(imap))).astype(np.float32).copy()
            mine = umap[rows]
            k = mine >= 0
            if k.any():
                s = self.factors.scores(mine[k])
                full = np.full((int(k.sum()), len(imap)), -1e9, np.float32)
                full[:, known_items] = s[:, imap[known_items]]
                out[k] = full
            return out

        return score
