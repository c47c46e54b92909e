"""Coefficient heads: linear maps from the regressor's pooled feature vector to the 3DMM, lighting and pose values.

DF-MVR regresses, from one feature vector per multi-view sample (paper III-D): identity α, expression β, albedo γ
(shared by the views: one face), and per view the spherical-harmonics lighting (27 values) and the pose (3 Euler
angles in radians, ``R = Rz·Ry·Rx``, + 3 translation values in metres around the reference distance; converted to
camera frames outside the network by :func:`dfmvr_core.geometry.pose.euler_pose_to_camera`).

Initialisation (so that an untrained network renders something sensible):

* pose: weights and bias zero → the frontal reference pose (angles 0, translation 0) for every view;
* lighting: weights and bias zero, plus :data:`~dfmvr_core.morphable.lighting.AMBIENT_DC` added to each view's
  three DC terms (indices 0, 9, 18 of the channel-major 27) → plain ambient light;
* identity, albedo, PCA expression: weights ~ N(0, 0.01²), bias 0 → close to the mean face;
* blendshape expression (ICT, weights in [0, 1]): a sigmoid, with the bias at ``logit(0.05)`` → near-neutral face
  without starting deep in the sigmoid's flat tail.

The authors' code (``weiguangzhao/DF_MVR``) predicts a single 27-value lighting shared by the three views; we
predict one per view (the views are lit from different directions in the camera frames), as the rest of dfmvr
expects. It also splits the pose into rotation / xy-offset / z-offset 1×1 convs per view, which is the same linear
map as our per-view 6-value head.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dfmvr_core.errors import ConfigError
from dfmvr_core.morphable.lighting import AMBIENT_DC, SH_COEFFICIENTS
from dfmvr_core.morphable.model import POSE_COEFFICIENTS, CoefficientSizes
from dfmvr_core.validation import check_shape

__all__ = ["EXPRESSION_KINDS", "LIGHTING_DC_INDICES", "CoefficientHeads"]

EXPRESSION_KINDS = ("pca", "blendshape")

LIGHTING_DC_INDICES = (0, 9, 18)
"""DC (l = 0) term of R, G and B in the channel-major 27-value SH layout of :mod:`dfmvr_core.morphable.lighting`."""

BLENDSHAPE_INIT_WEIGHT = 0.05
"""Initial blendshape weight of an untrained network (``sigmoid(bias)``)."""


class CoefficientHeads(nn.Module):
    """Linear heads from a ``(B, feature_dim)`` feature vector to the coefficient groups of ``sizes``.

    Args:
        feature_dim: size of the regressor's pooled feature vector.
        sizes: coefficient group sizes of the loaded morphable model (``MorphableModel.coefficient_sizes``);
            ``lighting`` must be 27 and ``pose_per_view`` 6.
        views: number of views ``V`` (one lighting and one pose per view).
        expression_kind: ``"pca"`` (linear output, e.g. BFM) or ``"blendshape"`` (sigmoid, weights in (0, 1),
            e.g. ICT-FaceKit); normally ``MorphableModel.expression_kind``.
        shared_lighting: one 27-value lighting for all views (the authors' code), repeated to ``(B, V, 27)``;
            default False: one per view.

    Shapes:
        ``forward(features (B, feature_dim))`` → dict ``identity (B, K_id)``, ``expression (B, K_exp)``,
        ``albedo (B, K_tex)``, ``lighting (B, V, 27)``, ``pose (B, V, 6)``.
    """

    def __init__(
        self,
        feature_dim: int,
        sizes: CoefficientSizes,
        views: int = 3,
        expression_kind: str = "pca",
        shared_lighting: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(feature_dim, bool) or not isinstance(feature_dim, int) or feature_dim < 1:
            raise ConfigError(f"feature_dim: expected a positive int, got {feature_dim!r}")
        if not isinstance(sizes, CoefficientSizes):
            raise ConfigError(f"sizes: expected a CoefficientSizes, got {type(sizes).__name__}")
        for name in ("identity", "expression", "albedo"):
            value = getattr(sizes, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"sizes.{name}: expected a positive int, got {value!r}")
        if sizes.lighting != SH_COEFFICIENTS:
            raise ConfigError(f"sizes.lighting: expected {SH_COEFFICIENTS} SH values per view, got {sizes.lighting}")
        if sizes.pose_per_view != POSE_COEFFICIENTS:
            raise ConfigError(
                f"sizes.pose_per_view: expected {POSE_COEFFICIENTS} (3 angles + 3 translation), "
                f"got {sizes.pose_per_view}"
            )
        if isinstance(views, bool) or not isinstance(views, int) or views < 1:
            raise ConfigError(f"views: expected a positive int, got {views!r}")
        if expression_kind not in EXPRESSION_KINDS:
            raise ConfigError(f"expression_kind: expected one of {EXPRESSION_KINDS}, got {expression_kind!r}")
        self.feature_dim = feature_dim
        self.sizes = sizes
        self.views = views
        self.expression_kind = expression_kind
        self.identity = nn.Linear(feature_dim, sizes.identity)
        self.expression = nn.Linear(feature_dim, sizes.expression)
        self.albedo = nn.Linear(feature_dim, sizes.albedo)
        self.shared_lighting = shared_lighting
        self.lighting = nn.Linear(feature_dim, (1 if shared_lighting else views) * sizes.lighting)
        self.pose = nn.Linear(feature_dim, views * sizes.pose_per_view)
        dc = torch.zeros(sizes.lighting)
        dc[list(LIGHTING_DC_INDICES)] = AMBIENT_DC
        self.register_buffer("lighting_offset", dc, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Apply the initialisation described in the module docstring."""
        for layer in (self.identity, self.expression, self.albedo):
            nn.init.normal_(layer.weight, 0.0, 0.01)
            nn.init.zeros_(layer.bias)
        if self.expression_kind == "blendshape":
            nn.init.constant_(self.expression.bias, math.log(BLENDSHAPE_INIT_WEIGHT / (1.0 - BLENDSHAPE_INIT_WEIGHT)))
        for layer in (self.lighting, self.pose):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        check_shape("features", features, (None, self.feature_dim))
        b = features.shape[0]
        expression = self.expression(features)
        if self.expression_kind == "blendshape":
            expression = torch.sigmoid(expression)
        lighting = self.lighting(features).view(b, -1, self.sizes.lighting) + self.lighting_offset
        if self.shared_lighting:
            lighting = lighting.expand(b, self.views, self.sizes.lighting)
        return {
            "identity": self.identity(features),
            "expression": expression,
            "albedo": self.albedo(features),
            "lighting": lighting,
            "pose": self.pose(features).view(b, self.views, self.sizes.pose_per_view),
        }
