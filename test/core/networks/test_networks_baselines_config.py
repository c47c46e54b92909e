"""Baseline network configs and the registry: built-ins, YAML files, errors naming the field, kinds, building."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dfmvr_core.errors import ConfigError
from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.networks.baseline_config import BASELINE_CONFIGS, BaselineNetworkConfig, load_baseline_config
from dfmvr_core.networks.deep3dface import Deep3DFaceNet
from dfmvr_core.networks.dfmvr_net import DFMVRNet
from dfmvr_core.networks.net_config import SMALL_CONFIG, NetworkConfig
from dfmvr_core.networks.registry import build_network, load_any_network_config, network_kind
from dfmvr_core.networks.uh_e2far import UHE2FARNet

REPO = Path(__file__).resolve().parents[3]
SIZES = CoefficientSizes(identity=10, expression=5, albedo=6)


def write(tmp_path: Path, section: dict, name: str = "net.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"network": section}))
    return path


def test_builtins_and_shipped_yaml_agree():
    assert set(BASELINE_CONFIGS) == {"deep3dface", "deep3dface_cnet", "uh_e2far"}
    d3, cnet, uh = (BASELINE_CONFIGS[n] for n in ("deep3dface", "deep3dface_cnet", "uh_e2far"))
    assert (d3.kind, d3.backbone_depth, d3.aggregation, d3.input_size, d3.views) == ("deep3dface", 50, "mean", 224, 3)
    assert (cnet.kind, cnet.aggregation) == ("deep3dface", "cnet")
    assert (uh.kind, uh.backbone_depth, uh.aggregation) == ("uh_e2far", 50, "mean")
    for name, config in BASELINE_CONFIGS.items():
        path = REPO / "config" / "networks" / f"{name}.yaml"
        assert load_baseline_config(path) == config
        assert load_any_network_config(path) == config
        assert load_any_network_config(name) is config and load_baseline_config(name) is config
        assert config.mask_input == "none" and network_kind(config) == config.kind


def test_any_config_dispatches_on_kind(tmp_path):
    assert load_any_network_config("small") is SMALL_CONFIG and network_kind(SMALL_CONFIG) == "dfmvr"
    assert load_any_network_config(REPO / "config" / "networks" / "small.yaml") == SMALL_CONFIG
    dfmvr = {"name": "x", "encoder_channels": [4, 8], "fused_channels": 4, "regressor": "cnn", "input_size": 64}
    plain = load_any_network_config(write(tmp_path, dfmvr, "a.yaml"))
    tagged = load_any_network_config(write(tmp_path, {**dfmvr, "kind": "dfmvr"}, "b.yaml"))
    assert isinstance(plain, NetworkConfig) and plain == tagged and plain.input_size == 64
    tiny = {"name": "t", "kind": "uh_e2far", "backbone_depth": 18, "backbone_width": 0.25, "input_size": 64}
    config = load_any_network_config(write(tmp_path, tiny, "c.yaml"))
    assert config == BaselineNetworkConfig(**tiny) and isinstance(config.backbone_width, float)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"name": "t", "kind": "deep3dface", "backbone_depth": 42}, r"network\.backbone_depth: expected one of"),
        ({"name": "t", "kind": "uh_e2far", "aggregation": "cnet"}, r"network\.aggregation: 'cnet' .* needs kind"),
        ({"name": "t", "kind": "deep3dface", "aggregation": "max"}, r"network\.aggregation: expected one of"),
        ({"name": "t", "kind": "deep3dface", "input_size": 100}, r"network\.input_size: expected a positive multiple"),
        ({"name": "t", "kind": "deep3dface", "backbone_width": 0}, r"network\.backbone_width: expected a width"),
        ({"name": "t", "kind": "deep3dface", "cnet_width": "x"}, r"network\.cnet_width: expected a number"),
        ({"name": "t", "kind": "deep3dface", "views": 0}, r"network\.views: expected an int in \[1, 16\]"),
        ({"name": "t", "kind": "deep3dface", "depth": 50}, r"network\.depth: unknown field"),
        ({"name": "t", "kind": "vgg"}, r"network\.kind: expected one of \('dfmvr', 'deep3dface', 'uh_e2far'\)"),
        ({"kind": "deep3dface"}, r"network\.name: required field"),
    ],
)
def test_yaml_errors_name_the_file_and_field(tmp_path, section, message):
    path = write(tmp_path, section)
    with pytest.raises(ConfigError, match=rf"net\.yaml: {message}"):
        load_any_network_config(path)


def test_unknown_names_and_missing_files(tmp_path):
    with pytest.raises(ConfigError, match=r"'deep4dface': not a named config .*'deep3dface'"):
        load_any_network_config("deep4dface")
    with pytest.raises(ConfigError, match="not a built-in"):
        load_baseline_config("small")  # a DF-MVR name is not a baseline
    (tmp_path / "bad.yaml").write_text("network: [unclosed")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_any_network_config(tmp_path / "bad.yaml")
    (tmp_path / "empty.yaml").write_text("other: 1")
    with pytest.raises(ConfigError, match=r"empty\.yaml: expected a top-level 'network' section"):
        load_any_network_config(tmp_path / "empty.yaml")
    with pytest.raises(ConfigError, match="expected a NetworkConfig or BaselineNetworkConfig"):
        network_kind({"kind": "dfmvr"})


def test_build_network_picks_the_class_and_checks_the_kind():
    tiny = dict(backbone_depth=18, backbone_width=0.25, input_size=64)
    d3 = build_network(BaselineNetworkConfig(name="a", kind="deep3dface", aggregation="cnet", **tiny), SIZES, "pca")
    uh = build_network(BaselineNetworkConfig(name="b", kind="uh_e2far", **tiny), SIZES, "blendshape")
    assert isinstance(d3, Deep3DFaceNet) and d3.cnet is not None and d3.kind == "deep3dface"
    assert isinstance(uh, UHE2FARNet) and uh.expression_kind == "blendshape" and uh.views == 3
    tiny_dfmvr = NetworkConfig(name="t", encoder_channels=(4, 8), fused_channels=4, regressor="cnn", input_downsample=4)
    assert isinstance(build_network(tiny_dfmvr, SIZES), DFMVRNet)
    with pytest.raises(ConfigError, match=r"config\.kind: expected 'deep3dface' for Deep3DFaceNet, got 'uh_e2far'"):
        Deep3DFaceNet(BaselineNetworkConfig(name="b", kind="uh_e2far", **tiny), SIZES)
    with pytest.raises(ConfigError, match="expression_kind: expected one of"):
        build_network(BaselineNetworkConfig(name="b", kind="uh_e2far", **tiny), SIZES, "linear")
