"""Inference engines: ONNX export of the networks, checkpoints and the backends that run them.

* :func:`export_onnx` / :func:`export_face_parser_onnx` — TorchScript-based ONNX export (opset 17, dynamic batch)
  with ``dfmvr.`` metadata; see :mod:`dfmvr_core.inference.export`.
* :class:`OnnxRuntimeBackend` / :class:`OnnxFaceParser` — run those files; see :mod:`dfmvr_core.inference.onnx_runtime`.
* :func:`save_checkpoint` / :func:`load_checkpoint` — validated, weights-only checkpoints;
  see :mod:`dfmvr_core.inference.checkpoint`.
* :class:`CoefficientBackend` — one interface for the coefficient network: :class:`TorchBackend`,
  :class:`OnnxRuntimeCoefficientBackend`, :class:`TensorRTBackend` (engines cached by :class:`EngineCache`), chosen
  by :func:`build_coefficient_backend`; see :mod:`dfmvr_core.inference.backends`.
* :class:`FaceParserBackend` — the same for the face parser: :class:`TorchFaceParser`,
  :class:`OnnxFaceParserBackend`, :func:`build_face_parser_backend`; see :mod:`dfmvr_core.inference.parser_backends`.

Importing this package does not import ``onnx``, ``onnxruntime`` (the ``export`` extra) or ``tensorrt``; the
functions that need them do, and raise :class:`MissingDependencyError` (a :class:`~dfmvr_core.errors.DfmvrError`)
when they are absent.
"""

from dfmvr_core.inference._common import MissingDependencyError
from dfmvr_core.inference.backends import (
    CoefficientBackend,
    OnnxRuntimeCoefficientBackend,
    TorchBackend,
    build_coefficient_backend,
)
from dfmvr_core.inference.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from dfmvr_core.inference.engine_cache import EngineCache
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
from dfmvr_core.inference.parser_backends import (
    FaceParserBackend,
    OnnxFaceParserBackend,
    TorchFaceParser,
    build_face_parser_backend,
)
from dfmvr_core.inference.tensorrt_backend import TensorRTBackend

__all__ = [
    "DEFAULT_OPSET",
    "Checkpoint",
    "CoefficientBackend",
    "EngineCache",
    "FaceParserBackend",
    "FaceParserInfo",
    "MissingDependencyError",
    "OnnxFaceParser",
    "OnnxFaceParserBackend",
    "OnnxModelInfo",
    "OnnxRuntimeBackend",
    "OnnxRuntimeCoefficientBackend",
    "TensorRTBackend",
    "TorchBackend",
    "TorchFaceParser",
    "build_coefficient_backend",
    "build_face_parser_backend",
    "coefficient_input_names",
    "default_providers",
    "export_face_parser_onnx",
    "export_onnx",
    "load_checkpoint",
    "read_onnx_metadata",
    "save_checkpoint",
]
