"""RedNet (Li et al., CVPR 2021) and ResNet (He et al., CVPR 2016) backbones of DF-MVR's parameter regressor.

Forward passes use small inputs (32–64 px) to stay fast on CPU; parameter counts are taken on the meta device.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.networks.involution import Involution2d
from dfmvr_core.networks.rednet import (
    REDNET_DEPTHS,
    InvolutionBottleneck,
    RedNet,
    convert_mmcls_rednet_state_dict,
)
from dfmvr_core.networks.resnet import RESNET_DEPTHS, BasicBlock, Bottleneck, ResNet


@pytest.fixture(autouse=True)
def _single_thread():
    """Small ops on a shared 2-core machine: one intra-op thread avoids costly OpenMP contention; restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# Published ImageNet parameter counts (Li et al. 2021, Table 2), classifier included, in millions.
PUBLISHED_REDNET_PARAMS_M = {26: 9.23, 38: 12.39, 50: 15.54, 101: 25.65, 152: 33.99}
# Exact counts of this implementation (regression guard; each within 0.1 % of the published number).
EXACT_REDNET_PARAMS = {26: 9_233_166, 38: 12_386_986, 50: 15_540_806, 101: 25_652_950, 152: 33_984_582}
# torchvision's resnet18 / resnet50 ImageNet models.
TORCHVISION_RESNET_PARAMS = {18: 11_689_512, 50: 25_557_032}


def _num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------------ parameter counts
@pytest.mark.parametrize("depth", sorted(PUBLISHED_REDNET_PARAMS_M))
def test_rednet_parameter_count_matches_published(depth: int) -> None:
    with torch.device("meta"):
        model = RedNet(depth)
    count = _num_params(model)
    published = PUBLISHED_REDNET_PARAMS_M[depth] * 1e6
    assert abs(count - published) / published < 1e-3, (depth, count)
    assert count == EXACT_REDNET_PARAMS[depth]


@pytest.mark.parametrize("depth", sorted(TORCHVISION_RESNET_PARAMS))
def test_resnet_parameter_count_equals_torchvision(depth: int) -> None:
    with torch.device("meta"):
        model = ResNet(depth)
    assert _num_params(model) == TORCHVISION_RESNET_PARAMS[depth]


def test_width_multiplier_shrinks_rednet_and_keeps_group_multiples() -> None:
    with torch.device("meta"):
        small = RedNet(50, in_channels=64, num_classes=None, width_multiplier=0.25)
    assert small.feature_dim == 512
    assert _num_params(small) < EXACT_REDNET_PARAMS[50] / 8
    for module in small.modules():
        if isinstance(module, Involution2d):
            assert module.channels % 16 == 0 and module.channels >= 16


# ------------------------------------------------------------------------------------------------ state dicts
def test_rednet_state_dict_uses_official_mmcls_names() -> None:
    with torch.device("meta"):
        model = RedNet(50)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = {
        "stem.0.conv.weight": (32, 3, 3, 3),
        "stem.0.bn.running_mean": (32,),
        "stem.1.conv1.conv.weight": (8, 32, 1, 1),
        "stem.1.conv2.conv.weight": (2 * 9, 8, 1, 1),
        "stem.1.conv2.conv.bias": (2 * 9,),
        "stem.2.weight": (32,),
        "stem.4.conv.weight": (64, 32, 3, 3),
        "stem.4.bn.weight": (64,),
        "layer1.0.conv1.weight": (64, 64, 1, 1),
        "layer1.0.bn1.weight": (64,),
        "layer1.0.conv2.conv1.conv.weight": (16, 64, 1, 1),
        "layer1.0.conv2.conv1.bn.running_var": (16,),
        "layer1.0.conv2.conv2.conv.weight": (49 * 4, 16, 1, 1),
        "layer1.0.bn2.weight": (64,),
        "layer1.0.conv3.weight": (256, 64, 1, 1),
        "layer1.0.bn3.weight": (256,),
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer1.0.downsample.1.weight": (256,),
        "layer4.2.conv2.conv2.conv.weight": (49 * 32, 128, 1, 1),
        "layer4.0.downsample.0.weight": (2048, 1024, 1, 1),
        "fc.weight": (1000, 2048),
        "fc.bias": (1000,),
    }
    for key, shape in expected.items():
        assert shapes.get(key) == shape, key
    assert "layer1.1.downsample.0.weight" not in shapes


def test_convert_mmcls_checkpoint_loads_strictly() -> None:
    torch.manual_seed(0)
    source = RedNet(26, width_multiplier=0.25, num_classes=10)
    official = {("head." if k.startswith("fc.") else "backbone.") + k: v for k, v in source.state_dict().items()}
    converted = convert_mmcls_rednet_state_dict({"meta": {}, "state_dict": official})
    target = RedNet(26, width_multiplier=0.25, num_classes=10)
    target.load_state_dict(converted, strict=True)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    with pytest.raises(ConfigError, match="expected a tensor"):
        convert_mmcls_rednet_state_dict({"backbone.x": 1.0})


def test_resnet_state_dict_uses_torchvision_names() -> None:
    with torch.device("meta"):
        model = ResNet(50)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = {
        "conv1.weight": (64, 3, 7, 7),
        "bn1.running_mean": (64,),
        "layer1.0.conv2.weight": (64, 64, 3, 3),
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer2.0.conv2.weight": (128, 128, 3, 3),
        "layer4.2.conv3.weight": (2048, 512, 1, 1),
        "layer4.2.bn3.num_batches_tracked": (),
        "fc.weight": (1000, 2048),
    }
    for key, shape in expected.items():
        assert shapes.get(key) == shape, key


# ---------------------------------------------------------------------------------------------------- blocks
@pytest.mark.parametrize(
    ("block_cls", "in_channels", "mid", "stride", "has_downsample"),
    [
        (BasicBlock, 64, 64, 1, False),
        (BasicBlock, 64, 128, 2, True),
        (Bottleneck, 64, 64, 1, True),
        (Bottleneck, 256, 64, 1, False),
        (Bottleneck, 256, 128, 2, True),
        (InvolutionBottleneck, 64, 64, 1, True),
        (InvolutionBottleneck, 256, 64, 1, False),
        (InvolutionBottleneck, 256, 128, 2, True),
    ],
)
@pytest.mark.parametrize("size", [(8, 8), (7, 9)])
def test_block_output_shapes(
    block_cls: type, in_channels: int, mid: int, stride: int, has_downsample: bool, size: tuple[int, int]
) -> None:
    torch.manual_seed(0)
    block = block_cls(in_channels, mid, stride)
    out = block(torch.randn(2, in_channels, *size))
    assert out.shape == (2, mid * block_cls.expansion, -(-size[0] // stride), -(-size[1] // stride))
    assert (block.downsample is not None) == has_downsample
    assert out.min() >= 0  # closing ReLU
    if block_cls is InvolutionBottleneck:
        assert isinstance(block.conv2, Involution2d)
        assert block.conv2.kernel_size == 7 and block.conv2.stride == stride
    elif block_cls is Bottleneck:
        assert isinstance(block.conv2, nn.Conv2d) and block.conv2.stride == (stride, stride)


# ----------------------------------------------------------------------------------------- network forwards
@pytest.mark.parametrize("depth", sorted(REDNET_DEPTHS))
def test_rednet_output_shapes_each_depth(depth: int) -> None:
    with torch.device("meta"):
        assert RedNet(depth).feature_dim == 2048
    torch.manual_seed(0)
    # Train mode: at initialisation the BN running statistics are (0, 1), so in eval mode the involution kernels
    # scale with their input and deep untrained RedNets overflow; batch statistics keep activations normalised.
    model = RedNet(depth, num_classes=7, width_multiplier=0.25)
    assert model.feature_dim == 512
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == list(REDNET_DEPTHS[depth])
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        fmap = model.forward_feature_map(x)
        features = model.forward_features(x)
        logits = model(x)
    assert fmap.shape == (2, 512, 1, 2)
    assert features.shape == (2, 512)
    assert torch.allclose(features, fmap.mean(dim=(2, 3)))
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("depth", sorted(RESNET_DEPTHS))
def test_resnet_output_shapes_each_depth(depth: int) -> None:
    expected_dim = 512 if depth < 50 else 2048
    with torch.device("meta"):
        assert ResNet(depth).feature_dim == expected_dim
    torch.manual_seed(0)
    model = ResNet(depth, num_classes=5, width_multiplier=0.25).eval()
    assert model.feature_dim == expected_dim // 4
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == list(RESNET_DEPTHS[depth][1])
    x = torch.randn(2, 3, 33, 64)
    with torch.no_grad():
        assert model.forward_feature_map(x).shape == (2, expected_dim // 4, 2, 2)
        assert model.forward_features(x).shape == (2, expected_dim // 4)
        logits = model(x)
    assert logits.shape == (2, 5)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("cls", [RedNet, ResNet])
def test_no_classifier_returns_features(cls: type) -> None:
    torch.manual_seed(0)
    model = cls(50, num_classes=None, width_multiplier=0.25)
    assert model.fc is None
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, model.feature_dim)
        assert torch.equal(out, model.forward_features(x))


@pytest.mark.parametrize(("cls", "depth"), [(RedNet, 50), (ResNet, 50)])
def test_64_channel_fused_input_dfmvr(cls: type, depth: int) -> None:
    """DF-MVR feeds the 64-channel fused Tri-UNet features to the regressor (sec. III-D)."""
    torch.manual_seed(0)
    model = cls(depth, in_channels=64, num_classes=257)
    stem_conv = model.stem[0].conv if cls is RedNet else model.conv1
    assert stem_conv.in_channels == 64
    with torch.no_grad():
        out = model(torch.randn(2, 64, 64, 64))
    assert out.shape == (2, 257)
    assert torch.isfinite(out).all()


def test_rednet_zero_init_residual_is_finite_in_eval_at_init() -> None:
    """With γ = 0 on every block's last BN (official mmcls default) an untrained deep RedNet is stable in eval."""
    torch.manual_seed(0)
    model = RedNet(101, in_channels=64, num_classes=6, width_multiplier=0.25, zero_init_residual=True).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 64, 32, 32))
    assert out.shape == (2, 6)
    assert torch.isfinite(out).all()


def test_rednet_float64_forward_keeps_dtype() -> None:
    torch.manual_seed(0)
    model = RedNet(26, width_multiplier=0.25, num_classes=3).double()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32, dtype=torch.float64)).dtype == torch.float64


# ----------------------------------------------------------------------------------------- gradients / seeds
@pytest.mark.parametrize(
    ("cls", "depth", "width"),
    [(RedNet, 26, 1.0), (RedNet, 50, 0.25), (ResNet, 18, 1.0), (ResNet, 50, 0.25)],
)
def test_gradients_reach_every_parameter(cls: type, depth: int, width: float) -> None:
    torch.manual_seed(0)
    model = cls(depth, in_channels=64, num_classes=11, width_multiplier=width).train()
    x = torch.randn(2, 64, 48, 48)  # last stage 2×2: BN batch statistics over 8 values per channel
    loss = (model(x) * torch.randn(2, 11)).sum()
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().max() > 0, name


@pytest.mark.parametrize("cls", [RedNet, ResNet])
def test_same_seed_gives_identical_models_and_outputs(cls: type) -> None:
    x = torch.randn(2, 64, 32, 32, generator=torch.Generator().manual_seed(1))
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = cls(26 if cls is RedNet else 18, in_channels=64, num_classes=9, width_multiplier=0.25)
        initial = {k: v.clone() for k, v in model.state_dict().items()}
        outs.append((initial, model(x), model.state_dict()))
    (init_a, out_a, after_a), (init_b, out_b, after_b) = outs
    assert all(torch.equal(init_a[k], init_b[k]) for k in init_a)
    assert all(torch.equal(after_a[k], after_b[k]) for k in after_a)  # BN running statistics too
    assert torch.equal(out_a, out_b)
    torch.manual_seed(124)
    other = cls(26 if cls is RedNet else 18, in_channels=64, num_classes=9, width_multiplier=0.25)
    assert not torch.equal(other(x), out_a)


@pytest.mark.parametrize("cls", [RedNet, ResNet])
def test_zero_init_residual_makes_blocks_identity(cls: type) -> None:
    torch.manual_seed(0)
    default = cls(50, width_multiplier=0.25)
    zeroed = cls(50, width_multiplier=0.25, zero_init_residual=True)
    assert all(block.bn3.weight.abs().sum() > 0 for block in default.layer1)
    assert all(torch.equal(block.bn3.weight, torch.zeros_like(block.bn3.weight)) for block in zeroed.layer1)
    block = zeroed.layer1[1].eval()  # identity shortcut: output = ReLU(input)
    x = torch.randn(1, block.out_channels, 5, 5)
    with torch.no_grad():
        assert torch.equal(block(x), torch.relu(x))


# ----------------------------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("cls", [RedNet, ResNet])
def test_bad_input_raises_shape_error(cls: type) -> None:
    model = cls(50, in_channels=64, num_classes=4, width_multiplier=0.25).eval()
    with pytest.raises(ShapeError, match=r"x: expected shape \(\*, 64, \*, \*\), got \(2, 3, 32, 32\)"):
        model(torch.randn(2, 3, 32, 32))
    with pytest.raises(ShapeError, match=r"expected shape \(\*, 64, \*, \*\), got \(64, 32, 32\)"):
        model(torch.randn(64, 32, 32))
    with pytest.raises(ShapeError, match=r"expected shape \(\*, 64, \*, \*\)"):
        model.forward_features(torch.randn(1, 2, 64, 32, 32))
    bad = torch.randn(1, 64, 32, 32)
    bad[0, 3, 4, 5] = math.nan
    with pytest.raises(ShapeError, match="non-finite"):
        model(bad)
    bad[0, 3, 4, 5] = math.inf
    with pytest.raises(ShapeError, match="non-finite"):
        model.forward_features(bad)


@pytest.mark.parametrize(
    ("cls", "kwargs", "pattern"),
    [
        (RedNet, {"depth": 34}, r"depth: expected one of \(26, 38, 50, 101, 152\)"),
        (RedNet, {"depth": "50"}, r"depth: expected one of"),
        (RedNet, {"depth": True}, r"depth: expected one of"),
        (ResNet, {"depth": 26}, r"depth: expected one of \(18, 34, 50, 101, 152\)"),
        (RedNet, {"depth": 50, "in_channels": 0}, "in_channels"),
        (ResNet, {"depth": 50, "in_channels": 3.0}, "in_channels"),
        (RedNet, {"depth": 50, "num_classes": 0}, "num_classes"),
        (RedNet, {"depth": 50, "width_multiplier": 0.0}, r"width_multiplier: expected a finite number in \(0, 8\]"),
        (ResNet, {"depth": 50, "width_multiplier": -1.0}, "width_multiplier"),
        (RedNet, {"depth": 50, "width_multiplier": math.nan}, "width_multiplier"),
        (RedNet, {"depth": 50, "width_multiplier": math.inf}, "width_multiplier"),
        (ResNet, {"depth": 50, "width_multiplier": 9}, "width_multiplier"),
        (RedNet, {"depth": 50, "width_multiplier": "1"}, "width_multiplier"),
    ],
)
def test_invalid_config_raises(cls: type, kwargs: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        cls(**kwargs)
