"""Training and evaluation images from the catalogue at a recorded Delta version."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from lookalike.catalog.sources import hashed_split
from lookalike.catalog.table import open_table
from lookalike.images import to_model_input
from lookalike.similarity.config import KERAS_APP_PREFIX, DataRef, TrainConfig


class EmptyDataError(ValueError):
    """A split or slice has no items to train or evaluate on."""


@dataclass
class ImageSet:
    """Items as arrays, ready for the model: ids, pixels, category ids and their names."""

    item_ids: np.ndarray  # str
    x: np.ndarray  # uint8, (n, size, size, channels)
    y: np.ndarray  # int32 category ids
    category_names: dict[int, str]

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, mask: np.ndarray) -> ImageSet:
        """The items where ``mask`` is true, in order."""
        return ImageSet(self.item_ids[mask], self.x[mask], self.y[mask], self.category_names)


def load_split(
    table_path: str,
    version: int,
    split: str,
    *,
    input_size: int,
    channels: int,
    limit: int | None = None,
    exclude_categories: Iterable[int] = (),
    only_categories: Iterable[int] | None = None,
    shard: tuple[int, int] = (0, 1),
) -> ImageSet:
    """Items of one split at ``version``, preprocessed to the model's input.

    Ordered by item id, so ``limit`` and ``shard=(rank, size)`` (every size-th item from
    rank) are deterministic: each Horovod rank reads its own disjoint shard.
    """
    dataset = open_table(table_path, version).to_pyarrow_dataset()
    # No filter pushdown: delta-rs MERGE writes string_view columns that pyarrow's dataset
    # filters cannot compare. Pass 1 reads only keys and chooses the rows...
    excluded = set(exclude_categories)
    only = None if only_categories is None else set(only_categories)
    chosen: list[tuple[str, int, str]] = []
    for b in dataset.to_batches(columns=["item_id", "category", "category_name", "split"]):
        for item_id, cat, name, sp in zip(
            *(b.column(i).to_pylist() for i in range(4)), strict=True
        ):
            if sp == split and cat not in excluded and (only is None or cat in only):
                chosen.append((item_id, cat, name))
    chosen.sort()
    if limit is not None:
        chosen = chosen[:limit]
    rank, size = shard
    chosen = chosen[rank::size]
    if not chosen:
        raise EmptyDataError(
            f"no {split!r} items at catalogue version {version}"
            + (f" (shard {rank}/{size})" if size > 1 else "")
            + (f" outside categories {sorted(excluded)}" if excluded else "")
            + (f" in categories {sorted(only)}" if only is not None else "")
        )
    # ... pass 2 streams the images and keeps only the chosen ones.
    position = {item_id: i for i, (item_id, _, _) in enumerate(chosen)}
    x = np.zeros((len(chosen), input_size, input_size, channels), dtype=np.uint8)
    for b in dataset.to_batches(columns=["item_id", "image"]):
        for item_id, png in zip(b.column(0).to_pylist(), b.column(1).to_pylist(), strict=True):
            i = position.get(item_id)
            if i is not None:
                x[i] = to_model_input(png, input_size, channels)
    return ImageSet(
        item_ids=np.asarray([c[0] for c in chosen]),
        x=x,
        y=np.asarray([c[1] for c in chosen], dtype=np.int32),
        category_names={cat: name for _, cat, name in chosen},
    )


#: Largest side chosen automatically: training cost grows with the square of the side, and
#: 64 px keeps a small catalogue's training within minutes on 2 CPU cores. Explicit wins.
AUTO_INPUT_SIZE_CAP = 64
AUTO_INPUT_SIZE_MIN = 16


def fit_to_catalog(cfg: TrainConfig, table_path: str, version: int) -> TrainConfig:
    """``cfg`` with what was not given chosen from the catalogue at ``version``.

    Channels: 3 when most training photos are colour, else 1 (grayscale stays grayscale).
    Size: the median longer side of the training photos, within
    [AUTO_INPUT_SIZE_MIN, AUTO_INPUT_SIZE_CAP] (at least 32 for keras: backbones).
    Schedule: ``TrainConfig.for_items`` of the items this configuration trains on.
    """
    if cfg.input_shape_known and cfg.schedule_known:
        return cfg
    dataset = open_table(table_path, version).to_pyarrow_dataset()
    excluded = set(cfg.exclude_categories)
    sides: list[int] = []
    colour = 0
    items = 0
    columns = ["split", "width", "height", "channels", "category"]
    for b in dataset.to_batches(columns=columns):
        for sp, w, h, c, cat in zip(*(b.column(i).to_pylist() for i in range(5)), strict=True):
            if sp == "train":
                sides.append(max(w, h))
                colour += c == 3
                items += cat not in excluded
    if not sides:
        raise EmptyDataError(f"no 'train' items at catalogue version {version}")
    channels = cfg.channels or (3 if colour * 2 >= len(sides) else 1)
    low = 32 if cfg.backbone.startswith(KERAS_APP_PREFIX) else AUTO_INPUT_SIZE_MIN
    size = cfg.input_size or int(np.clip(int(np.median(sides)), low, AUTO_INPUT_SIZE_CAP))
    if cfg.train_limit is not None:
        items = min(items, cfg.train_limit)
    return cfg.replace(input_size=size, channels=channels).for_items(items)


def load_training_items(
    cfg: TrainConfig, ref: DataRef, shard: tuple[int, int] = (0, 1)
) -> ImageSet:
    """The train-split items a configuration trains on (its limit, its held-out categories)."""
    return load_split(
        ref.table_path,
        ref.version,
        "train",
        input_size=cfg.size,
        channels=cfg.n_channels,
        limit=cfg.train_limit,
        exclude_categories=cfg.exclude_categories,
        shard=shard,
    )


def _photo_keys(items: ImageSet) -> list[str]:
    """One key per item that equal pixels share (what copies of one photo have in common)."""
    return [hashlib.sha256(x.tobytes()).hexdigest() for x in items.x]


def distinct_photos(items: ImageSet) -> ImageSet:
    """``items`` with each distinct photo once (the first item showing it), order kept.

    Retail catalogues list one photo under many ids (colour variants, reused shots; ~60% of
    the icon benchmark's items). For training, copies add no information: they skew the
    sampler towards the duplicated photos and, as positives of each other, make zero-distance
    pairs that teach nothing (icon benchmark: p@1 0.574 -> 0.647 when trained on distinct
    photos). The evaluation index keeps every item.
    """
    _, first = np.unique(_photo_keys(items), return_index=True)
    keep = np.zeros(len(items), dtype=bool)
    keep[first] = True
    return items.subset(keep)


def validation_split(items: ImageSet, fraction: float = 0.1) -> tuple[ImageSet, ImageSet]:
    """(fit, validation) slices of the TRAIN split, by a hash of each item's pixels.

    Hyperparameter search scores on the validation slice, never on the test split. Hashing
    the pixels (not the id) keeps copies of one photo on one side, as the ingest split does.
    """
    held = np.array([hashed_split(key, fraction) == "test" for key in _photo_keys(items)])
    fit, val = items.subset(~held), items.subset(held)
    if len(val) == 0 or len(fit) == 0:
        raise EmptyDataError(
            f"validation fraction {fraction} leaves an empty slice of {len(items)}"
        )
    return fit, val
