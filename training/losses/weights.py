"""Weights (and per-term options) of DF-MVR's overall loss (paper IV-E), with the paper's and the authors'
presets, loadable by name or from YAML.

``L_all = ω_p L_p + ω_m L_m + ω_l (ω_2d L_2d + ω_3d L_3d) + ω_reg L_reg``  (IV-E with eq. 7 expanded)

The flat multiplier of each term (what :func:`~dfmvr_training.losses.total_loss` applies) comes from
:meth:`LossWeights.term_weights`: photo ω_p, mask ω_m, landmark_2d ω_l·ω_2d, landmark_3d ω_l·ω_3d / unit,
regularization ω_reg (the inner ω_α, ω_β, ω_γ of eq. 8 go to ``regularization_loss``), plus the authors'
lighting and reflectance priors.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dfmvr_core.config import from_mapping
from dfmvr_core.errors import ConfigError

from .landmarks import LANDMARK_2D_SCHEMES
from .mask import MASK_REGIONS
from .photo import PHOTO_REGIONS

TERM_NAMES: tuple[str, ...] = (
    "photo",
    "mask",
    "landmark_2d",
    "landmark_3d",
    "regularization",
    "lighting",
    "reflectance",
    "vertex",
)
"""Keys of the per-term loss mapping that :func:`total_loss` accepts."""

_WEIGHT_FIELDS = (
    "photo",
    "mask",
    "landmark",
    "landmark_2d",
    "landmark_3d",
    "regularization",
    "reg_identity",
    "reg_expression",
    "reg_albedo",
    "lighting",
    "reflectance",
    "vertex",
)


@dataclass(frozen=True)
class LossWeights:
    """Weights of the overall loss (paper IV-E) and the options that decide how each term is computed.

    Defaults are the paper's (:data:`PAPER_WEIGHTS`).

    Attributes:
        photo: ω_p, photo loss (eq. 2). Paper 4.
        mask: ω_m, mask loss (eq. 3). Paper 3.
        landmark: ω_l, the landmark loss L_l of eq. 7. Paper 1.
        landmark_2d: ω_2d inside L_l, 2D landmark loss (eq. 4, pixels of 224 crops). Paper 0.02.
        landmark_3d: ω_3d inside L_l, 3D landmark loss (eq. 6). Paper 1, per ``landmark_3d_unit_m``.
        regularization: ω_reg, coefficient regulariser (eq. 8). Paper 3e-4 (from Deep3DFace).
        reg_identity, reg_expression, reg_albedo: ω_α, ω_β, ω_γ of eq. 8. Paper 1, 0.8, 0.017.
        lighting: Deep3DFace's monochromatic-light prior; not in the paper (0), authors' code 10.
        reflectance: Deep3DFace's uniform-skin albedo prior; not in the paper (0), authors' code 5.
        vertex: dense 3D supervision from synthetic ground-truth shapes (:func:`vertex_loss`, mean vertex distance
            over the evaluated front-face region, per ``landmark_3d_unit_m`` like ω_3d). Not in DF-MVR's loss (0 in
            both presets); the CPU-budget recipe of the default model uses it (``config/training``).
        use_landmark_3d: False removes the 3D landmark term: Table IV ablation v5, training from multi-view
            images only, no 3D label.
        landmark_3d_unit_m: the length unit, in metres, that ω_3d applies to. ``landmark_3d_loss`` returns
            metres; the term's multiplier is ``ω_l·ω_3d / landmark_3d_unit_m``. 0.01 (centimetres) reproduces
            the scale of the authors' code, which multiplies its ground-truth landmarks by 100 before the loss
            (read as metres → centimetres; the dataset's unit is not documented, so this is an assumption).
        landmark_2d_scheme: which landmarks get ω_n = 20 in eq. 4 (:func:`landmark_2d_weights`): "paper"
            (nose 27-35 + inner mouth 60-67), "deep3dface" (28-30 + 60-67), "authors_code" (+ eyes 36-47).
        photo_region: ``P^v`` of eq. 2 (:func:`photo_loss`): "input_face" or "rendered" (authors' code).
        mask_region: pixels of eq. 3 (:func:`mask_loss`): "input_face" (paper) or "all" (authors' code).
        mask_start_epoch: the mask term counts from this epoch on (0-based); the authors' code adds it only
            after epoch 100 (``epoch > 100``), i.e. from 101. The paper does not mention a delay (0).
        landmark_2d_shape_gradient: True (the paper): the 2D landmark term (eq. 4) trains the pose and the shape
            coefficients. False: its gradient reaches the pose only (the shape is detached in it). While the pose
            is still poor (early training), eq. 4 otherwise bends identity and expression to make up for pose
            errors; a recipe with dense 3D supervision (``vertex``) can let the 3D terms own the shape meanwhile.
    """

    photo: float = 4.0
    mask: float = 3.0
    landmark: float = 1.0
    landmark_2d: float = 0.02
    landmark_3d: float = 1.0
    regularization: float = 3.0e-4
    reg_identity: float = 1.0
    reg_expression: float = 0.8
    reg_albedo: float = 0.017
    lighting: float = 0.0
    reflectance: float = 0.0
    vertex: float = 0.0
    use_landmark_3d: bool = True
    landmark_3d_unit_m: float = 0.01
    landmark_2d_scheme: str = "paper"
    photo_region: str = "input_face"
    mask_region: str = "input_face"
    mask_start_epoch: int = 0
    landmark_2d_shape_gradient: bool = True

    def __post_init__(self) -> None:
        for name in _WEIGHT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ConfigError(f"{name}: expected a finite weight >= 0, got {value!r}")
        for name in ("use_landmark_3d", "landmark_2d_shape_gradient"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}: expected true or false, got {getattr(self, name)!r}")
        unit = self.landmark_3d_unit_m
        if isinstance(unit, bool) or not isinstance(unit, (int, float)) or not 1e-6 <= unit <= 1e3:
            raise ConfigError(f"landmark_3d_unit_m: expected a length unit in metres in [1e-6, 1e3], got {unit!r}")
        choices = {
            "landmark_2d_scheme": tuple(LANDMARK_2D_SCHEMES),
            "photo_region": PHOTO_REGIONS,
            "mask_region": MASK_REGIONS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}: expected one of {allowed}, got {getattr(self, name)!r}")
        start = self.mask_start_epoch
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise ConfigError(f"mask_start_epoch: expected an integer >= 0, got {start!r}")

    @property
    def regularization_weights(self) -> tuple[float, float, float]:
        """(ω_α, ω_β, ω_γ) for :func:`regularization_loss`."""
        return (self.reg_identity, self.reg_expression, self.reg_albedo)

    def term_weights(self, epoch: int | None = None) -> dict[str, float]:
        """The multiplier of each term of :data:`TERM_NAMES` in the overall loss.

        Args:
            epoch: the current (0-based) epoch, for ``mask_start_epoch``; None = the mask term is on.

        Returns:
            ``{term: weight}``; a disabled term (ablation, delayed mask) has weight 0.
        """
        mask_on = epoch is None or epoch >= self.mask_start_epoch
        return {
            "photo": self.photo,
            "mask": self.mask if mask_on else 0.0,
            "landmark_2d": self.landmark * self.landmark_2d,
            "landmark_3d": self.landmark * self.landmark_3d / self.landmark_3d_unit_m if self.use_landmark_3d else 0.0,
            "regularization": self.regularization,
            "lighting": self.lighting,
            "reflectance": self.reflectance,
            "vertex": self.vertex / self.landmark_3d_unit_m,
        }


PAPER_WEIGHTS = LossWeights()
"""The paper's weights (IV-C..E): ω_p 4, ω_m 3, ω_l 1 (ω_2d 0.02, ω_3d 1), ω_reg 3e-4 (ω_α 1, ω_β 0.8,
ω_γ 0.017); no lighting/reflectance prior; 20× nose + inner-mouth 2D landmarks."""

AUTHORS_CODE_WEIGHTS = LossWeights(
    photo=24.0,
    mask=1.0,
    landmark=1.0,
    landmark_2d=0.02,
    landmark_3d=1.0,
    regularization=3.0e-4,
    reg_identity=1.0,
    reg_expression=0.8,
    reg_albedo=0.017,
    lighting=10.0,
    reflectance=5.0,
    use_landmark_3d=True,
    landmark_3d_unit_m=0.01,
    landmark_2d_scheme="authors_code",
    photo_region="rendered",
    mask_region="all",
    mask_start_epoch=101,
)
"""What weiguangzhao/DF_MVR ``network/MVRnet.py::model_fn`` actually sums: ``0.02·L_2d + 3e-4·L_reg +
5·L_reflect + 24·L_p + 10·L_gamma + 1·L_m (only when epoch > 100) + 1·L_3d``, with eq. 8's (1, 0.8, 0.017)
in ``face_generate.py``. Its photo weight map also differs (0.25 / 0.5 / 0.99 with a 10×10 dilation kernel,
see ``dataset_preprocess.py::get_face_mask``): that is a :class:`WeightMapConfig`, not part of this preset."""

PRESETS: dict[str, LossWeights] = {"paper": PAPER_WEIGHTS, "authors_code": AUTHORS_CODE_WEIGHTS}


def ablation_loss_weights(base: LossWeights, variant: str) -> LossWeights:
    """Loss weights of a Table IV ablation variant.

    v4 ("we not only remove the mask loss but also the face mask") sets ω_m = 0 (the network side is
    ``ablation_config(..., "v4")``); v5 removes the 3D landmark loss; v1-v3 and v6 (the full model) change only
    the network and return ``base``.
    """
    if variant == "v4":
        return dataclasses.replace(base, mask=0.0)
    if variant == "v5":
        return dataclasses.replace(base, use_landmark_3d=False)
    if variant in ("v1", "v2", "v3", "v6"):
        return base
    raise ConfigError(f"variant: expected one of v1, v2, v3, v4, v5, v6, got {variant!r}")


def _from_data(data: Any, origin: str, section: str | None = None) -> LossWeights:
    prefix = f"{origin}: {section + '.' if section else ''}"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.: ')}: expected a mapping of loss weights, got {type(data).__name__}")
    data = dict(data)
    preset = data.pop("preset", "paper")
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ConfigError(f"{prefix}preset: expected one of {tuple(PRESETS)}, got {preset!r}")
    merged = {**dataclasses.asdict(PRESETS[preset]), **data}
    try:
        return from_mapping(LossWeights, merged, path=section or "")
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None


def load_loss_weights(source: str | Path | Mapping[str, Any], section: str | None = None) -> LossWeights:
    """Loss weights from a preset name, a mapping or a YAML file.

    A mapping or YAML document may name a ``preset`` ("paper" by default) and override any field, e.g.
    ``{preset: authors_code, use_landmark_3d: false}``. Unknown fields are refused.

    Args:
        source: ``"paper"`` / ``"authors_code"``, a mapping, or a YAML file path.
        section: top-level key of the YAML document holding the weights (e.g. ``"losses"``); None = the
            whole document.

    Raises:
        ConfigError: unknown preset or field, invalid value (named), missing or malformed file.
    """
    if isinstance(source, Mapping):
        return _from_data(source, "loss weights")
    if isinstance(source, str) and source in PRESETS:
        return PRESETS[source]
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"{path}: not a loss-weights preset ({', '.join(PRESETS)}) and no such YAML file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if section is not None:
        if not isinstance(data, Mapping) or section not in data:
            raise ConfigError(f"{path}: expected a top-level '{section}' section")
        data = data[section]
    return _from_data(data, str(path), section)
