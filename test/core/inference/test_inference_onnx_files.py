"""ONNX files as untrusted input (missing, corrupt, truncated, foreign, inconsistent metadata), export options
(static batch, mask inputs, opset, atomic writes) and backend options, on a tiny network that exports in ~1 s."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from dfmvr_core.errors import ConfigError, ModelFileError, ShapeError
from dfmvr_core.inference import OnnxFaceParser, OnnxRuntimeBackend, export_onnx, read_onnx_metadata
from dfmvr_core.inference.export import coefficient_metadata
from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.networks.dfmvr_net import DFMVRNet
from dfmvr_core.networks.net_config import NetworkConfig

TINY = NetworkConfig(
    name="tiny", encoder_channels=(4, 8), fused_channels=4, regressor="cnn", regressor_width=0.25, input_downsample=4
)
SIZES = CoefficientSizes(identity=10, expression=5, albedo=6)


def tiny_net(config: NetworkConfig = TINY, sizes: CoefficientSizes = SIZES, seed: int = 0) -> DFMVRNet:
    torch.manual_seed(seed)
    net = DFMVRNet(config, sizes, "pca")
    for head in (net.heads.lighting, net.heads.pose):  # zero-initialised: give them something to compare
        torch.nn.init.normal_(head.weight, 0.0, 0.1)
    return net.eval()


def inputs(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, 3, 224, 224, generator=g), torch.randint(0, 10, (batch, 3, 224, 224), generator=g)


def rewrite_metadata(source: Path, target: Path, replace: dict[str, str] | None = None, drop: bool = False) -> Path:
    """Copy ``source`` with its dfmvr metadata changed (``replace``) or removed (``drop``)."""
    model = onnx.load(str(source))
    current = {p.key: p.value for p in model.metadata_props}
    if drop:
        current = {}
    for key, value in (replace or {}).items():
        current["dfmvr." + key] = value
    del model.metadata_props[:]
    for key, value in current.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(target))
    return target


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[DFMVRNet, Path]:
    net = tiny_net()
    return net, export_onnx(net, tmp_path_factory.mktemp("tiny") / "tiny.onnx", fresh_weights=False)


# ------------------------------------------------------------------------------------------------ unreadable files
def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match=r"nope\.onnx: ONNX model not found"):
        OnnxRuntimeBackend(tmp_path / "nope.onnx")
    with pytest.raises(ModelFileError, match="it is a folder"):
        OnnxRuntimeBackend(tmp_path)


def test_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(b"\x08\x07 this is not a protobuf \xff\xfe" * 50)
    with pytest.raises(ModelFileError, match=r"corrupt\.onnx: cannot load ONNX model, file truncated or corrupt"):
        OnnxRuntimeBackend(path)
    with pytest.raises(ModelFileError, match=r"corrupt\.onnx: cannot read ONNX model"):
        read_onnx_metadata(path)


@pytest.mark.parametrize("fraction", [0.001, 0.5, 0.99])
def test_truncated_file(tiny, tmp_path, fraction):
    data = tiny[1].read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelFileError, match=r"truncated\.onnx: "):
        OnnxRuntimeBackend(path)


def test_onnx_file_without_dfmvr_metadata(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    path = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ModelFileError, match=r"foreign\.onnx: no dfmvr metadata"):
        OnnxRuntimeBackend(path)


# ------------------------------------------------------------------------------------------------ metadata checks
def test_network_file_is_not_a_face_parser_and_vice_versa(tiny, tmp_path):
    with pytest.raises(ModelFileError, match="holds a 'dfmvr-coefficients' model, expected 'dfmvr-face-parser'"):
        OnnxFaceParser(tiny[1])
    fake = rewrite_metadata(tiny[1], tmp_path / "kind.onnx", {"kind": "dfmvr-face-parser"})
    with pytest.raises(ModelFileError, match="holds a 'dfmvr-face-parser' model, expected 'dfmvr-coefficients'"):
        OnnxRuntimeBackend(fake)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"flat_size": "99"}, "metadata dfmvr.flat_size: 99 disagrees"),
        ({"flat_order": '["pose","identity","expression","albedo","lighting"]'}, "dfmvr.flat_order: .* disagrees"),
        ({"network_config": "{not json"}, "dfmvr.network_config: invalid JSON"),
        ({"network_config": '{"name": "x"}'}, "dfmvr.network_config: .*encoder_channels"),
        ({"coefficient_sizes": '{"identity": 3}'}, "dfmvr.coefficient_sizes: "),
        ({"format_version": "2"}, "dfmvr ONNX format version 2, this dfmvr reads version 1"),
        ({"fresh_weights": "maybe"}, "dfmvr.fresh_weights: expected true, false or unknown"),
    ],
)
def test_inconsistent_metadata(tiny, tmp_path, change, message):
    path = rewrite_metadata(tiny[1], tmp_path / "meta.onnx", change)
    with pytest.raises(ModelFileError, match=r"meta\.onnx: .*" + message):
        OnnxRuntimeBackend(path)


def test_metadata_that_disagrees_with_the_graph(tiny, tmp_path):
    other = coefficient_metadata(tiny_net(sizes=CoefficientSizes(11, 5, 6)))  # self-consistent, other output size
    path = rewrite_metadata(tiny[1], tmp_path / "graph.onnx", other)
    with pytest.raises(ModelFileError, match=r"output 'coefficients' is .*, expected tensor\(float\) \['batch', 121\]"):
        OnnxRuntimeBackend(path)


def test_metadata_values(tiny):
    backend = OnnxRuntimeBackend(tiny[1])
    assert backend.info.fresh_weights is False and backend.info.model_fingerprint is None
    assert backend.info.sizes == SIZES and backend.info.config == TINY and backend.info.expression_kind == "pca"
    assert backend.providers == ["CPUExecutionProvider"] and "tiny.onnx" in repr(backend)


# ------------------------------------------------------------------------------------------------ export options
@pytest.mark.parametrize("mask_input", ["label", "one_hot", "none"])
def test_mask_inputs_and_invalid_views_match_pytorch(tmp_path, mask_input):
    net = tiny_net(dataclasses.replace(TINY, mask_input=mask_input))
    path = export_onnx(net, tmp_path / "m.onnx")
    backend = OnnxRuntimeBackend(path)
    names = [i.name for i in onnx.load(str(path)).graph.input]
    assert names == (["images", "valid"] if mask_input == "none" else ["images", "masks", "valid"])
    images, masks = inputs(3)
    valid = torch.tensor([[True, False, True], [False, False, True], [True, True, True]])
    images[0, 1] = float("nan")
    images[1, :2] = 7.0  # out of range but invalid: ignored, like PyTorch
    out = backend.run_flat(images, None if mask_input == "none" else masks, valid)
    with torch.no_grad():
        reference = net.forward_flat(images, masks, valid)
    assert float((out - reference).abs().max()) <= 1e-5 * max(1.0, float(reference.abs().max()))


def test_static_batch_export(tmp_path):
    net = tiny_net()
    path = export_onnx(net, tmp_path / "static.onnx", batch_dynamic=False)
    assert [d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim] == [1, 3, 3, 224, 224]
    backend = OnnxRuntimeBackend(path)
    assert backend.info.batch == 1 and backend.batch_size == 1
    images, masks = inputs(1)
    with torch.no_grad():
        assert float((backend.run_flat(images, masks) - net.forward_flat(images, masks)).abs().max()) <= 1e-5
    with pytest.raises(ShapeError, match="runs batch size 1 only, got a batch of 2"):
        backend.run(*inputs(2))


def test_batch_size_override_of_a_dynamic_file(tiny):
    net, path = tiny
    backend = OnnxRuntimeBackend(path, batch_size=2, intra_op_threads=1)
    assert backend.batch_size == 2
    images, masks = inputs(2)
    with torch.no_grad():
        assert float((backend.run_flat(images, masks) - net.forward_flat(images, masks)).abs().max()) <= 1e-5
    with pytest.raises(ShapeError, match="runs batch size 2 only, got a batch of 1"):
        backend.run(*inputs(1))
    with pytest.raises(ConfigError, match="batch_size"):
        OnnxRuntimeBackend(path, batch_size=0)


def test_empty_batch(tiny):
    backend = OnnxRuntimeBackend(tiny[1])
    out = backend.run(torch.zeros(0, 3, 3, 224, 224), torch.zeros(0, 3, 224, 224, dtype=torch.int64))
    assert out["identity"].shape == (0, 10) and out["pose"].shape == (0, 3, 6)


def test_export_argument_errors(tmp_path, tiny):
    net = tiny[0]
    with pytest.raises(ConfigError, match=r"opset: expected an int in \[13, 20\]"):
        export_onnx(net, tmp_path / "a.onnx", opset=9)
    with pytest.raises(ConfigError, match="net: expected a DFMVRNet"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "a.onnx")
    with pytest.raises(ConfigError, match="is a folder"):
        export_onnx(net, tmp_path)
    with pytest.raises(ConfigError, match="fresh_weights"):
        export_onnx(net, tmp_path / "a.onnx", fresh_weights="yes")
    with pytest.raises(ConfigError, match=r"providers: .* not available"):
        OnnxRuntimeBackend(tiny[1], ["NoSuchExecutionProvider"])
    assert not list(tmp_path.iterdir())


def test_export_is_atomic_and_restores_train_flags(tmp_path, monkeypatch):
    net = tiny_net().train()
    net.heads.eval()  # mixed flags must come back as they were
    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous model")

    def broken_check(model):
        raise RuntimeError("checker failed")

    monkeypatch.setattr(onnx.checker, "check_model", broken_check)
    with pytest.raises(RuntimeError, match="checker failed"):
        export_onnx(net, target)
    assert target.read_bytes() == b"previous model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary file left behind
    assert net.training and net.fusion.training and not net.heads.training
    monkeypatch.undo()
    export_onnx(net, target)
    assert net.training and not net.heads.training
    assert read_onnx_metadata(target)["fresh_weights"] == "unknown"


def test_missing_optional_dependency_is_a_dfmvr_error():
    from dfmvr_core.errors import DfmvrError
    from dfmvr_core.inference import MissingDependencyError
    from dfmvr_core.inference._common import require

    with pytest.raises(MissingDependencyError, match=r"'export' extra: pip install -c constraints\.txt") as info:
        require("dfmvr_no_such_module")
    assert isinstance(info.value, DfmvrError) and isinstance(info.value, ImportError)
