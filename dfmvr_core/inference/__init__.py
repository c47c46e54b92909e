"""Inference engines: ONNX export of the networks, checkpoints and the ONNX Runtime backend (TensorRT comes later).

* :func:`export_onnx` / :func:`export_face_parser_onnx` — TorchScript-based ONNX export (opset 17, dynamic batch)
  with ``dfmvr.`` metadata; see :mod:`dfmvr_core.inference.export`.
* :class:`OnnxRuntimeBackend` / :class:`OnnxFaceParser` — run those files; see :mod:`dfmvr_core.inference.onnx_runtime`.
* :func:`save_checkpoint` / :func:`load_checkpoint` — validated, weights-only checkpoints;
  see :mod:`dfmvr_core.inference.checkpoint`.

Importing this package does not import ``onnx`` or ``onnxruntime`` (the ``export`` extra); the functions that need
them do, and raise :class:`MissingDependencyError` (a :class:`~dfmvr_core.errors.DfmvrError`) when they are absent.
"""

from dfmvr_core.inference._common import MissingDependencyError
from dfmvr_core.inference.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from dfmvr_core.inference.export import (
    DEFAULT_OPSET,
    coefficient_input_names,
    export_face_parser_onnx,
    export_onnx,
)
from dfmvr_core.inference.onnx_runtime import (
    FaceParserInfo,
    OnnxFaceParser,
    OnnxModelInfo,
    OnnxRuntimeBackend,
    default_providers,
    read_onnx_metadata,
)

__all__ = [
    "DEFAULT_OPSET",
    "Checkpoint",
    "FaceParserInfo",
    "MissingDependencyError",
    "OnnxFaceParser",
    "OnnxModelInfo",
    "OnnxRuntimeBackend",
    "coefficient_input_names",
    "default_providers",
    "export_face_parser_onnx",
    "export_onnx",
    "load_checkpoint",
    "read_onnx_metadata",
    "save_checkpoint",
]
