"""Checkpoints of the baselines: the network kind is stored and checked, old DF-MVR files (no kind) still load, a
checkpoint of another kind than asked for is refused naming both, the state_dict is checked against the kind's net."""

from __future__ import annotations

import pytest
import torch

from dfmvr_core.errors import ConfigError, ModelFileError
from dfmvr_core.inference import load_checkpoint, save_checkpoint
from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.networks.baseline_config import BaselineNetworkConfig
from dfmvr_core.networks.deep3dface import Deep3DFaceNet
from dfmvr_core.networks.dfmvr_net import DFMVRNet
from dfmvr_core.networks.net_config import NetworkConfig
from dfmvr_core.networks.registry import build_network
from dfmvr_core.networks.uh_e2far import UHE2FARNet

SIZES = CoefficientSizes(identity=10, expression=5, albedo=6)
D3 = BaselineNetworkConfig(
    name="tiny-d3", kind="deep3dface", backbone_depth=18, backbone_width=0.25, aggregation="cnet", input_size=64
)
UH = BaselineNetworkConfig(name="tiny-uh", kind="uh_e2far", backbone_depth=18, backbone_width=0.25, input_size=64)
DFMVR = NetworkConfig(
    name="tiny", encoder_channels=(4, 8), fused_channels=4, regressor="cnn", regressor_width=0.25, input_downsample=4
)


def edited(path, target, **changes):
    payload = torch.load(path, weights_only=True)
    payload.update(changes)
    torch.save(payload, target)
    return target


@pytest.mark.parametrize(("config", "cls"), [(D3, Deep3DFaceNet), (UH, UHE2FARNet)])
def test_round_trip_records_the_kind(tmp_path, config, cls):
    torch.manual_seed(0)
    net = build_network(config, SIZES, "blendshape")
    for p in net.parameters():  # move away from the initialisation so that a wrong load would show
        p.data.add_(0.01 * torch.randn_like(p))
    path = save_checkpoint(tmp_path / "net.pt", net, model_fingerprint="abc", extra={"stage": "rnet"})
    payload = torch.load(path, weights_only=True)
    assert payload["network_config"]["kind"] == config.kind
    checkpoint = load_checkpoint(path, config=config, kind=config.kind, sizes=SIZES, expression_kind="blendshape")
    assert checkpoint.config == config and checkpoint.kind == config.kind and checkpoint.extra == {"stage": "rnet"}
    rebuilt = checkpoint.build_network()
    assert isinstance(rebuilt, cls) and not rebuilt.training
    images = torch.rand(2, 3, 3, 64, 64)
    valid = torch.tensor([[True, False, True], [True, True, True]])
    with torch.no_grad():
        assert torch.equal(rebuilt.forward_flat(images, None, valid), net.eval().forward_flat(images, None, valid))
    assert load_checkpoint(path, config=config.name).config == config


def test_dfmvr_checkpoints_with_and_without_kind(tmp_path):
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "dfmvr.pt", DFMVRNet(DFMVR, SIZES, "pca"))
    payload = torch.load(path, weights_only=True)
    assert payload["network_config"]["kind"] == "dfmvr"
    old = {k: v for k, v in payload["network_config"].items() if k != "kind"}  # written before the baselines
    old_path = edited(path, tmp_path / "old.pt", network_config=old)
    for p in (path, old_path):
        checkpoint = load_checkpoint(p, config=DFMVR, kind="dfmvr")
        assert checkpoint.kind == "dfmvr" and isinstance(checkpoint.build_network(), DFMVRNet)


def test_another_kind_than_asked_is_refused_naming_both(tmp_path):
    torch.manual_seed(0)
    dfmvr = save_checkpoint(tmp_path / "dfmvr.pt", DFMVRNet(DFMVR, SIZES, "pca"))
    d3 = save_checkpoint(tmp_path / "d3.pt", Deep3DFaceNet(D3, SIZES, "pca"))
    with pytest.raises(ModelFileError, match=r"dfmvr\.pt: .*holds a 'dfmvr' network .*expected a 'deep3dface' network"):
        load_checkpoint(dfmvr, config="deep3dface")
    with pytest.raises(ModelFileError, match=r"d3\.pt: .*'deep3dface' network \(config 'tiny-d3'\).*'uh_e2far'"):
        load_checkpoint(d3, config=UH)
    with pytest.raises(ModelFileError, match=r"holds a 'deep3dface' network .*expected a 'dfmvr' network"):
        load_checkpoint(d3, kind="dfmvr")
    with pytest.raises(ModelFileError, match=r"holds a 'deep3dface' network .*expected a 'dfmvr'.*'small'"):
        load_checkpoint(d3, config="small")
    with pytest.raises(ConfigError, match="kind: 'uh_e2far' contradicts config 'tiny-d3'"):
        load_checkpoint(d3, config=D3, kind="uh_e2far")
    with pytest.raises(ConfigError, match="kind: expected one of"):
        load_checkpoint(d3, kind="vgg")
    # same kind, other architecture: the differing field is named
    with pytest.raises(ModelFileError, match=r"aggregation='cnet' \(expected 'mean'\)"):
        load_checkpoint(d3, config=BaselineNetworkConfig(**{**D3.__dict__, "aggregation": "mean"}))


def test_stored_config_and_weights_are_validated(tmp_path):
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "d3.pt", Deep3DFaceNet(D3, SIZES, "pca"))
    config = torch.load(path, weights_only=True)["network_config"]
    mean = edited(path, tmp_path / "mean.pt", network_config={**config, "aggregation": "mean"})
    with pytest.raises(ModelFileError, match=r"mean\.pt: .*unexpected.*cnet\."):
        load_checkpoint(mean)  # C-Net weights in a checkpoint whose config has no C-Net
    bad_kind = edited(path, tmp_path / "kind.pt", network_config={**config, "kind": "vgg"})
    with pytest.raises(ModelFileError, match=r"kind\.pt: invalid network_config: network\.kind: expected one of"):
        load_checkpoint(bad_kind)
    bad_field = edited(path, tmp_path / "field.pt", network_config={**config, "backbone_depth": 19})
    with pytest.raises(ModelFileError, match=r"field\.pt: invalid network_config: network\.backbone_depth"):
        load_checkpoint(bad_field)
    with pytest.raises(ConfigError, match="net: expected a DFMVRNet, Deep3DFaceNet or UHE2FARNet"):
        save_checkpoint(tmp_path / "x.pt", torch.nn.Linear(2, 2))
