"""DF-MVR network checkpoints: one ``torch.save`` file that says what it is, loaded as untrusted input.

Layout (a dict, readable with ``torch.load(weights_only=True)``: only tensors, numbers, strings, lists, dicts)::

    format            "dfmvr-checkpoint"
    format_version    1
    dfmvr_version     the dfmvr that wrote it
    network_config    every field of the NetworkConfig (encoder_channels as a list, view_dropout as a dict)
    coefficient_sizes {"identity", "expression", "albedo", "lighting", "pose_per_view"}
    expression_kind   "pca" or "blendshape"
    model_fingerprint MorphableModel.fingerprint() of the model the coefficients are for, or None
    state_dict        DFMVRNet.state_dict(), CPU tensors
    extra             free dict for the trainer (epoch, optimiser state, ...), same type restrictions

:func:`load_checkpoint` never runs code from the file (``weights_only=True``) and validates everything before the
weights are used: the format, the config, the coefficient sizes, the expression kind and the fingerprint (against
what the caller expects, when given), and every state_dict key, shape, dtype and value (finite) against a network
built from the stored config. Any problem → :class:`~dfmvr_core.errors.ModelFileError` naming the file and the item.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dfmvr_core import __version__
from dfmvr_core.atomic_io import atomic_path
from dfmvr_core.errors import ConfigError, ModelFileError
from dfmvr_core.inference._common import config_from_dict, config_to_dict, sizes_from_dict, sizes_to_dict
from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.networks.dfmvr_net import DFMVRNet
from dfmvr_core.networks.net_config import NetworkConfig
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
        config, sizes, expression_kind, model_fingerprint: what the network was built for.
        state_dict: ``{name: tensor}``, already checked against ``DFMVRNet(config, sizes, expression_kind)``.
        dfmvr_version: the dfmvr that wrote it.
        extra: the trainer's additional entries.
    """

    path: Path
    config: NetworkConfig
    sizes: CoefficientSizes
    expression_kind: str
    model_fingerprint: str | None
    state_dict: dict[str, torch.Tensor] = field(repr=False)
    dfmvr_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def build_network(self, device: torch.device | str | None = None) -> DFMVRNet:
        """A :class:`DFMVRNet` with these weights, in eval mode, on ``device`` (default CPU)."""
        net = DFMVRNet(self.config, self.sizes, self.expression_kind)
        net.load_state_dict(self.state_dict, strict=True)
        return net.to(device if device is not None else "cpu").eval()


def save_checkpoint(
    path: str | Path,
    net: DFMVRNet,
    *,
    model_fingerprint: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``net``'s weights and what they are for to ``path``, atomically.

    Args:
        path: output file (``.pt``); parent folders are created.
        net: the network (any device; tensors are saved on the CPU).
        model_fingerprint: :meth:`MorphableModel.fingerprint` of the model the network regresses (recommended: a
            loader that expects a model refuses a checkpoint without one).
        extra: additional entries (tensors, numbers, strings, lists, dicts only: a weights-only load refuses
            anything else).

    Raises:
        ConfigError: ``net`` is not a DFMVRNet, bad fingerprint or ``extra``.
    """
    if not isinstance(net, DFMVRNet):
        raise ConfigError(f"net: expected a DFMVRNet, got {type(net).__name__}")
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
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "extra": dict(extra or {}),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def _config_difference(got: NetworkConfig, expected: NetworkConfig) -> str:
    fields = [f.name for f in dataclasses.fields(NetworkConfig) if getattr(got, f.name) != getattr(expected, f.name)]
    return ", ".join(f"{n}={getattr(got, n)!r} (expected {getattr(expected, n)!r})" for n in fields)


def _sizes_text(sizes: CoefficientSizes) -> str:
    return f"identity {sizes.identity}, expression {sizes.expression}, albedo {sizes.albedo}"


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
    config: NetworkConfig | str | None = None,
    sizes: CoefficientSizes | None = None,
    expression_kind: str | None = None,
    model_fingerprint: str | None = None,
    map_location: str | torch.device = "cpu",
) -> Checkpoint:
    """Read and validate a checkpoint written by :func:`save_checkpoint`.

    Args:
        path: the file.
        config: expected network config: a name (compared with the stored name) or a :class:`NetworkConfig`
            (every field compared); None accepts the stored one.
        sizes: expected coefficient sizes (the loaded morphable model's ``coefficient_sizes``); None accepts any.
        expression_kind: expected ``"pca"`` / ``"blendshape"``; None accepts any.
        model_fingerprint: expected morphable model fingerprint; when given, a checkpoint without one is refused.
        map_location: device the tensors are loaded to.

    Returns:
        The validated :class:`Checkpoint`; :meth:`Checkpoint.build_network` makes the network.

    Raises:
        ModelFileError: naming the file and the problem: missing, truncated or corrupt file, not a dfmvr checkpoint,
            unsupported format version, invalid or unexpected config / sizes / expression kind / fingerprint,
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

    if isinstance(config, str) and config != stored_config.name:
        raise ModelFileError(f"{path}: checkpoint is for network config {stored_config.name!r}, expected {config!r}")
    if isinstance(config, NetworkConfig) and config != stored_config:
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
        reference = DFMVRNet(stored_config, stored_sizes, stored_kind).state_dict()
    state = _check_state_dict(path, payload["state_dict"], reference)
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
