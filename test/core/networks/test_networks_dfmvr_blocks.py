"""DF-MVR building blocks: Tri-UNet and the fusion ablations, attention gates, coefficient heads, FLOP counter."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.morphable.lighting import AMBIENT_DC
from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.networks.flops import count_flops, count_parameters
from dfmvr_core.networks.heads import LIGHTING_DC_INDICES, CoefficientHeads
from dfmvr_core.networks.involution import Involution2d
from dfmvr_core.networks.tri_unet import (
    AttentionGate,
    ConcatCNN,
    DoubleConv,
    SingleUNet,
    TriUNet,
    UNetEncoder,
    build_fusion,
)

CHANNELS = (4, 8, 16)
SIZES = CoefficientSizes(identity=7, expression=5, albedo=6)


def test_double_conv_keeps_size_and_sets_channels() -> None:
    block = DoubleConv(3, 8)
    assert block(torch.rand(2, 3, 9, 11)).shape == (2, 8, 9, 11)
    convs = [m for m in block if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(3, 3), (3, 3)]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in block) == 2


def test_attention_gate_scales_each_pixel_by_one_coefficient_in_0_1() -> None:
    torch.manual_seed(0)
    gate = AttentionGate(gate_channels=6, skip_channels=5, inter_channels=3).eval()
    g, x = torch.randn(2, 6, 7, 7), torch.randn(2, 5, 7, 7) + 3.0  # x away from 0 for the ratio
    alpha = gate.attention(g, x)
    assert alpha.shape == (2, 1, 7, 7)
    assert bool(((alpha > 0) & (alpha < 1)).all())
    out = gate(g, x)
    assert out.shape == x.shape
    assert torch.allclose(out, x * alpha)
    # The coefficient depends on the gating signal (additive attention), not only on x.
    assert not torch.allclose(gate.attention(torch.randn(2, 6, 7, 7), x), alpha)


def test_unet_encoder_levels() -> None:
    features = UNetEncoder(4, (8, 16, 32))(torch.rand(1, 4, 16, 16))
    assert [tuple(f.shape) for f in features] == [(1, 8, 16, 16), (1, 16, 8, 8), (1, 32, 4, 4)]


def _views(b: int = 2, v: int = 3, c: int = 4, s: int = 16) -> torch.Tensor:
    return torch.rand(b, v, c, s, s)


@pytest.mark.parametrize("gates", [True, False])
def test_tri_unet_shapes_unshared_encoders_and_gates(gates: bool) -> None:
    torch.manual_seed(0)
    net = TriUNet(4, CHANNELS, out_channels=6, views=3, attention_gates=gates).eval()
    assert net(_views()).shape == (2, 6, 16, 16)
    assert len(net.encoders) == 3
    first = [enc.levels[0][0].weight for enc in net.encoders]
    assert len({id(w) for w in first}) == 3  # three separate parameter tensors ...
    assert not torch.equal(first[0], first[1])  # ... initialised independently
    gate_count = sum(isinstance(m, AttentionGate) for m in net.modules())
    assert gate_count == (3 * (len(CHANNELS) - 1) if gates else 0)  # one gate per view and skip level
    # Shared decoder: one upsampling per level, fed by the concatenated bottlenecks.
    ups = [m for m in net.decoder.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [u.in_channels for u in ups] == [3 * CHANNELS[-1], CHANNELS[1]]
    assert all(u.stride == (2, 2) and u.kernel_size == (2, 2) for u in ups)


def test_tri_unet_output_depends_on_every_view() -> None:
    torch.manual_seed(0)
    net = TriUNet(4, CHANNELS, out_channels=6).eval()
    x = _views(b=1)
    base = net(x)
    for v in range(3):
        changed = x.clone()
        changed[:, v] = torch.rand_like(changed[:, v])
        assert not torch.allclose(net(changed), base, atol=1e-6), f"view {v} ignored"


def test_single_unet_and_concat_cnn_shapes() -> None:
    torch.manual_seed(0)
    single = SingleUNet(4, CHANNELS, out_channels=6, views=3).eval()
    assert single.encoder.levels[0][0].in_channels == 12  # views concatenated along channels
    assert single(_views()).shape == (2, 6, 16, 16)
    cnn = ConcatCNN(4, width=8, out_channels=6, views=3).eval()
    assert cnn(_views(s=10)).shape == (2, 6, 10, 10)  # no pooling: any size
    assert len(cnn.branches) == 3
    assert cnn.project[0].in_channels == 24


def test_fusion_input_errors() -> None:
    net = TriUNet(4, CHANNELS, out_channels=6)
    with pytest.raises(ShapeError, match=r"x: expected shape \(\*, 3, 4, \*, \*\)"):
        net(torch.rand(1, 2, 4, 16, 16))
    with pytest.raises(ShapeError, match="multiples of 4"):
        net(torch.rand(1, 3, 4, 18, 18))
    with pytest.raises(ConfigError, match="fusion"):
        build_fusion("late", 4, CHANNELS, 6)
    with pytest.raises(ConfigError, match="in_channels"):
        TriUNet(0, CHANNELS, 6)


@pytest.mark.parametrize("fusion", ["tri_unet", "single_unet", "concat_cnn"])
def test_build_fusion(fusion: str) -> None:
    module = build_fusion(fusion, 4, CHANNELS, 6, views=2)
    assert (
        type(module).__name__ == {"tri_unet": "TriUNet", "single_unet": "SingleUNet", "concat_cnn": "ConcatCNN"}[fusion]
    )
    assert module.eval()(torch.rand(1, 2, 4, 8, 8)).shape == (1, 6, 8, 8)


# ----------------------------------------------------------------------------------------------------------- heads


def test_heads_shapes_and_untrained_values() -> None:
    torch.manual_seed(0)
    heads = CoefficientHeads(32, SIZES, views=3, expression_kind="pca")
    with torch.no_grad():
        out = heads(torch.randn(4, 32))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "identity": (4, 7),
        "expression": (4, 5),
        "albedo": (4, 6),
        "lighting": (4, 3, 27),
        "pose": (4, 3, 6),
    }
    assert torch.equal(out["pose"], torch.zeros(4, 3, 6))
    expected_light = torch.zeros(27)
    expected_light[list(LIGHTING_DC_INDICES)] = AMBIENT_DC
    assert LIGHTING_DC_INDICES == (0, 9, 18)
    assert torch.equal(out["lighting"], expected_light.expand(4, 3, 27))
    # Small initial 3DMM coefficients (near the mean face), but not all zero.
    for name in ("identity", "expression", "albedo"):
        assert 0 < float(out[name].abs().max()) < 1.0


def test_heads_expression_kinds() -> None:
    torch.manual_seed(0)
    features = torch.randn(64, 16) * 50
    blend = CoefficientHeads(16, SIZES, views=1, expression_kind="blendshape").requires_grad_(False)
    weights = blend(features)["expression"]
    assert bool(((weights > 0) & (weights < 1)).all())
    assert float(blend(torch.zeros(1, 16))["expression"].mean()) == pytest.approx(0.05, abs=1e-6)
    pca = CoefficientHeads(16, SIZES, views=1, expression_kind="pca").requires_grad_(False)
    coefficients = pca(features)["expression"]
    assert float(coefficients.min()) < 0 < float(coefficients.max())  # linear, unbounded
    assert torch.equal(pca(torch.zeros(1, 16))["expression"], torch.zeros(1, 5))


def test_heads_learn_pose_and_lighting() -> None:
    """Zero-initialised heads still receive gradients and can leave the reference pose."""
    heads = CoefficientHeads(8, SIZES, views=2)
    out = heads(torch.ones(2, 8))
    (out["pose"].sum() + out["lighting"].sum()).backward()
    assert float(heads.pose.weight.grad.abs().sum()) > 0
    assert float(heads.lighting.weight.grad.abs().sum()) > 0


def test_heads_validation() -> None:
    with pytest.raises(ConfigError, match="expression_kind"):
        CoefficientHeads(8, SIZES, expression_kind="linear")
    with pytest.raises(ConfigError, match=r"sizes\.lighting"):
        CoefficientHeads(8, CoefficientSizes(7, 5, 6, lighting=9))
    with pytest.raises(ConfigError, match=r"sizes\.pose_per_view"):
        CoefficientHeads(8, CoefficientSizes(7, 5, 6, pose_per_view=7))
    with pytest.raises(ConfigError, match=r"sizes\.identity"):
        CoefficientHeads(8, CoefficientSizes(0, 5, 6))
    with pytest.raises(ShapeError, match=r"features: expected shape \(\*, 8\)"):
        CoefficientHeads(8, SIZES)(torch.zeros(2, 9))


# ----------------------------------------------------------------------------------------------------------- flops


def test_flop_counter_rules_match_hand_counts() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 8·10·10 outputs × 3·9 = 21600
        nn.Conv2d(8, 8, 3, padding=1, groups=2),  # 800 outputs × 4·9 = 28800
        nn.ConvTranspose2d(8, 2, 2, stride=2),  # 800 inputs × 2·4 = 6400
        nn.Flatten(),
        nn.Linear(2 * 20 * 20, 5),  # 5 × 800 = 4000
    )
    count = count_flops(model, torch.rand(1, 3, 10, 10))
    assert count.macs == 21600 + 28800 + 6400 + 4000
    assert count.flops == 2 * count.macs
    assert count.gflops == pytest.approx(2 * count.macs / 1e9)
    assert count.by_type == {"Conv2d": 50400, "ConvTranspose2d": 6400, "Linear": 4000}
    assert count.by_module == {"0": 21600, "1": 28800, "2": 6400, "4": 4000}
    assert count_flops(model, torch.rand(3, 3, 10, 10)).macs == 3 * count.macs  # whole batch
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())


def test_flop_counter_counts_involution_aggregation() -> None:
    inv = Involution2d(16, kernel_size=7, stride=1, group_channels=16, reduction_ratio=4)
    count = count_flops(inv, torch.rand(1, 16, 8, 8))
    pixels = 64
    kernel_generation = pixels * 16 * 4 + pixels * 4 * 49  # 1×1 convs 16→4 and 4→49
    assert count.by_type["Involution2d"] == 16 * pixels * 49
    assert count.macs == kernel_generation + 16 * pixels * 49


def test_flop_counter_removes_its_hooks() -> None:
    model = nn.Linear(4, 2)
    count_flops(model, torch.rand(1, 4))
    assert not model._forward_hooks
    assert count_flops(model, torch.rand(1, 4)).macs == 8
