"""Parameters and FLOPs of one DF-MVR triplet, cheaply: the fusion network (the bulk, ≈ 162 GFLOPs for
``paper``) is counted on PyTorch's ``meta`` device (shapes only, no arithmetic); the regressor and heads
run for real on the fused-map shape (the regressor's input checks need values)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.networks.dfmvr_net import DFMVRNet, build_regressor
from dfmvr_core.networks.flops import count_flops, count_parameters
from dfmvr_core.networks.net_config import NetworkConfig


@dataclass(frozen=True)
class NetworkCost:
    """Cost of one forward pass on one triplet (batch 1, ``config.views`` views)."""

    macs: int
    parameters: int
    fusion_macs: int
    regressor_macs: int
    heads_macs: int

    @property
    def gflops(self) -> float:
        """2 × MACs / 1e9."""
        return 2 * self.macs / 1e9


def network_cost(config: NetworkConfig, sizes: CoefficientSizes) -> NetworkCost:
    """Count MACs and parameters of ``DFMVRNet(config, sizes)`` for one triplet at ``config.input_size``."""
    with torch.device("meta"):
        meta_net = DFMVRNet(config, sizes).eval()
        inputs = torch.zeros(1, config.views, config.view_in_channels, config.fusion_size, config.fusion_size)
        fusion = count_flops(meta_net.fusion, inputs)
    parameters = count_parameters(meta_net)
    regressor = build_regressor(config).eval()
    fused = torch.rand(1, config.regressor_in_channels, config.fusion_size, config.fusion_size)
    regression = count_flops(regressor, fused)
    heads_macs = regressor.feature_dim * sizes.total(config.views)
    return NetworkCost(
        macs=fusion.macs + regression.macs + heads_macs,
        parameters=parameters,
        fusion_macs=fusion.macs,
        regressor_macs=regression.macs,
        heads_macs=heads_macs,
    )
