"""UH-E2FAR's multi-task shape loss (Dou et al., CVPR 2017, "End-to-End 3D Face Reconstruction with Deep Neural
Networks", section 3) with 3D supervision from synthetic ground truth, plus a 2D landmark term for the pose head.

UH-E2FAR splits the face into a neutral (identity) shape and an expression offset, ``S = S̄ + U_id α_id + U_exp α_exp``,
and supervises both separately:

``L = λ_n L_neutral + λ_e L_expressive + λ_lm L_lm``

* ``L_neutral``: vertex error between the identity-only shapes ``S̄ + U_id α_id`` (predicted vs ground truth);
* ``L_expressive``: vertex error between the expression offsets ``U_exp α_exp`` (predicted vs ground truth);
* ``L_lm`` (beyond the paper, which predicts no pose): the 2D landmark distance of the posed prediction, so that the
  pose head learns to place the mesh in the camera (:func:`~dfmvr_training.losses.landmark_2d_loss`).

The vertex error is :func:`~dfmvr_training.losses.vertex_loss` (mean Euclidean distance over a vertex region, metres);
the paper uses squared Euclidean distances, which weigh outliers more; the mean distance is the quantity the benchmark
reports and is less sensitive to the scale of the model's units. Samples without 3D ground truth (``has_3d`` False:
real triplets) contribute 0 to both shape terms.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from dfmvr_core.config import from_mapping
from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.morphable import MorphableModel
from dfmvr_core.validation import check_shape

from ._checks import check_float
from .landmarks import LANDMARK_2D_SCHEMES
from .vertices import vertex_loss

__all__ = [
    "UH_E2FAR_PRESETS",
    "UH_E2FAR_TERM_NAMES",
    "UH_E2FAR_WEIGHTS",
    "UHE2FARLossWeights",
    "expression_offsets",
    "expressive_shape_loss",
    "load_uh_e2far_loss_weights",
    "neutral_shape_loss",
    "neutral_shapes",
]

UH_E2FAR_TERM_NAMES: tuple[str, ...] = ("neutral", "expression", "landmark")
VERTEX_REGIONS: tuple[str, ...] = ("front_face", "all")


def _check_coefficients(model: MorphableModel, identity: Tensor | None, expression: Tensor | None) -> None:
    sizes = model.coefficient_sizes
    for name, value, size in (("identity", identity, sizes.identity), ("expression", expression, sizes.expression)):
        if value is not None:
            check_shape(name, value, ("B", size))
            check_float(name, value)


def neutral_shapes(model: MorphableModel, identity: Tensor) -> Tensor:
    """Identity-only shapes ``S̄ + U_id α_id`` (the neutral face).

    Args:
        model: the morphable model.
        identity: (B, K_id) float identity coefficients.

    Returns:
        (B, N, 3) float, metres, model frame.
    """
    _check_coefficients(model, identity, None)
    zeros = identity.new_zeros(identity.shape[0], model.coefficient_sizes.expression)
    return model.decode_shape(identity.to(model.dtype), zeros.to(model.dtype))


def expression_offsets(model: MorphableModel, expression: Tensor) -> Tensor:
    """Expression offsets ``U_exp α_exp`` (vertex displacements from the neutral face).

    Args:
        model: the morphable model.
        expression: (B, K_exp) float expression coefficients (PCA or blendshape weights).

    Returns:
        (B, N, 3) float, metres.
    """
    _check_coefficients(model, None, expression)
    basis = model.exp_basis.reshape(model.exp_basis.shape[0], -1)
    return (expression.to(model.dtype) @ basis).view(expression.shape[0], model.num_vertices, 3)


def neutral_shape_loss(
    model: MorphableModel,
    pred_identity: Tensor,
    gt_identity: Tensor,
    valid: Tensor | None = None,
    vertex_weights: Tensor | None = None,
) -> Tensor:
    """``L_neutral``: mean vertex distance between predicted and ground-truth neutral shapes (UH-E2FAR's neutral task).

    Args:
        model: the morphable model the ground truth refers to.
        pred_identity, gt_identity: (B, K_id) float.
        valid: (B,) bool, samples with ground truth; None = all.
        vertex_weights: (N,) float >= 0 region weights (e.g. the front face); None = all vertices.

    Returns:
        (B,) float, metres; 0 for invalid samples.
    """
    _check_coefficients(model, gt_identity, None)
    return vertex_loss(neutral_shapes(model, pred_identity), neutral_shapes(model, gt_identity), valid, vertex_weights)


def expressive_shape_loss(
    model: MorphableModel,
    pred_expression: Tensor,
    gt_expression: Tensor,
    valid: Tensor | None = None,
    vertex_weights: Tensor | None = None,
) -> Tensor:
    """``L_expressive``: mean vertex distance between predicted and ground-truth expression offsets (UH-E2FAR's
    expressive task, the fusion-CNN branch's target).

    Args:
        model: the morphable model.
        pred_expression, gt_expression: (B, K_exp) float.
        valid: (B,) bool, samples with ground truth; None = all.
        vertex_weights: (N,) float >= 0 region weights; None = all vertices.

    Returns:
        (B,) float, metres; 0 for invalid samples.
    """
    _check_coefficients(model, None, gt_expression)
    if pred_expression.shape[0] != gt_expression.shape[0]:
        raise ShapeError(
            f"pred_expression: batch size {pred_expression.shape[0]} differs from gt_expression's "
            f"{gt_expression.shape[0]}"
        )
    return vertex_loss(
        expression_offsets(model, pred_expression), expression_offsets(model, gt_expression), valid, vertex_weights
    )


@dataclass(frozen=True)
class UHE2FARLossWeights:
    """Weights of the UH-E2FAR training loss. The paper gives the two shape tasks equal weight; the 2D landmark term
    and its weight are ours (the pose head is beyond the paper).

    Attributes:
        neutral: λ_n, neutral-shape loss per ``unit_m``. 1.
        expression: λ_e, expressive-shape loss per ``unit_m``. 1.
        landmark: λ_lm, 2D landmark loss (Euclidean pixels of ``landmark_reference_px`` crops, DF-MVR's eq. 4 form).
            0.02 (DF-MVR's ω_2d).
        unit_m: the length unit, in metres, that λ_n and λ_e apply to (0.01: centimetres).
        vertex_region: ``front_face`` (the vertices the benchmark evaluates, within 95 mm of the nose tip) or ``all``.
        landmark_scheme: landmarks weighted 20× (:func:`~dfmvr_training.losses.landmark_2d_weights`).
        landmark_reference_px: the crop size ``landmark`` was set for (224); other sizes are scaled to it.
    """

    neutral: float = 1.0
    expression: float = 1.0
    landmark: float = 0.02
    unit_m: float = 0.01
    vertex_region: str = "front_face"
    landmark_scheme: str = "deep3dface"
    landmark_reference_px: int = 224

    def __post_init__(self) -> None:
        for name in ("neutral", "expression", "landmark"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ConfigError(f"{name}: expected a finite weight >= 0, got {value!r}")
        unit = self.unit_m
        if isinstance(unit, bool) or not isinstance(unit, (int, float)) or not 1e-6 <= unit <= 1e3:
            raise ConfigError(f"unit_m: expected a length unit in metres in [1e-6, 1e3], got {unit!r}")
        if self.vertex_region not in VERTEX_REGIONS:
            raise ConfigError(f"vertex_region: expected one of {VERTEX_REGIONS}, got {self.vertex_region!r}")
        if self.landmark_scheme not in LANDMARK_2D_SCHEMES:
            raise ConfigError(
                f"landmark_scheme: expected one of {tuple(LANDMARK_2D_SCHEMES)}, got {self.landmark_scheme!r}"
            )
        px = self.landmark_reference_px
        if isinstance(px, bool) or not isinstance(px, int) or not 1 <= px <= 4096:
            raise ConfigError(f"landmark_reference_px: expected an integer in [1, 4096], got {px!r}")

    def term_weights(self) -> dict[str, float]:
        """The multiplier of each term of :data:`UH_E2FAR_TERM_NAMES` (the shape terms per metre)."""
        return {
            "neutral": self.neutral / self.unit_m,
            "expression": self.expression / self.unit_m,
            "landmark": float(self.landmark),
        }


UH_E2FAR_WEIGHTS = UHE2FARLossWeights()
"""Equal neutral / expressive weights (1 per cm) and DF-MVR's 2D landmark weight (0.02 per 224-crop pixel)."""

UH_E2FAR_PRESETS: dict[str, UHE2FARLossWeights] = {"uh_e2far": UH_E2FAR_WEIGHTS}


def load_uh_e2far_loss_weights(data: Mapping[str, Any] | None) -> UHE2FARLossWeights:
    """Weights from a mapping ``{preset: uh_e2far (default), <field>: value, ...}`` (a train config's ``losses:``).

    Raises:
        ConfigError: unknown preset or field, invalid value (named).
    """
    data = dict(data or {})
    preset = data.pop("preset", "uh_e2far")
    if preset not in UH_E2FAR_PRESETS:
        raise ConfigError(f"preset: expected one of {tuple(UH_E2FAR_PRESETS)} for a UH-E2FAR network, got {preset!r}")
    merged = {**dataclasses.asdict(UH_E2FAR_PRESETS[preset]), **data}
    return from_mapping(UHE2FARLossWeights, merged)
