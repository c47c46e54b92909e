"""Dense 3D supervision from synthetic ground truth: the mean vertex distance between the predicted and the true
face shape in the model frame.

Not part of DF-MVR's loss (the paper supervises 3D only through 68 aligned landmarks, eq. 5-6); it is the
multi-task 3D loss of UH-E2FAR (Dou et al. 2017) and the recipe option that makes training on synthetic data fit a
CPU budget (``LossWeights.vertex``; 0 in the paper and authors' presets). It needs ground-truth shapes, which only
synthetic data (and 3D scans) have: samples without them are masked out with ``valid``.
"""

from __future__ import annotations

from torch import Tensor

from dfmvr_core.errors import ShapeError
from dfmvr_core.validation import check_shape

from ._checks import check_float, check_mask, safe_ratio


def vertex_loss(
    pred_vertices: Tensor,
    target_vertices: Tensor,
    valid: Tensor | None = None,
    vertex_weights: Tensor | None = None,
) -> Tensor:
    """``Σ_n w_n ‖v_n − v'_n‖₂ / Σ_n w_n`` per sample: the weighted mean Euclidean vertex error.

    Both shapes are in the model frame (the network predicts shape and pose separately), so no alignment is done:
    the term supervises identity and expression only.

    Args:
        pred_vertices: (B, N, 3) float, metres, model frame (``model.decode``'s shape).
        target_vertices: (B, N, 3) float, metres, model frame (e.g. :func:`dfmvr_training.data.gt_vertices`).
        valid: (B,) bool, False for samples without a ground-truth shape (their target may hold anything finite);
            None = all valid.
        vertex_weights: (N,) float >= 0, e.g. 1 inside the evaluated front-face region and 0 elsewhere; None =
            every vertex counts equally.

    Returns:
        (B,) float, metres; 0 for invalid samples.

    Raises:
        ShapeError: shapes disagree (names the argument), NaN/inf, negative or all-zero vertex weights.
    """
    dims = check_shape("pred_vertices", pred_vertices, ("B", "N", 3))
    b, n = dims["B"], dims["N"]
    check_float("pred_vertices", pred_vertices)
    check_shape("target_vertices", target_vertices, (b, n, 3))
    check_float("target_vertices", target_vertices)
    valid_mask = check_mask("valid", valid, (b,), pred_vertices.device)
    difference = pred_vertices - target_vertices.to(pred_vertices.dtype)
    distance = (difference.square().sum(-1) + 1e-18).sqrt()  # (B, N); finite gradient at a perfect fit
    if vertex_weights is None:
        per_sample = distance.mean(dim=1)
    else:
        check_shape("vertex_weights", vertex_weights, (n,))
        check_float("vertex_weights", vertex_weights)
        if bool((vertex_weights < 0).any()) or not bool((vertex_weights > 0).any()):
            raise ShapeError("vertex_weights: expected weights >= 0 with at least one > 0")
        w = vertex_weights.to(distance.dtype)
        per_sample = safe_ratio((distance * w).sum(dim=1), w.sum().expand(b))
    if valid_mask is not None:
        per_sample = per_sample * valid_mask.to(per_sample.dtype)
    return per_sample
