"""One interface for running the coefficient network: PyTorch, ONNX Runtime or TensorRT.

:class:`CoefficientBackend` is what :class:`~dfmvr_core.inference.reconstructor.FaceReconstructor` calls; pick one
with :func:`build_coefficient_backend`. Every implementation takes the inputs of :meth:`DFMVRNet.forward`

* ``images`` ``(B, V, 3, S, S)`` float RGB in [0, 1] (float16/32/64; cast to float32),
* ``masks`` ``(B, V, S, S)`` integer face-part labels 0..9 (cast to int64), None when the network has
  ``mask_input: none``,
* ``valid`` ``(B, V)`` bool, None for "all views valid"; invalid views may hold anything (NaN included): the network
  replaces them by a black image and an empty mask,

as numpy arrays or torch tensors (any device), checks them like :meth:`DFMVRNet.forward` does (shape, dtype, and the
valid views' NaN / [0, 1] range / label range, :func:`prepare_coefficient_inputs`) and returns the coefficient groups
of :func:`~dfmvr_core.networks.dfmvr_net.split_flat` as **float32 torch tensors** on :attr:`device`:
``identity (B, K_id)``, ``expression (B, K_exp)``, ``albedo (B, K_tex)``, ``lighting (B, V, 27)``,
``pose (B, V, 6)``. Reduced-precision runs (fp16/bf16) are cast back to float32: decoding the 3DMM stays float32.

Batches larger than :attr:`max_batch` are run in chunks of at most ``max_batch`` (fixed-size runs: CUDA graphs, a
fixed-batch ONNX Runtime session, are padded with invalid views); ``B = 0`` returns empty tensors.

Implementations:

* :class:`TorchBackend`: the PyTorch module, fp32 / tf32 / fp16 / bf16 (autocast), optional ``torch.compile`` and
  CUDA graphs.
* :class:`OnnxRuntimeCoefficientBackend`: an exported ONNX file with ONNX Runtime (CUDA provider when present).
* :class:`~dfmvr_core.inference.tensorrt_backend.TensorRTBackend`: the same file compiled by TensorRT (fp32 / tf32 /
  fp16), engines cached by :class:`~dfmvr_core.inference.engine_cache.EngineCache`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.morphable.parts import NUM_FACE_PARTS
from dfmvr_core.networks.dfmvr_net import DFMVRNet, check_input_values, split_flat
from dfmvr_core.networks.net_config import NetworkConfig
from dfmvr_core.networks.registry import is_reconstruction_network

__all__ = [
    "BACKEND_KINDS",
    "COMPILE_MODES",
    "TORCH_PRECISIONS",
    "CoefficientBackend",
    "OnnxRuntimeCoefficientBackend",
    "TorchBackend",
    "build_coefficient_backend",
    "default_engine_cache_dir",
    "onnxruntime_providers_for",
    "pad_batch",
    "prepare_coefficient_inputs",
    "resolve_device",
]

BACKEND_KINDS = ("torch", "onnxruntime", "tensorrt")
TORCH_PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
_AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}

ArrayLike = np.ndarray | torch.Tensor


@runtime_checkable
class CoefficientBackend(Protocol):
    """What :class:`FaceReconstructor` needs from a coefficient network runner (see the module docstring).

    Attributes:
        name: e.g. ``"torch:cuda:0:fp16"``, ``"onnxruntime:CPUExecutionProvider"``, ``"tensorrt:cuda:0:fp16"``.
        precision: ``"fp32"``, ``"tf32"``, ``"fp16"`` or ``"bf16"``.
        max_batch: largest batch run in one launch (larger batches are split), None for any.
        device: where the returned tensors live.
        config: the network's architecture (views ``V``, ``input_size`` ``S``, ``mask_input``).
        sizes: coefficient sizes of the morphable model the network regresses; expression_kind likewise.
        model_fingerprint: that model's :meth:`MorphableModel.fingerprint` when known (ONNX metadata), else None.
    """

    name: str
    precision: str
    max_batch: int | None
    device: torch.device
    config: NetworkConfig
    sizes: CoefficientSizes
    expression_kind: str
    model_fingerprint: str | None

    def run(
        self, images: ArrayLike, masks: ArrayLike | None = None, valid: ArrayLike | None = None
    ) -> dict[str, torch.Tensor]:
        """Coefficients of one face per sample (float32 tensors on :attr:`device`)."""
        ...

    def warmup(self, batch: int = 1) -> None:
        """Run once on dummy inputs (CUDA context, autotuning, graph capture) so that the first real call is fast."""
        ...


# ---------------------------------------------------------------------------------------------------- helpers
def resolve_device(device: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` → :class:`torch.device` (``"cuda"`` becomes ``cuda:<current>``).

    Raises:
        ConfigError: not a device string, another device type, CUDA requested but unavailable, or no GPU ``N``.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type != "cuda":
        raise ConfigError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"device {str(device)!r}: CUDA is not available (CPU-only PyTorch build or no NVIDIA GPU/driver); "
            "use device 'cpu'"
        )
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        raise ConfigError(f"device {str(device)!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return torch.device("cuda", index)


def onnxruntime_providers_for(device: torch.device) -> list[str]:
    """ONNX Runtime providers for a resolved device: ``["CPUExecutionProvider"]`` on CPU, the CUDA provider first
    on a CUDA device.

    Raises:
        ConfigError: a CUDA device but this onnxruntime has no ``CUDAExecutionProvider``.
        MissingDependencyError: onnxruntime is not installed.
    """
    from dfmvr_core.inference.onnx_runtime import default_providers

    available = default_providers()
    if device.type != "cuda":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in available:
        raise ConfigError(
            f"onnxruntime on {device}: this onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu); use "
            "device 'cpu', or backend 'torch'/'tensorrt'"
        )
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def default_engine_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/dfmvr/tensorrt`` (``~/.cache/dfmvr/tensorrt``): the TensorRT engine cache's default."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dfmvr" / "tensorrt"


def _as_tensor(name: str, value: Any, device: torch.device) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().to(device)
    if isinstance(value, np.ndarray):
        if not value.flags.writeable:  # torch.from_numpy warns about read-only arrays
            value = value.copy()
        return torch.from_numpy(np.ascontiguousarray(value)).to(device)
    raise ShapeError(f"{name}: expected a numpy array or torch tensor, got {type(value).__name__}")


def prepare_coefficient_inputs(
    images: ArrayLike,
    masks: ArrayLike | None,
    valid: ArrayLike | None,
    *,
    views: int,
    input_size: int,
    mask_input: str,
    device: torch.device,
    check_values: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Checked network inputs on ``device``: ``images`` float32, ``masks`` int64 (None for ``mask_input: none``),
    ``valid`` bool. The checks are :meth:`DFMVRNet.forward`'s, so that every backend refuses the same inputs.

    Raises:
        ShapeError: wrong type, shape, dtype or batch size; missing masks; NaN/inf or out-of-range values in a valid
            view (when ``check_values``). The message names the argument and the expected shape.
    """
    v, s = views, input_size
    images_t = _as_tensor("images", images, device)
    if not images_t.is_floating_point():
        raise ShapeError(f"images: expected float RGB in [0, 1] of shape (B, {v}, 3, {s}, {s}), got {images_t.dtype}")
    if images_t.dim() != 5 or tuple(images_t.shape[1:]) != (v, 3, s, s):
        raise ShapeError(f"images: expected shape (B, {v}, 3, {s}, {s}), got {tuple(images_t.shape)}")
    images_t = images_t.float()
    b = int(images_t.shape[0])
    if valid is None:
        valid_t = torch.ones(b, v, dtype=torch.bool, device=device)
    else:
        valid_t = _as_tensor("valid", valid, device)
        if valid_t.dtype != torch.bool:
            raise ShapeError(f"valid: expected a bool array (B, {v}), got {valid_t.dtype}")
        if tuple(valid_t.shape) != (b, v):
            raise ShapeError(f"valid: expected shape ({b}, {v}) (B from images), got {tuple(valid_t.shape)}")
    masks_t: torch.Tensor | None = None
    if mask_input != "none":
        if masks is None:
            raise ShapeError(
                f"masks: required by this network (mask_input={mask_input!r}): expected integer face-part labels "
                f"0..{NUM_FACE_PARTS - 1} of shape (B, {v}, {s}, {s}), got None"
            )
        masks_t = _as_tensor("masks", masks, device)
        if masks_t.is_floating_point() or masks_t.is_complex() or masks_t.dtype == torch.bool:
            raise ShapeError(
                f"masks: expected integer face-part labels of shape (B, {v}, {s}, {s}), got {masks_t.dtype}"
            )
        if tuple(masks_t.shape) != (b, v, s, s):
            raise ShapeError(f"masks: expected shape ({b}, {v}, {s}, {s}) (B from images), got {tuple(masks_t.shape)}")
        masks_t = masks_t.long()
    if check_values and b:
        _check_values(images_t, masks_t, valid_t, v, s)
    return images_t, masks_t, valid_t


def _check_values(images: torch.Tensor, masks: torch.Tensor | None, valid: torch.Tensor, v: int, s: int) -> None:
    """The network's own input checks (:func:`~dfmvr_core.networks.dfmvr_net.check_input_values`)."""
    check_input_values(images, masks, valid, v, s)


def pad_batch(
    images: torch.Tensor, masks: torch.Tensor | None, valid: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Pad a batch of ``b <= size`` samples to ``size`` with all-invalid samples (zeros, ``valid`` False)."""
    extra = size - int(images.shape[0])
    if extra <= 0:
        return images, masks, valid
    images = torch.cat((images, images.new_zeros((extra, *images.shape[1:]))))
    if masks is not None:
        masks = torch.cat((masks, masks.new_zeros((extra, *masks.shape[1:]))))
    return images, masks, torch.cat((valid, valid.new_zeros((extra, *valid.shape[1:]))))


def _positive_int(name: str, value: Any, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}: expected a positive int{' or None' if allow_none else ''}, got {value!r}")
    return value


class _Backend:
    """Shared part of the backends: input checks, chunking, the float32 split of the flat output, warm-up.

    Subclasses set the attributes of :class:`CoefficientBackend` and implement :meth:`_run_flat` for one chunk of
    ``1 <= b <= max_batch`` samples (checked inputs on :attr:`input_device`), returning ``(b, flat_size)``.
    """

    name: str
    precision: str
    max_batch: int | None
    device: torch.device
    input_device: torch.device
    config: NetworkConfig
    sizes: CoefficientSizes
    expression_kind: str
    model_fingerprint: str | None = None
    check_values: bool = True

    @property
    def views(self) -> int:
        return self.config.views

    @property
    def flat_size(self) -> int:
        return self.sizes.total(self.config.views)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, network={self.config.name!r}, max_batch={self.max_batch})"

    def _run_flat(
        self, images: torch.Tensor, masks: torch.Tensor | None, valid: torch.Tensor
    ) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(
        self, images: ArrayLike, masks: ArrayLike | None = None, valid: ArrayLike | None = None
    ) -> dict[str, torch.Tensor]:
        """Coefficients of one face per sample; see the module docstring.

        Raises:
            ShapeError: bad inputs (the message names the argument and the expected shape).
        """
        images_t, masks_t, valid_t = prepare_coefficient_inputs(
            images,
            masks,
            valid,
            views=self.config.views,
            input_size=self.config.input_size,
            mask_input=self.config.mask_input,
            device=self.input_device,
            check_values=self.check_values,
        )
        b = int(images_t.shape[0])
        step = self.max_batch or max(b, 1)
        pieces = []
        for start in range(0, b, step):
            stop = min(b, start + step)
            chunk_masks = masks_t[start:stop] if masks_t is not None else None
            flat = self._run_flat(images_t[start:stop], chunk_masks, valid_t[start:stop])
            pieces.append(flat.to(self.device, torch.float32))
        if pieces:
            flat = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
        else:
            flat = torch.zeros(0, self.flat_size, dtype=torch.float32, device=self.device)
        return split_flat(flat, self.sizes, self.config.views)

    def warmup(self, batch: int = 1) -> None:
        """One run on mid-grey images with empty masks, all views valid."""
        _positive_int("batch", batch)
        v, s = self.config.views, self.config.input_size
        images = torch.full((batch, v, 3, s, s), 0.5, device=self.input_device)
        masks = torch.zeros(batch, v, s, s, dtype=torch.long, device=self.input_device)
        self.run(images, masks if self.config.mask_input != "none" else None, None)


# ---------------------------------------------------------------------------------------------------- PyTorch
@contextlib.contextmanager
def _fp32_precision(tf32: bool) -> Iterator[None]:
    """TF32 (``tf32=True``) or IEEE fp32 for CUDA matmuls and cuDNN convolutions inside the block only."""
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(matmul, "fp32_precision") and hasattr(getattr(conv, "conv", None), "fp32_precision"):
        # torch >= 2.9: the per-backend fp32_precision API (reading the legacy allow_tf32 flags after it was used
        # raises, so the legacy API is only the fallback below).
        saved = (matmul.fp32_precision, conv.conv.fp32_precision)
        mode = "tf32" if tf32 else "ieee"
        matmul.fp32_precision, conv.conv.fp32_precision = mode, mode
        try:
            yield
        finally:
            matmul.fp32_precision, conv.conv.fp32_precision = saved
    else:  # pragma: no cover - torch < 2.9
        saved_legacy = (matmul.allow_tf32, conv.allow_tf32)
        matmul.allow_tf32, conv.allow_tf32 = tf32, tf32
        try:
            yield
        finally:
            matmul.allow_tf32, conv.allow_tf32 = saved_legacy


class TorchBackend(_Backend):
    """Run a :class:`DFMVRNet` with PyTorch (eval mode, ``torch.inference_mode``).

    Precision (``precision``):

    * ``"fp32"``: IEEE float32 (on CUDA TF32 is switched off for matmuls and cuDNN convolutions during the call);
    * ``"tf32"`` (CUDA, Ampere or newer): TF32 tensor cores for matmuls and convolutions, switched on for the call
      only (``torch.backends.cuda.matmul.fp32_precision`` / ``torch.backends.cudnn.conv.fp32_precision``, the
      ``allow_tf32`` flags on torch < 2.9) and restored afterwards: no global setting leaks. These flags are
      process-wide while a call runs, so do not run another CUDA model concurrently from another thread;
    * ``"fp16"`` (CUDA only) / ``"bf16"`` (CUDA, or CPU autocast): ``torch.autocast``; the outputs are cast back to
      float32.

    Speed-ups (CUDA):

    * ``compile``: ``torch.compile`` the network; ``True`` means ``mode="max-autotune-no-cudagraphs"`` (Triton
      autotuning, no CUDA graphs), or name a mode of :data:`COMPILE_MODES` (``"reduce-overhead"`` adds torch's own
      CUDA graphs, one per batch size seen). The first call per batch size compiles (seconds to minutes). Works on
      CPU too (inductor's C++ backend, needs a compiler).
    * ``cuda_graphs``: capture the whole forward pass in one CUDA graph for the fixed batch ``max_batch`` (default
      1) at the first call (or :meth:`warmup`), replay it afterwards: removes the per-kernel launch overhead that
      dominates at batch 1. Inputs are copied into static buffers; smaller batches are padded with invalid views,
      larger ones chunked. Not combinable with ``compile`` (use ``compile="reduce-overhead"`` instead, which
      captures graphs itself). The network's data-dependent checks are skipped during capture; the backend's own
      checks (:func:`prepare_coefficient_inputs`) still run before each replay.

    Args:
        network: the network; moved to ``device`` and put in eval mode (the module itself, no copy).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        precision: see above (:data:`TORCH_PRECISIONS`).
        compile: False, True or a ``torch.compile`` mode.
        cuda_graphs: capture CUDA graphs (CUDA only).
        max_batch: batch of the CUDA graph (default 1); otherwise the largest chunk per call (default None: any).
        check_values: run the NaN / range / label checks of the valid views before each call.
        model_fingerprint: fingerprint of the morphable model the weights are for (from the checkpoint), or None.

    Raises:
        ConfigError: not a DFMVRNet, bad device, a precision or option the device does not support (fp16 or tf32
            on CPU, CUDA graphs on CPU, graphs with compile).
    """

    def __init__(
        self,
        network: DFMVRNet,
        *,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        compile: bool | str = False,
        cuda_graphs: bool = False,
        max_batch: int | None = None,
        check_values: bool = True,
        model_fingerprint: str | None = None,
    ) -> None:
        if not is_reconstruction_network(network):
            raise ConfigError(
                "network: expected a DFMVRNet, Deep3DFaceNet or UHE2FARNet (a reconstruction network), got "
                f"{type(network).__name__}"
            )
        self.device = self.input_device = resolve_device(device)
        cuda = self.device.type == "cuda"
        if precision not in TORCH_PRECISIONS:
            raise ConfigError(f"precision: expected one of {TORCH_PRECISIONS}, got {precision!r}")
        if precision == "fp16" and not cuda:
            raise ConfigError(
                "precision 'fp16' needs device 'cuda': PyTorch's CPU autocast does not run convolutions in float16 "
                "(CPUs have no fast fp16 path); use 'fp32' (or 'bf16', CPU autocast) on CPU"
            )
        if precision == "tf32" and not cuda:
            raise ConfigError("precision 'tf32' is a CUDA tensor-core mode (Ampere or newer); use 'fp32' on CPU")
        if compile is True:
            compile = "max-autotune-no-cudagraphs"
        if compile is not False and compile not in COMPILE_MODES:
            raise ConfigError(f"compile: expected False, True or one of {COMPILE_MODES}, got {compile!r}")
        if not isinstance(cuda_graphs, bool):
            raise ConfigError(f"cuda_graphs: expected true or false, got {cuda_graphs!r}")
        if cuda_graphs and not cuda:
            raise ConfigError("cuda_graphs: CUDA graphs need device 'cuda'; use cuda_graphs=False on CPU")
        if cuda_graphs and compile:
            raise ConfigError(
                f"cuda_graphs with compile={compile!r}: use compile='reduce-overhead' alone (torch.compile captures "
                "its own CUDA graphs) or cuda_graphs=True without compile"
            )
        max_batch = _positive_int("max_batch", max_batch, allow_none=True)
        self.network = network.to(self.device).eval()
        self.config, self.sizes, self.expression_kind = network.config, network.sizes, network.expression_kind
        self.precision = precision
        self.compile_mode: str | None = compile or None
        self.cuda_graphs = cuda_graphs
        self.max_batch = (max_batch or 1) if cuda_graphs else max_batch
        self.check_values = bool(check_values)
        self.model_fingerprint = model_fingerprint
        self.name = f"torch:{self.device}:{precision}" + (f":compile={compile}" if compile else "")
        self.name += ":cuda-graphs" if cuda_graphs else ""
        self._forward: Callable[..., torch.Tensor] = network.forward_flat
        if self.compile_mode is not None:
            self._forward = torch.compile(network.forward_flat, mode=self.compile_mode)
        self._graph: Any = None
        self._static: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor] | None = None

    @contextlib.contextmanager
    def _precision(self, cache_enabled: bool = True) -> Iterator[None]:
        """The numeric mode of :attr:`precision` for the block (see the class docstring)."""
        with contextlib.ExitStack() as stack:
            if self.device.type == "cuda":
                stack.enter_context(_fp32_precision(self.precision == "tf32"))
            if self.precision in _AUTOCAST_DTYPES:
                stack.enter_context(
                    torch.autocast(
                        self.device.type, dtype=_AUTOCAST_DTYPES[self.precision], cache_enabled=cache_enabled
                    )
                )
            yield

    def _run_flat(self, images: torch.Tensor, masks: torch.Tensor | None, valid: torch.Tensor) -> torch.Tensor:
        if self.cuda_graphs:
            return self._replay(images, masks, valid)
        with torch.inference_mode(), self._precision():
            return self._forward(images, masks, valid).float()

    def _capture(self) -> None:
        """Capture the forward pass at batch :attr:`max_batch` (warm-up on a side stream first, as CUDA requires)."""
        b, v, s = int(self.max_batch or 1), self.config.views, self.config.input_size
        images = torch.full((b, v, 3, s, s), 0.5, device=self.device)
        masks = (
            torch.zeros(b, v, s, s, dtype=torch.long, device=self.device) if self.config.mask_input != "none" else None
        )
        valid = torch.ones(b, v, dtype=torch.bool, device=self.device)
        # The autocast weight-cast cache must be off while capturing (its cached casts would be freed after capture).
        with torch.inference_mode(), self._precision(cache_enabled=False):
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(3):
                    self.network.forward_flat(images, masks, valid)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                output = self.network.forward_flat(images, masks, valid)
        self._graph, self._static = graph, (images, masks, valid, output)

    def _replay(self, images: torch.Tensor, masks: torch.Tensor | None, valid: torch.Tensor) -> torch.Tensor:
        if self._graph is None:
            self._capture()
        assert self._static is not None
        static_images, static_masks, static_valid, output = self._static
        b = int(images.shape[0])
        images, masks, valid = pad_batch(images, masks, valid, int(static_images.shape[0]))
        static_images.copy_(images)
        static_valid.copy_(valid)
        if static_masks is not None and masks is not None:
            static_masks.copy_(masks)
        self._graph.replay()
        return output[:b].float().clone()


# ---------------------------------------------------------------------------------------------------- ONNX Runtime
class OnnxRuntimeCoefficientBackend(_Backend):
    """:class:`~dfmvr_core.inference.onnx_runtime.OnnxRuntimeBackend` behind the :class:`CoefficientBackend`
    interface: float32 graph (``precision = "fp32"``), outputs as CPU tensors.

    Args:
        onnx_path: a file written by :func:`~dfmvr_core.inference.export.export_onnx` / ``dfmvr export``.
        providers: ONNX Runtime execution providers in priority order; default: ``CUDAExecutionProvider`` when the
            installed onnxruntime has it (``onnxruntime-gpu``), then ``CPUExecutionProvider``.
        num_threads: intra-op threads (None: ONNX Runtime's default, one per core).
        batch_size: fix the session's batch (fast start-up, see :mod:`~dfmvr_core.inference.onnx_runtime`); other
            batch sizes are then padded or chunked to it. None keeps the batch dynamic.
        check_values: NaN / range / label checks of the valid views before each call.

    Raises:
        ModelFileError: missing, corrupt or non-dfmvr file. ConfigError: unknown providers, bad arguments.
        MissingDependencyError: onnxruntime is not installed.
    """

    def __init__(
        self,
        onnx_path: str | Path,
        *,
        providers: Sequence[str] | None = None,
        num_threads: int | None = None,
        batch_size: int | None = None,
        check_values: bool = True,
    ) -> None:
        from dfmvr_core.inference.onnx_runtime import OnnxRuntimeBackend

        self.session = OnnxRuntimeBackend(
            onnx_path, providers, batch_size=batch_size, intra_op_threads=num_threads, check_values=False
        )
        info = self.session.info
        self.config, self.sizes, self.expression_kind = info.config, info.sizes, info.expression_kind
        self.model_fingerprint = info.model_fingerprint
        self.precision = "fp32"
        self.max_batch = self.session.batch_size
        self.device = self.input_device = torch.device("cpu")
        self.check_values = bool(check_values)
        self.providers = list(self.session.providers)
        self.name = f"onnxruntime:{self.providers[0]}"

    def _run_flat(self, images: torch.Tensor, masks: torch.Tensor | None, valid: torch.Tensor) -> torch.Tensor:
        b = int(images.shape[0])
        if self.max_batch is not None:
            images, masks, valid = pad_batch(images, masks, valid, self.max_batch)
        flat = self.session.run_flat(images.numpy(), masks.numpy() if masks is not None else None, valid.numpy())
        return torch.from_numpy(np.asarray(flat))[:b]


# ---------------------------------------------------------------------------------------------------- factory
def build_coefficient_backend(
    kind: str,
    *,
    network: DFMVRNet | None = None,
    onnx_path: str | Path | None = None,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    providers: Sequence[str] | None = None,
    num_threads: int | None = None,
    batch_size: int | None = None,
    engine_cache_dir: str | Path | None = None,
    max_batch: int | None = None,
    compile: bool | str = False,
    cuda_graphs: bool = False,
    model_fingerprint: str | None = None,
) -> CoefficientBackend:
    """The backend ``kind`` (:data:`BACKEND_KINDS`).

    * ``"torch"``: :class:`TorchBackend` of ``network`` (``device``, ``precision``, ``compile``, ``cuda_graphs``,
      ``max_batch``, ``model_fingerprint``).
    * ``"onnxruntime"``: :class:`OnnxRuntimeCoefficientBackend` of ``onnx_path``; ``precision`` must be ``"fp32"``;
      without ``providers``, ``device="cpu"`` uses ``CPUExecutionProvider`` only and a CUDA device the CUDA provider
      (ConfigError if this onnxruntime has none). ``num_threads`` and ``batch_size`` are passed on.
    * ``"tensorrt"``: :class:`~dfmvr_core.inference.tensorrt_backend.TensorRTBackend` of ``onnx_path`` on a CUDA
      ``device``; engines cached in ``engine_cache_dir`` (default :func:`default_engine_cache_dir`); ``max_batch``
      default 4.

    ``num_threads`` only applies to onnxruntime (torch's thread count is process-wide: ``torch.set_num_threads`` is
    the application's call).

    Raises:
        ConfigError: unknown kind, missing ``network``/``onnx_path``, an option the kind does not support.
        MissingDependencyError: onnxruntime / TensorRT not installed.
    """
    if kind not in BACKEND_KINDS:
        raise ConfigError(f"backend: expected one of {BACKEND_KINDS}, got {kind!r}")
    if kind == "torch":
        if network is None:
            raise ConfigError("backend 'torch': needs the network (a DFMVRNet built from the checkpoint)")
        return TorchBackend(
            network,
            device=device,
            precision=precision,
            compile=compile,
            cuda_graphs=cuda_graphs,
            max_batch=max_batch,
            model_fingerprint=model_fingerprint,
        )
    if onnx_path is None:
        raise ConfigError(f"backend {kind!r}: needs onnx_path (a file written by `dfmvr export`)")
    if compile or cuda_graphs:
        raise ConfigError(f"backend {kind!r}: compile/cuda_graphs apply to the torch backend only")
    if kind == "onnxruntime":
        if precision != "fp32":
            raise ConfigError(
                f"backend 'onnxruntime' runs the exported float32 graph: precision must be 'fp32', got {precision!r} "
                "(use backend 'tensorrt' or 'torch' for fp16/tf32)"
            )
        if providers is None:
            providers = onnxruntime_providers_for(resolve_device(device))
        return OnnxRuntimeCoefficientBackend(
            onnx_path, providers=providers, num_threads=num_threads, batch_size=batch_size
        )
    from dfmvr_core.inference.engine_cache import EngineCache
    from dfmvr_core.inference.tensorrt_backend import TensorRTBackend

    cache = EngineCache(engine_cache_dir if engine_cache_dir is not None else default_engine_cache_dir())
    return TensorRTBackend(
        onnx_path, cache=cache, precision=precision, device=device, max_batch=max_batch if max_batch else 4
    )
