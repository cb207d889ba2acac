"""Training configuration: one validated value that every entry point (CLI, Spark job,
Hyperopt trial, Horovod rank) passes around and MLflow logs as parameters."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lookalike.training.devices import PRECISIONS

BACKBONES = ("seed_cnn", "convnet")
KERAS_APP_PREFIX = "keras:"
WEIGHTS = ("random", "imagenet")
DEFAULT_EPOCHS = 10
MIN_TRAIN_STEPS = 300


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the field."""


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (``--set``) as a dict; VALUE is JSON when it parses, else text."""
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--set: expected KEY=VALUE, got {item!r}")
        try:
            values[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[key.strip()] = raw
    return values


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; validated on creation, so a bad value fails early
    with its field name (the CLI, DAG params and Hyperopt all build one)."""

    backbone: str = "convnet"  # seed_cnn | convnet | keras:<tf.keras.applications name>
    # images are letterboxed to input_size x input_size; None: chosen from the catalogue
    # (lookalike.similarity.data.fit_to_catalog), so a retailer's RGB photos train in colour
    input_size: int | None = None
    channels: int | None = None  # 1 = grayscale, 3 = RGB; None: from the catalogue
    embedding_size: int = 128
    width: int = 32  # filters of the first conv block (backbone width)
    dropout: float = 0.2
    augment: bool = True  # random horizontal flip while training (+ shifts when shift > 0)
    shift: float = 0.0  # random translation as a fraction of the size (0 = none)
    erase: float = 0.0  # share of training images with one random rectangle erased (0 = none)
    learning_rate: float = 2e-3
    lr_schedule: str = "cosine"  # constant | cosine (decays to 5% over the whole run)
    ema_momentum: float = 0.0  # > 0: the final weights are this exponential moving average
    # MultiSimilarityLoss (TF Similarity's defaults, those of the paper's reference code):
    loss_alpha: float = 2.0  # positive scale: how sharply far positives dominate
    loss_beta: float = 40.0  # negative scale: how sharply close negatives dominate
    loss_lmda: float = 0.5  # margin, as a cosine distance, both weightings centre on
    loss_epsilon: float = 0.1  # pair-mining slack
    # > 0: beside MultiSimilarityLoss, a cosine-softmax loss (one learned, L2-normalised proxy
    # per category; logits = proxy_scale x cosine) at this weight. Training only: the saved
    # encoder is the same network. Off by default: it raises mAP@R but not p@1, at a small
    # training cost. Measured: docs/benchmarks.md#current-figures (proxy head).
    proxy_loss_weight: float = 0.0
    proxy_scale: float = 16.0
    # > 0: the saved encoder outputs the embedding concatenated with this weight x its last
    # convolution block (flattened; a keras: application's pooled features), randomly
    # projected (fixed, seeded) to conv_features_size and L2-normalised; 0 = the embedding
    # alone. Training is unchanged (the loss sees the embedding only). Why: on categories the
    # model never saw, the convolution features keep what the embedding discards; 0.5 is the
    # smallest weight whose unseen hard categories beat raw pixels, at a small cost in seen
    # mAP@R; the index stores conv_features_size more floats per item. Measured:
    # docs/benchmarks.md#current-figures (convolution features, and its weight sweep)
    conv_features_weight: float = 0.5
    conv_features_size: int = 256
    # True (with augment, which trains the model to see a mirror image as the same product):
    # the saved encoder outputs the mean of a photo's output and its mirror image's,
    # re-normalised, so catalogue items and queries alike are embedded flip-invariantly.
    # Training is unchanged; inference does twice the work, for higher p@1 and mAP@R (1-pixel
    # shifts as well did not help). Measured:
    # docs/benchmarks.md#2026-12-03-evening-bfloat16-on-a-cpu-with-amx-and-mirror-averaging
    flip_average: bool = True
    # None: from the catalogue (``for_items``): an epoch is one pass over the training items
    # (Fashion-MNIST: 600 steps x 100 images), and DEFAULT_EPOCHS epochs but at least
    # MIN_TRAIN_STEPS steps, so a small catalogue gets more passes. Training time on
    # Fashion-MNIST's 60k: docs/benchmarks.md#retrieval-quality
    epochs: int | None = None
    steps_per_epoch: int | None = None
    classes_per_batch: int = 10
    # batches of 100: twice the updates of 200 for the same images, which fits better at this
    # budget. Measured: docs/benchmarks.md#earlier-runs
    examples_per_class: int = 10
    seed: int = 42
    train_limit: int | None = None  # at most this many training items (small runs, tests)
    exclude_categories: tuple[int, ...] = ()  # held out of training: the "unseen" evaluation
    # keras: backbones only. Initial weights: "random", "imagenet" (Keras downloads them:
    # machines that can reach it) or a weights file of the application without its top.
    weights: str = "random"
    weights_file: str | None = None
    freeze_epochs: int = 0  # first epochs train the head only (the backbone frozen)
    fine_tune_layers: int = 0  # then unfreeze this many top backbone layers (0 = all)
    fine_tune_lr_scale: float = 0.1  # ... at this share of the learning rate
    # float32 | mixed (mixed_float16 on a GPU, mixed_bfloat16 on a CPU with native bfloat16,
    # else float32) | mixed_float16 | mixed_bfloat16: lookalike.training.devices
    precision: str = "float32"

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, msg: str) -> None:
            if not ok:
                raise ConfigError(f"{name}: {msg}, got {getattr(self, name)!r}")

        need(
            self.backbone in BACKBONES or self.backbone.startswith(KERAS_APP_PREFIX),
            "backbone",
            f"unknown backbone (choose {', '.join(BACKBONES)} or keras:<ApplicationName>)",
        )
        need(self.input_size is None or self.input_size >= 8, "input_size", "must be >= 8")
        need(self.channels in (None, 1, 3), "channels", "must be 1 or 3")
        need(self.embedding_size >= 2, "embedding_size", "must be >= 2")
        need(self.width >= 1, "width", "must be >= 1")
        need(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        need(0.0 <= self.shift < 0.5, "shift", "must be in [0, 0.5)")
        need(0.0 <= self.erase <= 1.0, "erase", "must be in [0, 1]")
        need(0.0 < self.learning_rate < 1.0, "learning_rate", "must be in (0, 1)")
        need(
            self.lr_schedule in ("constant", "cosine"), "lr_schedule", "must be constant or cosine"
        )
        need(0.0 <= self.ema_momentum < 1.0, "ema_momentum", "must be in [0, 1)")
        need(self.precision in PRECISIONS, "precision", f"must be one of {', '.join(PRECISIONS)}")
        self._check_losses(need)
        self._check_outputs(need)
        need(self.epochs is None or self.epochs >= 1, "epochs", "must be >= 1")
        need(
            self.steps_per_epoch is None or self.steps_per_epoch >= 1,
            "steps_per_epoch",
            "must be >= 1",
        )
        need(self.classes_per_batch >= 2, "classes_per_batch", "must be >= 2")
        need(self.examples_per_class >= 2, "examples_per_class", "must be >= 2")
        need(self.train_limit is None or self.train_limit >= 2, "train_limit", "must be >= 2")
        need(self.weights in WEIGHTS, "weights", f"must be one of {', '.join(WEIGHTS)}")
        need(self.freeze_epochs >= 0, "freeze_epochs", "must be >= 0")
        need(
            self.freeze_epochs == 0 or self.epochs is None or self.freeze_epochs < self.epochs,
            "freeze_epochs",
            "must leave at least one epoch to fine-tune (< epochs)",
        )
        need(self.fine_tune_layers >= 0, "fine_tune_layers", "must be >= 0")
        need(0.0 < self.fine_tune_lr_scale <= 1.0, "fine_tune_lr_scale", "must be in (0, 1]")
        if self.backbone.startswith(KERAS_APP_PREFIX):
            need(
                self.input_size is None or self.input_size >= 32,
                "input_size",
                "keras: backbones need >= 32",
            )
        else:
            for name in ("weights_file", "freeze_epochs"):
                need(not getattr(self, name), name, "only for keras:<Application> backbones")
            need(self.weights == "random", "weights", "only for keras:<Application> backbones")
        need(
            not (self.weights == "imagenet" and self.weights_file),
            "weights_file",
            "give weights=imagenet or a weights_file, not both",
        )

    def _check_losses(self, need: Callable[[bool, str, str], None]) -> None:
        """The loss settings (``__post_init__``'s ``need`` raises naming the field)."""
        need(self.loss_alpha > 0.0, "loss_alpha", "must be > 0")
        need(self.loss_beta > 0.0, "loss_beta", "must be > 0")
        need(0.0 <= self.loss_lmda <= 2.0, "loss_lmda", "must be a cosine distance in [0, 2]")
        need(0.0 <= self.loss_epsilon < 1.0, "loss_epsilon", "must be in [0, 1)")
        need(self.proxy_loss_weight >= 0.0, "proxy_loss_weight", "must be >= 0")
        need(self.proxy_scale > 0.0, "proxy_scale", "must be > 0")

    def _check_outputs(self, need: Callable[[bool, str, str], None]) -> None:
        """The saved encoder's output settings."""
        need(self.conv_features_weight >= 0.0, "conv_features_weight", "must be >= 0")
        need(self.conv_features_size >= 1, "conv_features_size", "must be >= 1")
        need(isinstance(self.flip_average, bool), "flip_average", "must be true or false")

    @property
    def mirrored(self) -> bool:
        """The saved encoder averages each photo with its mirror image (``flip_average``,
        only for a model trained with flips: ``augment``)."""
        return self.flip_average and self.augment

    @property
    def schedule_known(self) -> bool:
        """Both epochs and steps per epoch given (else ``for_items`` chooses them)."""
        return self.epochs is not None and self.steps_per_epoch is not None

    def for_items(self, n_items: int) -> TrainConfig:
        """The schedule for ``n_items`` training items, where not given: one pass over them
        per epoch, DEFAULT_EPOCHS epochs but at least MIN_TRAIN_STEPS steps in all.

        Why: Fashion-MNIST's 60k items keep today's 10 x 600 steps, while 1,000 photos would
        get 10 x 10 = 100 steps, too few to learn (measured on the icon catalogue of
        bench/byo.py: 30 passes of 10 steps beat raw pixels, 20 did not).
        """
        steps = self.steps_per_epoch or max(1, -(-n_items // self.batch_size))
        epochs = self.epochs or max(DEFAULT_EPOCHS, -(-MIN_TRAIN_STEPS // steps))
        if self.freeze_epochs and self.freeze_epochs >= epochs:
            raise ConfigError(
                f"freeze_epochs: must be < epochs ({epochs}), got {self.freeze_epochs}"
            )
        return self.replace(epochs=epochs, steps_per_epoch=steps)

    def _resolved(self, name: str) -> int:
        """A setting that may be left to the catalogue (None) once ``fit_to_catalog`` or
        ``for_items`` chose it; before that, using it is a clear error naming the field."""
        value = getattr(self, name)
        if value is None:
            raise ConfigError(f"{name}: not resolved from the catalogue yet")
        return int(value)

    @property
    def n_epochs(self) -> int:
        """Epochs, once resolved (a clear error while still None)."""
        return self._resolved("epochs")

    @property
    def n_steps(self) -> int:
        """Steps per epoch, once resolved."""
        return self._resolved("steps_per_epoch")

    @property
    def input_shape_known(self) -> bool:
        """Both input size and channels given (else the catalogue chooses them)."""
        return self.input_size is not None and self.channels is not None

    @property
    def size(self) -> int:
        """The input side; only valid once the shape is resolved (see ``fit_to_catalog``)."""
        return self._resolved("input_size")

    @property
    def n_channels(self) -> int:
        """Channels, once resolved."""
        return self._resolved("channels")

    @property
    def output_size(self) -> int:
        """The saved encoder's output width: the embedding, plus the convolution features
        when ``conv_features_weight`` > 0 (what the index stores per item)."""
        extra = self.conv_features_size if self.conv_features_weight > 0 else 0
        return self.embedding_size + extra

    @property
    def batch_size(self) -> int:
        """Images per class-balanced batch."""
        return self.classes_per_batch * self.examples_per_class

    def to_params(self) -> dict[str, Any]:
        """Flat parameters for MLflow."""
        return {
            k: (json.dumps(list(v)) if isinstance(v, tuple) else v)
            for k, v in self.as_dict().items()
        }

    def as_dict(self) -> dict[str, Any]:
        """Plain values, as MLflow logs them and ``from_dict`` reads them back."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from loose values (CLI, JSON, Hyperopt); unknown keys are an error."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown setting (known: {', '.join(sorted(names))})")
        clean = dict(values)
        if "exclude_categories" in clean:
            clean["exclude_categories"] = tuple(int(c) for c in clean["exclude_categories"] or ())
        # Numbers may arrive as text (--set, environment, JSON strings): cast by declared type.
        casts = {
            "int": (int, "an integer"),
            "int | None": (int, "an integer"),
            "float": (float, "a number"),
        }
        for k, f in names.items():
            if k in clean and clean[k] is not None and str(f.type) in casts:
                cast, what = casts[str(f.type)]
                try:
                    clean[k] = cast(clean[k])
                except (TypeError, ValueError):
                    raise ConfigError(f"{k}: must be {what}, got {clean[k]!r}") from None
        return cls(**clean)

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with ``changes``."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class DataRef:
    """Which catalogue snapshot a run used: MLflow logs it as the run's dataset input."""

    table_path: str
    version: int
    extra: dict[str, Any] = field(default_factory=dict)
