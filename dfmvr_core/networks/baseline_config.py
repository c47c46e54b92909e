"""Configuration of the comparison baselines: Deep3DFace (R-Net, optional C-Net) and UH-E2FAR.

:class:`BaselineNetworkConfig` is a frozen, validated dataclass (errors are :class:`~dfmvr_core.errors.ConfigError`
naming the field), loadable from a YAML file's ``network:`` section like
:class:`~dfmvr_core.networks.net_config.NetworkConfig`; the ``kind`` field tells the two apart
(:func:`dfmvr_core.networks.registry.load_any_network_config`). Built-in configurations (also shipped as commented
YAML in ``config/networks/``):

* ``deep3dface`` — Deng et al., "Accurate 3D Face Reconstruction with Weakly-Supervised Learning: From Single Image
  to Image Set", CVPRW 2019: the R-Net, a ResNet-50 regressing one image's coefficients; a multi-view sample is
  reconstructed by the plain mean of the valid views' identity/expression/albedo (``aggregation: mean``).
* ``deep3dface_cnet`` — the same R-Net plus the paper's C-Net: per-coefficient confidences, the identity (and here
  the expression and albedo) the confidence-weighted mean over the views (``aggregation: cnet``).
* ``uh_e2far`` — Dou et al., "End-to-End 3D Face Reconstruction with Deep Neural Networks", CVPR 2017: a ResNet-50
  (the paper used VGG-Face) with a neutral-shape branch on the last stage and a fusion CNN over intermediate stages
  for the expression.

Both baselines take RGB only (no face-part mask): :attr:`BaselineNetworkConfig.mask_input` is ``"none"``, so the
backends, the ONNX export and :class:`~dfmvr_core.inference.reconstructor.FaceReconstructor` treat them like a DF-MVR
network with ``mask_input: none``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from dfmvr_core.config import load_yaml
from dfmvr_core.errors import ConfigError
from dfmvr_core.networks.resnet import RESNET_DEPTHS as _RESNET_DEPTHS

__all__ = [
    "AGGREGATIONS",
    "BASELINE_CONFIGS",
    "BASELINE_KINDS",
    "DEEP3DFACE_CNET_CONFIG",
    "DEEP3DFACE_CONFIG",
    "UH_E2FAR_CONFIG",
    "BaselineNetworkConfig",
    "load_baseline_config",
]

BASELINE_KINDS = ("deep3dface", "uh_e2far")
"""Network kinds of the baselines (DF-MVR's own kind is ``"dfmvr"``)."""

AGGREGATIONS = ("mean", "cnet")
"""How a multi-view sample's shared coefficients are combined: ``mean`` = plain average over the valid views,
``cnet`` = Deep3DFace's C-Net confidence-weighted average (``kind: deep3dface`` only)."""

BACKBONE_DEPTHS = tuple(_RESNET_DEPTHS)
INPUT_MULTIPLE = 32
"""The ResNet backbones reduce the image 32× (stem 4×, three strided stages): ``input_size`` is a multiple of it."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_width(name: str, value: object) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))
    if not ok or not 0.0 < float(value) <= 8.0:  # type: ignore[arg-type]
        raise ConfigError(f"{name}: expected a width multiplier in (0, 8], got {value!r}")


@dataclass(frozen=True)
class BaselineNetworkConfig:
    """Architecture of a baseline network (:class:`~dfmvr_core.networks.deep3dface.Deep3DFaceNet` or
    :class:`~dfmvr_core.networks.uh_e2far.UHE2FARNet`).

    Attributes:
        name: identifier written to checkpoints, exports and comparison tables (e.g. ``"deep3dface"``).
        kind: ``"deep3dface"`` or ``"uh_e2far"`` (:data:`BASELINE_KINDS`).
        backbone_depth: ResNet depth of the per-image network, one of 18, 34, 50, 101, 152 (both papers: 50 for
            Deep3DFace's R-Net; UH-E2FAR used VGG-Face, replaced by ResNet-50 here).
        backbone_width: channel width multiplier of that ResNet, in (0, 8] (1.0 = the standard network; tests
            use 0.25).
        aggregation: ``"mean"`` or ``"cnet"`` (:data:`AGGREGATIONS`); ``"cnet"`` only with ``kind: deep3dface``.
        cnet_width: width multiplier of the C-Net's own ResNet-18, in (0, 8]; used with ``aggregation: cnet``.
        views: number of views ``V`` of a sample, in [1, 16] (3: left, front, right).
        input_size: side ``S`` of the square RGB crops, a multiple of 32 (224 as DF-MVR and Deep3DFace).
    """

    name: str
    kind: str
    backbone_depth: int = 50
    backbone_width: float = 1.0
    aggregation: str = "mean"
    cnet_width: float = 0.25
    views: int = 3
    input_size: int = 224

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"name: expected a non-empty string, got {self.name!r}")
        if self.kind not in BASELINE_KINDS:
            raise ConfigError(f"kind: expected one of {BASELINE_KINDS} for a baseline network, got {self.kind!r}")
        if not _is_int(self.backbone_depth) or self.backbone_depth not in BACKBONE_DEPTHS:
            raise ConfigError(
                f"backbone_depth: expected one of {BACKBONE_DEPTHS} (ResNet), got {self.backbone_depth!r}"
            )
        _check_width("backbone_width", self.backbone_width)
        _check_width("cnet_width", self.cnet_width)
        if self.aggregation not in AGGREGATIONS:
            raise ConfigError(f"aggregation: expected one of {AGGREGATIONS}, got {self.aggregation!r}")
        if self.aggregation == "cnet" and self.kind != "deep3dface":
            raise ConfigError(
                f"aggregation: 'cnet' (Deep3DFace's confidence network) needs kind 'deep3dface', got kind {self.kind!r}"
            )
        if not _is_int(self.views) or not 1 <= self.views <= 16:
            raise ConfigError(f"views: expected an int in [1, 16], got {self.views!r}")
        if not _is_int(self.input_size) or self.input_size < INPUT_MULTIPLE or self.input_size % INPUT_MULTIPLE:
            raise ConfigError(
                f"input_size: expected a positive multiple of {INPUT_MULTIPLE} (the ResNet reduces 32x), "
                f"got {self.input_size!r}"
            )
        object.__setattr__(self, "backbone_width", float(self.backbone_width))
        object.__setattr__(self, "cnet_width", float(self.cnet_width))

    @property
    def mask_input(self) -> str:
        """Always ``"none"``: the baselines see RGB only (what the backends and the ONNX export ask)."""
        return "none"


DEEP3DFACE_CONFIG = BaselineNetworkConfig(name="deep3dface", kind="deep3dface", aggregation="mean")
"""Deep3DFace's R-Net (ResNet-50) per view, plain mean over the valid views."""

DEEP3DFACE_CNET_CONFIG = BaselineNetworkConfig(name="deep3dface_cnet", kind="deep3dface", aggregation="cnet")
"""Deep3DFace's R-Net per view + C-Net (ResNet-18 at width 0.25) confidence-weighted aggregation."""

UH_E2FAR_CONFIG = BaselineNetworkConfig(name="uh_e2far", kind="uh_e2far")
"""UH-E2FAR on a ResNet-50 backbone, plain mean over the valid views."""

BASELINE_CONFIGS: dict[str, BaselineNetworkConfig] = {
    c.name: c for c in (DEEP3DFACE_CONFIG, DEEP3DFACE_CNET_CONFIG, UH_E2FAR_CONFIG)
}


def load_baseline_config(name_or_path: str | Path) -> BaselineNetworkConfig:
    """A built-in baseline config (:data:`BASELINE_CONFIGS`) or one loaded from a YAML file's ``network`` section.

    Raises:
        ConfigError: unknown name and no such file, invalid YAML, or an invalid field (named with the file, e.g.
            ``network.aggregation``).
    """
    if isinstance(name_or_path, str) and name_or_path in BASELINE_CONFIGS:
        return BASELINE_CONFIGS[name_or_path]
    path = Path(name_or_path)
    if not path.is_file() and path.suffix.lower() not in (".yaml", ".yml"):
        raise ConfigError(
            f"baseline network config {str(name_or_path)!r}: not a built-in {sorted(BASELINE_CONFIGS)} and no such "
            "YAML file"
        )
    return load_yaml(BaselineNetworkConfig, path, section="network")
