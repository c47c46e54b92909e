"""The coefficient backends behind one interface: PyTorch and ONNX Runtime agree on a tiny network (Tri-UNet + a
plain CNN regressor at 64 px: export ≈ 1 s), same keys/shapes/dtypes, numpy and torch inputs, invalid views,
chunking and padding, precision rules, the factory.

``torch.compile`` takes ≈ 2 min on 2 CPU cores even for this network: that test runs with ``DFMVR_SLOW_TESTS=1``.
"""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.inference import (
    CoefficientBackend,
    MissingDependencyError,
    OnnxRuntimeCoefficientBackend,
    TorchBackend,
    build_coefficient_backend,
    export_onnx,
)
from dfmvr_core.inference.backends import _fp32_precision, pad_batch, resolve_device
from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.networks.dfmvr_net import FLAT_ORDER, DFMVRNet
from dfmvr_core.networks.net_config import SMALL_CONFIG

TINY = dataclasses.replace(
    SMALL_CONFIG,
    name="tiny",
    encoder_channels=(8, 16, 32),
    fused_channels=8,
    regressor="cnn",
    regressor_width=0.25,
    input_size=64,
    input_downsample=2,
)
SIZES = CoefficientSizes(identity=10, expression=7, albedo=6)
TOLERANCE = 1e-4
CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(network, ONNX path, torch backend, onnxruntime backend); heads re-drawn so every group is O(1)."""
    torch.manual_seed(0)
    net = DFMVRNet(TINY, SIZES, "blendshape")
    for module in net.heads.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 1.0)
            nn.init.normal_(module.bias, 0.0, 0.5)
    path = export_onnx(net, tmp_path_factory.mktemp("tiny") / "tiny.onnx", model_fingerprint="f" * 16)
    ort = OnnxRuntimeCoefficientBackend(path, providers=["CPUExecutionProvider"])
    return net, path, TorchBackend(net), ort


def inputs(batch: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, 3, 64, 64, generator=g)
    masks = torch.randint(0, 10, (batch, 3, 64, 64), generator=g)
    return images, masks


def max_delta(a: dict, b: dict) -> float:
    return max(float((a[k].cpu() - b[k].cpu()).abs().max()) for k in FLAT_ORDER)


def test_torch_and_onnxruntime_agree_with_an_invalid_nan_view(tiny):
    net, _, torch_backend, ort = tiny
    images, masks = inputs(2)
    valid = torch.tensor([[True, True, True], [True, False, True]])
    images[1, 1] = float("nan")  # invalid views may hold anything
    masks[1, 1] = 99
    ours, theirs = torch_backend.run(images, masks, valid), ort.run(images, masks, valid)
    assert max_delta(ours, theirs) <= TOLERANCE
    with torch.no_grad():
        reference = net(images, masks, valid)
    assert max_delta(ours, reference) == 0.0
    # the invalid view really is ignored: other content there gives the same coefficients
    images[1, 1], masks[1, 1] = 0.3, 2
    assert max_delta(ort.run(images, masks, valid), theirs) == 0.0


def test_keys_shapes_dtypes_and_attributes(tiny):
    _, _, torch_backend, ort = tiny
    images, masks = inputs(3)
    for backend in (torch_backend, ort):
        assert isinstance(backend, CoefficientBackend)
        out = backend.run(images, masks)
        assert list(out) == list(FLAT_ORDER)
        expected = {"identity": (3, 10), "expression": (3, 7), "albedo": (3, 6), "lighting": (3, 3, 27)}
        expected["pose"] = (3, 3, 6)
        assert {k: tuple(v.shape) for k, v in out.items()} == expected
        assert all(isinstance(v, torch.Tensor) and v.dtype == torch.float32 for v in out.values())
        assert all(v.device == backend.device for v in out.values())
        assert backend.config == TINY and backend.sizes == SIZES and backend.expression_kind == "blendshape"
        assert backend.precision == "fp32"
    assert torch_backend.name == "torch:cpu:fp32" and torch_backend.max_batch is None
    assert ort.name == "onnxruntime:CPUExecutionProvider" and ort.model_fingerprint == "f" * 16
    assert torch_backend.model_fingerprint is None


def test_numpy_and_torch_inputs_give_the_same_result(tiny):
    _, _, torch_backend, ort = tiny
    images, masks = inputs(2, seed=3)
    valid = np.array([[True, False, True], [False, True, False]])
    for backend in (torch_backend, ort):
        from_torch = backend.run(images, masks, torch.from_numpy(valid))
        readonly = images.numpy().astype(np.float64)
        readonly.flags.writeable = False  # float64 and read-only: converted, no warning
        from_numpy = backend.run(readonly, masks.numpy().astype(np.uint8), valid)
        assert max_delta(from_torch, from_numpy) <= 1e-6


def test_batches_are_chunked_and_padded(tiny):
    net, path, torch_backend, ort = tiny
    images, masks = inputs(5, seed=4)
    valid = torch.ones(5, 3, dtype=torch.bool)
    valid[2, 0] = False
    whole = torch_backend.run(images, masks, valid)
    chunked = TorchBackend(net, max_batch=2).run(images, masks, valid)
    assert max_delta(whole, chunked) <= 1e-5
    fixed = OnnxRuntimeCoefficientBackend(path, providers=["CPUExecutionProvider"], batch_size=2)
    assert fixed.max_batch == 2
    assert max_delta(fixed.run(images, masks, valid), whole) <= TOLERANCE  # 2 + 2 + (1 padded to 2)
    empty = ort.run(images[:0], masks[:0])
    assert empty["lighting"].shape == (0, 3, 27) and empty["identity"].dtype == torch.float32


def test_pad_batch_adds_invalid_samples():
    images, masks = inputs(1)
    valid = torch.ones(1, 3, dtype=torch.bool)
    padded = pad_batch(images, masks, valid, 3)
    assert [tuple(t.shape) for t in padded] == [(3, 3, 3, 64, 64), (3, 3, 64, 64), (3, 3)]
    assert padded[2].tolist() == [[True] * 3, [False] * 3, [False] * 3] and float(padded[0][1:].abs().sum()) == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda i, m, v: (i[:, :2], m, v), "images: expected shape (B, 3, 3, 64, 64)"),
        (lambda i, m, v: ((i * 255).long(), m, v), "images: expected float RGB"),
        (lambda i, m, v: (i * 255, m, v), "0..255 data must be divided by 255"),
        (lambda i, m, v: (i, None, v), "masks: required by this network"),
        (lambda i, m, v: (i, m.float(), v), "masks: expected integer face-part labels"),
        (lambda i, m, v: (i, m + 5, v), "masks: expected face-part labels in 0..9"),
        (lambda i, m, v: (i, m[:1], v), "masks: expected shape (2, 3, 64, 64)"),
        (lambda i, m, v: (i, m, v.long()), "valid: expected a bool array"),
        (lambda i, m, v: (i, m, v[:, :2]), "valid: expected shape (2, 3)"),
        (lambda i, m, v: (i.tolist(), m, v), "images: expected a numpy array or torch tensor"),
    ],
)
def test_bad_inputs_are_refused_by_every_backend(tiny, change, message):
    _, _, torch_backend, ort = tiny
    images, masks = inputs(2)
    args = change(images, masks, torch.ones(2, 3, dtype=torch.bool))
    for backend in (torch_backend, ort):
        with pytest.raises(ShapeError, match=message.replace("(", r"\(").replace(")", r"\)")):
            backend.run(*args)


def test_nan_in_a_valid_view_is_refused(tiny):
    _, _, torch_backend, ort = tiny
    images, masks = inputs(1)
    images[0, 2, 1, 5, 5] = float("nan")
    for backend in (torch_backend, ort):
        with pytest.raises(ShapeError, match="1 non-finite value"):
            backend.run(images, masks)


def test_bf16_autocast_on_cpu_returns_float32_close_to_fp32(tiny):
    net, _, torch_backend, _ = tiny
    images, masks = inputs(2, seed=5)
    bf16 = TorchBackend(net, precision="bf16")
    out = bf16.run(images, masks)
    assert all(v.dtype == torch.float32 for v in out.values()) and bf16.name == "torch:cpu:bf16"
    delta = max_delta(out, torch_backend.run(images, masks))
    assert 0.0 < delta < 0.05  # it did run in bfloat16 (8-bit mantissa), and stayed close


def test_precision_and_device_rules(tiny):
    net = tiny[0]
    with pytest.raises(ConfigError, match="CPU autocast does not run convolutions in float16"):
        TorchBackend(net, precision="fp16")
    with pytest.raises(ConfigError, match="'tf32' is a CUDA tensor-core mode"):
        TorchBackend(net, precision="tf32")
    with pytest.raises(ConfigError, match="precision: expected one of"):
        TorchBackend(net, precision="int8")
    with pytest.raises(ConfigError, match="CUDA graphs need device 'cuda'"):
        TorchBackend(net, cuda_graphs=True)
    with pytest.raises(ConfigError, match="compile: expected False, True or one of"):
        TorchBackend(net, compile="fastest")
    with pytest.raises(ConfigError, match="max_batch: expected a positive int"):
        TorchBackend(net, max_batch=0)
    with pytest.raises(ConfigError, match="network: expected a DFMVRNet"):
        TorchBackend(nn.Linear(2, 2))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="device: expected 'cpu', 'cuda' or 'cuda:N'"):
        resolve_device("tpu")
    if not CUDA:
        with pytest.raises(ConfigError, match="CUDA is not available"):
            TorchBackend(net, device="cuda:0")


def test_tf32_switch_is_local_to_the_call():
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    before = (matmul.fp32_precision, conv.fp32_precision)
    with _fp32_precision(True):
        assert (matmul.fp32_precision, conv.fp32_precision) == ("tf32", "tf32")
    with _fp32_precision(False):
        assert (matmul.fp32_precision, conv.fp32_precision) == ("ieee", "ieee")
    with pytest.raises(RuntimeError), _fp32_precision(True):
        raise RuntimeError("restored even on error")
    assert (matmul.fp32_precision, conv.fp32_precision) == before


def test_warmup_runs(tiny):
    _, _, torch_backend, ort = tiny
    torch_backend.warmup(2)
    ort.warmup()
    with pytest.raises(ConfigError, match="batch: expected a positive int"):
        ort.warmup(0)


def test_factory(tiny):
    net, path, _, _ = tiny
    backend = build_coefficient_backend("torch", network=net, max_batch=3)
    assert isinstance(backend, TorchBackend) and backend.max_batch == 3
    backend = build_coefficient_backend("onnxruntime", onnx_path=path, num_threads=1, batch_size=1)
    assert isinstance(backend, OnnxRuntimeCoefficientBackend)
    assert backend.providers == ["CPUExecutionProvider"] and backend.max_batch == 1
    with pytest.raises(ConfigError, match="backend: expected one of"):
        build_coefficient_backend("openvino", onnx_path=path)
    with pytest.raises(ConfigError, match="backend 'torch': needs the network"):
        build_coefficient_backend("torch", onnx_path=path)
    with pytest.raises(ConfigError, match="needs onnx_path"):
        build_coefficient_backend("onnxruntime", network=net)
    with pytest.raises(ConfigError, match="precision must be 'fp32'"):
        build_coefficient_backend("onnxruntime", onnx_path=path, precision="fp16")
    with pytest.raises(ConfigError, match="compile/cuda_graphs apply to the torch backend only"):
        build_coefficient_backend("onnxruntime", onnx_path=path, compile=True)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_factory_tensorrt_without_tensorrt(tiny, tmp_path):
    with pytest.raises(MissingDependencyError, match="TensorRT not installed; use backend onnxruntime or torch"):
        build_coefficient_backend("tensorrt", onnx_path=tiny[1], device="cuda", engine_cache_dir=tmp_path)


def test_compiled_torch_matches_eager(tiny, monkeypatch):
    """The compile path (mode passed through, graph traced by TorchDynamo) gives the eager results.

    Inductor's C++ code generation takes minutes on this CPU, so the traced graph runs on Dynamo's ``eager``
    backend here; the mode string and the wrapping are what the backend controls.
    """
    real_compile = torch.compile
    modes = []

    def traced(fn, *, mode=None, **kwargs):
        modes.append(mode)
        return real_compile(fn, backend="eager", **kwargs)

    monkeypatch.setattr(torch, "compile", traced)
    net, _, torch_backend, _ = tiny
    compiled = TorchBackend(net, compile="default")
    images, masks = inputs(2, seed=6)
    assert max_delta(compiled.run(images, masks), torch_backend.run(images, masks)) <= 1e-5
    assert modes == ["default"] and "compile=default" in compiled.name


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize(("precision", "tolerance"), [("fp32", 1e-4), ("tf32", 2e-2), ("fp16", 5e-2)])
def test_cuda_precisions_and_graphs_match_cpu(tiny, precision, tolerance):
    net, _, torch_backend, _ = tiny
    images, masks = inputs(3, seed=7)
    valid = torch.tensor([[True, True, True], [False, True, False], [True, False, True]])
    expected = torch_backend.run(images, masks, valid)
    cuda_net = DFMVRNet(TINY, SIZES, "blendshape")
    cuda_net.load_state_dict(net.state_dict())
    for graphs in (False, True):
        backend = TorchBackend(cuda_net, device="cuda", precision=precision, cuda_graphs=graphs, max_batch=2)
        out = backend.run(images.cuda(), masks.cuda(), valid.cuda())
        assert all(v.dtype == torch.float32 and v.is_cuda for v in out.values())
        assert max_delta(out, expected) <= tolerance
