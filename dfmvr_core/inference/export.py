"""ONNX export of the reconstruction network and of the face parser (TorchScript-based exporter, opset 17).

**Exporter.** torch 2.13 still ships the TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``); it
is deprecated (a ``DeprecationWarning`` says so, silenced here) but works and needs nothing beyond ``onnx``. The
dynamo exporter (``dynamo=True``, torch's default since 2.9) would need the extra package ``onnxscript``, which the
project does not pin. The TorchScript exporter traces the module, so Python-level checks run once on the example
input and are not in the graph; :class:`~dfmvr_core.networks.dfmvr_net.DFMVRNet` already skips its data-dependent
checks while tracing, and :class:`~dfmvr_core.inference.onnx_runtime.OnnxRuntimeBackend` checks the inputs before
running the graph. Opset 17 is the default because TensorRT 8.6 to 10 parse it.

**Reconstruction network** (:func:`export_onnx`): the graph is :meth:`DFMVRNet.forward_flat` at the config's fixed
``input_size`` (224), dynamic batch ``B`` (``batch_dynamic=True``):

* inputs ``images`` ``(B, V, 3, S, S)`` float32 RGB in [0, 1], ``masks`` ``(B, V, S, S)`` int64 face-part labels
  0..9 (absent when ``config.mask_input == "none"``), ``valid`` ``(B, V)`` bool (invalid views are replaced by a
  black image and an empty mask inside the graph, as in PyTorch);
* output ``coefficients`` ``(B, sizes.total(V))`` float32 in :data:`~dfmvr_core.networks.dfmvr_net.FLAT_ORDER`
  (``identity | expression | albedo | lighting (V × 27) | pose (V × 6)``); split it with
  :func:`~dfmvr_core.networks.dfmvr_net.split_flat` (the backend does).

**Face parser** (:func:`export_face_parser_onnx`): a separate file, because the parser is a frozen, independently
trained network (the face-parsing.PyTorch checkpoint) that is exported once and reused with any reconstruction
checkpoint, and because it may run at another resolution than the reconstruction network (the parser sees the camera
crop, the network its 224×224 resize) or on another device. Graph: :meth:`BiSeNet.parse`: input ``images``
``(B, 3, S, S)`` float32 RGB in [0, 1] (ImageNet normalisation is inside the graph) → output ``logits``
``(B, 19, S, S)`` float32 (CelebAMask-HQ classes), ``S`` fixed at export (default 224).

**Metadata.** Both files carry ``metadata_props`` with the ``dfmvr.`` prefix (strings; JSON where structured):
``kind``, ``format_version``, ``version`` (dfmvr), ``exporter``, ``opset``, ``batch`` (``dynamic`` or the fixed
size), ``fresh_weights`` (``true`` when the weights are the untrained initialisation, ``false``, or ``unknown``) and
``weights_source``; the network adds ``network`` (config name), ``network_config`` (every field, JSON),
``coefficient_sizes``, ``expression_kind``, ``views``, ``input_size``, ``mask_input``, ``inputs``, ``flat_order``,
``flat_layout`` (``{group: [start, stop, shape]}``), ``flat_size`` and ``model_fingerprint`` (the morphable model's
:meth:`~dfmvr_core.morphable.model.MorphableModel.fingerprint`, empty when not given); the parser adds
``num_classes`` and ``input_size``. :func:`~dfmvr_core.inference.onnx_runtime.read_onnx_metadata` reads them back.

Files are written atomically (temporary file in the target folder, then rename): a crash never leaves a truncated
model under the target name. The network's and parser's train/eval flags are restored after export.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dfmvr_core import __version__
from dfmvr_core.atomic_io import atomic_path
from dfmvr_core.errors import ConfigError
from dfmvr_core.inference._common import (
    COEFFICIENTS_KIND,
    FACE_PARSER_KIND,
    METADATA_PREFIX,
    config_to_dict,
    dumps,
    require,
    sizes_to_dict,
)
from dfmvr_core.networks.dfmvr_net import FLAT_ORDER, DFMVRNet, flat_layout
from dfmvr_core.networks.face_parser import BiSeNet
from dfmvr_core.networks.registry import is_reconstruction_network

__all__ = [
    "COEFFICIENTS_OUTPUT",
    "DEFAULT_OPSET",
    "FORMAT_VERSION",
    "PARSER_INPUT",
    "PARSER_OUTPUT",
    "coefficient_input_names",
    "coefficient_metadata",
    "export_face_parser_onnx",
    "export_onnx",
    "face_parser_metadata",
]

DEFAULT_OPSET = 17
"""ONNX opset of the exports: parsed by TensorRT 8.6 to 10 and by every onnxruntime since 1.12."""

MIN_OPSET = 13
"""Lowest opset accepted (``Slice`` with steps and the ``Where``/``Cast`` semantics the graph relies on)."""

FORMAT_VERSION = 1
"""``dfmvr.format_version``: bumped when the graph's I/O contract or the metadata keys change incompatibly."""

COEFFICIENTS_OUTPUT = "coefficients"
PARSER_INPUT = "images"
PARSER_OUTPUT = "logits"
BATCH_DIM = "batch"
"""Name of the symbolic batch dimension of every input and output of a dynamic-batch export."""

EXPORTER = f"torch.onnx TorchScript exporter (dynamo=False), torch {torch.__version__}"


def coefficient_input_names(mask_input: str) -> tuple[str, ...]:
    """Graph inputs of the reconstruction network: ``images, masks, valid``, or ``images, valid`` when
    ``mask_input == "none"``."""
    return ("images", "valid") if mask_input == "none" else ("images", "masks", "valid")


def _check_opset(opset: int) -> int:
    limit = int(getattr(getattr(torch.onnx, "_constants", None), "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 20))
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= limit:
        raise ConfigError(
            f"opset: expected an int in [{MIN_OPSET}, {limit}] (the TorchScript exporter's range; {DEFAULT_OPSET} "
            f"for TensorRT 8.6-10), got {opset!r}"
        )
    return opset


def _fresh_text(fresh_weights: bool | None) -> str:
    if fresh_weights is None:
        return "unknown"
    if not isinstance(fresh_weights, bool):
        raise ConfigError(f"fresh_weights: expected True, False or None, got {fresh_weights!r}")
    return "true" if fresh_weights else "false"


def _common_metadata(kind: str, opset: int, batch_dynamic: bool, fresh_weights: bool | None, source: str) -> dict:
    if not isinstance(source, str):
        raise ConfigError(f"weights_source: expected a string, got {type(source).__name__}")
    return {
        "kind": kind,
        "format_version": str(FORMAT_VERSION),
        "version": __version__,
        "exporter": EXPORTER,
        "opset": str(opset),
        "batch": "dynamic" if batch_dynamic else "1",
        "fresh_weights": _fresh_text(fresh_weights),
        "weights_source": source,
    }


def coefficient_metadata(
    net: DFMVRNet,
    *,
    opset: int = DEFAULT_OPSET,
    batch_dynamic: bool = True,
    model_fingerprint: str | None = None,
    fresh_weights: bool | None = None,
    weights_source: str = "",
) -> dict[str, str]:
    """The ``metadata_props`` (without the ``dfmvr.`` prefix) :func:`export_onnx` writes for ``net``."""
    if model_fingerprint is not None and (not isinstance(model_fingerprint, str) or not model_fingerprint):
        raise ConfigError(f"model_fingerprint: expected a non-empty string or None, got {model_fingerprint!r}")
    config, views = net.config, net.views
    layout = {name: [a, b, list(shape)] for name, (a, b, shape) in flat_layout(net.sizes, views).items()}
    meta = _common_metadata(COEFFICIENTS_KIND, opset, batch_dynamic, fresh_weights, weights_source)
    meta.update(
        {
            "network": config.name,
            "network_config": dumps(config_to_dict(config)),
            "coefficient_sizes": dumps(sizes_to_dict(net.sizes)),
            "expression_kind": net.expression_kind,
            "views": str(views),
            "input_size": str(config.input_size),
            "mask_input": config.mask_input,
            "inputs": dumps(list(coefficient_input_names(config.mask_input))),
            "flat_order": dumps(list(FLAT_ORDER)),
            "flat_layout": dumps(layout),
            "flat_size": str(net.flat_size),
            "model_fingerprint": model_fingerprint or "",
        }
    )
    return meta


def face_parser_metadata(
    parser: BiSeNet,
    *,
    input_size: int = 224,
    opset: int = DEFAULT_OPSET,
    batch_dynamic: bool = True,
    fresh_weights: bool | None = None,
    weights_source: str = "",
) -> dict[str, str]:
    """The ``metadata_props`` (without the ``dfmvr.`` prefix) :func:`export_face_parser_onnx` writes."""
    meta = _common_metadata(FACE_PARSER_KIND, opset, batch_dynamic, fresh_weights, weights_source)
    meta.update(
        {
            "num_classes": str(parser.num_classes),
            "input_size": str(input_size),
            "input_range": "RGB in [0, 1]; ImageNet normalisation is part of the graph",
        }
    )
    return meta


class _FlatGraph(nn.Module):
    """``DFMVRNet.forward_flat`` with positional graph inputs (``masks`` left out for ``mask_input: none``)."""

    def __init__(self, net: DFMVRNet) -> None:
        super().__init__()
        self.net = net
        self.with_masks = net.config.mask_input != "none"

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.with_masks:
            images, masks, valid = inputs
            return self.net.forward_flat(images, masks, valid)
        images, valid = inputs
        return self.net.forward_flat(images, None, valid)


class _ParseGraph(nn.Module):
    """``BiSeNet.parse`` (ImageNet normalisation + main-head logits) as a module."""

    def __init__(self, parser: BiSeNet) -> None:
        super().__init__()
        self.parser = parser

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.parser.parse(images)


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Eval mode inside the block; every submodule's own ``training`` flag restored afterwards."""
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence the exporter's expected warnings: its own deprecation notice, tracer warnings about the Python-level
    shape checks (constant for a fixed input size) and the constant-folding notes on strided slices."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=r".*The feature will be removed.*", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*Constant folding - Only steps=1.*")
        yield


def _device_of(module: nn.Module) -> torch.device:
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


def _export(
    graph: nn.Module,
    args: tuple[torch.Tensor, ...],
    path: str | Path,
    input_names: tuple[str, ...],
    output_name: str,
    output_shape: tuple[int, ...],
    opset: int,
    batch_dynamic: bool,
    metadata: dict[str, str],
    doc: str,
) -> Path:
    onnx = require("onnx")
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; expected the path of the .onnx file to write")
    buffer = io.BytesIO()
    dynamic_axes: dict[str, dict[int, str]] | None = None
    if batch_dynamic:
        dynamic_axes = {name: {0: BATCH_DIM} for name in (*input_names, output_name)}
    with _eval_mode(graph), torch.no_grad(), _quiet_export():
        torch.onnx.export(
            graph,
            args,
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=list(input_names),
            output_names=[output_name],
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
            export_params=True,
        )
    model = onnx.load_model_from_string(buffer.getvalue())
    del buffer
    got_inputs = tuple(i.name for i in model.graph.input)
    got_outputs = tuple(o.name for o in model.graph.output)
    if got_inputs != input_names or got_outputs != (output_name,):  # e.g. an input the graph does not use
        raise ConfigError(
            f"ONNX export produced inputs {got_inputs} and outputs {got_outputs}, expected {input_names} and "
            f"{(output_name,)}"
        )
    # Declare the output's full shape: the exporter leaves the dims after a Resize symbolic (the parser's logits).
    dims = model.graph.output[0].type.tensor_type.shape.dim
    del dims[:]
    for size in (BATCH_DIM if batch_dynamic else args[0].shape[0], *output_shape):
        dim = dims.add()
        if isinstance(size, str):
            dim.dim_param = size
        else:
            dim.dim_value = int(size)
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_PREFIX + key, value
    model.producer_name = "dfmvr"
    model.producer_version = __version__
    model.doc_string = doc
    onnx.checker.check_model(model)
    with atomic_path(path, suffix=".tmp") as tmp:
        onnx.save_model(model, str(tmp))
    return path


def export_onnx(
    net: DFMVRNet,
    path: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    batch_dynamic: bool = True,
    model_fingerprint: str | None = None,
    fresh_weights: bool | None = None,
    weights_source: str = "",
) -> Path:
    """Export ``net.forward_flat`` to an ONNX file (see the module docstring for the graph and its metadata).

    Args:
        net: the network, on any device (the example input is created there); its train/eval flags are restored.
        path: output ``.onnx`` file, written atomically (parent folders are created).
        opset: ONNX opset (default 17, for TensorRT 8.6-10).
        batch_dynamic: symbolic batch dimension ``batch`` (default); False fixes the batch at 1.
        model_fingerprint: :meth:`MorphableModel.fingerprint` of the model the coefficients are for (stored).
        fresh_weights: True when the weights are the untrained initialisation (stored as ``dfmvr.fresh_weights``;
            None stores ``unknown``).
        weights_source: free text stored as ``dfmvr.weights_source`` (e.g. the checkpoint file).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: not a reconstruction network (:func:`~dfmvr_core.networks.registry.build_network`'s DFMVRNet,
            Deep3DFaceNet or UHE2FARNet; the baselines export with ``mask_input: none``), bad opset or arguments,
            ``path`` is a folder.
        MissingDependencyError: ``onnx`` is not installed (the ``export`` extra).
    """
    if not is_reconstruction_network(net):
        raise ConfigError(
            f"net: expected a DFMVRNet, Deep3DFaceNet or UHE2FARNet (a reconstruction network), "
            f"got {type(net).__name__}"
        )
    opset = _check_opset(opset)
    metadata = coefficient_metadata(
        net,
        opset=opset,
        batch_dynamic=batch_dynamic,
        model_fingerprint=model_fingerprint,
        fresh_weights=fresh_weights,
        weights_source=weights_source,
    )
    config, v = net.config, net.views
    s = config.input_size
    device = _device_of(net)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(1, v, 3, s, s, generator=generator).to(device)
    valid = torch.ones(1, v, dtype=torch.bool, device=device)
    names = coefficient_input_names(config.mask_input)
    args: tuple[Any, ...] = (images, valid)
    if len(names) == 3:
        args = (images, torch.zeros(1, v, s, s, dtype=torch.int64, device=device), valid)
    doc = (
        f"DF-MVR reconstruction network, config {config.name!r}: images (B,{v},3,{s},{s}) float RGB [0,1]"
        + (f", masks (B,{v},{s},{s}) int64 labels 0..9" if len(names) == 3 else "")
        + f", valid (B,{v}) bool -> coefficients (B,{net.flat_size}) in order {'|'.join(FLAT_ORDER)}."
    )
    graph = _FlatGraph(net)
    out_shape = (net.flat_size,)
    return _export(graph, args, path, names, COEFFICIENTS_OUTPUT, out_shape, opset, batch_dynamic, metadata, doc)


def export_face_parser_onnx(
    parser: BiSeNet,
    path: str | Path,
    *,
    input_size: int = 224,
    opset: int = DEFAULT_OPSET,
    batch_dynamic: bool = True,
    fresh_weights: bool | None = None,
    weights_source: str = "",
) -> Path:
    """Export :meth:`BiSeNet.parse` (``images (B, 3, S, S)`` in [0, 1] → ``logits (B, 19, S, S)``) to its own file.

    Args:
        parser: the face parser (normally from :func:`~dfmvr_core.networks.face_parser.load_face_parser`).
        path: output ``.onnx`` file, written atomically.
        input_size: the fixed side ``S`` of the square input (default 224); a multiple of 32.
        opset, batch_dynamic, fresh_weights, weights_source: as in :func:`export_onnx`.

    Raises:
        ConfigError: not a BiSeNet, bad opset or input size.
        MissingDependencyError: ``onnx`` is not installed.
    """
    if not isinstance(parser, BiSeNet):
        raise ConfigError(f"parser: expected a BiSeNet, got {type(parser).__name__}")
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 32 or input_size % 32:
        raise ConfigError(f"input_size: expected a positive multiple of 32 (BiSeNet's 1/32 stage), got {input_size!r}")
    opset = _check_opset(opset)
    metadata = face_parser_metadata(
        parser,
        input_size=input_size,
        opset=opset,
        batch_dynamic=batch_dynamic,
        fresh_weights=fresh_weights,
        weights_source=weights_source,
    )
    images = torch.rand(1, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))
    doc = (
        f"BiSeNet face parser (face-parsing.PyTorch layout): images (B,3,{input_size},{input_size}) float RGB [0,1] "
        f"-> logits (B,{parser.num_classes},{input_size},{input_size}) (CelebAMask-HQ classes)."
    )
    args = (images.to(_device_of(parser)),)
    out_shape = (parser.num_classes, input_size, input_size)
    graph = _ParseGraph(parser)
    return _export(graph, args, path, (PARSER_INPUT,), PARSER_OUTPUT, out_shape, opset, batch_dynamic, metadata, doc)
