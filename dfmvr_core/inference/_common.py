"""Pieces shared by the exporters, the checkpoint format and the backends: optional imports, the metadata keys, the
JSON form of a network config (DF-MVR's :class:`~dfmvr_core.networks.net_config.NetworkConfig` or a baseline's
:class:`~dfmvr_core.networks.baseline_config.BaselineNetworkConfig`, told apart by its ``kind`` key).

Nothing here imports ``onnx`` or ``onnxruntime`` at module level: they are the ``export`` extra
(``pip install -c constraints.txt onnx onnxruntime``), loaded only by the functions that need them.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from dfmvr_core.errors import ConfigError, DfmvrError
from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.networks.net_config import NetworkConfig
from dfmvr_core.networks.registry import AnyNetworkConfig, network_config_from_dict, network_kind

__all__ = [
    "COEFFICIENTS_KIND",
    "FACE_PARSER_KIND",
    "METADATA_PREFIX",
    "MissingDependencyError",
    "config_from_dict",
    "config_to_dict",
    "require",
    "sizes_from_dict",
    "sizes_to_dict",
]

METADATA_PREFIX = "dfmvr."
"""Prefix of every ``metadata_props`` key dfmvr writes into an ONNX model."""

COEFFICIENTS_KIND = "dfmvr-coefficients"
"""``dfmvr.kind`` of an exported :class:`~dfmvr_core.networks.dfmvr_net.DFMVRNet` (``forward_flat``)."""

FACE_PARSER_KIND = "dfmvr-face-parser"
"""``dfmvr.kind`` of an exported :class:`~dfmvr_core.networks.face_parser.BiSeNet` (``parse``)."""


class MissingDependencyError(DfmvrError, ImportError):
    """An optional dependency (an extra of the ``dfmvr`` package) is not installed; the message says how to get it."""


def require(module: str, extra: str = "export") -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is not installed ({exc}); it belongs to dfmvr's '{extra}' extra: "
            f"pip install -c constraints.txt onnx onnxruntime"
        ) from None


def config_to_dict(config: AnyNetworkConfig) -> dict[str, Any]:
    """JSON-compatible dict of every field of ``config`` plus its network ``kind`` (``"dfmvr"``, ``"deep3dface"``,
    ``"uh_e2far"``; tuples become lists, ``view_dropout`` a nested dict)."""
    data = dataclasses.asdict(config)
    if isinstance(config, NetworkConfig):
        data["encoder_channels"] = list(config.encoder_channels)
    data["kind"] = network_kind(config)
    return data


def config_from_dict(data: Mapping[str, Any]) -> AnyNetworkConfig:
    """Inverse of :func:`config_to_dict` (via :func:`dfmvr_core.config.from_mapping`: types and values validated).
    The ``kind`` key picks the class; without it (files written before the baselines existed) a DF-MVR
    :class:`NetworkConfig`.

    Raises:
        ConfigError: a missing, unknown or invalid field, or an unknown kind, named.
    """
    return network_config_from_dict(data, "network")


def sizes_to_dict(sizes: CoefficientSizes) -> dict[str, int]:
    """``{"identity": .., "expression": .., "albedo": .., "lighting": .., "pose_per_view": ..}``."""
    return dataclasses.asdict(sizes)


def sizes_from_dict(data: Mapping[str, Any]) -> CoefficientSizes:
    """Inverse of :func:`sizes_to_dict`; every value must be a positive int.

    Raises:
        ConfigError: missing, unknown or non-integer entries.
    """
    names = [f.name for f in dataclasses.fields(CoefficientSizes)]
    if not isinstance(data, Mapping) or sorted(data) != sorted(names):
        got = sorted(data) if isinstance(data, Mapping) else type(data).__name__
        raise ConfigError(f"coefficient sizes: expected the keys {names}, got {got}")
    for name in names:
        value = data[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"coefficient sizes: {name} must be a positive int, got {value!r}")
    return CoefficientSizes(**{name: int(data[name]) for name in names})


def dumps(value: Any) -> str:
    """Compact, key-ordered JSON (what the metadata stores)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
