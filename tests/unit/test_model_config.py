"""Training configuration: bad values are refused with the field's name."""

import pytest

from lookalike.similarity.config import ConfigError, TrainConfig


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"backbone": "resnet9000"}, "backbone"),
        ({"channels": 2}, "channels"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"epochs": "three"}, "epochs"),
        ({"examples_per_class": 1}, "examples_per_class"),
        ({"backbone": "keras:MobileNetV2", "input_size": 28}, "input_size"),
        ({"batch": 64}, "batch"),
        ({"shift": 0.7}, "shift"),
        ({"ema_momentum": 1.0}, "ema_momentum"),
        ({"erase": 1.5}, "erase"),
        ({"loss_beta": 0}, "loss_beta"),
        ({"loss_lmda": 3.0}, "loss_lmda"),
        ({"proxy_loss_weight": -1}, "proxy_loss_weight"),
        ({"proxy_scale": 0}, "proxy_scale"),
        ({"conv_features_weight": -0.5}, "conv_features_weight"),
        ({"conv_features_size": 0}, "conv_features_size"),
        ({"flip_average": "yes"}, "flip_average"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"input_size": "big"}, "input_size"),
        ({"backbone": "keras:MobileNetV2", "weights": "coco"}, "weights"),
        ({"weights": "imagenet"}, "weights"),  # convnet has no pretrained weights
        ({"freeze_epochs": 1, "epochs": 3}, "freeze_epochs"),  # convnet: nothing to freeze
        ({"backbone": "keras:MobileNetV2", "freeze_epochs": 3, "epochs": 3}, "freeze_epochs"),
        ({"backbone": "keras:MobileNetV2", "fine_tune_lr_scale": 0}, "fine_tune_lr_scale"),
        (
            {"backbone": "keras:MobileNetV2", "weights": "imagenet", "weights_file": "w.h5"},
            "weights_file",
        ),
    ],
)
def test_bad_values_name_the_field(values, field):
    with pytest.raises(ConfigError, match=rf"^{field}: "):
        TrainConfig.from_dict(values)


def test_round_trip_through_params_and_dict():
    cfg = TrainConfig.from_dict(
        {"backbone": "seed_cnn", "exclude_categories": [7, 8, 9], "epochs": "3"}
    )
    assert cfg.exclude_categories == (7, 8, 9) and cfg.epochs == 3
    assert TrainConfig.from_dict(cfg.as_dict()) == cfg
    assert cfg.to_params()["exclude_categories"] == "[7, 8, 9]"
    assert cfg.batch_size == 100


def test_input_shape_is_open_until_resolved():
    cfg = TrainConfig()
    assert not cfg.input_shape_known
    with pytest.raises(ConfigError, match=r"^input_size: not resolved"):
        _ = cfg.size
    sized = TrainConfig.from_dict({"input_size": "48", "channels": 3})
    assert sized.input_shape_known and (sized.size, sized.n_channels) == (48, 3)


def test_schedule_follows_the_catalogue_size_unless_given():
    fm = TrainConfig().for_items(60_000)  # Fashion-MNIST: today's 10 x 600
    assert (fm.epochs, fm.steps_per_epoch) == (10, 600)
    small = TrainConfig().for_items(1_070)  # one pass = 11 steps; at least 300 steps in all
    assert (small.epochs, small.steps_per_epoch) == (28, 11)
    given = TrainConfig(epochs=2, steps_per_epoch=5).for_items(1_070)
    assert (given.epochs, given.steps_per_epoch) == (2, 5)
    with pytest.raises(ConfigError, match=r"^freeze_epochs: must be < epochs \(10\)"):
        TrainConfig(backbone="keras:MobileNetV2", freeze_epochs=10).for_items(60_000)


def test_mirror_averaging_needs_a_model_trained_with_flips():
    assert TrainConfig().mirrored  # the default: flips in training, averaged when saved
    assert not TrainConfig(augment=False).mirrored
    assert not TrainConfig(flip_average=False).mirrored
