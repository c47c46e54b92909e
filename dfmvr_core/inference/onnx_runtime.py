"""ONNX Runtime backend: runs the files written by :mod:`dfmvr_core.inference.export`.

:class:`OnnxRuntimeBackend` loads a reconstruction network (``dfmvr.kind = dfmvr-coefficients``), checks its
``dfmvr.`` metadata and its graph inputs/outputs against each other and against what dfmvr expects, checks every
call's inputs like :meth:`DFMVRNet.forward` does (shape, dtype, NaN/range/labels of the valid views: the graph itself
has no such checks) and returns the coefficient groups of :func:`~dfmvr_core.networks.dfmvr_net.split_flat`.
:class:`OnnxFaceParser` does the same for the face parser file. Both take ONNX Runtime execution providers; the
default is ``CUDAExecutionProvider`` when the installed onnxruntime has it (``onnxruntime-gpu``), then
``CPUExecutionProvider``.

Session start-up. The RedNet graphs have ≈ 12 000 nodes (each 7×7 involution is 49 slice-multiply-add taps). With a
symbolic batch dimension, ONNX Runtime 1.31's memory-reuse planning takes 15-30 s on 2 CPU cores for both ``small``
and ``paper``, so a dynamic-batch session is created with ``enable_mem_reuse = False`` (≈ 3-5 s; the allocator's
arena still recycles buffers: same latency and no higher peak memory, measured). Pass ``batch_size`` (the ROS node
runs one triplet at a time: ``batch_size=1``) to fix the dimension for the session
(``add_free_dimension_override_by_name``): the planner then runs in full (≈ 2-5 s) and
:meth:`OnnxRuntimeBackend.run` accepts only that batch size.

Errors: a missing, truncated or corrupt file, or a file without (or with inconsistent) dfmvr metadata or with other
inputs/outputs → :class:`~dfmvr_core.errors.ModelFileError` naming the file; bad inputs to ``run`` →
:class:`~dfmvr_core.errors.ShapeError` naming the argument and the expected shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dfmvr_core.errors import ConfigError, ModelFileError, ShapeError
from dfmvr_core.inference._common import (
    COEFFICIENTS_KIND,
    FACE_PARSER_KIND,
    METADATA_PREFIX,
    config_from_dict,
    require,
    sizes_from_dict,
)
from dfmvr_core.inference.export import (
    BATCH_DIM,
    COEFFICIENTS_OUTPUT,
    FORMAT_VERSION,
    PARSER_INPUT,
    PARSER_OUTPUT,
    coefficient_input_names,
)
from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.morphable.parts import NUM_FACE_PARTS
from dfmvr_core.networks.dfmvr_net import FLAT_ORDER, IMAGE_RANGE_TOLERANCE, flat_layout, split_flat
from dfmvr_core.networks.net_config import NetworkConfig
from dfmvr_core.validation import check_same_batch, check_shape

__all__ = [
    "FaceParserInfo",
    "OnnxFaceParser",
    "OnnxModelInfo",
    "OnnxRuntimeBackend",
    "default_providers",
    "read_onnx_metadata",
]

ArrayLike = np.ndarray | torch.Tensor

_PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


@dataclass(frozen=True)
class OnnxModelInfo:
    """What an exported reconstruction network's metadata says (see :mod:`dfmvr_core.inference.export`).

    Attributes:
        path: the ONNX file.
        network: config name (``paper``, ``small``, ...).
        config: the full :class:`NetworkConfig` the network was built with.
        sizes: coefficient sizes (of the morphable model it regresses).
        expression_kind: ``"pca"`` or ``"blendshape"``.
        views: number of views ``V``; input_size: image side ``S``; mask_input: ``label``, ``one_hot`` or ``none``.
        flat_size: length of the ``coefficients`` output (``sizes.total(V)``), in :data:`FLAT_ORDER`.
        model_fingerprint: morphable model fingerprint, None when the export did not record one.
        fresh_weights: True for untrained (freshly initialised) weights, None when unknown.
        weights_source: free text (checkpoint file) recorded at export.
        dfmvr_version, exporter, opset, format_version: provenance.
        batch: the fixed batch size of a static-batch export, None for a dynamic batch.
    """

    path: Path
    network: str
    config: NetworkConfig
    sizes: CoefficientSizes
    expression_kind: str
    views: int
    input_size: int
    mask_input: str
    flat_size: int
    model_fingerprint: str | None
    fresh_weights: bool | None
    weights_source: str
    dfmvr_version: str
    exporter: str
    opset: int
    format_version: int
    batch: int | None


@dataclass(frozen=True)
class FaceParserInfo:
    """What an exported face parser's metadata says: ``num_classes``, the fixed ``input_size`` and provenance."""

    path: Path
    num_classes: int
    input_size: int
    fresh_weights: bool | None
    weights_source: str
    dfmvr_version: str
    exporter: str
    opset: int
    format_version: int
    batch: int | None


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """The ``dfmvr.`` metadata of an ONNX file, keys without the prefix (reads the file with ``onnx``, no session).

    Raises:
        ModelFileError: missing, truncated or corrupt file.
        MissingDependencyError: ``onnx`` is not installed.
    """
    onnx = require("onnx")
    path = _existing_file(path)
    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError, OSError, ...
        raise ModelFileError(f"{path}: cannot read ONNX model, file truncated or corrupt ({_first_line(exc)})") from exc
    return {p.key[len(METADATA_PREFIX) :]: p.value for p in model.metadata_props if p.key.startswith(METADATA_PREFIX)}


def default_providers() -> list[str]:
    """``CUDAExecutionProvider`` (when available) then ``CPUExecutionProvider``."""
    ort = require("onnxruntime")
    available = ort.get_available_providers()
    return [p for p in _PREFERRED_PROVIDERS if p in available]


# ---------------------------------------------------------------------------------------------------------- helpers
def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: ONNX model not found" + (" (it is a folder)" if path.is_dir() else ""))
    return path


def _resolve_providers(providers: Sequence[str] | None) -> list[str]:
    ort = require("onnxruntime")
    if providers is None:
        return default_providers()
    if isinstance(providers, str) or not all(isinstance(p, str) for p in providers) or not providers:
        raise ConfigError(f"providers: expected a non-empty list of provider names, got {providers!r}")
    available = ort.get_available_providers()
    missing = [p for p in providers if p not in available]
    if missing:
        raise ConfigError(f"providers: {missing} not available in this onnxruntime build; available: {available}")
    return list(providers)


def _open_session(
    path: str | Path, providers: Sequence[str] | None, batch_size: int | None, intra_op_threads: int | None
) -> tuple[Any, dict[str, str]]:
    """Create the inference session; returns it and its ``dfmvr.`` metadata (prefix removed)."""
    ort = require("onnxruntime")
    path = _existing_file(path)
    chosen = _resolve_providers(providers)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT's warnings about unused initializers are noise here
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size: expected a positive int or None (dynamic), got {batch_size!r}")
        options.add_free_dimension_override_by_name(BATCH_DIM, batch_size)
    else:
        # With a symbolic batch the planner's buffer-sharing analysis is what takes 15-30 s on the RedNet graphs;
        # without it the arena still recycles freed buffers (measured, paper, 2 CPU cores: same latency, peak RSS
        # 0.94 GB at B=1 and 1.8 GB at B=4, vs 2.3 GB at B=4 with a fixed batch and the planner on).
        options.enable_mem_reuse = False
    if intra_op_threads is not None:
        if isinstance(intra_op_threads, bool) or not isinstance(intra_op_threads, int) or intra_op_threads < 0:
            raise ConfigError(
                f"intra_op_threads: expected a non-negative int (0 = ORT default), got {intra_op_threads!r}"
            )
        options.intra_op_num_threads = intra_op_threads
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=chosen)
    except Exception as exc:  # InvalidProtobuf, InvalidGraph, Fail, ... from the C++ side
        raise ModelFileError(
            f"{path}: cannot load ONNX model, file truncated or corrupt or not an ONNX model ({_first_line(exc)})"
        ) from exc
    custom = dict(session.get_modelmeta().custom_metadata_map)
    meta = {k[len(METADATA_PREFIX) :]: v for k, v in custom.items() if k.startswith(METADATA_PREFIX)}
    return session, meta


class _Meta:
    """Typed access to the metadata strings with :class:`ModelFileError` naming the file and the key."""

    def __init__(self, meta: Mapping[str, str], path: Path, expected_kind: str) -> None:
        self.meta, self.path = meta, path
        kind = meta.get("kind")
        if kind is None:
            raise ModelFileError(
                f"{path}: no dfmvr metadata (key {METADATA_PREFIX}kind missing); expected an ONNX file written by "
                "`dfmvr export` (dfmvr_core.inference.export)"
            )
        if kind != expected_kind:
            raise ModelFileError(f"{path}: holds a {kind!r} model, expected {expected_kind!r}")
        version = self.integer("format_version")
        if version != FORMAT_VERSION:
            raise ModelFileError(
                f"{path}: dfmvr ONNX format version {version}, this dfmvr reads version {FORMAT_VERSION}; "
                "re-export the model with this dfmvr"
            )

    def error(self, key: str, what: str) -> ModelFileError:
        return ModelFileError(f"{self.path}: metadata {METADATA_PREFIX}{key}: {what}")

    def text(self, key: str) -> str:
        if key not in self.meta:
            raise self.error(key, "missing")
        return self.meta[key]

    def integer(self, key: str) -> int:
        value = self.text(key)
        try:
            return int(value)
        except ValueError:
            raise self.error(key, f"expected an integer, got {value!r}") from None

    def json(self, key: str) -> Any:
        value = self.text(key)
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise self.error(key, f"invalid JSON ({exc})") from None

    def fresh(self) -> bool | None:
        value = self.text("fresh_weights")
        if value not in ("true", "false", "unknown"):
            raise self.error("fresh_weights", f"expected true, false or unknown, got {value!r}")
        return None if value == "unknown" else value == "true"

    def batch(self) -> int | None:
        value = self.text("batch")
        if value == "dynamic":
            return None
        return self.integer("batch")

    def provenance(self) -> dict[str, Any]:
        return {
            "fresh_weights": self.fresh(),
            "weights_source": self.meta.get("weights_source", ""),
            "dfmvr_version": self.text("version"),
            "exporter": self.meta.get("exporter", ""),
            "opset": self.integer("opset"),
            "format_version": self.integer("format_version"),
            "batch": self.batch(),
        }


def _coefficient_info(meta: Mapping[str, str], path: Path) -> OnnxModelInfo:
    m = _Meta(meta, path, COEFFICIENTS_KIND)
    try:
        config = config_from_dict(m.json("network_config"))
    except ConfigError as exc:
        raise m.error("network_config", str(exc)) from None
    try:
        sizes = sizes_from_dict(m.json("coefficient_sizes"))
    except ConfigError as exc:
        raise m.error("coefficient_sizes", str(exc)) from None
    info = OnnxModelInfo(
        path=path,
        network=m.text("network"),
        config=config,
        sizes=sizes,
        expression_kind=m.text("expression_kind"),
        views=m.integer("views"),
        input_size=m.integer("input_size"),
        mask_input=m.text("mask_input"),
        flat_size=m.integer("flat_size"),
        model_fingerprint=m.text("model_fingerprint") or None,
        **m.provenance(),
    )
    # The metadata must agree with itself: the split of the output depends on it.
    checks = {
        "network": (info.network, config.name),
        "views": (info.views, config.views),
        "input_size": (info.input_size, config.input_size),
        "mask_input": (info.mask_input, config.mask_input),
        "flat_size": (info.flat_size, sizes.total(config.views)),
        "flat_order": (m.json("flat_order"), list(FLAT_ORDER)),
        "flat_layout": (
            m.json("flat_layout"),
            {k: [a, b, list(s)] for k, (a, b, s) in flat_layout(sizes, config.views).items()},
        ),
        "inputs": (m.json("inputs"), list(coefficient_input_names(config.mask_input))),
    }
    for key, (got, expected) in checks.items():
        if got != expected:
            raise m.error(key, f"{got!r} disagrees with the network config and coefficient sizes ({expected!r})")
    if info.expression_kind not in ("pca", "blendshape"):
        raise m.error("expression_kind", f"expected 'pca' or 'blendshape', got {info.expression_kind!r}")
    return info


def _parser_info(meta: Mapping[str, str], path: Path) -> FaceParserInfo:
    m = _Meta(meta, path, FACE_PARSER_KIND)
    return FaceParserInfo(
        path=path, num_classes=m.integer("num_classes"), input_size=m.integer("input_size"), **m.provenance()
    )


def _check_io(
    session: Any, path: Path, inputs: dict[str, tuple[str, tuple[int, ...]]], outputs: dict[str, tuple[str, tuple]]
) -> int | None:
    """Check the graph's inputs/outputs (names, element types, shapes after the batch dim). Returns the fixed batch
    size, or None for a symbolic batch."""
    batches: set[Any] = set()
    for kind, expected, actual in (
        ("input", inputs, session.get_inputs()),
        ("output", outputs, session.get_outputs()),
    ):
        names = [a.name for a in actual]
        if sorted(names) != sorted(expected):
            raise ModelFileError(f"{path}: graph {kind}s are {names}, expected {list(expected)} (a dfmvr export?)")
        for arg in actual:
            dtype, tail = expected[arg.name]
            shape = list(arg.shape)
            if arg.type != dtype or len(shape) != 1 + len(tail) or tuple(shape[1:]) != tail:
                want = [BATCH_DIM, *tail]
                raise ModelFileError(
                    f"{path}: {kind} {arg.name!r} is {arg.type} {shape}, expected {dtype} {want}; the file does not "
                    "match its dfmvr metadata"
                )
            batches.add(shape[0])
    fixed = {b for b in batches if isinstance(b, int)}
    if len(fixed) > 1 or (fixed and len(batches) > 1):
        raise ModelFileError(f"{path}: inputs and outputs disagree on the batch dimension: {sorted(map(str, batches))}")
    return fixed.pop() if fixed else None


def _to_numpy(name: str, value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    raise ShapeError(f"{name}: expected a numpy array or torch tensor, got {type(value).__name__}")


def _check_batch(name: str, batch: int, fixed: int | None, path: Path) -> None:
    if fixed is not None and batch != fixed:
        raise ShapeError(f"{name}: this session of {path.name} runs batch size {fixed} only, got a batch of {batch}")


# ---------------------------------------------------------------------------------------------------------- backends
class OnnxRuntimeBackend:
    """Run an exported DF-MVR reconstruction network with ONNX Runtime.

    Args:
        path: ``.onnx`` file written by :func:`~dfmvr_core.inference.export.export_onnx` / ``dfmvr export``.
        providers: ONNX Runtime execution providers, in priority order; default :func:`default_providers`.
        batch_size: fix the symbolic batch dimension for this session (fast start-up, see the module docstring);
            None keeps it dynamic.
        intra_op_threads: ONNX Runtime intra-op threads (None or 0: its default, one per core).
        check_values: check NaN/inf, the [0, 1] range of the valid views' images and the 0..9 mask labels before
            running (like :meth:`DFMVRNet.forward`); False skips these passes over the data.

    Attributes:
        path, info (:class:`OnnxModelInfo`), providers (the session's, in use), batch_size (fixed or None).

    Raises:
        ModelFileError: missing, truncated, corrupt or non-dfmvr file, or inconsistent metadata / graph I/O.
        ConfigError: unknown providers or bad arguments.
        MissingDependencyError: ``onnxruntime`` is not installed.
    """

    def __init__(
        self,
        path: str | Path,
        providers: Sequence[str] | None = None,
        *,
        batch_size: int | None = None,
        intra_op_threads: int | None = None,
        check_values: bool = True,
    ) -> None:
        self.path = Path(path)
        self._session, meta = _open_session(self.path, providers, batch_size, intra_op_threads)
        self.info = _coefficient_info(meta, self.path)
        v, s = self.info.views, self.info.input_size
        inputs = {"images": ("tensor(float)", (v, 3, s, s)), "valid": ("tensor(bool)", (v,))}
        if self.info.mask_input != "none":
            inputs["masks"] = ("tensor(int64)", (v, s, s))
        graph_batch = _check_io(
            self._session, self.path, inputs, {COEFFICIENTS_OUTPUT: ("tensor(float)", (self.info.flat_size,))}
        )
        self.batch_size = graph_batch if graph_batch is not None else batch_size
        self.providers: list[str] = list(self._session.get_providers())
        self.check_values = bool(check_values)

    def __repr__(self) -> str:
        return (
            f"OnnxRuntimeBackend({str(self.path)!r}, network={self.info.network!r}, providers={self.providers}, "
            f"batch_size={self.batch_size})"
        )

    def _feeds(self, images: Any, masks: Any, valid: Any) -> dict[str, np.ndarray]:
        v, s = self.info.views, self.info.input_size
        images = _to_numpy("images", images)
        if images.dtype.kind != "f":
            raise ShapeError(f"images: expected float RGB in [0, 1] of shape (B, {v}, 3, {s}, {s}), got {images.dtype}")
        check_shape("images", images, ("B", v, 3, s, s))
        feeds = {"images": np.ascontiguousarray(images, dtype=np.float32)}
        if valid is None:
            valid = np.ones(images.shape[:2], dtype=bool)
        valid = _to_numpy("valid", valid)
        if valid.dtype != np.bool_:
            raise ShapeError(f"valid: expected a bool array (B, {v}), got {valid.dtype}")
        check_shape("valid", valid, ("B", v))
        feeds["valid"] = np.ascontiguousarray(valid)
        if self.info.mask_input != "none":
            if masks is None:
                raise ShapeError(
                    f"masks: required by this network (mask_input={self.info.mask_input!r}): expected integer "
                    f"face-part labels 0..{NUM_FACE_PARTS - 1} of shape (B, {v}, {s}, {s}), got None"
                )
            masks = _to_numpy("masks", masks)
            if masks.dtype.kind not in "iu":
                raise ShapeError(
                    f"masks: expected integer face-part labels of shape (B, {v}, {s}, {s}), got {masks.dtype}"
                )
            check_shape("masks", masks, ("B", v, s, s))
            feeds["masks"] = np.ascontiguousarray(masks, dtype=np.int64)
        check_same_batch(**feeds)
        _check_batch("images", images.shape[0], self.batch_size, self.path)
        if self.check_values:
            self._check_values(feeds)
        return feeds

    def _check_values(self, feeds: dict[str, np.ndarray]) -> None:
        """The valid views' checks of :meth:`DFMVRNet._check_values` (invalid views may hold anything)."""
        v, s = self.info.views, self.info.input_size
        valid = feeds["valid"]
        used = feeds["images"][valid]
        if used.size:
            lo, hi = float(used.min()), float(used.max())  # NaN propagates through min/max
            if not (lo >= -IMAGE_RANGE_TOLERANCE and hi <= 1.0 + IMAGE_RANGE_TOLERANCE):
                bad = int((~np.isfinite(used)).sum())
                if bad:
                    raise ShapeError(
                        f"images: {bad} non-finite value(s) (NaN or inf) in valid views; expected finite RGB in "
                        f"[0, 1] (B, {v}, 3, {s}, {s})"
                    )
                raise ShapeError(
                    f"images: expected RGB in [0, 1] (B, {v}, 3, {s}, {s}), got values in [{lo:.4g}, {hi:.4g}] "
                    "(0..255 data must be divided by 255)"
                )
        if "masks" in feeds:
            labels = feeds["masks"][valid]
            if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= NUM_FACE_PARTS):
                raise ShapeError(
                    f"masks: expected face-part labels in 0..{NUM_FACE_PARTS - 1} (B, {v}, {s}, {s}), got values "
                    f"in [{int(labels.min())}, {int(labels.max())}]"
                )

    def run_flat(self, images: ArrayLike, masks: ArrayLike | None = None, valid: ArrayLike | None = None) -> ArrayLike:
        """The raw ``coefficients`` output ``(B, flat_size)`` float32 in :data:`FLAT_ORDER`.

        Inputs as :meth:`run`; returns a torch tensor (on ``images.device``) when ``images`` is one, else numpy.
        """
        feeds = self._feeds(images, masks, valid)
        if feeds["images"].shape[0] == 0:
            flat = np.zeros((0, self.info.flat_size), np.float32)
        else:
            flat = self._session.run([COEFFICIENTS_OUTPUT], feeds)[0]
        if isinstance(images, torch.Tensor):
            return torch.from_numpy(flat).to(images.device)
        return flat

    def run(
        self, images: ArrayLike, masks: ArrayLike | None = None, valid: ArrayLike | None = None
    ) -> dict[str, ArrayLike]:
        """Coefficients of one face per sample, like :meth:`DFMVRNet.forward`.

        Args:
            images: ``(B, V, 3, S, S)`` float RGB in [0, 1] (numpy or torch; cast to float32).
            masks: ``(B, V, S, S)`` integer face-part labels 0..9 (cast to int64); ignored (may be None) when the
                network has ``mask_input: none``.
            valid: ``(B, V)`` bool, None for all views valid. Invalid views may hold anything (NaN included).

        Returns:
            ``identity (B, K_id)``, ``expression (B, K_exp)``, ``albedo (B, K_tex)``, ``lighting (B, V, 27)``,
            ``pose (B, V, 6)``, float32: torch tensors on ``images.device`` when ``images`` is a tensor, else numpy.

        Raises:
            ShapeError: wrong shape (names the expected one), dtype, batch size, or NaN/out-of-range valid views.
        """
        flat = self.run_flat(images, masks, valid)
        parts = split_flat(torch.as_tensor(flat), self.info.sizes, self.info.views)
        if isinstance(images, torch.Tensor):
            return parts
        return {name: value.numpy() for name, value in parts.items()}


class OnnxFaceParser:
    """Run an exported face parser (:func:`~dfmvr_core.inference.export.export_face_parser_onnx`).

    Args: as :class:`OnnxRuntimeBackend` (``path``, ``providers``, ``batch_size``, ``intra_op_threads``).

    Attributes:
        path, info (:class:`FaceParserInfo`), providers, batch_size.
    """

    def __init__(
        self,
        path: str | Path,
        providers: Sequence[str] | None = None,
        *,
        batch_size: int | None = None,
        intra_op_threads: int | None = None,
    ) -> None:
        self.path = Path(path)
        self._session, meta = _open_session(self.path, providers, batch_size, intra_op_threads)
        self.info = _parser_info(meta, self.path)
        s, c = self.info.input_size, self.info.num_classes
        graph_batch = _check_io(
            self._session,
            self.path,
            {PARSER_INPUT: ("tensor(float)", (3, s, s))},
            {PARSER_OUTPUT: ("tensor(float)", (c, s, s))},
        )
        self.batch_size = graph_batch if graph_batch is not None else batch_size
        self.providers: list[str] = list(self._session.get_providers())

    def parse(self, images: ArrayLike) -> ArrayLike:
        """``(B, 3, S, S)`` float RGB in [0, 1] → ``(B, num_classes, S, S)`` float32 logits (torch in, torch out).

        Raises:
            ShapeError: wrong shape (names the expected one), dtype or batch size, NaN/inf values.
        """
        s = self.info.input_size
        array = _to_numpy("images", images)
        if array.dtype.kind != "f":
            raise ShapeError(f"images: expected float RGB in [0, 1] of shape (B, 3, {s}, {s}), got {array.dtype}")
        check_shape("images", array, (None, 3, s, s))
        _check_batch("images", array.shape[0], self.batch_size, self.path)
        bad = int((~np.isfinite(array)).sum())
        if bad:
            raise ShapeError(f"images: {bad} non-finite value(s) (NaN or inf); expected finite RGB in [0, 1]")
        if array.shape[0] == 0:
            logits = np.zeros((0, self.info.num_classes, s, s), np.float32)
        else:
            feeds = {PARSER_INPUT: np.ascontiguousarray(array, dtype=np.float32)}
            logits = self._session.run([PARSER_OUTPUT], feeds)[0]
        if isinstance(images, torch.Tensor):
            return torch.from_numpy(logits).to(images.device)
        return logits

    def parse_labels(self, images: ArrayLike) -> ArrayLike:
        """``(B, 3, S, S)`` → ``(B, S, S)`` int64 CelebAMask-HQ class of each pixel (argmax of :meth:`parse`)."""
        logits = self.parse(images)
        if isinstance(logits, torch.Tensor):
            return logits.argmax(dim=1)
        return logits.argmax(axis=1).astype(np.int64)
