"""Face parser backends: PyTorch and ONNX Runtime give the same CelebAMask-HQ labels (BiSeNet exported at 64 px),
int64 (B, S, S) tensors, numpy and torch inputs, input checks, precision rules, the factory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.inference import (
    FaceParserBackend,
    OnnxFaceParserBackend,
    TorchFaceParser,
    build_face_parser_backend,
    export_face_parser_onnx,
)
from dfmvr_core.networks.face_parser import BiSeNet

SIZE = 64


@pytest.fixture(scope="module")
def parsers(tmp_path_factory):
    torch.manual_seed(0)
    net = BiSeNet().eval()
    torch.nn.init.normal_(net.conv_out.conv_out.weight, 0.0, 1.0)  # fresh weights alone label every pixel alike
    path = export_face_parser_onnx(net, tmp_path_factory.mktemp("parser") / "parser.onnx", input_size=SIZE)
    return net, path, TorchFaceParser(net), OnnxFaceParserBackend(path, providers=["CPUExecutionProvider"])


def images(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def test_torch_and_onnxruntime_labels_agree(parsers):
    net, _, torch_parser, ort_parser = parsers
    x = images(2)
    ours, theirs = torch_parser.parse_labels(x), ort_parser.parse_labels(x.numpy())
    for labels in (ours, theirs):
        assert isinstance(labels, torch.Tensor) and labels.dtype == torch.int64 and labels.shape == (2, SIZE, SIZE)
        assert int(labels.min()) >= 0 and int(labels.max()) < 19
    assert float((ours == theirs).float().mean()) >= 0.999  # argmax may flip on exact near-ties only
    with torch.no_grad():
        assert torch.equal(ours, net.parse_labels(x))
    assert len(torch.unique(ours)) > 1  # not a degenerate constant output
    for backend in (torch_parser, ort_parser):
        assert isinstance(backend, FaceParserBackend) and backend.device == torch.device("cpu")
    assert torch_parser.input_size is None and ort_parser.input_size == SIZE
    assert torch_parser.name == "torch:cpu:fp32" and ort_parser.name == "onnxruntime:CPUExecutionProvider"


def test_input_checks(parsers):
    _, _, torch_parser, ort_parser = parsers
    bad_value = images(1)
    bad_value[0, 1, 2, 3] = float("inf")
    for backend in (torch_parser, ort_parser):
        with pytest.raises(ShapeError, match=r"expected shape \(B, 3, "):
            backend.parse_labels(images(1)[:, :2])
        with pytest.raises(ShapeError, match="expected float RGB"):
            backend.parse_labels((images(1) * 255).to(torch.uint8))
        with pytest.raises(ShapeError, match="1 non-finite value"):
            backend.parse_labels(bad_value)
        assert backend.parse_labels(np.zeros((0, 3, SIZE, SIZE), np.float32)).shape == (0, SIZE, SIZE)
    with pytest.raises(ShapeError, match=r"\(B, 3, 64, 64\) \(the exported parser's size\)"):
        ort_parser.parse_labels(torch.rand(1, 3, 96, 96))
    assert torch_parser.parse_labels(torch.rand(1, 3, 96, 96)).shape == (1, 96, 96)  # any size in PyTorch


def test_precision_rules_and_bf16(parsers):
    net, _, torch_parser, _ = parsers
    with pytest.raises(ConfigError, match="precision 'fp16' needs device 'cuda'"):
        TorchFaceParser(net, precision="fp16")
    with pytest.raises(ConfigError, match="parser: expected a BiSeNet"):
        TorchFaceParser(torch.nn.Identity())  # type: ignore[arg-type]
    x = images(1, seed=2)
    agreement = (TorchFaceParser(net, precision="bf16").parse_labels(x) == torch_parser.parse_labels(x)).float().mean()
    assert float(agreement) > 0.8


def test_factory(parsers, tmp_path):
    net, path, _, _ = parsers
    assert isinstance(build_face_parser_backend("torch", parser=net), TorchFaceParser)
    backend = build_face_parser_backend("onnxruntime", onnx_path=path, num_threads=1, batch_size=1)
    assert isinstance(backend, OnnxFaceParserBackend) and backend.session.providers == ["CPUExecutionProvider"]
    checkpoint = tmp_path / "79999_iter.pth"
    torch.save(net.state_dict(), checkpoint)
    loaded = build_face_parser_backend("torch", checkpoint=checkpoint)
    x = images(1, seed=3)
    assert torch.equal(loaded.parse_labels(x), build_face_parser_backend("torch", parser=net).parse_labels(x))
    with pytest.raises(ConfigError, match="face parser backend: expected one of"):
        build_face_parser_backend("tensorrt", onnx_path=path)
    with pytest.raises(ConfigError, match="exactly one of parser"):
        build_face_parser_backend("torch")
    with pytest.raises(ConfigError, match="needs onnx_path"):
        build_face_parser_backend("onnxruntime")
    with pytest.raises(ConfigError, match="precision must be 'fp32'"):
        build_face_parser_backend("onnxruntime", onnx_path=path, precision="bf16")
