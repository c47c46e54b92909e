"""One entry point for every reconstruction network: DF-MVR and the comparison baselines.

* :func:`load_any_network_config` — a built-in name (``small``, ``paper``, ``deep3dface``, ``deep3dface_cnet``,
  ``uh_e2far``) or a YAML file whose ``network:`` section is a DF-MVR
  :class:`~dfmvr_core.networks.net_config.NetworkConfig` (no ``kind``, or ``kind: dfmvr``) or a
  :class:`~dfmvr_core.networks.baseline_config.BaselineNetworkConfig` (``kind: deep3dface`` / ``uh_e2far``).
* :func:`build_network` — the module for a config: :class:`~dfmvr_core.networks.dfmvr_net.DFMVRNet`,
  :class:`~dfmvr_core.networks.deep3dface.Deep3DFaceNet` or :class:`~dfmvr_core.networks.uh_e2far.UHE2FARNet`. All
  share DFMVRNet's public surface (``config``, ``sizes``, ``views``, ``expression_kind``, ``forward(images, masks,
  valid)``, ``forward_flat``, ``split_flat``, ``flat_size``), so checkpoints, the ONNX export, the backends and
  :class:`~dfmvr_core.inference.reconstructor.FaceReconstructor` treat them alike.
* :func:`network_kind` — ``"dfmvr"``, ``"deep3dface"`` or ``"uh_e2far"``; what checkpoints record.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from dfmvr_core.config import from_mapping
from dfmvr_core.errors import ConfigError
from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.networks.baseline_config import BASELINE_CONFIGS, BASELINE_KINDS, BaselineNetworkConfig
from dfmvr_core.networks.deep3dface import Deep3DFaceNet
from dfmvr_core.networks.dfmvr_net import DFMVRNet
from dfmvr_core.networks.net_config import NAMED_CONFIGS, NetworkConfig
from dfmvr_core.networks.uh_e2far import UHE2FARNet

__all__ = [
    "DFMVR_KIND",
    "NETWORK_KINDS",
    "AnyNetworkConfig",
    "ReconstructionNetwork",
    "build_network",
    "is_reconstruction_network",
    "load_any_network_config",
    "named_network_configs",
    "network_config_from_dict",
    "network_kind",
]

DFMVR_KIND = "dfmvr"
NETWORK_KINDS = (DFMVR_KIND, *BASELINE_KINDS)
"""Every network kind: ``"dfmvr"`` (:class:`DFMVRNet`), ``"deep3dface"``, ``"uh_e2far"``."""

AnyNetworkConfig = NetworkConfig | BaselineNetworkConfig
ReconstructionNetwork = DFMVRNet | Deep3DFaceNet | UHE2FARNet
_NETWORK_CLASSES = (DFMVRNet, Deep3DFaceNet, UHE2FARNet)


def named_network_configs() -> dict[str, AnyNetworkConfig]:
    """Every built-in config by name: ``small``, ``paper`` and the baselines."""
    return {**NAMED_CONFIGS, **BASELINE_CONFIGS}


def network_kind(config: AnyNetworkConfig) -> str:
    """``"dfmvr"`` for a :class:`NetworkConfig`, else the baseline config's ``kind``.

    Raises:
        ConfigError: not a network config.
    """
    if isinstance(config, NetworkConfig):
        return DFMVR_KIND
    if isinstance(config, BaselineNetworkConfig):
        return config.kind
    raise ConfigError(f"config: expected a NetworkConfig or BaselineNetworkConfig, got {type(config).__name__}")


def network_config_from_dict(data: Mapping[str, Any], path: str = "network") -> AnyNetworkConfig:
    """A network config from a mapping (a YAML ``network:`` section, a checkpoint's ``network_config``): the
    ``kind`` key picks the class (absent or ``"dfmvr"``: :class:`NetworkConfig`, the key dropped; ``"deep3dface"`` /
    ``"uh_e2far"``: :class:`BaselineNetworkConfig`).

    Raises:
        ConfigError: not a mapping, unknown kind, or an invalid / unknown / missing field (named ``{path}.field``).
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping, got {type(data).__name__}")
    kind = data.get("kind", DFMVR_KIND)
    if kind == DFMVR_KIND:
        return from_mapping(NetworkConfig, {k: v for k, v in data.items() if k != "kind"}, path)
    if kind in BASELINE_KINDS:
        return from_mapping(BaselineNetworkConfig, data, path)
    raise ConfigError(f"{path}.kind: expected one of {NETWORK_KINDS}, got {kind!r}")


def load_any_network_config(name_or_path: str | Path) -> AnyNetworkConfig:
    """A built-in config (:func:`named_network_configs`) or one loaded from a YAML file's ``network`` section
    (see :func:`network_config_from_dict`).

    Raises:
        ConfigError: unknown name and no such file, invalid YAML, or an invalid field (named with the file).
    """
    named = named_network_configs()
    if isinstance(name_or_path, str) and name_or_path in named:
        return named[name_or_path]
    path = Path(name_or_path)
    if not path.is_file():
        raise ConfigError(
            f"network config {str(name_or_path)!r}: not a named config {sorted(named)} and no such YAML file"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, Mapping) or "network" not in data:
        raise ConfigError(f"{path}: expected a top-level 'network' section")
    try:
        return network_config_from_dict(data["network"] if data["network"] is not None else {}, "network")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def build_network(config: AnyNetworkConfig, sizes: CoefficientSizes, expression_kind: str = "pca") -> nn.Module:
    """The (freshly initialised) network of ``config``: DFMVRNet, Deep3DFaceNet or UHE2FARNet.

    Args:
        config: a :class:`NetworkConfig` or :class:`BaselineNetworkConfig`.
        sizes: coefficient sizes of the morphable model (``MorphableModel.coefficient_sizes``).
        expression_kind: ``"pca"`` or ``"blendshape"`` (``MorphableModel.expression_kind``).

    Raises:
        ConfigError: not a network config, invalid sizes or expression kind.
    """
    kind = network_kind(config)
    if kind == DFMVR_KIND:
        return DFMVRNet(config, sizes, expression_kind)  # type: ignore[arg-type]
    if kind == "deep3dface":
        return Deep3DFaceNet(config, sizes, expression_kind)  # type: ignore[arg-type]
    return UHE2FARNet(config, sizes, expression_kind)  # type: ignore[arg-type]


def is_reconstruction_network(module: object) -> bool:
    """True for a network :func:`build_network` makes (what checkpoints, exports and backends accept)."""
    return isinstance(module, _NETWORK_CLASSES)
