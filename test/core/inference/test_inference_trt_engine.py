"""The real TensorRT backend against PyTorch on a tiny network: fp32 / tf32 / fp16 engines, invalid views, chunked
batches, the engine cache across backend instances. Needs an NVIDIA GPU and the TensorRT wheel (bench/gpu/README.md).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from dfmvr_core.errors import ShapeError
from dfmvr_core.inference import TensorRTBackend, TorchBackend, build_coefficient_backend, export_onnx
from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.networks.dfmvr_net import FLAT_ORDER, DFMVRNet
from dfmvr_core.networks.net_config import SMALL_CONFIG

pytest.importorskip("tensorrt", reason="TensorRT not installed (needs an NVIDIA GPU + TensorRT wheel)")
if not torch.cuda.is_available():
    pytest.skip("TensorRT needs a CUDA GPU (torch.cuda.is_available() is False)", allow_module_level=True)

TINY = dataclasses.replace(
    SMALL_CONFIG,
    name="tiny",
    encoder_channels=(8, 16, 32),
    fused_channels=8,
    regressor_depth=26,
    regressor_width=0.25,
    input_size=64,
    input_downsample=2,
)  # RedNet regressor: the involution graph TensorRT must handle
SIZES = CoefficientSizes(identity=10, expression=7, albedo=6)
TOLERANCES = {"fp32": 1e-3, "tf32": 2e-2, "fp16": 5e-2}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    net = DFMVRNet(TINY, SIZES, "blendshape")
    for module in net.heads.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 1.0)
            nn.init.normal_(module.bias, 0.0, 0.5)
    folder = tmp_path_factory.mktemp("trt")
    return net, export_onnx(net, folder / "tiny.onnx"), folder / "cache"


def inputs(batch: int):
    g = torch.Generator().manual_seed(1)
    return torch.rand(batch, 3, 3, 64, 64, generator=g), torch.randint(0, 10, (batch, 3, 64, 64), generator=g)


@pytest.mark.parametrize("precision", ["fp32", "tf32", "fp16"])
def test_tensorrt_matches_pytorch(tiny, precision):
    net, path, cache = tiny
    images, masks = inputs(3)
    valid = torch.tensor([[True, True, True], [True, False, True], [False, True, False]])
    images[1, 1] = float("nan")
    expected = TorchBackend(net).run(images, masks, valid)
    backend = TensorRTBackend(path, cache=cache, precision=precision, device="cuda:0", max_batch=2)
    assert backend.cache_status in ("built", "hit") and backend.engine_path.is_file()
    out = backend.run(images.cuda(), masks.cuda(), valid.cuda())  # 3 > max_batch: two launches
    assert list(out) == list(FLAT_ORDER)
    assert all(v.dtype == torch.float32 and v.device == torch.device("cuda", 0) for v in out.values())
    delta = max(float((out[k].cpu() - expected[k]).abs().max()) for k in FLAT_ORDER)
    assert delta <= TOLERANCES[precision], f"{precision}: max |delta| {delta:.3g}"
    numpy_out = backend.run(images.numpy(), masks.numpy(), valid.numpy())
    assert max(float((numpy_out[k] - out[k]).abs().max()) for k in FLAT_ORDER) == 0.0
    again = build_coefficient_backend(
        "tensorrt", onnx_path=path, engine_cache_dir=cache, precision=precision, device="cuda:0", max_batch=2
    )
    assert again.cache_status == "hit" and again.engine_path == backend.engine_path


def test_tensorrt_checks_inputs(tiny):
    _, path, cache = tiny
    backend = TensorRTBackend(path, cache=cache, precision="fp32", max_batch=2)
    images, masks = inputs(1)
    images[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ShapeError, match="non-finite"):
        backend.run(images, masks)
    with pytest.raises(ShapeError, match="masks: required"):
        backend.run(inputs(1)[0], None)
    assert backend.run(np.zeros((0, 3, 3, 64, 64), np.float32), np.zeros((0, 3, 64, 64), np.int64))["pose"].shape == (
        0,
        3,
        6,
    )
