"""DFMVRNet: shapes for every config and ablation, missing views, initial outputs, flat mode, input errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.morphable.lighting import AMBIENT_DC
from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.networks.dfmvr_net import FLAT_ORDER, DFMVRNet, flat_layout, split_flat
from dfmvr_core.networks.net_config import PAPER_CONFIG, SMALL_CONFIG, NetworkConfig, ablation_config

SIZES = CoefficientSizes(identity=10, expression=8, albedo=9)
SMALL_64 = dataclasses.replace(SMALL_CONFIG, input_size=64)  # fusion at 32×32, bottleneck 2×2
TINY = NetworkConfig(
    name="tiny",
    encoder_channels=(8, 16, 16),
    fused_channels=16,
    regressor="rednet",
    regressor_depth=26,
    regressor_width=0.25,
    input_size=32,
)


def make_inputs(config: NetworkConfig, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    s, v = config.input_size, config.views
    images = torch.rand(batch, v, 3, s, s, generator=g)
    masks = torch.randint(0, 10, (batch, v, s, s), generator=g)
    return images, masks


def make_net(config: NetworkConfig, seed: int = 0, expression_kind: str = "pca") -> DFMVRNet:
    torch.manual_seed(seed)
    return DFMVRNet(config, SIZES, expression_kind)


def expected_shapes(batch: int, views: int = 3) -> dict[str, tuple[int, ...]]:
    return {
        "identity": (batch, 10),
        "expression": (batch, 8),
        "albedo": (batch, 9),
        "lighting": (batch, views, 27),
        "pose": (batch, views, 6),
    }


def shapes(out: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in out.items()}


@torch.no_grad()
def test_small_config_shapes() -> None:
    net = make_net(SMALL_64).eval()
    images, masks = make_inputs(SMALL_64)
    assert net.prepare_inputs(images, masks).shape == (2, 3, 4, 32, 32)
    assert net.fused_features(images, masks).shape == (2, 32, 32, 32)
    assert shapes(net(images, masks)) == expected_shapes(2)


@torch.no_grad()
def test_paper_config_shapes() -> None:
    config = dataclasses.replace(PAPER_CONFIG, input_size=32)
    net = make_net(config).eval()
    assert net.regressor.feature_dim == 2048 and type(net.regressor).__name__ == "RedNet"
    assert net.regressor.depth == 50
    images, masks = make_inputs(config, batch=1)
    assert net.fused_features(images, masks).shape == (1, 64, 32, 32)  # paper: S × S × 64
    assert shapes(net(images, masks)) == expected_shapes(1)


@pytest.mark.parametrize("ablation", ["v1", "v2", "v3", "v4"])
@torch.no_grad()
def test_ablation_shapes(ablation: str) -> None:
    config = ablation_config(SMALL_64, ablation)
    net = make_net(config).eval()
    fusion = {"v1": "ConcatCNN", "v2": "SingleUNet"}.get(ablation, "TriUNet")
    assert type(net.fusion).__name__ == fusion
    assert type(net.regressor).__name__ == ("ResNet" if ablation == "v3" else "RedNet")
    images, masks = make_inputs(config)
    in_channels = 3 if ablation == "v4" else 4
    assert net.prepare_inputs(images, masks).shape == (2, 3, in_channels, 32, 32)
    out = net(images, None if ablation == "v4" else masks)
    assert shapes(out) == expected_shapes(2)


@pytest.mark.parametrize(
    ("changes", "channels"),
    [({"mask_input": "one_hot"}, 13), ({"regressor": "cnn"}, 4), ({"attention_gates": False}, 4), ({"views": 2}, 4)],
)
@torch.no_grad()
def test_other_switches(changes: dict, channels: int) -> None:
    config = dataclasses.replace(TINY, **changes)
    net = make_net(config).eval()
    images, masks = make_inputs(config)
    assert net.prepare_inputs(images, masks).shape == (2, config.views, channels, 32, 32)
    assert shapes(net(images, masks)) == expected_shapes(2, config.views)


def test_one_hot_and_label_mask_channels() -> None:
    net = make_net(dataclasses.replace(TINY, mask_input="one_hot", input_downsample=2, input_size=64))
    images, masks = make_inputs(net.config, batch=1)
    masks[0, 0] = 3
    masks[0, 0, :2, :2] = 7  # one 2×2 block of part 7 → area fraction 1 in that output pixel
    masks[0, 0, 2:4, 2] = 7  # half of the next block → 0.5
    x = net.prepare_inputs(images, masks)
    assert x.shape == (1, 3, 13, 32, 32)
    assert torch.allclose(x[:, :, 3:].sum(dim=2), torch.ones(1, 3, 32, 32))  # fractions sum to 1
    assert float(x[0, 0, 3 + 7, 0, 0]) == 1.0 and float(x[0, 0, 3 + 7, 1, 1]) == 0.5
    assert float(x[0, 0, 3 + 3, 5, 5]) == 1.0
    # RGB: area average mapped to [-1, 1].
    expected_rgb = torch.nn.functional.avg_pool2d(images[0, 1], 2) * 2 - 1
    assert torch.allclose(x[0, 1, :3], expected_rgb, atol=1e-6)
    label = make_net(TINY).prepare_inputs(*make_inputs(TINY, batch=1))
    _, masks = make_inputs(TINY, batch=1)
    assert torch.allclose(label[0, :, 3], masks[0].float() / 9)


def test_gradients_reach_every_parameter() -> None:
    net = make_net(TINY).train()  # every block type of the small/paper configs, at a fraction of the cost
    images, masks = make_inputs(TINY)
    g = torch.Generator().manual_seed(1)
    weights = {k: torch.randn(s, generator=g) for k, s in expected_shapes(2).items()}

    def backward() -> list[str]:
        net.zero_grad(set_to_none=True)
        out = net(images, masks)
        sum((out[k] * weights[k]).sum() for k in out).backward()
        return [n for n, p in net.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]

    # At initialisation every parameter is connected, but the residual branches of the regressor sit behind the
    # zero-initialised last BatchNorm of each block (zero_init_residual), so only those γ get gradients there.
    unreached = backward()
    assert all(".bn3." in name or name.startswith("regressor.layer") for name in unreached), unreached[:5]
    assert all(p.grad is not None for p in net.parameters())
    with torch.no_grad():
        for p in net.parameters():
            p -= 0.05 * p.grad
    unreached = backward()
    assert not unreached, f"no gradient for {unreached[:5]} ({len(unreached)} parameters)"


@torch.no_grad()
def test_forward_is_deterministic_for_a_seed() -> None:
    images, masks = make_inputs(TINY)
    a = make_net(TINY, seed=3).eval()(images, masks)
    b_net = make_net(TINY, seed=3).eval()
    b = b_net(images, masks)
    c = make_net(TINY, seed=4).eval()(images, masks)
    for key in a:
        assert torch.equal(a[key], b[key]), key
        assert torch.equal(b_net(images, masks)[key], b[key]), key
    assert not torch.allclose(a["identity"], c["identity"])


@pytest.mark.parametrize("mode", ["eval", "train"])
@torch.no_grad()
def test_invalid_views_do_not_influence_the_output(mode: str) -> None:
    net = make_net(TINY)
    net.train(mode == "train")
    images, masks = make_inputs(TINY)
    valid = torch.tensor([[True, False, True], [False, True, False]])
    base = net(images, masks, valid)
    garbage_images, garbage_masks = images.clone(), masks.clone()
    garbage_images[~valid] = torch.rand_like(garbage_images[~valid]) * 50
    garbage_images[0, 1, :, 0, 0] = float("nan")
    garbage_masks[~valid] = 99
    changed = net(garbage_images, garbage_masks, valid)
    for key in base:
        assert torch.equal(base[key], changed[key]), key
    # An invalid view is exactly a black image with an empty (background) mask, as in the paper's view dropout.
    black_images, empty_masks = images.clone(), masks.clone()
    black_images[~valid] = 0.0
    empty_masks[~valid] = 0
    explicit = net(black_images, empty_masks, torch.ones_like(valid))
    for key in base:
        assert torch.allclose(base[key], explicit[key], atol=1e-6), key
    # ... whereas a valid view's pixels do matter.
    other = images.clone()
    other[0, 0] = torch.rand_like(other[0, 0])
    assert not torch.allclose(net(other, masks, valid)["identity"][0], base["identity"][0], atol=1e-7)


@torch.no_grad()
def test_single_view_input_runs() -> None:
    net = make_net(TINY).eval()
    images, masks = make_inputs(TINY, batch=1)
    out = net(images, masks, torch.tensor([[False, True, False]]))
    assert shapes(out) == expected_shapes(1)
    assert all(bool(torch.isfinite(v).all()) for v in out.values())


@torch.no_grad()
def test_untrained_net_predicts_reference_pose_and_ambient_light() -> None:
    for kind in ("pca", "blendshape"):
        net = make_net(TINY, expression_kind=kind).eval()
        out = net(*make_inputs(TINY))
        assert torch.equal(out["pose"], torch.zeros(2, 3, 6))
        light = out["lighting"]
        assert torch.equal(light[..., [0, 9, 18]], torch.full((2, 3, 3), AMBIENT_DC))
        assert torch.equal(light[..., [i for i in range(27) if i not in (0, 9, 18)]], torch.zeros(2, 3, 24))
        if kind == "blendshape":
            assert bool(((out["expression"] > 0) & (out["expression"] < 0.2)).all())


@torch.no_grad()
def test_flat_mode_round_trips() -> None:
    net = make_net(TINY).eval()
    images, masks = make_inputs(TINY)
    valid = torch.tensor([[True, True, False], [True, True, True]])
    out = net(images, masks, valid)
    flat = net.forward_flat(images, masks, valid)
    assert flat.shape == (2, SIZES.total(3)) == (2, net.flat_size)
    assert net.flat_size == 10 + 8 + 9 + 3 * 27 + 3 * 6
    parts = net.split_flat(flat)
    assert list(parts) == list(FLAT_ORDER)
    for key in out:
        assert torch.equal(parts[key], out[key]), key
    # Documented order: identity | expression | albedo | lighting (view-major) | pose (view-major).
    assert torch.equal(flat[:, :10], out["identity"])
    assert torch.equal(flat[:, 27 : 27 + 27], out["lighting"][:, 0])
    assert torch.equal(flat[:, -6:], out["pose"][:, 2])
    layout = flat_layout(SIZES, 3)
    assert layout["lighting"] == (27, 108, (3, 27)) and layout["pose"] == (108, 126, (3, 6))
    arbitrary = torch.randn(4, 126)
    assert torch.equal(torch.cat([v.flatten(1) for v in split_flat(arbitrary, SIZES, 3).values()], 1), arbitrary)
    with pytest.raises(ShapeError, match=r"flat: expected shape \(\*, 126\)"):
        net.split_flat(torch.zeros(2, 125))


class TestInputErrors:
    net = DFMVRNet(TINY, SIZES).eval()

    def call(self, images=None, masks=None, valid=None):
        default_images, default_masks = make_inputs(TINY)
        return self.net(default_images if images is None else images, default_masks if masks is None else masks, valid)

    def test_wrong_channel_count(self) -> None:
        with pytest.raises(ShapeError, match=r"images: expected shape \(B, 3, 3, 32, 32\), got \(2, 3, 4, 32, 32\)"):
            self.call(images=torch.rand(2, 3, 4, 32, 32))

    def test_wrong_size(self) -> None:
        with pytest.raises(ShapeError, match=r"images: expected shape \(B, 3, 3, 32, 32\)"):
            self.call(images=torch.rand(2, 3, 3, 64, 64))
        with pytest.raises(ShapeError, match=r"masks: expected shape \(B, 3, 32, 32\)"):
            self.call(masks=torch.zeros(2, 3, 16, 16, dtype=torch.long))

    def test_view_count_mismatch(self) -> None:
        with pytest.raises(ShapeError, match=r"images: expected shape \(B, 3, 3, 32, 32\), got \(2, 2, 3, 32, 32\)"):
            self.call(images=torch.rand(2, 2, 3, 32, 32))
        with pytest.raises(ShapeError, match=r"valid: expected shape \(B, 3\)"):
            self.call(valid=torch.ones(2, 2, dtype=torch.bool))

    def test_batch_mismatch(self) -> None:
        with pytest.raises(ShapeError, match="batch sizes disagree"):
            self.call(masks=torch.zeros(3, 3, 32, 32, dtype=torch.long))

    def test_nan_and_range(self) -> None:
        images, _ = make_inputs(TINY)
        images[1, 2, 0, 5, 5] = float("nan")
        with pytest.raises(ShapeError, match="images: 1 non-finite"):
            self.call(images=images)
        with pytest.raises(ShapeError, match=r"images: expected RGB in \[0, 1\]"):
            self.call(images=make_inputs(TINY)[0] * 255)

    def test_mask_labels_out_of_range(self) -> None:
        for bad in (10, -1):
            masks = make_inputs(TINY)[1]
            masks[0, 1, 3, 3] = bad
            with pytest.raises(ShapeError, match=r"masks: expected face-part labels in 0\.\.9"):
                self.call(masks=masks)

    def test_dtypes_and_missing_masks(self) -> None:
        with pytest.raises(ShapeError, match="masks: expected an integer tensor"):
            self.call(masks=torch.zeros(2, 3, 32, 32))
        with pytest.raises(ShapeError, match="images: expected a float tensor"):
            self.call(images=torch.zeros(2, 3, 3, 32, 32, dtype=torch.uint8))
        with pytest.raises(ShapeError, match="valid: expected a bool tensor"):
            self.call(valid=torch.ones(2, 3))
        images, _ = make_inputs(TINY)
        with pytest.raises(ShapeError, match="masks: required"):
            self.net(images, None)

    @torch.no_grad()
    def test_masks_are_ignored_without_mask_input(self) -> None:
        net = make_net(dataclasses.replace(TINY, mask_input="none")).eval()
        images, masks = make_inputs(TINY)
        assert torch.equal(net(images, None)["identity"], net(images, masks * 0 + 99)["identity"])

    def test_uint8_masks_are_accepted(self) -> None:
        with torch.no_grad():
            images, masks = make_inputs(TINY)
            assert torch.equal(self.net(images, masks.to(torch.uint8))["identity"], self.net(images, masks)["identity"])

    def test_bad_construction(self) -> None:
        with pytest.raises(ConfigError, match="config"):
            DFMVRNet({"name": "paper"}, SIZES)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="expression_kind"):
            DFMVRNet(TINY, SIZES, "linear")
