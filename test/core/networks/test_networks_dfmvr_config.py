"""DF-MVR network configuration: validation, named configs, YAML files, ablation switches."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dfmvr_core.config import from_mapping
from dfmvr_core.errors import ConfigError
from dfmvr_core.networks.net_config import (
    NAMED_CONFIGS,
    PAPER_CONFIG,
    SMALL_CONFIG,
    NetworkConfig,
    ViewDropoutConfig,
    ablation_config,
    load_network_config,
)

REPO = Path(__file__).resolve().parents[3]


def test_paper_config_matches_the_paper() -> None:
    c = PAPER_CONFIG
    assert c.encoder_channels == (64, 128, 256, 512, 1024)
    assert c.fused_channels == 64
    assert (c.regressor, c.regressor_depth, c.regressor_width) == ("rednet", 50, 1.0)
    assert (c.fusion, c.mask_input, c.attention_gates, c.views) == ("tri_unet", "label", True, 3)
    assert (c.input_size, c.input_downsample, c.fusion_size) == (224, 1, 224)
    assert c.view_in_channels == 4  # RGB + 1-channel label mask
    assert c.view_dropout.p_all_views == pytest.approx(2 / 3)
    assert c.view_dropout.p_pairs == 0.0


@pytest.mark.parametrize(("mask_input", "channels"), [("label", 4), ("one_hot", 13), ("none", 3)])
def test_view_in_channels_follow_the_mask_input(mask_input: str, channels: int) -> None:
    assert dataclasses.replace(PAPER_CONFIG, mask_input=mask_input).view_in_channels == channels


@pytest.mark.parametrize("name", ["paper", "small"])
def test_yaml_files_equal_the_named_configs(name: str) -> None:
    path = REPO / "config" / "networks" / f"{name}.yaml"
    assert load_network_config(path) == NAMED_CONFIGS[name]
    assert load_network_config(str(path)) == NAMED_CONFIGS[name]
    assert load_network_config(name) is NAMED_CONFIGS[name]


def test_load_network_config_refuses_unknown_names_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a named config"):
        load_network_config("tiny")
    with pytest.raises(ConfigError, match="not found"):
        load_network_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("network:\n  name: x\n  encoder_channels: [8, 16]\n  fused_channels: 8\n  fusion: trident\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: network\.fusion: expected one of"):
        load_network_config(bad)
    nested = tmp_path / "nested.yaml"
    nested.write_text(
        "network:\n  name: x\n  encoder_channels: [8, 16]\n  fused_channels: 8\n  input_size: 32\n"
        "  view_dropout: {p_all_views: 1.5}\n"
    )
    with pytest.raises(ConfigError, match=r"view_dropout\.p_all_views"):
        load_network_config(nested)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"encoder_channels": (64,)}, "encoder_channels"),
        ({"encoder_channels": (64, 0)}, "encoder_channels"),
        ({"fused_channels": 0}, "fused_channels"),
        ({"regressor": "vgg"}, "regressor"),
        ({"regressor_depth": 18}, "regressor_depth"),  # RedNet has no depth 18
        ({"regressor_width": 0.0}, "regressor_width"),
        ({"fusion": "late"}, "fusion"),
        ({"mask_input": "rgb"}, "mask_input"),
        ({"attention_gates": 1}, "attention_gates"),
        ({"views": 0}, "views"),
        ({"input_size": 200}, "input_size"),  # not a multiple of 16
        ({"input_downsample": 2, "input_size": 48}, "input_size"),  # 48 / 2 not a multiple of 16
        ({"input_downsample": 0}, "input_downsample"),
        ({"name": ""}, "name"),
    ],
)
def test_invalid_fields_raise_config_errors_naming_the_field(changes: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        dataclasses.replace(PAPER_CONFIG, **changes)


def test_resnet_depth_18_is_valid_for_resnet_only() -> None:
    assert dataclasses.replace(PAPER_CONFIG, regressor="resnet", regressor_depth=18).regressor_depth == 18


def test_view_dropout_config_validation() -> None:
    with pytest.raises(ConfigError, match=r"^p_all_views:"):
        ViewDropoutConfig(p_all_views=-0.1)
    with pytest.raises(ConfigError, match=r"^p_pairs:"):
        ViewDropoutConfig(p_all_views=0.8, p_pairs=0.3)
    assert ViewDropoutConfig(p_all_views=0.5, p_pairs=0.5).p_pairs == 0.5


def test_from_mapping_names_the_dotted_field() -> None:
    data = {"name": "x", "encoder_channels": [8, 16], "fused_channels": 8, "input_size": 32}
    assert from_mapping(NetworkConfig, data).encoder_channels == (8, 16)
    with pytest.raises(ConfigError, match=r"^network\.view_dropout\.p_pairs:"):
        from_mapping(NetworkConfig, {**data, "view_dropout": {"p_pairs": "x"}}, "network")
    with pytest.raises(ConfigError, match="unknown field"):
        from_mapping(NetworkConfig, {**data, "dropout": 0.1})


def test_small_config_is_smaller_than_paper() -> None:
    assert SMALL_CONFIG.fusion_size == 112
    assert all(s < p for s, p in zip(SMALL_CONFIG.encoder_channels, PAPER_CONFIG.encoder_channels, strict=True))


@pytest.mark.parametrize("base", [PAPER_CONFIG, SMALL_CONFIG], ids=["paper", "small"])
def test_ablation_switches(base: NetworkConfig) -> None:
    v1, v2, v3, v4 = (ablation_config(base, f"v{i}") for i in range(1, 5))
    assert (v1.fusion, v2.fusion, v3.fusion, v4.fusion) == ("concat_cnn", "single_unet", "tri_unet", "tri_unet")
    assert (v3.regressor, v3.regressor_depth) == ("resnet", 50)
    assert v1.regressor == v2.regressor == v4.regressor == "rednet"
    assert v4.mask_input == "none" and v4.view_in_channels == 3
    assert v1.mask_input == v2.mask_input == v3.mask_input == "label"
    assert v2.name == f"{base.name}-v2"
    # Everything else stays as in the base config.
    assert dataclasses.replace(v1, name=base.name, fusion=base.fusion) == base
    assert ablation_config(base, "v6") is base
    with pytest.raises(ConfigError, match="training option"):
        ablation_config(base, "v5")
    with pytest.raises(ConfigError, match="ablation"):
        ablation_config(base, "v7")
