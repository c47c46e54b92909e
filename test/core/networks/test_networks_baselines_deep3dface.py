"""Deep3DFaceNet (R-Net per view + mean / C-Net aggregation): shapes, the aggregation math, invalid views, the
C-Net's initial state, gradients with the R-Net frozen, input errors. Tiny networks (ResNet-18 at width 0.25, 64 px)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dfmvr_core.errors import ShapeError
from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.networks.baseline_config import BaselineNetworkConfig
from dfmvr_core.networks.deep3dface import Deep3DFaceNet
from dfmvr_core.networks.dfmvr_net import FLAT_ORDER

SIZES = CoefficientSizes(identity=10, expression=5, albedo=6)
S = 64
SHARED = ("identity", "expression", "albedo")


def tiny(aggregation: str) -> BaselineNetworkConfig:
    return BaselineNetworkConfig(
        name=f"tiny-{aggregation}",
        kind="deep3dface",
        backbone_depth=18,
        backbone_width=0.25,
        aggregation=aggregation,
        input_size=S,
    )


def make(aggregation: str, expression_kind: str = "pca", seed: int = 0) -> Deep3DFaceNet:
    """A tiny net whose R-Net heads are re-drawn so that the views' coefficients differ clearly."""
    torch.manual_seed(seed)
    net = Deep3DFaceNet(tiny(aggregation), SIZES, expression_kind)
    for layer in net.rnet.heads.modules():
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, 0.0, 1.0)
    return net.eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(2, 3, 3, S, S, generator=torch.Generator().manual_seed(1))


class FixedConfidence(nn.Module):
    """Stands in for the C-Net: confidence ``weights[v]`` for every coefficient of view ``v``."""

    def __init__(self, weights: list[float]) -> None:
        super().__init__()
        self.weights = torch.tensor(weights)

    def forward(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.weights.repeat(flat.shape[0] // len(self.weights))[:, None]
        k = SIZES.identity + SIZES.expression + SIZES.albedo
        c = c.expand(-1, k)
        return {"identity": c[:, :10], "expression": c[:, 10:15], "albedo": c[:, 15:]}


def test_shapes_flat_layout_and_per_view(images):
    net = make("cnet", "blendshape")
    with torch.no_grad():
        out = net(images)
        per_view = net.forward_per_view(images)
        flat = net.forward_flat(images)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "identity": (2, 10),
        "expression": (2, 5),
        "albedo": (2, 6),
        "lighting": (2, 3, 27),
        "pose": (2, 3, 6),
    }
    assert flat.shape == (2, net.flat_size) and net.flat_size == SIZES.total(3)
    back = net.split_flat(flat)
    assert list(back) == list(FLAT_ORDER) and all(torch.equal(back[k], out[k]) for k in out)
    assert per_view["identity"].shape == (2, 3, 10) and per_view["pose"].shape == (2, 3, 6)
    assert {k: tuple(v.shape) for k, v in per_view["confidence"].items()} == {
        "identity": (2, 3, 10),
        "expression": (2, 3, 5),
        "albedo": (2, 3, 6),
    }
    assert ((out["expression"] > 0) & (out["expression"] < 1)).all()  # blendshape weights through the sigmoid
    assert torch.equal(out["pose"], per_view["pose"]) and torch.equal(out["lighting"], per_view["lighting"])
    # per-view coefficients are the R-Net's on each image independently
    with torch.no_grad():
        alone = net.rnet(images[1, 2:3])
    torch.testing.assert_close(per_view["identity"][1, 2], alone["identity"][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(per_view["pose"][1, 2], alone["pose"][0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("aggregation", ["mean", "cnet"])
def test_single_valid_view_is_that_views_rnet_output(images, aggregation):
    net = make(aggregation)
    valid = torch.tensor([[False, True, False], [False, False, True]])
    dirty = images.clone()
    dirty[~valid] = float("nan")  # invalid views may hold anything
    with torch.no_grad():
        out = net(dirty, None, valid)
        own = net.rnet(torch.stack((images[0, 1], images[1, 2])))
    for name in SHARED:
        torch.testing.assert_close(out[name], own[name], rtol=1e-5, atol=1e-6)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_mean_aggregation_averages_the_valid_views_only(images):
    net = make("mean")
    valid = torch.tensor([[True, False, True], [True, True, True]])
    with torch.no_grad():
        out = net(images, None, valid)
        per_view = net.forward_per_view(images)
        other = images.clone()
        other[0, 1] = torch.rand(3, S, S)  # another image in the invalid view changes nothing
        again = net(other, None, valid)
    assert all(torch.equal(c, torch.ones_like(c)) for c in per_view["confidence"].values())
    for name in SHARED:
        expected0 = (per_view[name][0, 0] + per_view[name][0, 2]) / 2
        torch.testing.assert_close(out[name][0], expected0, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out[name][1], per_view[name][1].mean(0), rtol=1e-5, atol=1e-6)
        assert torch.equal(again[name], out[name])
    assert not torch.allclose(per_view["identity"][0, 0], per_view["identity"][0, 2])  # the test has teeth


def test_confidence_weighted_mean_and_a_dominant_view(images):
    net = make("cnet")
    with torch.no_grad():
        per_view = net.forward_per_view(images)
        net.cnet = FixedConfidence([1e6, 1.0, 1.0])
        dominated = net(images)
        net.cnet = FixedConfidence([0.5, 2.0, 3.0])
        valid = torch.tensor([[True, True, False], [True, True, True]])
        weighted = net(images, None, valid)
    for name in SHARED:
        torch.testing.assert_close(dominated[name], per_view[name][:, 0], rtol=1e-4, atol=1e-4)
        w = torch.tensor([[0.5, 2.0, 0.0], [0.5, 2.0, 3.0]])[..., None]
        expected = (w * per_view[name]).sum(1) / w.sum(1)
        torch.testing.assert_close(weighted[name], expected, rtol=1e-5, atol=1e-6)


def test_untrained_cnet_equals_the_plain_mean(images):
    with_cnet, plain = make("cnet", seed=3), make("mean", seed=3)
    plain.rnet.load_state_dict(with_cnet.rnet.state_dict())
    with torch.no_grad():
        confidence = with_cnet.forward_per_view(images)["confidence"]
        a, b = with_cnet(images), plain(images)
    for c in confidence.values():
        torch.testing.assert_close(c, torch.ones_like(c))
    for name in SHARED:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)


def test_aggregate_reports_the_total_confidence(images):
    net = make("cnet")
    net.cnet = FixedConfidence([0.5, 2.0, 3.0])
    valid = torch.tensor([[True, False, True], [False, False, False]])
    with torch.no_grad():
        coefficients, totals = net.aggregate(images, valid)
    assert torch.allclose(totals["identity"][0], torch.full((10,), 3.5))
    assert torch.equal(totals["albedo"][1], torch.zeros(6))
    assert torch.equal(coefficients["identity"], net(images, None, valid)["identity"])


def test_no_valid_view_gives_the_mean_face_and_finite_gradients():
    net = make("cnet").train()
    images = torch.full((1, 3, 3, S, S), float("nan"))
    valid = torch.zeros(1, 3, dtype=torch.bool)
    out = net(images, None, valid)
    assert torch.equal(out["identity"], torch.zeros(1, 10)) and torch.equal(out["albedo"], torch.zeros(1, 6))
    assert all(torch.isfinite(v).all() for v in out.values())
    sum(v.sum() for v in out.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_frozen_rnet_trains_only_the_cnet(images):
    net = make("cnet").train()
    net.freeze_rnet()
    assert net.rnet_frozen and not net.rnet.training and net.cnet.training
    net.train()  # train() keeps the frozen R-Net's BatchNorm in eval mode
    assert not net.rnet.training
    bn = net.rnet.backbone.bn1
    before = bn.running_mean.clone()
    target = torch.randn(2, 10)
    loss = ((net(images)["identity"] - target) ** 2).sum()
    loss.backward()
    assert torch.equal(bn.running_mean, before)  # statistics not updated
    assert all(p.grad is None for p in net.rnet.parameters())
    assert net.cnet.out.weight.grad is not None and float(net.cnet.out.weight.grad.abs().sum()) > 0
    net.freeze_rnet(False)
    assert net.rnet.training and all(p.requires_grad for p in net.rnet.parameters())
    net.zero_grad()
    ((net(images)["identity"] - target) ** 2).sum().backward()
    assert net.rnet.heads.identity.weight.grad is not None


def test_bad_inputs_are_named():
    net = make("mean")
    with pytest.raises(ShapeError, match="images"):
        net(torch.rand(1, 2, 3, S, S))
    with pytest.raises(ShapeError, match=r"images: expected a float tensor"):
        net(torch.zeros(1, 3, 3, S, S, dtype=torch.uint8))
    with pytest.raises(ShapeError, match=r"valid: expected a bool tensor"):
        net(torch.rand(1, 3, 3, S, S), None, torch.ones(1, 3))
    nan = torch.rand(1, 3, 3, S, S)
    nan[0, 1, 0, 0, 0] = float("nan")
    with pytest.raises(ShapeError, match=r"non-finite value"):
        net(nan)
    with pytest.raises(ShapeError, match=r"expected RGB in \[0, 1\]"):
        net(torch.rand(1, 3, 3, S, S) * 255)
    with pytest.raises(ShapeError, match="images"):
        net.rnet(torch.rand(2, 3, S + 32, S + 32))
