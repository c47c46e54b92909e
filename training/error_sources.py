"""Where a network's benchmark error comes from: the identity or the expression (synthetic benchmarks only).

The paper's metric (:mod:`dfmvr_core.evaluation`) scores the whole mesh. On a synthetic benchmark the ground-truth
coefficients are known, so the error can be split by swapping in the truth for one part of the prediction (the
3DMM is linear, paper eq. 1: ``S = S̄ + B_id α + B_exp β``):

* ``rmse_mm_true_identity`` — the metric with the true ``α`` and the predicted ``β``: the error the expression
  leaves (what a perfect identity would reach);
* ``rmse_mm_true_expression`` — the predicted ``α`` with the true ``β``: the error the identity leaves;
* ``identity_variance_explained`` / ``expression_variance_explained`` — ``1 − Σ‖B(p − g)‖² / Σ‖B(g − ḡ)‖²`` over the
  benchmark's samples and the 95 mm front-face vertices (the region the metric scores): the share of the
  benchmark's shape variation, in vertex space (mm²), that the predicted part explains. 0 is the mean prediction's
  score; negative is worse than predicting the benchmark's mean;
* ``identity_r2_leading`` — the coefficient R² of the first identity modes (the largest shape variations).

This is a diagnostic no library offers for a 3DMM regressor, hence written here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from dfmvr_core.errors import ShapeError
from dfmvr_core.evaluation import statistics
from dfmvr_training.evaluation import evaluate_meshes
from dfmvr_training.step import front_face_weights

if TYPE_CHECKING:  # benchmark_eval imports this module
    from dfmvr_training.benchmark_eval import BenchmarkSamples

__all__ = ["ERROR_SOURCE_DEFINITIONS", "LEADING_MODES", "error_sources", "format_error_sources"]

LEADING_MODES = 5
"""How many leading identity coefficients get their own R²."""

ERROR_SOURCE_DEFINITIONS = {
    "rmse_mm_true_identity": "rmse_mm with the true identity and the predicted expression (the expression's error)",
    "rmse_mm_true_expression": "rmse_mm with the predicted identity and the true expression (the identity's error)",
    "identity_variance_explained": "1 - sum|B_id (pred - true)|^2 / sum|B_id (true - mean true)|^2 over the samples "
    "and the front-face vertices (0 = the benchmark's mean identity, 1 = exact)",
    "expression_variance_explained": "the same for B_exp and the expression coefficients",
    "identity_r2_leading": f"coefficient R^2 of the first {LEADING_MODES} identity modes",
}


def _padded(name: str, predicted: torch.Tensor, size: int) -> torch.Tensor:
    """(count, K) predicted coefficients zero-padded to the model's ``size`` (networks may predict fewer)."""
    if predicted.dim() != 2 or predicted.shape[1] > size:
        raise ShapeError(f"{name}: expected (count, K <= {size}) coefficients, got {tuple(predicted.shape)}")
    out = torch.zeros(predicted.shape[0], size, dtype=torch.float64)
    out[:, : predicted.shape[1]] = predicted.double()
    return out


def _variance_explained(basis: torch.Tensor, predicted: torch.Tensor, true: torch.Tensor) -> float | None:
    """``1 − Σ‖B(p − g)‖² / Σ‖B(g − ḡ)‖²``; ``basis`` (K, M) float64 flattened over the scored vertices."""
    residual = ((predicted - true) @ basis).pow(2).sum()
    spread = ((true - true.mean(0, keepdim=True)) @ basis).pow(2).sum()
    return float(1.0 - residual / spread) if float(spread) > 0 else None


def error_sources(
    bench: BenchmarkSamples, identity: torch.Tensor, expression: torch.Tensor, *, progress: bool = False
) -> dict[str, Any]:
    """Split a network's benchmark error into its identity and expression parts (see the module docstring).

    Args:
        bench: the benchmark samples (their ``gt_identity_full`` / ``gt_expression_full``).
        identity: ``(count, K_id)`` float predicted identity coefficients (K_id up to the model's).
        expression: ``(count, K_exp)`` float predicted expression coefficients.
        progress: tqdm bars of the metric.

    Returns:
        ``rmse_mm_true_identity`` and ``rmse_mm_true_expression`` statistics (mm), ``identity_variance_explained``,
        ``expression_variance_explained`` (floats, None for a benchmark without variation) and
        ``identity_r2_leading`` (list of floats or None).

    Raises:
        ShapeError: coefficients of the wrong shape or count (names which).
    """
    model = bench.model
    true_id = torch.stack([s["gt_identity_full"] for s in bench.samples]).double()
    true_exp = torch.stack([s["gt_expression_full"] for s in bench.samples]).double()
    pred_id = _padded("identity", identity, true_id.shape[1])
    pred_exp = _padded("expression", expression, true_exp.shape[1])
    if len(pred_id) != bench.count or len(pred_exp) != bench.count:
        raise ShapeError(f"identity/expression: expected {bench.count} samples, got {len(pred_id)}/{len(pred_exp)}")
    model64 = model.to(dtype=torch.float64)
    front = front_face_weights(model).bool()

    def rmse(alpha: torch.Tensor, beta: torch.Tensor) -> dict[str, float | None]:
        vertices = model64.decode_shape(alpha, beta)
        metrics = evaluate_meshes(vertices, bench.gt, bench.faces, indices=bench.indices, progress=progress)
        return statistics([m.rmse_mm for m in metrics])

    id_basis = model64.id_basis[:, front].reshape(model64.id_basis.shape[0], -1)
    exp_basis = model64.exp_basis[:, front].reshape(model64.exp_basis.shape[0], -1)
    leading = []
    for k in range(min(LEADING_MODES, true_id.shape[1])):
        spread = float((true_id[:, k] - true_id[:, k].mean()).pow(2).sum())
        residual = float((pred_id[:, k] - true_id[:, k]).pow(2).sum())
        leading.append(round(1.0 - residual / spread, 4) if spread > 0 else None)
    return {
        "rmse_mm_true_identity": rmse(true_id, pred_exp),
        "rmse_mm_true_expression": rmse(pred_id, true_exp),
        "identity_variance_explained": _variance_explained(id_basis, pred_id, true_id),
        "expression_variance_explained": _variance_explained(exp_basis, pred_exp, true_exp),
        "identity_r2_leading": leading,
    }


def format_error_sources(sources: dict[str, Any]) -> str:
    """One line for a terminal: both swapped RMSEs and the shares of variance explained."""

    def share(value: float | None) -> str:
        return "n/a" if value is None else f"{round(100 * value)} %"

    return (
        f"error sources: true identity -> {sources['rmse_mm_true_identity']['mean']:.3f} mm, true expression -> "
        f"{sources['rmse_mm_true_expression']['mean']:.3f} mm; variance explained: identity "
        f"{share(sources['identity_variance_explained'])}, expression {share(sources['expression_variance_explained'])}"
    )
