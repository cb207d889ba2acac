"""Encoder + index version + item rows = one thing that answers "similar to this".

Used two ways: inside the ``lookalike-recommender`` pyfunc (``mlflow.pyfunc.load_model``) and
directly by the service, which loads a bundle once and keeps it in memory and follows the
``embeddings`` change feed with it (``apply``: upserts and deletes in place on the live
searcher, between index snapshots). Searches share a readers-writer lock that an update takes
alone (ScaNN has none of its own).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from lookalike.faults import crash_point
from lookalike.images import normalise_image
from lookalike.index import scann_index as sx
from lookalike.index.guard import ReadWriteLock
from lookalike.index.hits import BundleCheckError, Hit
from lookalike.registry.encoders import Predict, embed_images, load_predict
from lookalike.similarity.feed import FeedChanges

#: The category of a row whose item was deleted in place: no category filter matches it.
DELETED = -1


#: candidates fetched beyond the k asked for, so the exact re-scoring can put a near-tie the
#: index's bfloat16 scores ranked just below the k-th back into the results
RESCORE_MARGIN = 5


class UnknownItem(KeyError):
    """An item id that is not in the bundle's index."""

    def __str__(self) -> str:
        return f"unknown item {self.args[0]!r}"


class Recommender:
    """Answers "similar to this" from one bundle (encoder + index version + item rows), kept in
    memory by the service and inside the ``lookalike-recommender`` pyfunc."""

    def __init__(
        self,
        predict: Predict,
        searcher: Any,
        vectors: np.ndarray,
        items: pa.Table,
        manifest: dict[str, Any],
        bundle_version: str | None = None,
    ) -> None:
        self.predict = predict
        self.searcher = searcher
        self.manifest = manifest
        self.bundle_version = bundle_version
        self.item_ids: list[str] = items.column("item_id").to_pylist()
        # rows grow in place as the change feed adds items: buffers with spare capacity,
        # ``vectors``/``categories`` are views of the rows in use
        self._n = len(self.item_ids)
        self._vectors = np.ascontiguousarray(vectors, np.float32)
        self._categories = items.column("category").to_numpy().astype(np.int32)
        # one name per category, not one string per item (~70 MB at 1M items)
        cats, first = np.unique(self._categories, return_index=True)
        names = items.column("category_name").take(pa.array(first)).to_pylist()
        self.category_labels: dict[int, str] = dict(zip(cats.tolist(), names, strict=True))
        self.row = {item_id: j for j, item_id in enumerate(self.item_ids)}
        enc = manifest["encoder"]
        self.input_size, self.channels = int(enc["input_size"]), int(enc["channels"])
        self.tuning = sx.SearchTuning.of(manifest)
        self.guard = ReadWriteLock()
        #: the ``embeddings`` version this searcher holds (None: a bundle from before the
        #: change feed was followed; it is only ever replaced, never updated)
        raw = manifest.get("embeddings_version")
        self.embeddings_version: int | None = None if raw is None else int(raw)
        self.deleted = 0  # rows deleted in place (their slots stay, marked DELETED)
        self._counts: tuple[int | None, dict[int, int]] | None = None

    @property
    def vectors(self) -> np.ndarray:
        """Row-aligned vectors of every row (a deleted row's stays until the next snapshot)."""
        return self._vectors[: self._n]

    @property
    def categories(self) -> np.ndarray:
        """Row-aligned category ids (``DELETED`` for a row deleted in place)."""
        return self._categories[: self._n]

    @classmethod
    def load(
        cls, encoder_dir: str | Path, index_dir: str | Path, bundle_version: str | None = None
    ) -> Recommender:
        """Verify the index version's checksums, load it and the encoder, check they agree."""
        searcher, manifest = sx.load_version(Path(index_dir))
        vectors, items = sx.load_rows(Path(index_dir))
        predict = load_predict(str(encoder_dir), cache=False)  # dies with this bundle
        rec = cls(predict, searcher, vectors, items, manifest, bundle_version)
        rec.check()
        return rec

    # ------------------------------------------------------------------ facts

    def __len__(self) -> int:
        return len(self.row)

    def live_ids(self) -> list[str]:
        """Ids of the items it answers with, in row order (deleted ones left out)."""
        if not self.deleted:
            return self.item_ids
        return [i for i in self.item_ids if i in self.row]

    def category_counts(self) -> dict[int, int]:
        """Items per category id (computed once per applied change-feed version)."""
        counts = self._counts
        if counts is None or counts[0] != self.embeddings_version:
            ids, n = np.unique(self.categories, return_counts=True)
            keep = ids != DELETED
            per = dict(zip(ids[keep].tolist(), n[keep].tolist(), strict=True))
            counts = (self.embeddings_version, per)
            self._counts = counts
        return counts[1]

    def versions(self) -> dict[str, Any]:
        """Which bundle, encoder, index and catalogue versions answer (``/v1/version``, every
        response's provenance)."""
        enc = self.manifest["encoder"]
        return {
            "bundle_version": self.bundle_version,
            "encoder": f"{enc['name']}/{enc['version']}",
            "encoder_version": str(enc["version"]),
            "index_version": self.manifest["index_version"],
            "catalog_version": int(self.manifest["catalog_version"]),
            "embeddings_version": self.embeddings_version,
        }

    def item(self, item_id: str) -> Hit:
        """An item's own row as a hit; ``UnknownItem`` when the bundle does not index it."""
        j = self.row.get(item_id)
        if j is None:
            raise UnknownItem(item_id)
        return self._hit(j, 1.0)

    def _hit(self, j: int, score: float) -> Hit:
        c = int(self.categories[j])
        return Hit(self.item_ids[j], c, self.category_labels[c], score)

    # ------------------------------------------------------------------ queries

    def embed_images(self, images: list[bytes]) -> np.ndarray:
        """Uploaded photos (PNG/JPEG bytes) -> vectors; ``ImageRejected`` names what is wrong."""
        pngs = [normalise_image(b).png for b in images]
        return embed_images(
            self.predict, pngs, input_size=self.input_size, channels=self.channels
        ).reshape(len(pngs), -1)

    def similar_to_items(
        self,
        item_ids: list[str],
        k: int = 10,
        *,
        exclude_self: bool = True,
        category: int | None = None,
    ) -> list[list[Hit]]:
        """The ``k`` nearest items of each indexed item (optionally within one category), using the
        stored vectors: no image decoding or encoder call for items already in the index."""
        with self.guard.read():
            rows = []
            for item_id in item_ids:
                j = self.row.get(item_id)
                if j is None:
                    raise UnknownItem(item_id)
                rows.append(j)
            queries = self.vectors[rows]
            exclude = [{self.item_ids[j]} if exclude_self else set() for j in rows]
            return self._search(queries, k, exclude=exclude, category=category)

    def similar_to_images(
        self, images: list[bytes], k: int = 10, *, category: int | None = None
    ) -> list[list[Hit]]:
        """The ``k`` nearest items of each uploaded photo (validated and embedded first)."""
        return self.search(self.embed_images(images), k, category=category)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        exclude: list[set[str]] | None = None,
        category: int | None = None,
    ) -> list[list[Hit]]:
        """Top-k per query vector. A category filter is answered by exact search inside that
        category (at most a few thousand dot products), so it never returns fewer than k."""
        with self.guard.read():
            return self._search(queries, k, exclude=exclude, category=category)

    def _search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        exclude: list[set[str]] | None,
        category: int | None,
    ) -> list[list[Hit]]:
        """``search`` with the guard held by the caller."""
        exclude = exclude or [set() for _ in range(len(queries))]
        extra = max((len(e) for e in exclude), default=0)
        if category is not None:
            members = np.flatnonzero(self.categories == category)
            sims = queries @ self.vectors[members].T
            want = min(k + extra, len(members))
            top = np.argsort(-sims, axis=1)[:, :want]
            found = [[self.item_ids[members[j]] for j in row] for row in top]
            scores = [[float(sims[q, j]) for j in row] for q, row in enumerate(top)]
        else:
            found, scores = self._ann(queries, min(k + extra, len(self.row)))
        out: list[list[Hit]] = []
        for ids, ss, skip in zip(found, scores, exclude, strict=True):
            hits = []
            for item_id, score in zip(ids, ss, strict=True):
                if item_id in skip:
                    continue
                hits.append(self._hit(self.row[item_id], round(score, 6)))
                if len(hits) == k:
                    break
            out.append(hits)
        return out

    def _ann(self, queries: np.ndarray, want: int) -> tuple[list[list[str]], list[list[float]]]:
        """ScaNN's ids per query, re-scored exactly (``_exact_order``). One query (every
        by-id request) goes through the single-query call: the batched one's result
        conversion costs more than its search."""
        q = np.ascontiguousarray(queries, np.float32)
        ask = min(want + RESCORE_MARGIN, len(self.row))
        opts = self.tuning.options(ask)
        if len(q) == 1:
            ids, _ = self.searcher.search(q[0], final_num_neighbors=ask, **opts)
            return self._exact_order(q, [ids], want)
        found, _ = self.searcher.search_batched(q, final_num_neighbors=ask, **opts)
        return self._exact_order(q, found, want)

    def _exact_order(
        self, queries: np.ndarray, found: Any, want: int
    ) -> tuple[list[list[str]], list[list[float]]]:
        """The ``want`` best of each query's candidates by their exact float32 score from
        the row-aligned vectors: a wide index re-orders with bfloat16 copies (half the
        memory), whose scores are ~1e-3 off and can swap near-ties at the k-th place."""
        out_ids, out_scores = [], []
        for query, ids in zip(queries, found, strict=True):
            ids = list(ids)
            sims = self._vectors[[self.row[i] for i in ids]] @ query
            order = np.argsort(-sims, kind="stable")[:want]
            out_ids.append([ids[j] for j in order])
            out_scores.append(sims[order].tolist())
        return out_ids, out_scores

    # ------------------------------------------------------------------ self-check

    def check(self, samples: int = 5) -> None:
        """Refuse a bundle whose parts disagree: dimension, size, and sample queries (an
        indexed item's nearest neighbour is itself, found with the encoder's own vectors)."""
        dim = int(self.manifest["dimension"])
        if self.vectors.shape[1] != dim or int(self.manifest["encoder"]["embedding_size"]) != dim:
            raise BundleCheckError(
                f"dimension mismatch: index {dim}, vectors {self.vectors.shape[1]}, "
                f"encoder {self.manifest['encoder']['embedding_size']}"
            )
        if int(self.searcher.size()) != len(self.item_ids):
            raise BundleCheckError(
                f"index holds {self.searcher.size()} vectors for {len(self.item_ids)} items"
            )
        probe = np.zeros((1, self.input_size, self.input_size, self.channels), np.uint8)
        out = np.asarray(self.predict(probe))
        if out.shape != (1, dim):
            raise BundleCheckError(f"encoder answers shape {out.shape}, index expects (1, {dim})")
        rng = np.random.default_rng(0)
        picks = rng.choice(len(self.item_ids), size=min(samples, len(self.item_ids)), replace=False)
        found = self.search(self.vectors[picks], 1)
        for j, hits in zip(picks, found, strict=True):
            if not hits or hits[0].score < float(self.vectors[j] @ self.vectors[j]) - 1e-3:
                raise BundleCheckError(
                    f"sample query for {self.item_ids[j]!r} did not find it (got {hits[:1]})"
                )

    # ------------------------------------------------------------------ change feed

    def apply(self, changes: FeedChanges, facts: dict[str, tuple[int, str]]) -> Applied:
        """Upserts and deletes of the change feed, in place, under the write lock.

        ``changes`` must start at the version this searcher holds (else ``StaleChanges``:
        another thread applied them first). ``facts``: category id and name of upserted items
        from the catalogue (an item it already holds keeps its own when none are given); a
        new item without them is skipped.
        A replaced item keeps its row, a new one gets the next; a deleted item's row stays,
        marked ``DELETED``, and the item is never returned again."""
        with self.guard.write():
            if changes.since_version != self.embeddings_version:
                raise StaleChanges(
                    f"changes start at v{changes.since_version}, "
                    f"this searcher holds v{self.embeddings_version}"
                )
            done = Applied(changes.until_version)
            gone = [i for i in changes.deletes if i in self.row]
            if gone:
                self.searcher.delete(gone)
                for item_id in gone:
                    self._categories[self.row.pop(item_id)] = DELETED
                self.deleted += len(gone)
            done.deleted = len(gone)
            crash_point("feed.applying")  # half applied: a restart resumes from its snapshot
            facts = self._known_facts(changes.upserts) | facts
            keep = [j for j, item_id in enumerate(changes.upserts) if item_id in facts]
            done.no_facts = [i for i in changes.upserts if i not in facts]
            if keep:
                ids = [changes.upserts[j] for j in keep]
                vectors = np.ascontiguousarray(changes.vectors[keep], np.float32)
                self.searcher.upsert(ids, vectors)
                done.added, done.replaced = self._put_rows(ids, vectors, facts)
            self.embeddings_version = changes.until_version
            return done

    def _known_facts(self, ids: list[str]) -> dict[str, tuple[int, str]]:
        """(category id, name) of the items in ``ids`` it holds (write lock held)."""
        out = {}
        for item_id in ids:
            j = self.row.get(item_id)
            if j is not None:
                c = int(self._categories[j])
                out[item_id] = (c, self.category_labels[c])
        return out

    def _put_rows(
        self, ids: list[str], vectors: np.ndarray, facts: dict[str, tuple[int, str]]
    ) -> tuple[int, int]:
        """The row-aligned copies of upserted items (write lock held); (added, replaced)."""
        added = replaced = 0
        for item_id, vector in zip(ids, vectors, strict=True):
            category, name = facts[item_id]
            self.category_labels.setdefault(category, name)
            j = self.row.get(item_id)
            if j is None:
                j = self._grow()
                self.item_ids.append(item_id)
                self.row[item_id] = j
                added += 1
            else:
                replaced += 1
            self._vectors[j] = vector
            self._categories[j] = category
        return added, replaced

    def _grow(self) -> int:
        """One more row (capacity doubled when full: an append is O(1) on average)."""
        if self._n == len(self._vectors):
            extra = max(64, self._n)
            self._vectors = np.concatenate(
                [self._vectors, np.zeros((extra, self._vectors.shape[1]), np.float32)]
            )
            self._categories = np.concatenate([self._categories, np.full(extra, DELETED, np.int32)])
        self._n += 1
        return self._n - 1


class StaleChanges(RuntimeError):
    """Changes that do not start where the searcher is (already applied, or a gap)."""


@dataclass
class Applied:
    """What one ``Recommender.apply`` did (the service logs and counts it)."""

    version: int
    added: int = 0
    replaced: int = 0
    deleted: int = 0
    no_facts: list[str] = field(default_factory=list)
