"""The similarity encoder on a small Fashion-MNIST slice: training, evaluation, MLflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lookalike.similarity.config import TrainConfig
from lookalike.similarity.data import EmptyDataError, fit_to_catalog, load_split, validation_split

TINY = {
    "backbone": "seed_cnn",
    "epochs": 2,
    "steps_per_epoch": 25,
    "examples_per_class": 8,
    "augment": False,
}


def test_load_split_is_deterministic_sharded_and_filtered(small_catalog):
    table = small_catalog.catalog_uri
    full = load_split(table, 1, "train", input_size=28, channels=1)
    assert full.x.shape == (600, 28, 28, 1) and full.x.dtype == np.uint8
    a = load_split(table, 1, "train", input_size=28, channels=1, shard=(0, 2))
    b = load_split(table, 1, "train", input_size=28, channels=1, shard=(1, 2))
    assert len(a) + len(b) == 600 and not set(a.item_ids) & set(b.item_ids)
    rgb = load_split(table, 1, "test", input_size=32, channels=3, limit=5, exclude_categories=[9])
    assert rgb.x.shape == (5, 32, 32, 3) and 9 not in rgb.y
    fit, val = validation_split(full)
    assert len(val) > 20 and not set(fit.item_ids) & set(val.item_ids)
    # no input shape given: Fashion-MNIST stays 28 px grayscale; explicit settings win
    auto = fit_to_catalog(TrainConfig(), table, 1)
    assert (auto.input_size, auto.channels) == (28, 1)
    given = fit_to_catalog(TrainConfig(input_size=40), table, 1)
    assert (given.input_size, given.channels) == (40, 1)


def test_empty_split_is_a_clear_error(small_catalog):
    with pytest.raises(
        EmptyDataError, match="no 'train' items at catalogue version 1 outside categories"
    ):
        load_split(
            small_catalog.catalog_uri,
            1,
            "train",
            input_size=28,
            channels=1,
            exclude_categories=range(10),
        )


def test_training_beats_the_untrained_model(small_catalog):
    from lookalike.similarity.evaluate import retrieval_metrics
    from lookalike.similarity.model import build_encoder, embed, train_encoder

    cfg = TrainConfig.from_dict(TINY | {"epochs": 3, "steps_per_epoch": 40})
    table = small_catalog.catalog_uri
    train = load_split(table, 1, "train", input_size=28, channels=1)
    test = load_split(table, 1, "test", input_size=28, channels=1)

    def p_at_1(model) -> float:
        return retrieval_metrics(embed(model, test.x), test.y, embed(model, train.x), train.y)[
            "precision_at_1"
        ]

    untrained = p_at_1(build_encoder(cfg.replace(input_size=28, channels=1)))
    model, history = train_encoder(cfg, train)
    trained = p_at_1(model)
    assert history["loss"][-1] < history["loss"][0]
    assert trained > untrained + 0.03, (untrained, trained)


def test_training_run_is_tracked_and_registered(small_catalog):
    import mlflow
    from mlflow import MlflowClient

    from lookalike.similarity.training import run_training

    cfg = TrainConfig.from_dict(TINY | {"exclude_categories": [7, 8, 9]})
    result = run_training(cfg, settings=small_catalog, eval_limit=300)
    client = MlflowClient(small_catalog.tracking_uri)
    run = client.get_run(result.run_id)
    assert run.data.params["backbone"] == "seed_cnn"
    assert {
        "precision_at_1",
        "map_at_r",
        "recall_at_5",
        "baseline_raw_pixels_precision_at_1",
        "unseen_precision_at_1",
        "unseen_baseline_raw_pixels_map_at_r",
        "train_seconds",
    } <= set(run.data.metrics)
    assert len(client.get_metric_history(result.run_id, "train_loss")) == 2  # one per epoch
    assert run.data.tags["catalog.version"] == "1"
    inputs = run.inputs.dataset_inputs
    assert inputs and json.loads(inputs[0].dataset.source)["delta_table_version"] == 1
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "evaluation")}
    assert {
        "evaluation/neighbours.png",
        "evaluation/projection.png",
        "evaluation/loss.png",
    } <= artifacts
    assert set(result.unseen["model"]["per_category_precision_at_1"]) == {
        "Sneaker",
        "Bag",
        "Ankle boot",
    }

    mv = client.get_model_version_by_alias("lookalike-encoder", "challenger")
    assert str(mv.version) == result.model_version and mv.run_id == result.run_id

    mlflow.set_tracking_uri(small_catalog.tracking_uri)
    model = mlflow.pyfunc.load_model("models:/lookalike-encoder@challenger")
    assert model.metadata.signature.inputs.inputs[0].type == np.dtype(np.uint8)
    emb = model.predict(np.zeros((3, 28, 28, 1), dtype=np.uint8))
    assert emb.shape == (3, 128 + 256) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)


def test_cli_refuses_a_bad_configuration(tmp_path):
    env = os.environ | {"LOOKALIKE_HOME": str(tmp_path)}
    for args, message in [
        (["train", "--set", "backbone=resnet9000"], "backbone: unknown backbone"),
        (["train", "--set", "epochs"], "--set: expected KEY=VALUE"),
        (["tune", "--trials", "0"], "--trials: must be >= 1"),
    ]:
        out = subprocess.run(
            [sys.executable, "-m", "lookalike.cli", *args], env=env, capture_output=True, text=True
        )
        assert out.returncode == 2 and message in out.stderr, out.stderr


@pytest.mark.slow
def test_json_commands_print_only_json_on_stdout(small_catalog):
    """TF Similarity prints progress with print(): it goes to stderr, the result to stdout."""
    env = os.environ | {"LOOKALIKE_HOME": str(small_catalog.home)}
    sets = ["backbone=seed_cnn", "epochs=1", "steps_per_epoch=3", "augment=false"]
    outputs = []
    for args in [
        ["train", "--json", "--no-register", "--eval-limit", "50"]
        + [a for s in sets for a in ("--set", s)],
        ["catalog", "stats"],
    ]:
        out = subprocess.run(
            [sys.executable, "-m", "lookalike.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        outputs.append(out)
        json.loads(out.stdout)  # nothing else on stdout
        assert "Warmup complete" not in out.stdout
    assert "Warmup complete" in outputs[0].stderr  # the chatter went to stderr


@pytest.mark.slow
def test_rgb_photos_of_other_sizes_train_with_a_keras_application(spark, settings, photo_folder):
    from lookalike.catalog.ingest import ingest_folder
    from lookalike.similarity.model import embed, train_encoder

    ingest_folder(spark, photo_folder, settings=settings)
    # RGB photos 32 px wide: without settings, training picks 3 channels and 32 px
    auto = fit_to_catalog(TrainConfig(backbone="keras:MobileNetV2"), settings.catalog_uri, 1)
    assert (auto.input_size, auto.channels) == (32, 3)
    photos = load_split(settings.catalog_uri, 1, "train", input_size=32, channels=3)
    assert photos.x.shape[1:] == (32, 32, 3) and len(set(photos.y)) == 3
    cfg = TrainConfig.from_dict(
        {
            "backbone": "keras:MobileNetV2",
            "input_size": 32,
            "channels": 3,
            "epochs": 1,
            "steps_per_epoch": 2,
            "classes_per_batch": 3,
            "examples_per_class": 4,
            "embedding_size": 32,
        }
    )
    model, history = train_encoder(cfg, photos)
    assert np.isfinite(history["loss"]).all()
    assert embed(model, photos.x[:5]).shape == (5, 32 + 256)  # + the default conv features


def test_evaluating_the_registered_version_reproduces_the_run(small_catalog):
    from lookalike.similarity.registry_eval import evaluate_registered
    from lookalike.similarity.training import run_training

    result = run_training(TrainConfig.from_dict(TINY), settings=small_catalog)
    out = evaluate_registered(small_catalog, result.model_version)
    assert out["version"] == result.model_version and out["catalog_version"] == 1
    # Same evaluation function and catalogue version, the model reloaded from the registry.
    for key in ("precision_at_1", "map_at_r", "recall_at_10"):
        assert out["metrics"][key] == pytest.approx(result.metrics[key], abs=0.005), key


def test_gate_refuses_an_encoder_worse_than_raw_pixels(small_catalog):
    """A 2-d embedding after 2 steps ranks worse than pixels: not promoted, even without a
    champion; the reason and the baseline's metrics are in the gate's MLflow run."""
    from mlflow import MlflowClient

    from lookalike.similarity.promotion import evaluate_gate
    from lookalike.similarity.training import run_training

    # a 2-d embedding alone (no conv features: their pixel-like detail would rescue it)
    weak_values = {"embedding_size": 2, "epochs": 1, "steps_per_epoch": 2}
    cfg = TrainConfig.from_dict(TINY | weak_values | {"conv_features_weight": 0})
    weak = run_training(cfg, settings=small_catalog, eval_limit=100)
    gate = evaluate_gate(small_catalog, challenger=weak.model_version)
    assert not gate.decision.promote
    assert "does not beat the raw pixels baseline" in gate.decision.reason
    assert gate.baseline_metrics["precision_at_1"] > gate.challenger_metrics["precision_at_1"]
    run = MlflowClient(small_catalog.tracking_uri).get_run(gate.run_id)
    assert run.data.tags["decision"] == "keep" and "baseline" in run.data.tags["reason"]
    assert "baseline_raw_pixels_precision_at_1" in run.data.metrics
    # the setting turns the baseline off: the challenger is judged against the champion only
    off = small_catalog.model_copy(update={"promote_require_baseline": False})
    assert evaluate_gate(off, challenger=weak.model_version).decision.baseline is None


@pytest.mark.slow
def test_pretrained_backbone_loads_from_a_weights_file_and_fine_tunes(tmp_path):
    """A Keras application starts from a weights file (saved here: no downloads), trains the
    head only for the warm-up epoch, then fine-tunes its top layers; batch norm statistics
    and the bottom layers keep the pretrained values; the encoder saves and reloads."""
    import tensorflow as tf

    import lookalike.similarity.model as enc
    from lookalike.similarity.data import ImageSet

    def layer_weights(base) -> dict[str, np.ndarray]:
        names = ("kernel", "depthwise_kernel", "gamma", "beta", "moving_mean", "moving_variance")
        return {
            f"{layer.name}/{name}": getattr(layer, name).numpy()
            for layer in base.layers
            for name in names
            if getattr(layer, name, None) is not None
        }

    tf.keras.utils.set_random_seed(1)
    pretrained = tf.keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg"
    )
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (36, 32, 32, 3), dtype=np.uint8)
    # "pretrain": batch norm statistics of real activations (one pass with momentum 0), as a
    # trained network has; random statistics would saturate its ReLU6s in inference mode
    for layer in pretrained.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.momentum = 0.0
    pretrained(
        tf.keras.applications.mobilenet_v2.preprocess_input(x.astype("float32")), training=True
    )
    weights_file = tmp_path / "mobilenet_v2_notop.h5"
    pretrained.save_weights(weights_file)
    saved = layer_weights(pretrained)
    cfg = TrainConfig.from_dict(
        {
            "backbone": "keras:MobileNetV2",
            "input_size": 32,
            "channels": 3,
            "weights_file": str(weights_file),
            "epochs": 2,
            "freeze_epochs": 1,
            "fine_tune_layers": 10,
            "steps_per_epoch": 3,
            "classes_per_batch": 3,
            "examples_per_class": 4,
            "embedding_size": 16,
            "augment": False,
        }
    )
    images = ImageSet(
        np.asarray([f"i{i}" for i in range(36)]),
        x,
        np.repeat(np.arange(3, dtype=np.int32), 12),
        {0: "a", 1: "b", 2: "c"},
    )

    def backbone_weights(model) -> dict[str, np.ndarray]:
        return layer_weights(model.get_layer(enc.BACKBONE_LAYER))

    assert all(
        np.array_equal(saved[k], v) for k, v in backbone_weights(enc.build_encoder(cfg)).items()
    )

    after_warmup: dict[str, np.ndarray] = {}

    class Snapshot(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if epoch == 0:
                after_warmup.update(backbone_weights(self.model))

    model, history = enc.train_encoder(cfg, images, callbacks=[Snapshot()])
    assert len(history["loss"]) == 2 and np.isfinite(history["loss"]).all()
    assert all(np.array_equal(saved[k], v) for k, v in after_warmup.items())  # frozen
    final = backbone_weights(model)
    assert np.array_equal(final["Conv1/kernel"], saved["Conv1/kernel"])  # bottom: kept
    assert not np.array_equal(final["Conv_1/kernel"], saved["Conv_1/kernel"])  # top: tuned
    bn = "Conv_1_bn/moving_mean"
    assert np.array_equal(final[bn], saved[bn])  # pretrained statistics kept

    path = tmp_path / "encoder.keras"
    enc.as_plain_keras(model).save(path)
    from lookalike.similarity.tfsim import import_tfsim

    import_tfsim()  # registers MetricEmbedding

    loaded = tf.keras.models.load_model(path, compile=False)
    np.testing.assert_allclose(
        enc.embed(loaded, images.x[:4]), enc.embed(model, images.x[:4]), atol=1e-5
    )


def test_batch_norm_statistics_are_recomputed_with_the_final_weights():
    import tensorflow as tf

    from lookalike.similarity.model import recalibrate_batch_norm

    inputs = tf.keras.Input((4,))
    bn = tf.keras.layers.BatchNormalization(momentum=0.99)
    model = tf.keras.Model(inputs, bn(inputs))
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 2.0, (2000, 4)).astype("float32")
    bn.moving_mean.assign([-100.0] * 4)  # stale statistics, as early in training
    assert recalibrate_batch_norm(model, x, 100, batches=40) == 1
    np.testing.assert_allclose(bn.moving_mean.numpy(), x.mean(axis=0), atol=0.2)
    np.testing.assert_allclose(bn.moving_variance.numpy(), x.var(axis=0), rtol=0.15)
    assert bn.momentum == 0.99  # restored
    bn.trainable = False  # a frozen (pretrained) layer keeps its statistics
    before = bn.moving_mean.numpy().copy()
    assert recalibrate_batch_norm(model, x + 10, 100, batches=5) == 0
    np.testing.assert_array_equal(bn.moving_mean.numpy(), before)


def test_only_backbones_with_batch_norm_have_state_for_horovod_to_average():
    """Horovod averages the floating non-trainable variables once at the end
    (``average_non_trainable``): ``convnet``'s batch norm statistics; ``seed_cnn`` has none,
    so its ranks agree by the gradients alone (``test_distributed`` runs the others)."""
    from lookalike.similarity.model import build_encoder

    def state(backbone: str) -> int:
        model = build_encoder(
            TrainConfig.from_dict(
                {"backbone": backbone, "embedding_size": 16, "input_size": 28, "channels": 1}
            )
        )
        return sum(v.dtype.is_floating for v in model.non_trainable_variables)

    assert state("seed_cnn") == 0 and state("convnet") > 0


def test_proxy_head_trains_beside_the_pair_loss_and_is_not_saved(small_catalog):
    """A cosine-softmax head (``proxy_loss_weight``) on categories that are not 0..n-1 (three
    held out): both losses fall, and the returned encoder is the plain network, its weights
    laid out as ``build_encoder``'s (so saving, serving and Horovod's averaging see no head)."""
    from lookalike.similarity.evaluate import retrieval_metrics
    from lookalike.similarity.model import (
        build_encoder,
        embed,
        encoder_of,
        saved_layout,
        train_encoder,
    )

    cfg = TrainConfig.from_dict(
        TINY | {"backbone": "convnet", "width": 8, "proxy_loss_weight": 1.0, "epochs": 3}
    )
    table = small_catalog.catalog_uri
    held_out = [2, 4, 6]
    train = load_split(table, 1, "train", input_size=28, channels=1, exclude_categories=held_out)
    test = load_split(table, 1, "test", input_size=28, channels=1, exclude_categories=held_out)
    model, history = train_encoder(cfg, train)

    pair, proxy = (k for k in history if k.endswith("_loss"))  # one per output
    assert proxy.startswith("proxies")
    for key in ("loss", pair, proxy):
        assert history[key][-1] < history[key][0], (key, history[key])
    plain = saved_layout(build_encoder(cfg.replace(input_size=28, channels=1)), cfg)
    assert encoder_of(model) is model and len(model.outputs) == 1
    assert [w.shape for w in model.weights] == [w.shape for w in plain.weights]
    m = retrieval_metrics(embed(model, test.x), test.y, embed(model, train.x), train.y)
    assert m["precision_at_1"] > 0.5, m


def test_conv_features_are_saved_registered_and_reloaded(small_catalog):
    """``conv_features_weight``: the registered encoder outputs the embedding beside the
    weighted, projected convolution block; the registry says the wider size (what the index
    allocates) and the model reloaded from it reproduces the run's evaluation."""
    import mlflow

    from lookalike.registry.encoders import fetch_encoder
    from lookalike.similarity.registry_eval import evaluate_registered
    from lookalike.similarity.training import run_training

    # without mirror averaging, so the two parts' lengths can be read off one output
    values = {"conv_features_weight": 0.5, "conv_features_size": 16, "flip_average": False}
    cfg = TrainConfig.from_dict(TINY | values)
    result = run_training(cfg, settings=small_catalog)
    assert fetch_encoder(small_catalog, "challenger").embedding_size == 128 + 16
    mlflow.set_tracking_uri(small_catalog.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/lookalike-encoder/{result.model_version}")
    test = load_split(small_catalog.catalog_uri, 1, "test", input_size=28, channels=1, limit=20)
    emb = model.predict(test.x)
    assert emb.shape == (20, 144) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    # unit embedding and 0.5 x unit projection, normalised together: norms 1 : 0.5
    parts = np.linalg.norm(emb[:, :128], axis=1), np.linalg.norm(emb[:, 128:], axis=1)
    assert np.allclose(parts[1] / parts[0], 0.5, atol=1e-3)
    out = evaluate_registered(small_catalog, result.model_version)
    for key in ("precision_at_1", "map_at_r"):
        assert out["metrics"][key] == pytest.approx(result.metrics[key], abs=0.005), key


def test_flip_average_makes_the_saved_encoder_mirror_invariant(tmp_path):
    """``flip_average`` (the default): a photo and its mirror image get the same vector, the
    mean direction of the network's two outputs; it saves, reloads and rebuilds from weights
    (Horovod's path) to the same function, and the layers stay reachable by name."""
    import tensorflow as tf

    import lookalike.similarity.model as enc
    from lookalike.similarity.tfsim import import_tfsim

    import_tfsim()  # registers MetricEmbedding for loading
    cfg = TrainConfig.from_dict({"input_size": 28, "channels": 1, "width": 8})
    assert cfg.flip_average and cfg.augment
    network = enc.with_conv_features(enc.build_encoder(cfg), cfg)
    model = enc.with_flip_average(network, cfg)
    x = np.random.default_rng(0).integers(0, 256, (6, 28, 28, 1), dtype=np.uint8)
    mirror = np.ascontiguousarray(x[:, :, ::-1])
    out = enc.embed(model, x)
    assert out.shape == (6, cfg.output_size)
    np.testing.assert_allclose(enc.embed(model, mirror), out, atol=1e-6)
    both = enc.embed(network, x) + enc.embed(network, mirror)
    np.testing.assert_allclose(out, both / np.linalg.norm(both, axis=1, keepdims=True), atol=1e-5)
    assert not np.allclose(enc.embed(network, x), out, atol=1e-3)  # it does change the vector
    assert enc.unflipped(model).get_layer(enc.CONV_FEATURES) is network.get_layer(enc.CONV_FEATURES)

    path = tmp_path / "encoder.keras"
    enc.as_plain_keras(model).save(path)
    loaded = tf.keras.models.load_model(path, compile=False)
    np.testing.assert_allclose(enc.embed(loaded, x), out, atol=1e-6)
    rebuilt = enc.encoder_from_weights(cfg, model.get_weights())
    np.testing.assert_allclose(enc.embed(rebuilt, x), out, atol=1e-6)
    off = cfg.replace(flip_average=False)
    assert enc.with_flip_average(network, off) is network
