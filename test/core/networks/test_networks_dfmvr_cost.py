"""Measured cost of the named configs at 224×224: parameters and GFLOPs (MACs × 2) per triplet.

Counted with :func:`dfmvr_core.networks.cost.network_cost` (fusion on the ``meta`` device, regressor for real).
The small config is also counted in one real forward, which checks that the split count equals the
whole-network count.
"""

from __future__ import annotations

import torch

from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.networks.cost import network_cost
from dfmvr_core.networks.dfmvr_net import DFMVRNet
from dfmvr_core.networks.flops import count_flops, count_parameters
from dfmvr_core.networks.net_config import PAPER_CONFIG, SMALL_CONFIG, NetworkConfig

BFM_SIZES = CoefficientSizes(identity=80, expression=64, albedo=80)  # the paper's BFM coefficient sizes


def split_count(config: NetworkConfig) -> tuple[int, int]:
    """(MACs, parameters) of one triplet, fusion on ``meta``, regressor and heads for real."""
    cost = network_cost(config, BFM_SIZES)
    return cost.macs, cost.parameters


def test_small_config_budget_and_count_consistency() -> None:
    macs, parameters = split_count(SMALL_CONFIG)
    gflops = 2 * macs / 1e9
    assert parameters <= 15_000_000, parameters
    assert gflops <= 12.0, gflops
    # Recorded in net_config's docstring: ≈ 3.4 GFLOPs, ≈ 8.8 M parameters.
    assert 3.0 < gflops < 3.8 and 8_000_000 < parameters < 9_500_000, (gflops, parameters)
    torch.manual_seed(0)
    net = DFMVRNet(SMALL_CONFIG, BFM_SIZES).eval()
    images = torch.rand(1, 3, 3, 224, 224)
    masks = torch.randint(0, 10, (1, 3, 224, 224))
    real = count_flops(net, images, masks)
    assert real.macs == macs  # the meta/real split counts exactly what a real forward does
    assert count_parameters(net) == parameters
    assert set(real.by_module) == {"fusion", "regressor", "heads"}


def test_paper_config_cost() -> None:
    macs, parameters = split_count(PAPER_CONFIG)
    gflops = 2 * macs / 1e9
    # Target ≈ 150 GFLOPs per triplet (±25 %); measured ≈ 168 (the authors' code skips the final 64-channel double
    # conv that the paper's 224×224×64 fused map implies, ≈ 17 GFLOPs less).
    assert 0.75 * 150 <= gflops <= 1.25 * 150, gflops
    assert 165 < gflops < 171, gflops
    assert 90_000_000 < parameters < 100_000_000, parameters
