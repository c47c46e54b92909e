"""Coefficient regularisation, DF-MVR paper eq. 8 (section IV-D), and the two extra regularisers of the
authors' code (Deep3DFace's lighting and reflectance terms; not in the paper, weight 0 in its preset)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.morphable.lighting import SH_COEFFICIENTS
from dfmvr_core.validation import check_shape

from ._checks import check_float, check_mask, safe_ratio

PAPER_REGULARIZATION_WEIGHTS: tuple[float, float, float] = (1.0, 0.8, 0.017)
"""(ω_α, ω_β, ω_γ) of eq. 8 for identity, expression and albedo, taken by the paper from Deep3DFace."""


def _check_weights(weights: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(weights)
    if len(values) != 3 or any(
        isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w < float("inf") for w in values
    ):
        raise ConfigError(f"weights: expected three finite weights >= 0 (identity, expression, albedo), got {values}")
    return values  # type: ignore[return-value]


def regularization_loss(
    identity: Tensor,
    expression: Tensor,
    albedo: Tensor,
    weights: Sequence[float] = PAPER_REGULARIZATION_WEIGHTS,
) -> Tensor:
    """``L_reg = ω_α‖α‖² + ω_β‖β‖² + ω_γ‖γ‖²`` (paper eq. 8), per sample.

    Squared Euclidean norms of the predicted coefficient vectors (sum of squares, not mean), as the paper and
    the authors' code. ICT-FaceKit's expression coefficients are blendshape weights in [0, 1], not PCA
    coefficients; they are regularised the same way, which pulls them towards the neutral face (0) exactly as
    the PCA prior pulls BFM expressions towards the mean. The scale of ω_β was tuned for BFM's 64 PCA
    coefficients; keep that in mind when comparing magnitudes.

    Args:
        identity: (B, K_id) float (α).
        expression: (B, K_exp) float (β).
        albedo: (B, K_tex) float (γ, the texture coefficients).
        weights: (ω_α, ω_β, ω_γ); default the paper's (1, 0.8, 0.017).

    Returns:
        (B,) float, in squared coefficient units.

    Raises:
        ShapeError: not 2-D, batch sizes disagree (names the argument), NaN/inf.
        ConfigError: bad weights.
    """
    w_id, w_exp, w_tex = _check_weights(weights)
    b = check_shape("identity", identity, ("B", None))["B"]
    check_float("identity", identity)
    check_shape("expression", expression, (b, None))
    check_float("expression", expression)
    check_shape("albedo", albedo, (b, None))
    check_float("albedo", albedo)
    return (
        w_id * identity.square().sum(-1)
        + w_exp * expression.square().sum(-1).to(identity.dtype)
        + w_tex * albedo.square().sum(-1).to(identity.dtype)
    )


def lighting_regularization_loss(sh: Tensor) -> Tensor:
    """Deep3DFace's near-monochromatic light prior (used by the authors' code with weight 10; not in the paper).

    ``mean over (view, band coefficient, channel) of (γ_c,k − mean_c γ_c,k)²`` with the 27 SH values laid out
    channel-major (``sh.view(..., 3, 9)``, :mod:`dfmvr_core.morphable.lighting`).

    Args:
        sh: (B, V, 27) or (B, 27) float SH lighting coefficients.

    Returns:
        (B,) float; 0 for white (grey) light.
    """
    if sh.dim() == 2:
        sh = sh.unsqueeze(1)
    check_shape("sh", sh, (None, None, SH_COEFFICIENTS))
    check_float("sh", sh)
    rgb = sh.reshape(sh.shape[0], sh.shape[1], 3, 9)
    return (rgb - rgb.mean(dim=2, keepdim=True)).square().mean(dim=(1, 2, 3))


def reflectance_loss(albedo: Tensor, skin_mask: Tensor) -> Tensor:
    """Deep3DFace's uniform-skin albedo prior (used by the authors' code with weight 5; not in the paper).

    ``Σ_n m_n ‖a_n − ā‖² / Σ_n m_n``, with ``ā`` the mean albedo over the skin vertices ``m``.

    Args:
        albedo: (B, N, 3) float per-vertex albedo (RGB in [0, 1], e.g. ``model.decode_albedo``).
        skin_mask: (N,) bool (or 0/1) skin vertices, e.g. ``model.part_labels == FacePart.SKIN``.

    Returns:
        (B,) float, squared RGB units.
    """
    dims = check_shape("albedo", albedo, ("B", "N", 3))
    check_float("albedo", albedo)
    mask = check_mask("skin_mask", skin_mask, (dims["N"],), albedo.device)
    if not bool(mask.any()):
        raise ShapeError("skin_mask: expected at least one skin vertex, got none")
    m = mask.to(albedo.dtype)[None, :, None]
    count = mask.sum().to(albedo.dtype)
    mean = (albedo * m).sum(1, keepdim=True) / count
    return safe_ratio(((albedo - mean) * m).square().sum(dim=(1, 2)), count.expand(dims["B"]))
