"""Encoder + index version + item rows = one thing that answers "similar to this".

Used two ways: inside the ``lookalike-recommender`` pyfunc (``mlflow.pyfunc.load_model``) and
directly by the service, which loads a bundle once and keeps it in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from lookalike.images import normalise_image
from lookalike.index import scann_index as sx
from lookalike.index.hits import BundleCheckError, Hit
from lookalike.registry.encoders import Predict, embed_images, load_predict


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
        self.vectors = vectors
        self.manifest = manifest
        self.bundle_version = bundle_version
        self.item_ids: list[str] = items.column("item_id").to_pylist()
        self.categories = items.column("category").to_numpy().astype(np.int32)
        # one name per category, not one string per item (~70 MB at 1M items)
        cats, first = np.unique(self.categories, return_index=True)
        names = items.column("category_name").take(pa.array(first)).to_pylist()
        self.category_labels: dict[int, str] = dict(zip(cats.tolist(), names, strict=True))
        self.row = {item_id: j for j, item_id in enumerate(self.item_ids)}
        enc = manifest["encoder"]
        self.input_size, self.channels = int(enc["input_size"]), int(enc["channels"])
        self.tuning = sx.SearchTuning.of(manifest)

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
        return len(self.item_ids)

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
        rows = []
        for item_id in item_ids:
            j = self.row.get(item_id)
            if j is None:
                raise UnknownItem(item_id)
            rows.append(j)
        queries = self.vectors[rows]
        exclude = [{self.item_ids[j]} if exclude_self else set() for j in rows]
        return self.search(queries, k, exclude=exclude, category=category)

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
            found, scores = self._ann(queries, min(k + extra, len(self.item_ids)))
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
        """ScaNN's ids and scores per query. One query (every by-id request) goes through the
        single-query call: the batched one's result conversion costs more than its search."""
        q = np.ascontiguousarray(queries, np.float32)
        opts = self.tuning.options(want)
        if len(q) == 1:
            ids, dist = self.searcher.search(q[0], final_num_neighbors=want, **opts)
            return [list(ids)], [dist.tolist()]
        found, dist = self.searcher.search_batched(q, final_num_neighbors=want, **opts)
        return found, dist.tolist()

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
