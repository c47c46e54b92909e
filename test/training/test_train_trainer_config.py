"""TrainConfig validation (errors name the field), the shipped config/training/*.yaml files, and set-up errors of
the Trainer (AMP on the CPU, crop size vs network input)."""

from __future__ import annotations

import dataclasses

import pytest
from _trainer_testlib import REPO, SMOKE_CONFIG, smoke_config, tiny_datasets

from dfmvr_core.errors import ConfigError
from dfmvr_core.networks.net_config import SMALL_CONFIG
from dfmvr_training.train_config import TrainConfig, load_train_config, train_config_to_dict
from dfmvr_training.trainer import Trainer

BASE = {"data": ["d"], "morphable_model": "m.npz", "steps": 10}


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"batch_size": 0}, "train.batch_size"),
        ({"lr": -1.0}, "train.lr"),
        ({"lr": "fast"}, "train.lr"),
        ({"amp": "fp8"}, "train.amp"),
        ({"mask_input_source": "parser"}, "train.mask_input_source"),
        ({"mask_loss_source": "parser"}, "train.parser_checkpoint"),
        ({"epochs": 3}, "train.steps"),
        ({"steps": None}, "train.steps"),
        ({"device": "gpu"}, "train.device"),
        ({"losses": {"preset": "paper", "photo": -1.0}}, "photo"),
        ({"losses": {"preset": "nope"}}, "preset"),
        ({"ablation": "v9"}, "train.ablation"),
        ({"grad_clip_norm": 0.0}, "train.grad_clip_norm"),
        ({"num_workers": -1}, "train.num_workers"),
        ({"mode": "finetune"}, "train.mode"),
        ({"data": []}, "train.data"),
        ({"network_config": {"name": "x", "encoder_channels": [4], "fused_channels": 4}}, "encoder_channels"),
        ({"batchsize": 4}, "train.batchsize"),
        ({"warmup_steps": -1}, "train.warmup_steps"),
        ({"compile": "yes"}, "train.compile"),
        ({"input_views": ["front"]}, "view_dropout: false"),
        ({"input_views": ["top"], "view_dropout": False}, "train.input_views"),
        ({"input_views": [], "view_dropout": False}, "train.input_views"),
        ({"input_views": ["front", "front"], "view_dropout": False}, "train.input_views"),
        ({"input_views": ["front"], "view_dropout": False, "network": "deep3dface"}, "train_views"),
    ],
)
def test_train_trainer_config_bad_value_names_field(override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_train_config({**BASE, **override})


def test_train_trainer_config_losses_and_ablations():
    config = load_train_config({**BASE, "losses": {"preset": "authors_code", "photo": 5.0}, "ablation": "v5"})
    assert config.loss_weights.photo == 5.0 and config.loss_weights.lighting == 10.0
    assert config.loss_weights.use_landmark_3d is False  # v5
    assert config.loss_weights.mask == 0.0 and "no face parser" in config.mask_loss_disabled_reason
    v3 = load_train_config({**BASE, "ablation": "v3"}).network_definition()
    assert v3.regressor == "resnet" and v3.name == "small-v3"
    assert load_train_config({**BASE, "ablation": "v5"}).network_definition() == SMALL_CONFIG
    with_parser = load_train_config({**BASE, "mask_loss_source": "parser", "parser_checkpoint": "p.pth"})
    assert with_parser.loss_weights.mask == 3.0 and with_parser.mask_loss_disabled_reason is None


def test_train_trainer_config_round_trips_through_dict():
    config = load_train_config(SMOKE_CONFIG)
    again = load_train_config(train_config_to_dict(config))
    assert again == config and again.network_config == config.network_config


def test_train_trainer_shipped_configs_load():
    default = load_train_config(REPO / "config" / "training" / "small_synthetic.yaml")
    assert isinstance(default, TrainConfig)
    assert default.network_definition() == SMALL_CONFIG
    assert (default.lr, default.lr_schedule, default.mask_loss_source) == (1e-4, "cosine", "none")
    assert default.loss_weights == dataclasses.replace(default.loss_weights, mask=0.0)
    smoke = load_train_config(SMOKE_CONFIG)
    assert smoke.network_definition().input_size == 64 and smoke.steps == 30
    with pytest.raises(ConfigError, match="train"):
        load_train_config(REPO / "config" / "rig.yaml")


TRAINING_CONFIGS = sorted(
    path for path in (REPO / "config" / "training").glob("*.yaml") if "train:" in path.read_text(encoding="utf-8")
)


@pytest.mark.parametrize("path", TRAINING_CONFIGS, ids=lambda path: path.name)
def test_every_shipped_training_config_loads(path):
    config = load_train_config(path)
    assert config.steps > 0 and config.batch_size > 0


@pytest.mark.parametrize("stage", ["stage1", "stage1b", "stage2"])
def test_default_model_and_its_single_view_twin_share_the_recipe(stage):
    """The default model's comparison is fair: its single-view baseline differs in the cameras only."""
    three = train_config_to_dict(load_train_config(REPO / "config" / "training" / f"small_default_{stage}.yaml"))
    one = train_config_to_dict(load_train_config(REPO / "config" / "training" / f"small_front_{stage}.yaml"))
    differing = {key for key in three.keys() | one.keys() if three.get(key) != one.get(key)}
    assert differing <= {"input_views", "view_dropout", "out_dir", "init_checkpoint"}, differing
    assert three["input_views"] != one["input_views"] and three["steps"] == one["steps"]


def test_train_trainer_setup_errors(tmp_path_factory, ict_npz, tmp_path):
    data = tiny_datasets(tmp_path_factory, ict_npz)
    with pytest.raises(ConfigError, match="amp"):
        Trainer(smoke_config(data, tmp_path / "a", amp="bf16"))
    with pytest.raises(ConfigError, match="input_size"):
        Trainer(smoke_config(data, tmp_path / "b", network_config=None, network="small"))
    with pytest.raises(ConfigError, match="batch_size"):
        Trainer(smoke_config(data, tmp_path / "c", batch_size=16))
