"""Configuration of :class:`~dfmvr_core.inference.reconstructor.FaceReconstructor` (validated, YAML-loadable)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dfmvr_core.config import from_mapping, load_yaml
from dfmvr_core.errors import ConfigError
from dfmvr_core.geometry.face_crop import CropCamera
from dfmvr_core.inference.default_model import DEFAULT_CHECKPOINT, resolve_checkpoint

__all__ = [
    "BACKENDS",
    "DETECTORS",
    "MASK_SOURCES",
    "PRECISIONS",
    "ReconstructorConfig",
    "load_reconstructor_config",
]

BACKENDS = ("torch", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16", "tf32")
MASK_SOURCES = ("landmarks", "parser", "none")
"""Where the network's face-part mask input comes from: ``landmarks`` = polygons of the 68 landmarks (cheap, the
default on CPU and what the default model is trained with), ``parser`` = the BiSeNet face parser (paper), ``none`` =
no mask (only for networks with ``mask_input: none``, ablation v4)."""
DETECTORS = ("mediapipe", "none")
COMPILE_CHOICES = ("none", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class ReconstructorConfig:
    """What to run and how.

    Attributes:
        morphable_model: the morphable model file (``.npz``, BFM ``.mat`` or an ICT folder); required.
        network: ``"small"``, ``"paper"``, a baseline (``"deep3dface"``, ``"deep3dface_cnet"``, ``"uh_e2far"``) or a
            network YAML path (DF-MVR or baseline, :func:`~dfmvr_core.networks.registry.load_any_network_config`);
            must match the checkpoint (its network kind included).
        checkpoint: trained weights; ``"default"``: the embedded default model (:mod:`.default_model`); None runs
            freshly initialised weights (meaningless output, tests only; a warning is logged).
        backend: ``torch`` (CPU/CUDA), ``onnxruntime`` (CPU, CUDA provider if present) or ``tensorrt`` (CUDA).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``fp32``; ``fp16``/``tf32`` only on CUDA (torch autocast, TensorRT builder flags).
        onnx_path: the exported network for ``onnxruntime``/``tensorrt``; None exports the checkpoint once into
            ``cache_dir``.
        cache_dir: exported ONNX files and TensorRT engines; None → ``~/.cache/dfmvr``.
        mask_source: see :data:`MASK_SOURCES`.
        parser_checkpoint: BiSeNet weights (``79999_iter.pth``) for ``mask_source: parser``.
        detector: ``mediapipe`` (the ``landmarks`` extra) or ``none`` (ROIs or landmarks must then be passed).
        crop: the canonical crop camera and crop policy (must be the one the network was trained with).
        rig: rig YAML (extrinsics and default intrinsics); None → the built-in default rig.
        num_threads: CPU threads for torch / ONNX Runtime; None leaves the library default.
        compile: torch backend: ``"none"`` or a ``torch.compile`` mode (``"default"``, ``"reduce-overhead"``,
            ``"max-autotune"``, ``"max-autotune-no-cudagraphs"``); helps on CUDA, costs minutes of compilation on
            the CPU.
        cuda_graphs: torch backend on CUDA: capture the network in a CUDA graph (fixed batch 1).
        min_face_px: a face box smaller than this (pixels, image) makes the view invalid.
        metric_pose: with two or more valid views whose landmarks are known, take the head pose and the face's size
            from the landmarks triangulated by the calibrated rig (:mod:`~dfmvr_core.inference.metric_pose`)
            instead of the network's per-view poses; false: always the network's (the paper's) fused pose and the
            decoded shape as is.
    """

    morphable_model: Path
    network: str = "small"
    checkpoint: Path | None = None
    backend: str = "onnxruntime"
    device: str = "cpu"
    precision: str = "fp32"
    onnx_path: Path | None = None
    cache_dir: Path | None = None
    mask_source: str = "landmarks"
    parser_checkpoint: Path | None = None
    detector: str = "mediapipe"
    crop: CropCamera = field(default_factory=CropCamera)
    rig: Path | None = None
    num_threads: int | None = None
    min_face_px: float = 24.0
    compile: str = "none"
    cuda_graphs: bool = False
    metric_pose: bool = True

    def __post_init__(self) -> None:
        if self.checkpoint is not None and str(self.checkpoint) == DEFAULT_CHECKPOINT:
            object.__setattr__(self, "checkpoint", resolve_checkpoint(DEFAULT_CHECKPOINT))
        for name, allowed in (
            ("backend", BACKENDS),
            ("precision", PRECISIONS),
            ("mask_source", MASK_SOURCES),
            ("detector", DETECTORS),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"{name}: expected one of {list(allowed)}, got {value!r}")
        if not isinstance(self.device, str) or not _DEVICE.match(self.device):
            raise ConfigError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if self.backend == "tensorrt" and not self.device.startswith("cuda"):
            raise ConfigError(f"backend: 'tensorrt' runs on CUDA devices only, got device {self.device!r}")
        if self.precision != "fp32" and not self.device.startswith("cuda"):
            raise ConfigError(
                f"precision: {self.precision!r} needs a CUDA device (got {self.device!r}); use 'fp32' on the CPU"
            )
        if self.backend == "onnxruntime" and self.precision != "fp32":
            raise ConfigError(f"precision: the onnxruntime backend runs the fp32 export, got {self.precision!r}")
        if self.mask_source == "parser" and self.parser_checkpoint is None:
            raise ConfigError("parser_checkpoint: required with mask_source 'parser' (BiSeNet weights, 79999_iter.pth)")
        if self.num_threads is not None and (
            isinstance(self.num_threads, bool) or not isinstance(self.num_threads, int) or self.num_threads < 1
        ):
            raise ConfigError(f"num_threads: expected a positive integer or null, got {self.num_threads!r}")
        if isinstance(self.min_face_px, bool) or not isinstance(self.min_face_px, (int, float)) or self.min_face_px < 1:
            raise ConfigError(f"min_face_px: expected a number >= 1 (pixels), got {self.min_face_px!r}")
        if self.compile not in COMPILE_CHOICES:
            raise ConfigError(f"compile: expected one of {list(COMPILE_CHOICES)}, got {self.compile!r}")
        if (self.compile != "none" or self.cuda_graphs) and self.backend != "torch":
            raise ConfigError(f"compile/cuda_graphs: apply to the torch backend only, got backend {self.backend!r}")
        if not isinstance(self.metric_pose, bool):
            raise ConfigError(f"metric_pose: expected true or false, got {self.metric_pose!r}")
        if self.cuda_graphs and not self.device.startswith("cuda"):
            raise ConfigError(f"cuda_graphs: needs a CUDA device, got {self.device!r}")
        object.__setattr__(self, "morphable_model", Path(self.morphable_model))

    @property
    def resolved_cache_dir(self) -> Path:
        """``cache_dir`` or ``~/.cache/dfmvr``."""
        return self.cache_dir if self.cache_dir is not None else Path.home() / ".cache" / "dfmvr"


def load_reconstructor_config(
    source: str | Path | Mapping[str, Any], section: str = "reconstructor"
) -> ReconstructorConfig:
    """Build a :class:`ReconstructorConfig` from a mapping or from the ``section`` of a YAML file.

    Raises:
        ConfigError: missing file, invalid YAML or an invalid field (named with its dotted path).
    """
    if isinstance(source, Mapping):
        return from_mapping(ReconstructorConfig, source, section)
    return load_yaml(ReconstructorConfig, source, section=section)
