"""UHE2FARNet: neutral branch vs fusion CNN (which stages feed which output), fixed appearance, mean over valid views,
pose head, input errors. Tiny network (ResNet-18 at width 0.25, 64 px)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dfmvr_core.errors import ShapeError
from dfmvr_core.morphable.lighting import AMBIENT_DC
from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.networks.baseline_config import BaselineNetworkConfig
from dfmvr_core.networks.heads import LIGHTING_DC_INDICES
from dfmvr_core.networks.uh_e2far import UHE2FARNet

SIZES = CoefficientSizes(identity=10, expression=5, albedo=6)
S = 64
TINY = BaselineNetworkConfig(name="tiny-uh", kind="uh_e2far", backbone_depth=18, backbone_width=0.25, input_size=S)


def make(expression_kind: str = "pca", seed: int = 0) -> UHE2FARNet:
    torch.manual_seed(seed)
    net = UHE2FARNet(TINY, SIZES, expression_kind)
    for layer in (net.neutral, net.expression, net.pose):
        nn.init.normal_(layer.weight, 0.0, 1.0)
    return net.eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(2, 3, 3, S, S, generator=torch.Generator().manual_seed(2))


def test_outputs_and_fixed_appearance(images):
    net = make("blendshape")
    with torch.no_grad():
        out = net(images)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "identity": (2, 10),
        "expression": (2, 5),
        "albedo": (2, 6),
        "lighting": (2, 3, 27),
        "pose": (2, 3, 6),
    }
    assert torch.equal(out["albedo"], torch.zeros(2, 6))  # the mean albedo: UH-E2FAR predicts no appearance
    ambient = torch.zeros(27)
    ambient[list(LIGHTING_DC_INDICES)] = AMBIENT_DC
    assert torch.equal(out["lighting"], ambient.expand(2, 3, 27))
    assert ((out["expression"] > 0) & (out["expression"] < 1)).all()
    assert not torch.allclose(out["pose"][:, 0], out["pose"][:, 1])  # one pose per view
    back = net.split_flat(net.forward_flat(images).detach())
    assert all(torch.allclose(back[k], out[k]) for k in out)


def test_untrained_heads_start_at_the_mean_face_and_reference_pose(images):
    torch.manual_seed(0)
    net = UHE2FARNet(TINY, SIZES, "blendshape").eval()
    with torch.no_grad():
        out = net(images)
    assert torch.equal(out["pose"], torch.zeros(2, 3, 6))
    assert float(out["identity"].abs().max()) < 0.5
    torch.testing.assert_close(out["expression"], torch.full((2, 5), 0.05), atol=0.02, rtol=0)


def test_neutral_branch_and_fusion_cnn_are_separate(images):
    """Identity comes from the last stage only, expression from the fused intermediate stages only."""
    net = make()
    with torch.no_grad():
        base = net(images)
        for p in net.fusion.parameters():
            p.add_(0.1)
        fused_changed = net(images)
        for p in net.backbone.layer4.parameters():
            p.add_(0.1)
        last_changed = net(images)
    assert torch.equal(fused_changed["identity"], base["identity"])
    assert not torch.allclose(fused_changed["expression"], base["expression"])
    assert torch.equal(last_changed["expression"], fused_changed["expression"])
    assert not torch.allclose(last_changed["identity"], fused_changed["identity"])

    net.zero_grad()
    net.train()
    net(images)["expression"].sum().backward()
    # (the residual branches start at zero, zero_init_residual: the projection shortcuts carry the gradient)
    assert net.backbone.layer4[0].downsample[0].weight.grad is None and net.neutral.weight.grad is None
    assert float(net.backbone.layer2[0].downsample[0].weight.grad.abs().sum()) > 0
    assert float(net.fusion.body[0].weight.grad.abs().sum()) > 0


def test_mean_over_valid_views_and_single_view(images):
    net = make()
    valid = torch.tensor([[True, False, True], [False, True, False]])
    dirty = images.clone()
    dirty[~valid] = float("nan")
    with torch.no_grad():
        out = net(dirty, None, valid)
        per_view = net.forward_per_view(images)
        single = net.forward_single(images[1, 1:2])
    for name in ("identity", "expression"):
        expected0 = (per_view[name][0, 0] + per_view[name][0, 2]) / 2
        torch.testing.assert_close(out[name][0], expected0, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out[name][1], single[name][0], rtol=1e-5, atol=1e-6)
    assert all(torch.equal(c, torch.ones_like(c)) for c in per_view["confidence"].values())
    assert per_view["albedo"].shape == (2, 3, 6) and per_view["lighting"].shape == (2, 3, 27)
    none = net(torch.full((1, 3, 3, S, S), float("nan")), None, torch.zeros(1, 3, dtype=torch.bool))
    assert torch.equal(none["identity"], torch.zeros(1, 10)) and torch.isfinite(none["pose"]).all()


def test_bad_inputs_are_named():
    net = make()
    with pytest.raises(ShapeError, match=r"images"):
        net(torch.rand(1, 3, 3, S, 2 * S))
    with pytest.raises(ShapeError, match=r"valid"):
        net(torch.rand(1, 3, 3, S, S), None, torch.ones(1, 2, dtype=torch.bool))
