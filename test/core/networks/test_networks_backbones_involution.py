"""Involution2d (Li et al., CVPR 2021): shifted-slice aggregation vs the unfold reference and a brute-force loop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.networks.involution import Involution2d, _involution_unfold_reference


@pytest.fixture(autouse=True)
def _single_thread():
    """Small ops on a shared 2-core machine: one intra-op thread avoids costly OpenMP contention; restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _randomize_bn(module: torch.nn.Module, seed: int) -> None:
    """Non-trivial BN statistics/affine so that eval-mode kernel generation is not a plain identity."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen, dtype=torch.float64))
            m.running_var.copy_(torch.rand(m.num_features, generator=gen, dtype=torch.float64) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=gen, dtype=torch.float64))
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen, dtype=torch.float64))


@pytest.mark.parametrize(
    ("channels", "kernel_size", "stride", "group_channels", "height", "width"),
    [
        (32, 7, 1, 16, 9, 10),
        (32, 3, 1, 8, 6, 6),
        (48, 5, 1, 16, 7, 5),
        (16, 1, 1, 16, 4, 4),
        (64, 7, 2, 16, 8, 8),
        (32, 3, 2, 4, 9, 7),  # odd sizes: ceil-mode pooling keeps kernel map and sampled grid aligned
        (48, 5, 2, 16, 10, 11),
        (32, 7, 3, 32, 11, 9),
    ],
)
@pytest.mark.parametrize("train", [True, False])
def test_involution_matches_unfold_reference(
    channels: int, kernel_size: int, stride: int, group_channels: int, height: int, width: int, train: bool
) -> None:
    torch.manual_seed(0)
    module = Involution2d(channels, kernel_size, stride, group_channels).double()
    _randomize_bn(module, 1)
    module.train(train)
    x = torch.randn(2, channels, height, width, dtype=torch.float64)
    out = module(x)
    ref = _involution_unfold_reference(module, x)
    assert out.shape == (2, channels, -(-height // stride), -(-width // stride))
    assert out.dtype == torch.float64
    assert torch.allclose(out, ref, rtol=0.0, atol=1e-10), (out - ref).abs().max()
    assert out.abs().max() > 1e-3  # not trivially zero


def test_involution_matches_brute_force_formula() -> None:
    """y[b, c, i, j] = Σ_{u,v} kernel[b, c // Cg, u·K + v, i, j] · x_pad[b, c, s·i + u, s·j + v] (Li et al. eq. 4)."""
    torch.manual_seed(3)
    k, s, cg = 3, 2, 8
    module = Involution2d(16, k, s, cg).double().eval()
    _randomize_bn(module, 4)
    x = torch.randn(1, 16, 5, 6, dtype=torch.float64)
    out = module(x)
    kernel = module.generate_kernel(x)
    x_pad = F.pad(x, (1, 1, 1, 1))
    expected = torch.zeros_like(out)
    for c in range(16):
        for i in range(out.shape[2]):
            for j in range(out.shape[3]):
                acc = 0.0
                for u in range(k):
                    for v in range(k):
                        acc += kernel[0, c // cg, u * k + v, i, j] * x_pad[0, c, s * i + u, s * j + v]
                expected[0, c, i, j] = acc
    assert torch.allclose(out, expected, rtol=0.0, atol=1e-10)


def test_involution_kernel_is_spatially_specific_and_channel_shared() -> None:
    torch.manual_seed(5)
    module = Involution2d(32, 7, 1, 16).eval()
    x = torch.randn(1, 32, 8, 8)
    kernel = module.generate_kernel(x)
    assert kernel.shape == (1, 2, 49, 8, 8)
    # Different pixels get different kernels (spatial-specific), unlike a convolution.
    assert not torch.allclose(kernel[..., 0, 0], kernel[..., 3, 4])


def test_involution_parameter_names_and_shapes_follow_official_layout() -> None:
    module = Involution2d(64, kernel_size=7, stride=2)
    shapes = {name: tuple(p.shape) for name, p in module.state_dict().items()}
    assert shapes["conv1.conv.weight"] == (16, 64, 1, 1)
    assert shapes["conv1.bn.weight"] == (16,)
    assert shapes["conv1.bn.running_var"] == (16,)
    assert shapes["conv2.conv.weight"] == (49 * 4, 16, 1, 1)
    assert shapes["conv2.conv.bias"] == (49 * 4,)
    assert "conv1.conv.bias" not in shapes
    assert isinstance(module.avgpool, torch.nn.AvgPool2d)
    assert sum(p.numel() for p in module.parameters()) == 64 * 16 + 2 * 16 + 16 * 196 + 196


def test_involution_stride_pooling_equals_official_on_even_sizes_and_averages_inside_on_odd() -> None:
    module = Involution2d(16, 3, 2, 16)
    x = torch.randn(1, 16, 8, 6)
    assert torch.equal(module.avgpool(x), F.avg_pool2d(x, 2, 2))
    x_odd = torch.randn(1, 16, 5, 5)
    pooled = module.avgpool(x_odd)
    assert pooled.shape == (1, 16, 3, 3)
    assert torch.allclose(pooled[..., 2, 2], x_odd[..., 4, 4])  # corner window holds one in-image pixel
    assert torch.allclose(pooled[..., 2, 0], x_odd[..., 4, 0:2].mean(-1))


def test_involution_accepts_non_contiguous_input() -> None:
    torch.manual_seed(6)
    module = Involution2d(16, 5, 1, 16).double().eval()
    x = torch.randn(2, 16, 7, 9, dtype=torch.float64)
    x_nc = x.transpose(2, 3).contiguous().transpose(2, 3)
    assert not x_nc.is_contiguous()
    assert torch.allclose(module(x_nc), module(x), rtol=0.0, atol=1e-12)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    assert torch.allclose(module(x_cl), module(x), rtol=0.0, atol=1e-12)


def test_involution_gradients_reach_all_parameters_and_input() -> None:
    torch.manual_seed(7)
    module = Involution2d(32, 3, 2, 16)
    x = torch.randn(2, 32, 6, 6, requires_grad=True)
    (module(x) * torch.randn(2, 32, 3, 3)).sum().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().max() > 0, name
    assert x.grad is not None and x.grad.abs().max() > 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"channels": 24}, "channels"),  # not a multiple of group_channels=16
        ({"channels": 0}, "channels"),
        ({"channels": 32, "kernel_size": 4}, "kernel_size"),
        ({"channels": 32, "stride": 0}, "stride"),
        ({"channels": 16, "group_channels": 16, "reduction_ratio": 32}, "reduction_ratio"),
        ({"channels": 32, "group_channels": True}, "group_channels"),
    ],
)
def test_involution_invalid_config_raises(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        Involution2d(**kwargs)


def test_involution_wrong_input_shape_raises() -> None:
    module = Involution2d(32)
    with pytest.raises(ShapeError, match=r"\(\*, 32, \*, \*\)"):
        module(torch.randn(1, 16, 8, 8))
    with pytest.raises(ShapeError, match=r"\(\*, 32, \*, \*\)"):
        module(torch.randn(32, 8, 8))
