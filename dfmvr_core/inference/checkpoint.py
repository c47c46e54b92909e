"""Reconstruction network checkpoints (DF-MVR and the baselines): one ``torch.save`` file that says what it is,
loaded as untrusted input.

Layout (a dict, readable with ``torch.load(weights_only=True)``: only tensors, numbers, strings, lists, dicts)::

    format            "dfmvr-checkpoint"
    format_version    1
    dfmvr_version     the dfmvr that wrote it
    network_config    every field of the network config plus its ``kind``: "dfmvr" (NetworkConfig; encoder_channels
                      as a list, view_dropout as a dict), "deep3dface" or "uh_e2far" (BaselineNetworkConfig); a
                      file without "kind" (written before the baselines existed) is a DF-MVR one
    coefficient_sizes {"identity", "expression", "albedo", "lighting", "pose_per_view"}
    expression_kind   "pca" or "blendshape"
    model_fingerprint MorphableModel.fingerprint() of the model the coefficients are for, or None
    state_dict        the network's state_dict(), CPU tensors
    extra             free dict for the trainer (epoch, optimiser state, ...), same type restrictions
    weights_dtype     "float32" or "float16" (optional, default float32): how the floating-point weights are stored;
                      float16 files (the shipped default model) are cast back to float32 on load

:func:`load_checkpoint` never runs code from the file (``weights_only=True``) and validates everything before the
weights are used: the format, the config and its network kind, the coefficient sizes, the expression kind and the
fingerprint (against what the caller expects, when given), and every state_dict key, shape, dtype and value (finite)
against a network built from the stored config (:func:`~dfmvr_core.networks.registry.build_network`). Any problem →
:class:`~dfmvr_core.errors.ModelFileError` naming the file and the item.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dfmvr_core import __version__
from dfmvr_core.atomic_io import atomic_path
from dfmvr_core.errors import ConfigError, ModelFileError
from dfmvr_core.inference._common import config_from_dict, config_to_dict, sizes_from_dict, sizes_to_dict
from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.networks.registry import (
    NETWORK_KINDS,
    AnyNetworkConfig,
    build_network,
    is_reconstruction_network,
    named_network_configs,
    network_kind,
)
from dfmvr_core.validation import check_state_dict, load_weights_only, short_listing

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "Checkpoint", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_FORMAT = "dfmvr-checkpoint"
CHECKPOINT_VERSION = 1
_REQUIRED = (
    "format_version",
    "dfmvr_version",
    "network_config",
    "coefficient_sizes",
    "expression_kind",
    "model_fingerprint",
    "state_dict",
)


@dataclass(frozen=True)
class Checkpoint:
    """A validated checkpoint (see the module docstring).

    Attributes:
        path: the file it was read from.
        config, sizes, expression_kind, model_fingerprint: what the network was built for (``config`` a
            :class:`NetworkConfig` or a :class:`BaselineNetworkConfig`; :attr:`kind` tells which network).
        state_dict: ``{name: tensor}``, already checked against ``build_network(config, sizes, expression_kind)``.
        dfmvr_version: the dfmvr that wrote it.
        extra: the trainer's additional entries.
    """

    path: Path
    config: AnyNetworkConfig
    sizes: CoefficientSizes
    expression_kind: str
    model_fingerprint: str | None
    state_dict: dict[str, torch.Tensor] = field(repr=False)
    dfmvr_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def kind(self) -> str:
        """The network kind: ``"dfmvr"``, ``"deep3dface"`` or ``"uh_e2far"``."""
        return network_kind(self.config)

    def build_network(self, device: torch.device | str | None = None) -> nn.Module:
        """The network (:func:`~dfmvr_core.networks.registry.build_network`) with these weights, in eval mode, on
        ``device`` (default CPU)."""
        net = build_network(self.config, self.sizes, self.expression_kind)
        net.load_state_dict(self.state_dict, strict=True)
        return net.to(device if device is not None else "cpu").eval()


def save_checkpoint(
    path: str | Path,
    net: nn.Module,
    *,
    model_fingerprint: str | None = None,
    extra: Mapping[str, Any] | None = None,
    weights_dtype: str = "float32",
) -> Path:
    """Write ``net``'s weights and what they are for to ``path``, atomically.

    Args:
        path: output file (``.pt``); parent folders are created.
        net: the network, one :func:`~dfmvr_core.networks.registry.build_network` makes (any device; tensors are
            saved on the CPU); its config is stored with its network kind.
        model_fingerprint: :meth:`MorphableModel.fingerprint` of the model the network regresses (recommended: a
            loader that expects a model refuses a checkpoint without one).
        extra: additional entries (tensors, numbers, strings, lists, dicts only: a weights-only load refuses
            anything else).
        weights_dtype: ``"float32"`` or ``"float16"``: the storage type of the floating-point weights (half the
            file size; :func:`load_checkpoint` casts them back to the network's float32). Integer buffers (BatchNorm
            counters) are stored as they are.

    Raises:
        ConfigError: ``net`` is not a reconstruction network, bad fingerprint, ``extra`` or ``weights_dtype``;
            float16 storage of a weight outside float16's range.
    """
    if weights_dtype not in STORAGE_DTYPES:
        raise ConfigError(f"weights_dtype: expected one of {tuple(STORAGE_DTYPES)}, got {weights_dtype!r}")
    if not is_reconstruction_network(net):
        raise ConfigError(
            f"net: expected a DFMVRNet, Deep3DFaceNet or UHE2FARNet (a reconstruction network), "
            f"got {type(net).__name__}"
        )
    if model_fingerprint is not None and (not isinstance(model_fingerprint, str) or not model_fingerprint):
        raise ConfigError(f"model_fingerprint: expected a non-empty string or None, got {model_fingerprint!r}")
    if extra is not None and not isinstance(extra, Mapping):
        raise ConfigError(f"extra: expected a mapping, got {type(extra).__name__}")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "dfmvr_version": __version__,
        "network_config": config_to_dict(net.config),
        "coefficient_sizes": sizes_to_dict(net.sizes),
        "expression_kind": net.expression_kind,
        "model_fingerprint": model_fingerprint,
        "state_dict": _stored_state(net, STORAGE_DTYPES[weights_dtype]),
        "weights_dtype": weights_dtype,
        "extra": dict(extra or {}),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def _config_difference(got: AnyNetworkConfig, expected: AnyNetworkConfig) -> str:
    fields = [f.name for f in dataclasses.fields(got) if getattr(got, f.name) != getattr(expected, f.name)]
    return ", ".join(f"{n}={getattr(got, n)!r} (expected {getattr(expected, n)!r})" for n in fields)


def _name_of(config: AnyNetworkConfig | str | None) -> str | None:
    return config if isinstance(config, str) or config is None else config.name


def _expected_kind(config: AnyNetworkConfig | str | None, kind: str | None) -> str | None:
    """The network kind the caller asks for: ``kind``, or that of ``config`` (a config object or a built-in name).

    Raises:
        ConfigError: an unknown ``kind``, a config that is not a network config, or ``kind`` contradicting it.
    """
    if kind is not None and kind not in NETWORK_KINDS:
        raise ConfigError(f"kind: expected one of {NETWORK_KINDS} or None, got {kind!r}")
    implied = None
    if isinstance(config, str):
        named = named_network_configs()
        implied = network_kind(named[config]) if config in named else None
    elif config is not None:
        implied = network_kind(config)
    if kind is not None and implied is not None and kind != implied:
        raise ConfigError(f"kind: {kind!r} contradicts config {_name_of(config)!r} (a {implied!r} network)")
    return kind if kind is not None else implied


def _sizes_text(sizes: CoefficientSizes) -> str:
    return f"identity {sizes.identity}, expression {sizes.expression}, albedo {sizes.albedo}"


STORAGE_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16}
"""How :func:`save_checkpoint` may store the floating-point weights."""


def _stored_state(net: nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    state = {}
    for name, value in net.state_dict().items():
        value = value.detach().cpu()
        if value.is_floating_point() and value.dtype != dtype:
            converted = value.to(dtype)
            if not bool(torch.isfinite(converted).all()):
                raise ConfigError(f"weights_dtype: {name} has values outside {dtype}'s range; store it as float32")
            value = converted
        state[name] = value
    return state


def _restore_dtypes(path: Path, state: Any, stored: Any, reference: Mapping[str, torch.Tensor]) -> Any:
    """Floating-point weights stored as float16 (``weights_dtype``), cast back to the network's dtypes."""
    if stored in (None, "float32") or not isinstance(state, Mapping):
        return state
    if stored not in STORAGE_DTYPES:
        raise ModelFileError(f"{path}: weights_dtype must be one of {tuple(STORAGE_DTYPES)}, got {stored!r}")
    return {
        k: v.to(reference[k].dtype)
        if isinstance(v, torch.Tensor) and k in reference and v.is_floating_point() and reference[k].is_floating_point()
        else v
        for k, v in state.items()
    }


def _read(path: Path, map_location: str | torch.device) -> Any:
    return load_weights_only(path, "checkpoint", map_location)


def _check_state_dict(path: Path, state: Any, expected: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if not isinstance(state, Mapping):
        raise ModelFileError(f"{path}: state_dict is a {type(state).__name__}, expected a mapping of names to tensors")
    bad_entries = [repr(k) for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad_entries:
        raise ModelFileError(f"{path}: state_dict entries that are not tensors: {short_listing(bad_entries)}")
    check_state_dict(
        str(path), state, expected, what="a state_dict matching the network of its config", compare_dtype=True
    )
    return dict(state)


def load_checkpoint(
    path: str | Path,
    *,
    config: AnyNetworkConfig | str | None = None,
    kind: str | None = None,
    sizes: CoefficientSizes | None = None,
    expression_kind: str | None = None,
    model_fingerprint: str | None = None,
    map_location: str | torch.device = "cpu",
) -> Checkpoint:
    """Read and validate a checkpoint written by :func:`save_checkpoint`.

    Args:
        path: the file.
        config: expected network config: a name (compared with the stored name; a built-in name also fixes the
            expected network kind) or a :class:`NetworkConfig` / :class:`BaselineNetworkConfig` (kind and every
            field compared); None accepts the stored one.
        kind: expected network kind (``"dfmvr"``, ``"deep3dface"``, ``"uh_e2far"``); None accepts any (or the
            kind of ``config``).
        sizes: expected coefficient sizes (the loaded morphable model's ``coefficient_sizes``); None accepts any.
        expression_kind: expected ``"pca"`` / ``"blendshape"``; None accepts any.
        model_fingerprint: expected morphable model fingerprint; when given, a checkpoint without one is refused.
        map_location: device the tensors are loaded to.

    Returns:
        The validated :class:`Checkpoint`; :meth:`Checkpoint.build_network` makes the network.

    Raises:
        ModelFileError: naming the file and the problem: missing, truncated or corrupt file, not a dfmvr checkpoint,
            unsupported format version, invalid or unexpected config / network kind / sizes / expression kind /
            fingerprint,
            missing / unexpected / mis-shaped / non-finite state_dict entries.
    """
    path = Path(path)
    payload = _read(path, map_location)
    if not isinstance(payload, Mapping) or payload.get("format") != CHECKPOINT_FORMAT:
        what = f"format {payload.get('format')!r}" if isinstance(payload, Mapping) else type(payload).__name__
        raise ModelFileError(
            f"{path}: not a dfmvr checkpoint ({what}; expected format {CHECKPOINT_FORMAT!r}, written by "
            "dfmvr_core.inference.save_checkpoint)"
        )
    absent = [key for key in _REQUIRED if key not in payload]
    if absent:
        raise ModelFileError(f"{path}: checkpoint lacks {absent}")
    if payload["format_version"] != CHECKPOINT_VERSION:
        raise ModelFileError(
            f"{path}: checkpoint format version {payload['format_version']!r}, this dfmvr reads {CHECKPOINT_VERSION}"
        )
    try:
        stored_config = config_from_dict(payload["network_config"])
    except ConfigError as exc:
        raise ModelFileError(f"{path}: invalid network_config: {exc}") from None
    try:
        stored_sizes = sizes_from_dict(payload["coefficient_sizes"])
    except ConfigError as exc:
        raise ModelFileError(f"{path}: invalid coefficient_sizes: {exc}") from None
    stored_kind = payload["expression_kind"]
    if stored_kind not in ("pca", "blendshape"):
        raise ModelFileError(f"{path}: expression_kind must be 'pca' or 'blendshape', got {stored_kind!r}")
    stored_fingerprint = payload["model_fingerprint"]
    if stored_fingerprint is not None and (not isinstance(stored_fingerprint, str) or not stored_fingerprint):
        raise ModelFileError(
            f"{path}: model_fingerprint must be a non-empty string or None, got {stored_fingerprint!r}"
        )

    stored_network_kind = network_kind(stored_config)
    expected_kind = _expected_kind(config, kind)
    if expected_kind is not None and expected_kind != stored_network_kind:
        raise ModelFileError(
            f"{path}: checkpoint holds a {stored_network_kind!r} network (config {stored_config.name!r}), expected a "
            f"{expected_kind!r} network" + (f" (config {_name_of(config)!r})" if config is not None else "")
        )
    if isinstance(config, str) and config != stored_config.name:
        raise ModelFileError(f"{path}: checkpoint is for network config {stored_config.name!r}, expected {config!r}")
    if config is not None and not isinstance(config, str) and config != stored_config:
        raise ModelFileError(
            f"{path}: checkpoint's network config {stored_config.name!r} differs from the expected "
            f"{config.name!r}: {_config_difference(stored_config, config) or 'name'}"
        )
    if sizes is not None and sizes != stored_sizes:
        raise ModelFileError(
            f"{path}: checkpoint regresses coefficient sizes {_sizes_text(stored_sizes)}, expected "
            f"{_sizes_text(sizes)} (a checkpoint for another morphable model?)"
        )
    if expression_kind is not None and expression_kind != stored_kind:
        raise ModelFileError(f"{path}: checkpoint's expression kind is {stored_kind!r}, expected {expression_kind!r}")
    if model_fingerprint is not None and stored_fingerprint != model_fingerprint:
        if stored_fingerprint is None:
            raise ModelFileError(
                f"{path}: checkpoint records no morphable model fingerprint, expected {model_fingerprint} "
                "(cannot confirm it was trained for this model)"
            )
        raise ModelFileError(
            f"{path}: checkpoint was trained for morphable model fingerprint {stored_fingerprint}, expected "
            f"{model_fingerprint} (another model, or another build of it)"
        )

    with torch.device("meta"):  # shapes only: nothing allocated, nothing initialised
        reference = build_network(stored_config, stored_sizes, stored_kind).state_dict()
    stored_state = _restore_dtypes(path, payload["state_dict"], payload.get("weights_dtype"), reference)
    state = _check_state_dict(path, stored_state, reference)
    extra = payload.get("extra", {})
    if not isinstance(extra, Mapping):
        raise ModelFileError(f"{path}: extra must be a mapping, got {type(extra).__name__}")
    return Checkpoint(
        path=path,
        config=stored_config,
        sizes=stored_sizes,
        expression_kind=stored_kind,
        model_fingerprint=stored_fingerprint,
        state_dict=state,
        dfmvr_version=str(payload["dfmvr_version"]),
        extra=dict(extra),
    )
