"""One interface for the face parser (BiSeNet, CelebAMask-HQ classes): PyTorch or an exported ONNX file.

:class:`FaceParserBackend.parse_labels` takes ``images`` ``(B, 3, S, S)`` float RGB in [0, 1] (numpy or torch, any
device) and returns ``(B, S, S)`` int64 torch tensors of CelebAMask-HQ class indices (0 background, 1 skin, ...,
19 classes; :mod:`dfmvr_core.networks.face_parts` maps them to dfmvr's face parts). ``S`` is free for
:class:`TorchFaceParser` (a multiple of 32 is best) and fixed at export for :class:`OnnxFaceParserBackend`
(:attr:`input_size`). Pick one with :func:`build_face_parser_backend`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.inference.backends import (
    _AUTOCAST_DTYPES,
    TORCH_PRECISIONS,
    _as_tensor,
    _fp32_precision,
    onnxruntime_providers_for,
    resolve_device,
)
from dfmvr_core.networks.face_parser import BiSeNet, load_face_parser

__all__ = [
    "PARSER_BACKEND_KINDS",
    "FaceParserBackend",
    "OnnxFaceParserBackend",
    "TorchFaceParser",
    "build_face_parser_backend",
]

PARSER_BACKEND_KINDS = ("torch", "onnxruntime")

ArrayLike = np.ndarray | torch.Tensor


@runtime_checkable
class FaceParserBackend(Protocol):
    """A face parser runner.

    Attributes:
        name: e.g. ``"torch:cuda:0:fp16"`` or ``"onnxruntime:CPUExecutionProvider"``.
        device: where :meth:`parse_labels` returns its tensors.
        input_size: the fixed image side ``S`` it accepts, None when any size works.
    """

    name: str
    device: torch.device
    input_size: int | None

    def parse_labels(self, images: ArrayLike) -> torch.Tensor:
        """``(B, 3, S, S)`` float RGB in [0, 1] → ``(B, S, S)`` int64 CelebAMask-HQ classes."""
        ...


def _checked_images(images: ArrayLike, device: torch.device, size: int | None) -> torch.Tensor:
    """``images`` as a float32 tensor on ``device`` after the shape, dtype and finiteness checks."""
    tensor = _as_tensor("images", images, device)
    shape = "(B, 3, S, S)" if size is None else f"(B, 3, {size}, {size})"
    if not tensor.is_floating_point():
        raise ShapeError(f"images: expected float RGB in [0, 1] of shape {shape}, got {tensor.dtype}")
    if tensor.dim() != 4 or tensor.shape[1] != 3 or tensor.shape[2] != tensor.shape[3]:
        raise ShapeError(f"images: expected shape {shape}, got {tuple(tensor.shape)}")
    if size is not None and tensor.shape[2] != size:
        raise ShapeError(f"images: expected shape {shape} (the exported parser's size), got {tuple(tensor.shape)}")
    tensor = tensor.float()
    bad = int((~torch.isfinite(tensor)).sum()) if tensor.numel() else 0
    if bad:
        raise ShapeError(f"images: {bad} non-finite value(s) (NaN or inf); expected finite RGB in [0, 1]")
    return tensor


class TorchFaceParser:
    """:class:`BiSeNet` with PyTorch (eval mode, ``torch.inference_mode``).

    Args:
        parser: the network (e.g. :func:`~dfmvr_core.networks.face_parser.load_face_parser`); moved to ``device``,
            put in eval mode.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        precision: ``"fp32"``; ``"tf32"``/``"fp16"`` on CUDA; ``"bf16"`` on CUDA or CPU (autocast). The argmax is
            taken on the logits in that precision (near-tie pixels may flip; the labels are coarse masks anyway).

    Raises:
        ConfigError: not a BiSeNet, bad device, a precision the device does not support.
    """

    def __init__(self, parser: BiSeNet, *, device: str | torch.device = "cpu", precision: str = "fp32") -> None:
        if not isinstance(parser, BiSeNet):
            raise ConfigError(f"parser: expected a BiSeNet, got {type(parser).__name__}")
        self.device = resolve_device(device)
        if precision not in TORCH_PRECISIONS:
            raise ConfigError(f"precision: expected one of {TORCH_PRECISIONS}, got {precision!r}")
        if precision in ("fp16", "tf32") and self.device.type != "cuda":
            raise ConfigError(f"precision {precision!r} needs device 'cuda' (no CPU fp16/tf32 path); use 'fp32' on CPU")
        self.parser = parser.to(self.device).eval()
        self.precision = precision
        self.input_size: int | None = None
        self.name = f"torch:{self.device}:{precision}"

    def __repr__(self) -> str:
        return f"TorchFaceParser(name={self.name!r})"

    @contextlib.contextmanager
    def _precision(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            if self.device.type == "cuda":
                stack.enter_context(_fp32_precision(self.precision == "tf32"))
            if self.precision in _AUTOCAST_DTYPES:
                stack.enter_context(torch.autocast(self.device.type, dtype=_AUTOCAST_DTYPES[self.precision]))
            yield

    def parse_labels(self, images: ArrayLike) -> torch.Tensor:
        """``(B, 3, S, S)`` float RGB in [0, 1] → ``(B, S, S)`` int64 classes on :attr:`device`.

        Raises:
            ShapeError: wrong shape or dtype, NaN/inf.
        """
        tensor = _checked_images(images, self.device, None)
        if tensor.shape[0] == 0:
            return torch.zeros(tensor.shape[0], *tensor.shape[2:], dtype=torch.long, device=self.device)
        with torch.inference_mode(), self._precision():
            return self.parser.parse(tensor).argmax(dim=1)


class OnnxFaceParserBackend:
    """:class:`~dfmvr_core.inference.onnx_runtime.OnnxFaceParser` behind :class:`FaceParserBackend` (CPU tensors out).

    Args:
        onnx_path: written by :func:`~dfmvr_core.inference.export.export_face_parser_onnx` (``dfmvr export
            --parser-out``); its ``input_size`` is fixed.
        providers, num_threads, batch_size: as :class:`~dfmvr_core.inference.backends.OnnxRuntimeCoefficientBackend`.

    Raises:
        ModelFileError: missing, corrupt or non-parser file. MissingDependencyError: onnxruntime not installed.
    """

    def __init__(
        self,
        onnx_path: str | Path,
        *,
        providers: Sequence[str] | None = None,
        num_threads: int | None = None,
        batch_size: int | None = None,
    ) -> None:
        from dfmvr_core.inference.onnx_runtime import OnnxFaceParser

        self.session = OnnxFaceParser(onnx_path, providers, batch_size=batch_size, intra_op_threads=num_threads)
        self.device = torch.device("cpu")
        self.input_size: int | None = self.session.info.input_size
        self.name = f"onnxruntime:{self.session.providers[0]}"

    def __repr__(self) -> str:
        return f"OnnxFaceParserBackend({str(self.session.path)!r}, name={self.name!r})"

    def parse_labels(self, images: ArrayLike) -> torch.Tensor:
        """``(B, 3, S, S)`` float RGB in [0, 1] (``S`` = :attr:`input_size`) → ``(B, S, S)`` int64 CPU tensor."""
        tensor = _checked_images(images, self.device, self.input_size)
        labels = self.session.parse_labels(tensor.numpy())
        return torch.from_numpy(np.asarray(labels, dtype=np.int64))


def build_face_parser_backend(
    kind: str,
    *,
    parser: BiSeNet | None = None,
    checkpoint: str | Path | None = None,
    onnx_path: str | Path | None = None,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    providers: Sequence[str] | None = None,
    num_threads: int | None = None,
    batch_size: int | None = None,
) -> FaceParserBackend:
    """The face parser backend ``kind`` (:data:`PARSER_BACKEND_KINDS`).

    * ``"torch"``: :class:`TorchFaceParser` of ``parser``, or of the BiSeNet loaded from ``checkpoint``
      (face-parsing.PyTorch ``79999_iter.pth``).
    * ``"onnxruntime"``: :class:`OnnxFaceParserBackend` of ``onnx_path`` (``precision`` must be ``"fp32"``;
      ``device`` picks the provider when ``providers`` is None, as in
      :func:`~dfmvr_core.inference.backends.build_coefficient_backend`).

    Raises:
        ConfigError: unknown kind, missing or conflicting sources, unsupported precision.
        ModelFileError: unreadable checkpoint / ONNX file.
    """
    if kind not in PARSER_BACKEND_KINDS:
        raise ConfigError(f"face parser backend: expected one of {PARSER_BACKEND_KINDS}, got {kind!r}")
    if kind == "torch":
        if (parser is None) == (checkpoint is None):
            raise ConfigError("face parser backend 'torch': give exactly one of parser (a BiSeNet) or checkpoint")
        if parser is None:
            parser = load_face_parser(checkpoint)  # type: ignore[arg-type]
        return TorchFaceParser(parser, device=device, precision=precision)
    if onnx_path is None:
        raise ConfigError("face parser backend 'onnxruntime': needs onnx_path (`dfmvr export --parser-out`)")
    if precision != "fp32":
        raise ConfigError(
            f"face parser backend 'onnxruntime' runs the float32 graph: precision must be 'fp32', got {precision!r}"
        )
    if providers is None:
        providers = onnxruntime_providers_for(resolve_device(device))
    return OnnxFaceParserBackend(onnx_path, providers=providers, num_threads=num_threads, batch_size=batch_size)
