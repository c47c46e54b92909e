"""TensorRT backend: the exported ONNX file compiled into a TensorRT engine (fp32, tf32 or fp16), run on torch CUDA
tensors.

Written against the TensorRT 10 Python API (8.6 works too: the explicit-batch flag is set there), imported only
here and only when used; without it :class:`~dfmvr_core.inference.MissingDependencyError` says what to do.

**Build** (:func:`build_engine_bytes`): ``trt.Builder`` → network (explicit batch) filled by ``trt.OnnxParser`` from
the file → builder config with the precision flag (``fp16``: ``BuilderFlag.FP16``, TensorRT keeps fp32 where fp16
would overflow or is slower; ``tf32``: ``BuilderFlag.TF32``; ``fp32``: TF32 cleared, IEEE float32 everywhere) and
one optimization profile for the dynamic batch, ``min = opt = 1`` (the ROS node runs one triplet at a time),
``max = max_batch`` → ``build_serialized_network``. The engine's inputs/outputs keep the ONNX types (float32 images
and coefficients, int64 masks, bool valid). TensorRT 11 removed the weak-typing precision flags: ``fp16`` then
raises a :class:`ConfigError` (use TensorRT 10, or ``fp32``/``tf32``).

**Cache**: engines are stored in an :class:`~dfmvr_core.inference.engine_cache.EngineCache` keyed by the ONNX file's
content, the TensorRT version, the GPU, the precision and ``max_batch``; a stale or corrupt cached engine is rebuilt
automatically.

**Run** (:meth:`TensorRTBackend.run`): inputs become contiguous CUDA tensors on the engine's device (no pycuda: torch
owns every buffer), ``context.set_input_shape`` / ``set_tensor_address`` per input, a ``torch.empty`` output,
``context.execute_async_v3`` on ``torch.cuda.current_stream(device)``: the outputs are ordinary torch tensors on that
stream, so the caller's next CUDA operations are ordered after the engine without a synchronisation. An execution
context is not thread-safe: use one backend per thread.

**Checks**: the ONNX file's inputs/outputs must be those its ``dfmvr.`` metadata implies, and the engine's (names,
input/output role, shapes with ``-1`` for the batch, element types) those of the ONNX file; a mismatch is a
:class:`ModelFileError` naming both files.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from dfmvr_core.atomic_io import atomic_path, write_json_atomic
from dfmvr_core.errors import ConfigError, DfmvrError, ModelFileError, ShapeError
from dfmvr_core.inference._common import MissingDependencyError, require
from dfmvr_core.inference.backends import _Backend, _positive_int, resolve_device
from dfmvr_core.inference.engine_cache import EngineCache, engine_key_fields
from dfmvr_core.inference.export import COEFFICIENTS_OUTPUT, coefficient_input_names
from dfmvr_core.inference.onnx_runtime import OnnxModelInfo, _coefficient_info, read_onnx_metadata

__all__ = [
    "TENSORRT_MISSING",
    "TRT_PRECISIONS",
    "TensorRTBackend",
    "TensorSpec",
    "build_engine_bytes",
    "build_engine_file",
    "check_engine_io",
    "engine_io",
    "expected_coefficient_io",
    "import_tensorrt",
    "read_onnx_io",
]

_log = logging.getLogger(__name__)

TRT_PRECISIONS = ("fp32", "tf32", "fp16")
TENSORRT_MISSING = (
    "TensorRT not installed; use backend onnxruntime or torch, "
    "or install TensorRT (pip install tensorrt-cu12 / JetPack)"
)

_TRT_DTYPE_NAMES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
}
_TORCH_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "int32": torch.int32,
    "int64": torch.int64,
    "bool": torch.bool,
}
_COMPATIBLE_DTYPES = {("int64", "int32")}
"""(ONNX type, engine type) pairs accepted besides equality: TensorRT < 10 turns int64 inputs into int32."""


def import_tensorrt() -> ModuleType:
    """``import tensorrt``, or :class:`MissingDependencyError` with :data:`TENSORRT_MISSING`."""
    try:
        import tensorrt
    except ImportError:
        raise MissingDependencyError(TENSORRT_MISSING) from None
    return tensorrt


def _major(version: str) -> int:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return 0


@dataclass(frozen=True)
class TensorSpec:
    """One graph/engine input or output: ``mode`` ``"input"``/``"output"``, ``shape`` (``-1`` for a dynamic dim),
    ``dtype`` (numpy name, e.g. ``"float32"``)."""

    mode: str
    shape: tuple[int, ...]
    dtype: str

    def __str__(self) -> str:
        return f"{self.mode} {self.dtype}{list(self.shape)}"


# ---------------------------------------------------------------------------------------------------- I/O checks
def read_onnx_io(path: str | Path) -> dict[str, TensorSpec]:
    """The graph inputs (initializers excluded) and outputs of an ONNX file, read with ``onnx`` (no weights).

    Raises:
        ModelFileError: missing, truncated or corrupt file. MissingDependencyError: ``onnx`` not installed.
    """
    onnx = require("onnx")
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: ONNX model not found")
    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError, OSError, ...
        raise ModelFileError(f"{path}: cannot read ONNX model, file truncated or corrupt ({exc})") from exc
    initializers = {t.name for t in model.graph.initializer}
    specs: dict[str, TensorSpec] = {}
    for mode, values in (("input", model.graph.input), ("output", model.graph.output)):
        for value in values:
            if value.name in initializers:
                continue
            tensor = value.type.tensor_type
            shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
            specs[value.name] = TensorSpec(mode, shape, dtype)
    return specs


def expected_coefficient_io(info: OnnxModelInfo) -> dict[str, TensorSpec]:
    """The I/O a dfmvr coefficient export with ``info``'s metadata has (batch ``-1``, or the fixed batch)."""
    b = -1 if info.batch is None else info.batch
    v, s = info.views, info.input_size
    shapes = {
        "images": ((b, v, 3, s, s), "float32"),
        "masks": ((b, v, s, s), "int64"),
        "valid": ((b, v), "bool"),
    }
    specs = {name: TensorSpec("input", *shapes[name]) for name in coefficient_input_names(info.mask_input)}
    specs[COEFFICIENTS_OUTPUT] = TensorSpec("output", (b, info.flat_size), "float32")
    return specs


def _listing(specs: Mapping[str, TensorSpec]) -> str:
    return "{" + ", ".join(f"{name}: {spec}" for name, spec in specs.items()) + "}"


def check_engine_io(
    engine: Mapping[str, TensorSpec], onnx: Mapping[str, TensorSpec], *, engine_label: str, onnx_label: str
) -> None:
    """The engine must have the ONNX file's inputs and outputs: same names and roles, same shapes (``-1`` where the
    ONNX dim is symbolic), same element types (int64 → int32 accepted, TensorRT < 10).

    Raises:
        ModelFileError: naming both files and listing both I/O sets.
    """
    problems = []
    if set(engine) != set(onnx):
        problems.append("different tensor names")
    else:
        for name, expected in onnx.items():
            got = engine[name]
            dtype_ok = got.dtype == expected.dtype or (expected.dtype, got.dtype) in _COMPATIBLE_DTYPES
            if got.mode != expected.mode or got.shape != expected.shape or not dtype_ok:
                problems.append(f"{name!r} is {got} in the engine, {expected} in the ONNX file")
    if problems:
        raise ModelFileError(
            f"TensorRT engine {engine_label} does not match the ONNX file {onnx_label} ({'; '.join(problems)}): "
            f"engine {_listing(engine)}, ONNX {_listing(onnx)}; rebuild the engine from this ONNX file"
        )


def engine_io(engine: Any) -> dict[str, TensorSpec]:
    """The I/O tensors of a deserialized ``trt.ICudaEngine`` (TensorRT 10 name-based API)."""
    trt = import_tensorrt()
    specs: dict[str, TensorSpec] = {}
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        mode = "input" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "output"
        dtype = engine.get_tensor_dtype(name)
        dtype_name = getattr(dtype, "name", str(dtype).rsplit(".", 1)[-1])
        specs[name] = TensorSpec(
            mode, tuple(int(d) for d in engine.get_tensor_shape(name)), _TRT_DTYPE_NAMES.get(dtype_name, dtype_name)
        )
    return specs


# ---------------------------------------------------------------------------------------------------- build
def _make_logger(trt: ModuleType) -> Any:
    """A ``trt.ILogger`` forwarding to :mod:`logging` (``dfmvr_core.inference.tensorrt_backend``) that keeps the
    last error messages for exception texts."""
    severity = trt.ILogger.Severity
    levels = {
        severity.INTERNAL_ERROR: logging.ERROR,
        severity.ERROR: logging.ERROR,
        severity.WARNING: logging.WARNING,
        severity.INFO: logging.DEBUG,
        severity.VERBOSE: logging.DEBUG,
    }

    class _Logger(trt.ILogger):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, level: Any, message: str) -> None:
            python_level = levels.get(level, logging.INFO)
            if python_level >= logging.ERROR:
                self.errors = [*self.errors[-4:], str(message)]
            _log.log(python_level, "TensorRT: %s", message)

    return _Logger()


def _check_precision(precision: str) -> str:
    if precision not in TRT_PRECISIONS:
        raise ConfigError(f"precision: expected one of {TRT_PRECISIONS} for TensorRT, got {precision!r}")
    return precision


def _set_precision(trt: ModuleType, config: Any, precision: str) -> None:
    flags = trt.BuilderFlag
    if precision == "fp16":
        if not hasattr(flags, "FP16"):
            raise ConfigError(
                f"precision 'fp16': TensorRT {trt.__version__} has no FP16 builder flag (TensorRT 11 builds strongly "
                "typed networks only); use precision 'fp32'/'tf32' or TensorRT 10 (pip install 'tensorrt-cu12<11')"
            )
        config.set_flag(flags.FP16)
    elif precision == "tf32":
        if hasattr(flags, "TF32"):
            config.set_flag(flags.TF32)
    elif hasattr(flags, "TF32"):  # fp32: IEEE float32 (TF32 is on by default in TensorRT)
        config.clear_flag(flags.TF32)


def build_engine_bytes(
    onnx_path: str | Path,
    *,
    precision: str = "fp16",
    max_batch: int = 4,
    workspace_mb: int | None = None,
    logger: Any = None,
) -> bytes:
    """Build a serialized TensorRT engine from an ONNX file (see the module docstring). Runs on the current CUDA
    device (wrap in ``torch.cuda.device(...)`` to choose); takes seconds (``small``) to many minutes (``paper``).

    Args:
        onnx_path: the ONNX file (dynamic or fixed batch; only the batch may be dynamic).
        precision: ``"fp32"``, ``"tf32"`` or ``"fp16"``.
        max_batch: the profile's largest batch (dynamic-batch files; min = opt = 1).
        workspace_mb: limit of the builder's scratch memory (None: TensorRT's default, the GPU's memory).
        logger: a ``trt.ILogger`` (default: one forwarding to :mod:`logging`).

    Raises:
        MissingDependencyError: TensorRT is not installed.
        ModelFileError: missing file, or TensorRT cannot parse it (its parser errors are quoted).
        ConfigError: bad precision / max_batch / workspace, or fp16 on TensorRT 11.
        DfmvrError: the build failed (TensorRT's last errors are quoted).
    """
    trt = import_tensorrt()
    path = Path(onnx_path)
    if not path.is_file():
        raise ModelFileError(f"{path}: ONNX model not found")
    _check_precision(precision)
    _positive_int("max_batch", max_batch)
    _positive_int("workspace_mb", workspace_mb, allow_none=True)
    logger = logger if logger is not None else _make_logger(trt)
    builder = trt.Builder(logger)
    flags = 0
    if _major(trt.__version__) < 10:  # explicit batch is the only mode (and the flag deprecated) from TensorRT 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(path)):
        errors = [str(parser.get_error(i)).strip() for i in range(parser.num_errors)]
        raise ModelFileError(
            f"{path}: TensorRT {trt.__version__} cannot parse the ONNX model: {'; '.join(errors[:5]) or 'no details'}"
        )
    config = builder.create_builder_config()
    if workspace_mb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    _set_precision(trt, config, precision)
    profile = builder.create_optimization_profile()
    dynamic = False
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        shape = tuple(int(d) for d in tensor.shape)
        if any(d < 0 for d in shape[1:]):
            raise ModelFileError(
                f"{path}: input {tensor.name!r} has shape {list(shape)}: only the batch may be dynamic"
            )
        if shape and shape[0] < 0:
            tail = shape[1:]
            profile.set_shape(tensor.name, (1, *tail), (1, *tail), (max_batch, *tail))
            dynamic = True
    if dynamic:
        config.add_optimization_profile(profile)
    _log.info(
        "TensorRT %s: building %s (%s, batch 1..%d); this can take minutes", trt.__version__, path, precision, max_batch
    )
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        details = "; ".join(getattr(logger, "errors", [])) or "see the TensorRT log"
        raise DfmvrError(
            f"TensorRT could not build an engine from {path} ({precision}, batch 1..{max_batch}): {details}"
        )
    return bytes(serialized)


# ---------------------------------------------------------------------------------------------------- CUDA seams
def _cuda_target(device: str | torch.device) -> tuple[torch.device, str]:
    """The CUDA device and its name with compute capability (part of the cache key)."""
    dev = resolve_device(device)
    if dev.type != "cuda":
        raise ConfigError(f"device {str(device)!r}: TensorRT runs on an NVIDIA GPU: expected 'cuda' or 'cuda:N'")
    props = torch.cuda.get_device_properties(dev)
    return dev, f"{props.name} (sm_{props.major}{props.minor})"


def _cuda_context(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Make ``device`` current (TensorRT builds and deserializes on the current device)."""
    return torch.cuda.device(device)


def _onnx_info(path: Path) -> tuple[OnnxModelInfo, dict[str, TensorSpec]]:
    """The file's dfmvr metadata and graph I/O, checked against each other."""
    info = _coefficient_info(read_onnx_metadata(path), path)
    graph = read_onnx_io(path)
    expected = expected_coefficient_io(info)
    if graph != expected:
        raise ModelFileError(
            f"{path}: the graph's inputs/outputs {_listing(graph)} are not those its dfmvr metadata implies "
            f"{_listing(expected)}; re-export it with `dfmvr export`"
        )
    return info, graph


def build_engine_file(
    onnx_path: str | Path,
    target: str | Path,
    *,
    precision: str = "fp16",
    max_batch: int = 4,
    device: str | torch.device = "cuda:0",
    workspace_mb: int | None = None,
) -> tuple[Path, str]:
    """Build the engine of a dfmvr ONNX file (what ``dfmvr export --trt-engine`` does).

    ``target`` an existing folder: it is used as an :class:`EngineCache` (pre-fills the TensorRT backend's
    ``engine_cache_dir``; an engine already there is reused). Otherwise ``target`` is the engine file to write
    (atomically), with a sidecar ``<target>.json`` holding the key fields (ONNX hash, TensorRT version, GPU,
    precision, max batch).

    Returns:
        ``(engine file, status)``: status ``"hit"``, ``"built"`` or ``"rebuilt"``.

    Raises:
        As :func:`build_engine_bytes`, plus ConfigError when no CUDA device is available.
    """
    trt = import_tensorrt()
    path = Path(onnx_path)
    _onnx_info(path)
    _check_precision(precision)
    dev, gpu = _cuda_target(device)
    target = Path(target)
    logger = _make_logger(trt)

    def build() -> bytes:
        return build_engine_bytes(
            path, precision=precision, max_batch=max_batch, workspace_mb=workspace_mb, logger=logger
        )

    with _cuda_context(dev):
        runtime = trt.Runtime(logger)
        if target.is_dir():
            cache = EngineCache(target)
            key = cache.key(path, trt.__version__, gpu, precision, max_batch)
            _, status = cache.load_or_build(key, build, runtime.deserialize_cuda_engine)
            return cache.path_for(key), status
        data = build()
        if runtime.deserialize_cuda_engine(data) is None:
            raise DfmvrError(f"TensorRT built an engine from {path} that it cannot deserialize")
    fields = engine_key_fields(path, trt.__version__, gpu, precision, max_batch)
    with atomic_path(target, suffix=".tmp") as tmp:
        tmp.write_bytes(data)
    write_json_atomic(target.with_name(target.name + ".json"), {**fields, "onnx_file": str(path.resolve())})
    return target, "built"


# ---------------------------------------------------------------------------------------------------- backend
class TensorRTBackend(_Backend):
    """Run a dfmvr ONNX export with TensorRT on a CUDA device (see the module docstring).

    Args:
        onnx_path: file written by ``dfmvr export`` (its metadata gives the network config and coefficient sizes).
        cache: the engine cache (an :class:`EngineCache` or its folder).
        precision: ``"fp32"``, ``"tf32"`` or ``"fp16"``.
        device: ``"cuda"`` or ``"cuda:N"``.
        max_batch: largest batch of the engine's profile (larger batches are run in chunks); a fixed-batch ONNX file
            forces its own batch.
        workspace_mb: builder scratch memory limit (None: TensorRT's default).
        check_values: NaN / range / label checks of the valid views before each call.

    Attributes:
        engine_path (the cached engine file), cache_status (``"hit"``, ``"built"`` or ``"rebuilt"``), plus those of
        :class:`~dfmvr_core.inference.backends.CoefficientBackend`.

    Raises:
        MissingDependencyError: TensorRT (or onnx) is not installed.
        ConfigError: not a CUDA device, bad precision or max_batch.
        ModelFileError: the ONNX file is missing, corrupt, not a dfmvr export, or does not match the engine.
        DfmvrError: the engine build failed.
    """

    def __init__(
        self,
        onnx_path: str | Path,
        *,
        cache: EngineCache | str | Path,
        precision: str = "fp16",
        device: str | torch.device = "cuda:0",
        max_batch: int = 4,
        workspace_mb: int | None = None,
        check_values: bool = True,
    ) -> None:
        trt = import_tensorrt()
        self.onnx_path = Path(onnx_path)
        info, graph = _onnx_info(self.onnx_path)
        self.precision = _check_precision(precision)
        max_batch = int(_positive_int("max_batch", max_batch) or 1)
        if info.batch is not None and max_batch != info.batch:
            _log.info("%s has a fixed batch of %d: max_batch %d ignored", self.onnx_path, info.batch, max_batch)
            max_batch = info.batch
        self.device, gpu = _cuda_target(device)
        self.input_device = self.device
        cache = cache if isinstance(cache, EngineCache) else EngineCache(cache)
        key = cache.key(self.onnx_path, trt.__version__, gpu, self.precision, max_batch)
        self.engine_path = cache.path_for(key)
        self._logger = _make_logger(trt)
        with _cuda_context(self.device):
            self._runtime = trt.Runtime(self._logger)  # must outlive the engine

            def build() -> bytes:
                return build_engine_bytes(
                    self.onnx_path,
                    precision=self.precision,
                    max_batch=max_batch,
                    workspace_mb=workspace_mb,
                    logger=self._logger,
                )

            self._engine, self.cache_status = cache.load_or_build(key, build, self._runtime.deserialize_cuda_engine)
            io = engine_io(self._engine)
            check_engine_io(io, graph, engine_label=str(self.engine_path), onnx_label=str(self.onnx_path))
            self._context = self._engine.create_execution_context()
        if self._context is None:
            raise DfmvrError(f"TensorRT could not create an execution context for {self.engine_path} (GPU memory?)")
        self._inputs = {name: _TORCH_DTYPES[spec.dtype] for name, spec in io.items() if spec.mode == "input"}
        self._output_dtype = _TORCH_DTYPES[io[COEFFICIENTS_OUTPUT].dtype]
        self.config, self.sizes, self.expression_kind = info.config, info.sizes, info.expression_kind
        self.model_fingerprint = info.model_fingerprint
        self.max_batch = max_batch
        self.check_values = bool(check_values)
        self.name = f"tensorrt:{self.device}:{self.precision}"

    @contextlib.contextmanager
    def _current(self) -> Iterator[None]:
        with _cuda_context(self.device):
            yield

    def _run_flat(self, images: torch.Tensor, masks: torch.Tensor | None, valid: torch.Tensor) -> torch.Tensor:
        b = int(images.shape[0])
        feeds = {"images": images, "masks": masks, "valid": valid}
        with self._current():
            stream = torch.cuda.current_stream(self.device)
            buffers = []  # referenced until enqueued; torch's allocator orders their reuse after this stream's work
            for name, dtype in self._inputs.items():
                tensor = feeds[name]
                if tensor is None:  # pragma: no cover - masks are checked by prepare_coefficient_inputs
                    raise ShapeError(f"{name}: required by the TensorRT engine")
                tensor = tensor.to(self.device, dtype).contiguous()
                buffers.append(tensor)
                if not self._context.set_input_shape(name, tuple(tensor.shape)):
                    raise ShapeError(
                        f"{name}: the TensorRT engine refuses shape {tuple(tensor.shape)} (its profile: batch "
                        f"1..{self.max_batch})"
                    )
                self._context.set_tensor_address(name, tensor.data_ptr())
            output = torch.empty((b, self.flat_size), dtype=self._output_dtype, device=self.device)
            self._context.set_tensor_address(COEFFICIENTS_OUTPUT, output.data_ptr())
            if not self._context.execute_async_v3(stream.cuda_stream):
                raise DfmvrError(f"TensorRT execution failed ({self.engine_path}): {'; '.join(self._logger.errors)}")
        return output
