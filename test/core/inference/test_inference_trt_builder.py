"""The TensorRT build path without TensorRT: a stand-in ``tensorrt`` module (the TensorRT 10 Python API surface the
backend uses, recording what it is asked) checks what dfmvr asks of it: explicit batch below TensorRT 10, the
precision flags, the optimization profile (1, 1, max_batch), parser and build errors, the engine cache, the engine/ONNX
I/O check, the backend constructor and ``dfmvr export --trt-engine``. Running engines needs the real TensorRT and a
GPU: test_inference_trt_engine.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import sys
import types

import pytest
import torch
import yaml

import dfmvr_core.cli.main as cli_main
from dfmvr_core.errors import ConfigError, DfmvrError, ModelFileError
from dfmvr_core.inference import EngineCache, MissingDependencyError, TensorRTBackend, export_onnx
from dfmvr_core.inference import tensorrt_backend as trt_backend
from dfmvr_core.inference.tensorrt_backend import (
    TensorSpec,
    build_engine_bytes,
    build_engine_file,
    check_engine_io,
    read_onnx_io,
)
from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.networks.dfmvr_net import DFMVRNet
from dfmvr_core.networks.net_config import SMALL_CONFIG

TINY = dataclasses.replace(
    SMALL_CONFIG,
    name="tiny",
    encoder_channels=(4, 8),
    fused_channels=4,
    regressor="cnn",
    regressor_width=0.25,
    input_size=32,
    input_downsample=2,
)
SIZES = CoefficientSizes(identity=5, expression=4, albedo=3)
FLAT = 5 + 4 + 3 + 3 * (27 + 6)


# ---------------------------------------------------------------------------------------------------- stand-in
class _DataType:
    def __init__(self, name: str) -> None:
        self.name = name


def make_fake_tensorrt(version: str = "10.3.0", *, fp16_flag: bool = True, build_fails: bool = False, io_edit=None):
    """A module with the TensorRT API surface dfmvr uses. The "engine" is JSON of the parsed I/O and the settings."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.calls = []

    class ILogger:
        class Severity:
            INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

        def __init__(self) -> None:
            pass

    flags = {"TF32": "TF32", "BF16": "BF16"}
    if fp16_flag:
        flags["FP16"] = "FP16"
    trt.ILogger = ILogger
    trt.BuilderFlag = types.SimpleNamespace(**flags)
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0)
    trt.TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
    types_by_numpy = {"float32": "FLOAT", "int64": "INT64", "bool": "BOOL", "int32": "INT32", "float16": "HALF"}
    trt.DataType = types.SimpleNamespace(**{n: _DataType(n) for n in types_by_numpy.values()})

    class Network:
        def __init__(self, flags: int) -> None:
            self.flags, self.io = flags, {}

        @property
        def num_inputs(self) -> int:
            return sum(spec.mode == "input" for spec in self.io.values())

        def get_input(self, index: int):
            name = [n for n, spec in self.io.items() if spec.mode == "input"][index]
            return types.SimpleNamespace(name=name, shape=self.io[name].shape)

    class OnnxParser:
        def __init__(self, network: Network, logger) -> None:
            self.network, self.errors = network, []

        def parse_from_file(self, path: str) -> bool:
            try:
                self.network.io = read_onnx_io(path)
            except ModelFileError as exc:
                self.errors = [f"ModelImporter.cpp:42 In function parseFromFile: {exc}"]
                return False
            return True

        @property
        def num_errors(self) -> int:
            return len(self.errors)

        def get_error(self, index: int) -> str:
            return self.errors[index]

    class Config:
        def __init__(self) -> None:
            self.flags, self.pools, self.profiles = {"TF32"}, {}, []  # TF32 is on by default in TensorRT

        def set_flag(self, flag: str) -> None:
            self.flags.add(flag)

        def clear_flag(self, flag: str) -> None:
            self.flags.discard(flag)

        def set_memory_pool_limit(self, pool: str, size: int) -> None:
            self.pools[pool] = size

        def add_optimization_profile(self, profile) -> int:
            self.profiles.append(profile.shapes)
            return len(self.profiles) - 1

    class Profile:
        def __init__(self) -> None:
            self.shapes = {}

        def set_shape(self, name: str, min, opt, max) -> None:
            self.shapes[name] = [list(min), list(opt), list(max)]

    class Builder:
        def __init__(self, logger) -> None:
            self.logger = logger

        def create_network(self, flags: int = 0) -> Network:
            trt.calls.append(("create_network", flags))
            return Network(flags)

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: Network, config: Config):
            if build_fails:
                self.logger.log(ILogger.Severity.ERROR, "Error Code 4: Internal Error (no kernel for Involution)")
                return None
            io = {n: [s.mode, list(s.shape), types_by_numpy[s.dtype]] for n, s in network.io.items()}
            if io_edit is not None:
                io_edit(io)
            plan = {"io": io, "flags": sorted(config.flags), "pools": config.pools, "profiles": config.profiles}
            return memoryview(b"PLAN" + json.dumps(plan).encode())

    class Engine:
        def __init__(self, plan: dict) -> None:
            self.plan, self.names = plan, list(plan["io"])

        @property
        def num_io_tensors(self) -> int:
            return len(self.names)

        def get_tensor_name(self, index: int) -> str:
            return self.names[index]

        def get_tensor_mode(self, name: str) -> str:
            return "INPUT" if self.plan["io"][name][0] == "input" else "OUTPUT"

        def get_tensor_shape(self, name: str) -> tuple:
            return tuple(self.plan["io"][name][1])

        def get_tensor_dtype(self, name: str):
            return getattr(trt.DataType, self.plan["io"][name][2])

        def create_execution_context(self):
            return object()

    class Runtime:
        def __init__(self, logger) -> None:
            pass

        def deserialize_cuda_engine(self, data: bytes):
            data = bytes(data)
            return Engine(json.loads(data[4:])) if data.startswith(b"PLAN") else None

    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, OnnxParser, Runtime
    return trt


@pytest.fixture
def fake_trt(monkeypatch):
    """Install a stand-in ``tensorrt`` and a stand-in GPU (the CUDA seams of tensorrt_backend)."""

    def install(**options):
        trt = make_fake_tensorrt(**options)
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        return trt

    monkeypatch.setattr(trt_backend, "_cuda_target", lambda device: (torch.device("cuda", 0), "Fake GPU (sm_87)"))
    monkeypatch.setattr(trt_backend, "_cuda_context", lambda device: contextlib.nullcontext())
    return install


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("trt")
    net = DFMVRNet(TINY, SIZES, "pca")
    return export_onnx(net, folder / "tiny.onnx"), export_onnx(net, folder / "tiny_b1.onnx", batch_dynamic=False)


def plan_of(data: bytes) -> dict:
    return json.loads(bytes(data)[4:])


# ---------------------------------------------------------------------------------------------------- tests
@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_missing_tensorrt_says_what_to_do(tiny_onnx, tmp_path):
    with pytest.raises(MissingDependencyError) as info:
        TensorRTBackend(tiny_onnx[0], cache=tmp_path)
    assert str(info.value) == (
        "TensorRT not installed; use backend onnxruntime or torch, or install TensorRT "
        "(pip install tensorrt-cu12 / JetPack)"
    )
    with pytest.raises(MissingDependencyError, match="TensorRT not installed"):
        build_engine_bytes(tiny_onnx[0])


@pytest.mark.parametrize(("precision", "flags"), [("fp16", ["FP16", "TF32"]), ("tf32", ["TF32"]), ("fp32", [])])
def test_build_sets_precision_and_the_batch_profile(fake_trt, tiny_onnx, precision, flags):
    trt = fake_trt()
    plan = plan_of(build_engine_bytes(tiny_onnx[0], precision=precision, max_batch=3, workspace_mb=64))
    assert plan["flags"] == flags and plan["pools"] == {"WORKSPACE": 64 << 20}
    assert plan["profiles"] == [
        {
            "images": [[1, 3, 3, 32, 32], [1, 3, 3, 32, 32], [3, 3, 3, 32, 32]],
            "masks": [[1, 3, 32, 32], [1, 3, 32, 32], [3, 3, 32, 32]],
            "valid": [[1, 3], [1, 3], [3, 3]],
        }
    ]
    assert trt.calls == [("create_network", 0)]  # TensorRT 10: explicit batch is implicit, no flag


def test_build_details(fake_trt, tiny_onnx, tmp_path):
    trt = fake_trt(version="8.6.1")
    plan = plan_of(build_engine_bytes(tiny_onnx[1], precision="fp32"))  # fixed batch: no profile needed
    assert plan["profiles"] == [] and plan["io"]["images"][1] == [1, 3, 3, 32, 32]
    assert trt.calls == [("create_network", 1)]  # 1 << EXPLICIT_BATCH before TensorRT 10
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x01garbage")
    with pytest.raises(ModelFileError, match=r"corrupt\.onnx: TensorRT 8\.6\.1 cannot parse the ONNX model"):
        build_engine_bytes(corrupt)
    with pytest.raises(ConfigError, match="precision: expected one of"):
        build_engine_bytes(tiny_onnx[0], precision="int8")
    with pytest.raises(ConfigError, match="max_batch: expected a positive int"):
        build_engine_bytes(tiny_onnx[0], max_batch=0)
    fake_trt(build_fails=True)
    with pytest.raises(DfmvrError, match=r"could not build an engine .*Internal Error \(no kernel for Involution"):
        build_engine_bytes(tiny_onnx[0], precision="fp16", max_batch=2)
    fake_trt(version="11.4.0", fp16_flag=False)
    with pytest.raises(ConfigError, match="TensorRT 11 builds strongly typed networks only"):
        build_engine_bytes(tiny_onnx[0], precision="fp16")
    assert plan_of(build_engine_bytes(tiny_onnx[0], precision="tf32"))["flags"] == ["TF32"]


def test_engine_io_check():
    onnx = {
        "images": TensorSpec("input", (-1, 3, 3, 32, 32), "float32"),
        "masks": TensorSpec("input", (-1, 3, 32, 32), "int64"),
        "coefficients": TensorSpec("output", (-1, FLAT), "float32"),
    }
    check_engine_io(dict(onnx), onnx, engine_label="a.engine", onnx_label="a.onnx")
    older = {**onnx, "masks": TensorSpec("input", (-1, 3, 32, 32), "int32")}  # TensorRT 8.6 casts int64 inputs
    check_engine_io(older, onnx, engine_label="a.engine", onnx_label="a.onnx")
    wrong_shape = {**onnx, "images": TensorSpec("input", (-1, 3, 3, 64, 64), "float32")}
    with pytest.raises(ModelFileError, match=r"engine a\.engine does not match the ONNX file a\.onnx.*'images' is"):
        check_engine_io(wrong_shape, onnx, engine_label="a.engine", onnx_label="a.onnx")
    renamed = {"coeffs" if k == "coefficients" else k: v for k, v in onnx.items()}
    with pytest.raises(ModelFileError, match=r"different tensor names\): engine \{.*coeffs.*ONNX \{.*coefficients"):
        check_engine_io(renamed, onnx, engine_label="a.engine", onnx_label="a.onnx")
    as_output = {**onnx, "masks": TensorSpec("output", (-1, 3, 32, 32), "int64")}
    with pytest.raises(ModelFileError, match="'masks' is output int64"):
        check_engine_io(as_output, onnx, engine_label="a.engine", onnx_label="a.onnx")


def test_backend_constructor_builds_then_hits_the_cache(fake_trt, tiny_onnx, tmp_path):
    fake_trt()
    first = TensorRTBackend(tiny_onnx[0], cache=tmp_path / "cache", precision="fp16", max_batch=2)
    assert first.cache_status == "built" and first.engine_path.is_file()
    assert first.name == "tensorrt:cuda:0:fp16" and first.max_batch == 2 and first.precision == "fp16"
    assert first.config == TINY and first.sizes == SIZES and first.expression_kind == "pca"
    assert first._inputs == {"images": torch.float32, "masks": torch.int64, "valid": torch.bool}
    sidecar = EngineCache(tmp_path / "cache").describe(first.engine_path.stem)
    assert sidecar["gpu"] == "Fake GPU (sm_87)" and sidecar["precision"] == "fp16" and sidecar["max_batch"] == 2
    second = TensorRTBackend(tiny_onnx[0], cache=EngineCache(tmp_path / "cache"), precision="fp16", max_batch=2)
    assert second.cache_status == "hit" and second.engine_path == first.engine_path
    other = TensorRTBackend(tiny_onnx[0], cache=tmp_path / "cache", precision="fp32", max_batch=2)
    assert other.cache_status == "built" and other.engine_path != first.engine_path
    fixed = TensorRTBackend(tiny_onnx[1], cache=tmp_path / "cache", max_batch=4)
    assert fixed.max_batch == 1  # the file's fixed batch wins
    with pytest.raises(ConfigError, match="precision: expected one of"):
        TensorRTBackend(tiny_onnx[0], cache=tmp_path, precision="bf16")


def test_backend_refuses_an_engine_that_does_not_match(fake_trt, tiny_onnx, tmp_path):
    def drop_valid(io: dict) -> None:
        io["valid"][1] = [-1, 2]

    fake_trt(io_edit=drop_valid)
    with pytest.raises(ModelFileError, match=r"\.engine does not match the ONNX file .*tiny\.onnx.*'valid' is"):
        TensorRTBackend(tiny_onnx[0], cache=tmp_path)


def test_build_engine_file_and_cache_folder(fake_trt, tiny_onnx, tmp_path):
    fake_trt()
    target = tmp_path / "out" / "tiny.engine"
    path, status = build_engine_file(tiny_onnx[0], target, precision="tf32", max_batch=3)
    assert (path, status) == (target, "built") and plan_of(target.read_bytes())["flags"] == ["TF32"]
    sidecar = json.loads((tmp_path / "out" / "tiny.engine.json").read_text())
    assert sidecar["precision"] == "tf32" and sidecar["max_batch"] == 3 and sidecar["tensorrt_version"] == "10.3.0"
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    path, status = build_engine_file(tiny_onnx[0], cache_dir, precision="fp16", max_batch=4)
    assert status == "built" and path.parent == cache_dir
    backend = TensorRTBackend(tiny_onnx[0], cache=cache_dir, precision="fp16", max_batch=4)
    assert backend.cache_status == "hit" and backend.engine_path == path  # export pre-fills the backend's cache
    assert build_engine_file(tiny_onnx[0], cache_dir, precision="fp16", max_batch=4) == (path, "hit")


def test_export_cli_builds_the_engine(fake_trt, tmp_path, ict_npz, capsys):
    fake_trt()
    config = tmp_path / "tiny.yaml"
    network = {"name": "tiny", "encoder_channels": [4, 8], "fused_channels": 4, "regressor": "cnn"}
    config.write_text(yaml.safe_dump({"network": {**network, "regressor_width": 0.25, "input_downsample": 4}}))
    out, engine = tmp_path / "m.onnx", tmp_path / "m.engine"
    argv = ["export", "--config", str(config), "--model", str(ict_npz), "-o", str(out), "--trt-engine", str(engine)]
    assert cli_main.main([*argv, "--max-batch", "2"]) == 0
    printed = capsys.readouterr().out
    assert f"TensorRT engine {engine}" in printed and "built, fp16, batch 1..2" in printed
    plan = plan_of(engine.read_bytes())
    assert "FP16" in plan["flags"] and plan["profiles"][0]["valid"] == [[1, 3], [1, 3], [2, 3]]
    assert json.loads((tmp_path / "m.engine.json").read_text())["onnx_file"] == str(out.resolve())
