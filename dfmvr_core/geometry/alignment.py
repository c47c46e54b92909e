"""Weighted similarity (Umeyama 1991) alignment of corresponding 3D point sets.

Used by the DF-MVR 3D landmark loss (paper eq. 5–6): predicted landmarks are aligned to the reference
ones by the best similarity before the distance is taken. Hand-written (not
``scipy.spatial.transform.Rotation.align_vectors``) because it must be batched, run on any torch device
and be differentiable (``torch.linalg.svd``); the tests compare with scipy.
"""

from __future__ import annotations

import torch

from dfmvr_core.errors import ShapeError
from dfmvr_core.validation import check_finite, check_shape

__all__ = ["apply_similarity", "similarity_align"]


def similarity_align(
    source: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None = None,
    with_scale: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best similarity mapping ``source`` onto ``target``.

    Minimises ``Σ_i w_i ‖target_i − (s·R·source_i + t)‖²`` over ``s > 0`` (``s = 1`` if not
    ``with_scale``), proper rotations ``R`` (``det R = +1`` even when the best orthogonal map would be a
    reflection) and ``t``. Closed form (Umeyama 1991): with weighted centroids ``μ_s, μ_t``, centred
    points ``a_i, b_i`` and ``Σ = Σ_i w_i b_i a_iᵀ = U D Vᵀ``: ``R = U S Vᵀ`` with
    ``S = diag(1, 1, sign(det U·det V))``, ``s = tr(D S) / Σ_i w_i ‖a_i‖²``, ``t = μ_t − s R μ_s``.

    Relation to the paper: DF-MVR eq. 5 writes the aligned landmarks as ``a' = s·(R·a + t_paper)``; this
    function returns ``t = s·t_paper`` (so ``t_paper = t / s``).

    Gradients flow to ``source`` (and ``target``/``weights``) through ``torch.linalg.svd``; they are
    undefined (inf/NaN) when singular values of ``Σ`` repeat, e.g. for symmetric or degenerate (collinear,
    coincident) point sets, for which the rotation itself is not unique.

    Args:
        source: ``(B, N, 3)`` float points (e.g. metres), ``N >= 3``.
        target: ``(B, N, 3)`` float points, same units.
        weights: ``(B, N)`` non-negative weights with a positive sum per batch item, or None (uniform).
        with_scale: estimate ``s``; otherwise ``s = 1`` (rigid alignment).

    Returns:
        ``(scale (B,), R (B, 3, 3), t (B, 3))`` in the dtype/device of ``source``.

    Raises:
        ShapeError: shapes disagree, ``N < 3``, non-finite inputs, negative weights or a zero weight sum.
    """
    sizes = check_shape("source", source, ("B", "N", 3))
    check_shape("target", target, (sizes["B"], sizes["N"], 3))
    if sizes["N"] < 3:
        raise ShapeError(
            f"source: need at least N = 3 corresponding points for a similarity alignment, got N = {sizes['N']}"
        )
    if not source.is_floating_point():
        raise ShapeError(f"source: expected a floating-point tensor, got dtype {source.dtype}")
    check_finite("source", source)
    check_finite("target", target)
    target = target.to(source.dtype)
    if weights is None:
        w = torch.full(source.shape[:2], 1.0 / sizes["N"], dtype=source.dtype, device=source.device)
    else:
        check_shape("weights", weights, (sizes["B"], sizes["N"]))
        check_finite("weights", weights)
        weights = weights.to(source.dtype)
        if bool((weights < 0).any()):
            raise ShapeError("weights: expected non-negative weights")
        total = weights.sum(-1, keepdim=True)
        if bool((total <= 0).any()):
            raise ShapeError("weights: expected a positive weight sum for every batch item")
        w = weights / total
    mu_s = (w[..., None] * source).sum(-2)
    mu_t = (w[..., None] * target).sum(-2)
    a = source - mu_s[..., None, :]
    b = target - mu_t[..., None, :]
    cov = (w[..., None] * b).transpose(-1, -2) @ a  # (B, 3, 3) = Σ w b aᵀ
    U, D, Vh = torch.linalg.svd(cov)
    sign = torch.sign(torch.linalg.det(U) * torch.linalg.det(Vh))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    S = torch.ones_like(D)
    S = torch.cat((S[..., :2], sign[..., None]), dim=-1)
    R = (U * S[..., None, :]) @ Vh
    if with_scale:
        var_s = (w * (a * a).sum(-1)).sum(-1)
        scale = (D * S).sum(-1) / var_s.clamp_min(torch.finfo(source.dtype).tiny)
    else:
        scale = torch.ones_like(D[..., 0])
    t = mu_t - scale[..., None] * (R @ mu_s[..., None])[..., 0]
    return scale, R, t


def apply_similarity(points: torch.Tensor, scale: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``s·R·points + t``, the map returned by :func:`similarity_align`.

    Args:
        points: ``(..., N, 3)`` float.
        scale: ``(...)`` float.
        R: ``(..., 3, 3)`` float rotations.
        t: ``(..., 3)`` float, units of ``points``.

    Returns:
        ``(..., N, 3)`` transformed points.
    """
    check_shape("points", points, (..., None, 3))
    check_shape("R", R, (..., 3, 3))
    check_shape("t", t, (..., 3))
    scale = torch.as_tensor(scale, dtype=points.dtype, device=points.device)
    return scale[..., None, None] * (points @ R.transpose(-1, -2)) + t[..., None, :]
