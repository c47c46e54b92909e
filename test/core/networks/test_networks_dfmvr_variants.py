"""Config switches for where the authors' code differs from the paper: shared lighting, un-projected fusion."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dfmvr_core.errors import ConfigError
from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.networks.cost import network_cost
from dfmvr_core.networks.dfmvr_net import DFMVRNet
from dfmvr_core.networks.flops import count_flops
from dfmvr_core.networks.net_config import SMALL_CONFIG, load_network_config

SIZES = CoefficientSizes(identity=6, expression=4, albedo=5)
TINY = dataclasses.replace(SMALL_CONFIG, name="tiny", encoder_channels=(8, 16), fused_channels=8, input_size=32,
                           regressor_depth=26, regressor_width=0.25)  # fmt: skip


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, 3, 32, 32, generator=g), torch.randint(0, 10, (2, 3, 32, 32), generator=g)


def test_paper_defaults_follow_the_paper():
    paper = load_network_config("paper")
    assert paper.lighting == "per_view" and paper.fusion_output == "projected"
    assert paper.regressor_in_channels == paper.fused_channels == 64


def test_shared_lighting_repeats_one_lighting_for_every_view():
    torch.manual_seed(0)
    net = DFMVRNet(dataclasses.replace(TINY, lighting="shared"), SIZES)
    torch.nn.init.normal_(net.heads.lighting.weight)  # break the zero init so views could differ
    out = net(*_inputs())
    assert out["lighting"].shape == (2, 3, 27)
    torch.testing.assert_close(out["lighting"][:, 0], out["lighting"][:, 2])
    assert net.heads.lighting.out_features == 27
    per_view = DFMVRNet(TINY, SIZES)
    assert per_view.heads.lighting.out_features == 3 * 27


def test_concat_fusion_output_feeds_the_last_concatenation_to_the_regressor():
    config = dataclasses.replace(TINY, fusion_output="concat")
    assert config.regressor_in_channels == (1 + 3) * 8
    torch.manual_seed(0)
    net = DFMVRNet(config, SIZES).eval()
    images, masks = _inputs()
    assert net.fusion(net.prepare_inputs(images, masks, None)).shape[1] == 32
    out = net(images, masks)
    assert out["identity"].shape == (2, 6) and torch.isfinite(out["identity"]).all()
    cost = network_cost(config, SIZES)
    assert count_flops(net, images[:1], masks[:1]).macs == cost.macs


def test_invalid_switch_values_are_refused_with_the_field_named():
    with pytest.raises(ConfigError, match="lighting: expected one of"):
        dataclasses.replace(TINY, lighting="global")
    with pytest.raises(ConfigError, match=r"fusion_output: 'concat' .* 'tri_unet' only"):
        dataclasses.replace(TINY, fusion="single_unet", fusion_output="concat")
