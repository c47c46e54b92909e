"""Landmark losses of DF-MVR (paper section IV-C): 2D reprojection (eq. 4) and aligned 3D (eq. 5-6).

iBUG-68 indices are 0-based throughout (jaw 0-16, brows 17-26, nose bridge 27-30, lower nose 31-35, eyes
36-47, outer lips 48-59, inner lips 60-67).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.geometry.alignment import apply_similarity, similarity_align
from dfmvr_core.validation import check_shape

from ._checks import check_float, check_mask, mean_over_views, safe_ratio

NUM_LANDMARKS = 68

NOSE_INDICES: tuple[int, ...] = tuple(range(27, 36))
"""The whole iBUG nose: bridge 27-30 and lower nose 31-35."""
INNER_MOUTH_INDICES: tuple[int, ...] = tuple(range(60, 68))
"""Inner lip contour 60-67."""
EYE_INDICES: tuple[int, ...] = tuple(range(36, 48))
DEEP3DFACE_NOSE_INDICES: tuple[int, ...] = (28, 29, 30)
"""Deep3DFace (and the DF-MVR code) weigh only these nose points, the lower bridge and the tip: ``w[28:31] = 20``."""

LANDMARK_2D_HIGH_WEIGHT = 20.0
"""Eq. 4: "We set the weight to 20 only for the nose and inner mouth landmarks, and to 1 otherwise"."""

Landmark2DScheme = Literal["paper", "deep3dface", "authors_code"]
LANDMARK_2D_SCHEMES: dict[str, tuple[int, ...]] = {
    # The paper's words read literally: every nose landmark (27-35) and the inner mouth (60-67).
    "paper": NOSE_INDICES + INNER_MOUTH_INDICES,
    # Deep3DFace (sicxu/Deep3DFaceRecon_pytorch landmark_loss): 28-30 and the last 8 (60-67).
    "deep3dface": DEEP3DFACE_NOSE_INDICES + INNER_MOUTH_INDICES,
    # weiguangzhao/DF_MVR network/MVRnet.py: 28-30, both eyes 36-47 and 60-67.
    "authors_code": DEEP3DFACE_NOSE_INDICES + EYE_INDICES + INNER_MOUTH_INDICES,
}

IBUG68_ALIGN_INDICES: tuple[int, ...] = (36, 39, 42, 45, 30, 48, 54)
"""The 7 alignment points of eq. 5 on iBUG-68: the four eye corners (36, 39, 42, 45), the nose tip (30) and the
mouth corners (48, 54). The paper does not list them; these are the iBUG points that match the authors' choice
on their 101-point set (:data:`PIXEL_FACE_101_ALIGN_INDICES`)."""
PIXEL_FACE_101_ALIGN_INDICES: tuple[int, ...] = (47, 50, 53, 56, 41, 79, 85)
"""The authors' 7 alignment indices into their 101 Pixel-Face 3D landmarks (``pose_align_idx`` in the code)."""


def landmark_2d_weights(
    scheme: Landmark2DScheme = "paper",
    high_weight: float = LANDMARK_2D_HIGH_WEIGHT,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Per-landmark weights ω_n of eq. 4: ``high_weight`` on the scheme's indices, 1 elsewhere.

    Schemes (0-based iBUG indices at weight 20):

    * ``"paper"``: nose 27-35 and inner mouth 60-67 (17 points), the paper's "nose and inner mouth" read
      literally;
    * ``"deep3dface"``: 28-30 and 60-67 (11 points), Deep3DFace's landmark loss, which the paper follows;
    * ``"authors_code"``: 28-30, eyes 36-47 and 60-67 (23 points), what the DF-MVR repository uses.

    Returns:
        (68,) float.
    """
    if scheme not in LANDMARK_2D_SCHEMES:
        raise ConfigError(f"landmark_2d_scheme: expected one of {tuple(LANDMARK_2D_SCHEMES)}, got {scheme!r}")
    if isinstance(high_weight, bool) or not isinstance(high_weight, (int, float)) or not 0 <= high_weight < 1e9:
        raise ConfigError(f"high_weight: expected a finite weight >= 0, got {high_weight!r}")
    weights = torch.ones(NUM_LANDMARKS, dtype=dtype, device=device)
    weights[list(LANDMARK_2D_SCHEMES[scheme])] = float(high_weight)
    return weights


def landmark_2d_loss(
    pred_lm: Tensor,
    target_lm: Tensor,
    valid: Tensor | None = None,
    weights: Tensor | None = None,
    visibility: Tensor | None = None,
) -> Tensor:
    """Weighted multi-view 2D landmark loss (paper eq. 4), per sample.

    ``L_2d = 1/V Σ_v 1/N Σ_n ω_n ‖l_n^v − l'_n^v‖₂`` (Euclidean distance, not squared, as the paper and the
    authors' code; Deep3DFace squares it). Distances are in pixels of the crop the landmarks are given in and
    are **not** normalised by the image size, as in the paper and the authors' code (224×224 crops), so ω_2d
    assumes 224-pixel crops: scale it by (224 / size) for other crop sizes. With ``visibility`` the sum runs
    over the visible landmarks and ``N`` is their count.

    Args:
        pred_lm: (B, V, N, 2) float, pixels: projected model landmarks (``FaceRendering.landmarks``).
            Differentiable.
        target_lm: (B, V, N, 2) float, pixels: detected landmarks of the input views.
        valid: (B, V) bool, False for missing views; None = all valid.
        weights: (N,) float ω_n ≥ 0; None = :func:`landmark_2d_weights` ("paper" scheme, needs N = 68).
        visibility: (B, V, N) bool (or 0/1): landmarks to use (e.g. the detector's visible points); None = all.

    Returns:
        (B,) float, weighted pixels; 0 when the landmarks coincide. Views without any visible landmark are
        left out of the view mean.

    Raises:
        ShapeError: a shape disagrees (names the argument), NaN/inf values, negative weights.
    """
    dims = check_shape("pred_lm", pred_lm, ("B", "V", "N", 2))
    b, v, n = dims["B"], dims["V"], dims["N"]
    check_float("pred_lm", pred_lm)
    check_shape("target_lm", target_lm, (b, v, n, 2))
    check_float("target_lm", target_lm)
    valid_mask = check_mask("valid", valid, (b, v), pred_lm.device)
    if valid_mask is None:
        valid_mask = torch.ones(b, v, dtype=torch.bool, device=pred_lm.device)
    if weights is None:
        if n != NUM_LANDMARKS:
            raise ShapeError(f"weights: required for N = {n} landmarks (the default weights are for N = 68)")
        weights = landmark_2d_weights(dtype=pred_lm.dtype, device=pred_lm.device)
    check_shape("weights", weights, (n,))
    check_float("weights", weights)
    if bool((weights < 0).any()):
        raise ShapeError("weights: expected non-negative landmark weights")
    visible = check_mask("visibility", visibility, (b, v, n), pred_lm.device)
    if visible is None:
        visible = torch.ones(b, v, n, dtype=torch.bool, device=pred_lm.device)

    distance = torch.linalg.vector_norm(pred_lm - target_lm.to(pred_lm.dtype), dim=-1)  # (B, V, N)
    w = weights.to(device=pred_lm.device, dtype=pred_lm.dtype) * visible.to(pred_lm.dtype)
    count = visible.sum(-1).to(pred_lm.dtype)
    per_view = safe_ratio((w * distance).sum(-1), count)
    return mean_over_views(per_view, valid_mask & (count > 0))


def _check_indices(indices: Sequence[int], n: int) -> list[int]:
    idx = [int(i) for i in indices]
    if len(idx) < 3 or len(set(idx)) != len(idx):
        raise ShapeError(f"align_indices: expected at least 3 distinct landmark indices, got {tuple(idx)}")
    if min(idx) < 0 or max(idx) >= n:
        raise ShapeError(f"align_indices: indices must lie in [0, {n}), got {tuple(idx)}")
    return idx


def landmark_3d_loss(
    pred_lm3d: Tensor,
    target_lm3d: Tensor,
    valid: Tensor | None = None,
    *,
    align_indices: Sequence[int] | None = None,
    detach_alignment: bool = False,
) -> Tensor:
    """3D landmark loss after a similarity alignment on a few points (paper eq. 5-6), per sample.

    Eq. 5: the similarity ``(s, R, t)`` that best maps the predicted alignment points ``a_i`` onto the
    reference ones ``a'_i`` is estimated (Umeyama's closed form, :func:`~dfmvr_core.geometry.similarity_align`:
    least squares, the standard solution of the paper's refs. [35, 36]; eq. 5 prints unsquared norms). Eq. 6:
    all predicted landmarks are mapped with it, ``q_nt = s·R·q_n + t``, and the loss is the mean Euclidean
    distance ``1/N Σ_n ‖q_nt − q'_n‖₂``. The loss is therefore invariant to a similarity transform of the
    prediction: it only measures shape (the pose is left to the 2D losses).

    Gradient: by default it flows through the alignment too (``torch.linalg.svd``), as in the authors' code,
    which does not detach its SVD alignment; the paper does not say. ``detach_alignment=True`` treats
    ``(s, R, t)`` as constants.

    Args:
        pred_lm3d: (B, N, 3) float, metres: the model's landmarks (any frame; e.g. ``model.landmarks(vertices)``).
        target_lm3d: (B, N, 3) float, metres: reference 3D landmarks (e.g. from a scan).
        valid: (B,) bool, False for samples without 3D ground truth (their target is ignored, may hold
            anything finite); None = all valid.
        align_indices: the alignment points (≥ 3 distinct indices). Default for N = 68:
            :data:`IBUG68_ALIGN_INDICES` (eye corners, nose tip, mouth corners). Required for other N (the
            authors' 101-point set: :data:`PIXEL_FACE_101_ALIGN_INDICES`).
        detach_alignment: see above.

    Returns:
        (B,) float, metres (mean landmark distance after alignment); 0 for invalid samples. Multiply by a unit
        factor to express it in other units (see ``LossWeights.landmark_3d_unit_m``).

    Raises:
        ShapeError: shapes disagree (names the argument), NaN/inf, bad indices, degenerate alignment points.
    """
    dims = check_shape("pred_lm3d", pred_lm3d, ("B", "N", 3))
    b, n = dims["B"], dims["N"]
    check_float("pred_lm3d", pred_lm3d)
    check_shape("target_lm3d", target_lm3d, (b, n, 3))
    check_float("target_lm3d", target_lm3d)
    valid_mask = check_mask("valid", valid, (b,), pred_lm3d.device)
    if align_indices is None:
        if n != NUM_LANDMARKS:
            raise ShapeError(f"align_indices: required for N = {n} landmarks (the default is for iBUG N = 68)")
        align_indices = IBUG68_ALIGN_INDICES
    idx = _check_indices(align_indices, n)

    loss = pred_lm3d.new_zeros(b)
    rows = torch.nonzero(valid_mask).flatten() if valid_mask is not None else torch.arange(b, device=loss.device)
    if rows.numel() == 0:
        return loss + 0.0 * pred_lm3d.sum()  # keeps the graph connected; value and gradient 0
    pred = pred_lm3d.index_select(0, rows)
    target = target_lm3d.index_select(0, rows).to(pred.dtype)
    source_points = pred[:, idx]
    if detach_alignment:
        source_points = source_points.detach()
    scale, R, t = similarity_align(source_points, target[:, idx])
    if not bool(torch.isfinite(scale).all()) or bool((scale <= 0).any()):
        raise ShapeError("pred_lm3d: degenerate alignment points (coincident or collinear); cannot align")
    if detach_alignment:
        scale, R, t = scale.detach(), R.detach(), t.detach()
    aligned = apply_similarity(pred, scale, R, t)
    distance = torch.linalg.vector_norm(aligned - target, dim=-1).mean(-1)
    return loss.index_put((rows,), distance)
