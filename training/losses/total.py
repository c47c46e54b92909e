"""The overall training loss of DF-MVR (paper IV-E): a weighted sum of the per-sample terms."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.validation import check_shape

from ._checks import check_float
from .weights import TERM_NAMES, LossWeights


def total_loss(
    terms: Mapping[str, Tensor], weights: LossWeights, epoch: int | None = None
) -> tuple[Tensor, dict[str, Tensor]]:
    """``L_all = Σ_k w_k · mean_b(L_k[b])`` over the given terms (paper IV-E, eq. 7 expanded).

    The multiplier ``w_k`` of each term is ``weights.term_weights(epoch)[k]`` (photo ω_p, mask ω_m,
    landmark_2d ω_l·ω_2d, landmark_3d ω_l·ω_3d/unit, regularization ω_reg, lighting, reflectance). Terms with
    weight 0 (disabled: ablation v5, a delayed mask loss, the paper's absent priors) may be left out of
    ``terms``; if given they are reported but add nothing.

    Args:
        terms: ``{name: (B,) per-sample loss}`` with names from :data:`TERM_NAMES`, e.g. ``{"photo":
            photo_loss(...), "landmark_3d": landmark_3d_loss(...)}``; one batch size B for all.
        weights: the :class:`LossWeights`.
        epoch: current 0-based epoch (for ``mask_start_epoch``); None = every term on.

    Returns:
        ``(total, parts)``: the scalar loss (differentiable) and ``{name: w_k · mean_b(L_k)}`` for every given
        term, detached, for logging (they sum to ``total``).

    Raises:
        ConfigError: an unknown term name, or a term with a non-zero weight that is missing.
        ShapeError: a term is not (B,), batch sizes disagree (names the term), NaN/inf values.
    """
    if not isinstance(weights, LossWeights):
        raise ConfigError(f"weights: expected a LossWeights, got {type(weights).__name__}")
    unknown = sorted(set(terms) - set(TERM_NAMES))
    if unknown:
        raise ConfigError(f"terms: unknown loss term {unknown[0]!r}; expected names from {TERM_NAMES}")
    multipliers = weights.term_weights(epoch)
    missing = [k for k in TERM_NAMES if multipliers[k] != 0 and k not in terms]
    if missing:
        raise ConfigError(
            f"terms: missing {missing[0]!r}, whose weight is {multipliers[missing[0]]:g}; compute it or set its "
            "weight to 0 (use_landmark_3d: false disables the 3D landmark term)"
        )
    if not terms:
        raise ConfigError("terms: expected at least one loss term")
    batch: int | None = None
    total: Tensor | None = None
    parts: dict[str, Tensor] = {}
    for name in TERM_NAMES:
        if name not in terms:
            continue
        value = terms[name]
        if not isinstance(value, Tensor):
            raise ShapeError(f"terms[{name!r}]: expected a (B,) tensor, got {type(value).__name__}")
        size = check_shape(f"terms[{name!r}]", value, ("B",))["B"]
        if batch is None:
            batch = size
        elif size != batch:
            raise ShapeError(f"terms[{name!r}]: expected batch size {batch} like the other terms, got {size}")
        check_float(f"terms[{name!r}]", value)
        weighted = multipliers[name] * value.mean()
        parts[name] = weighted.detach()
        total = weighted if total is None else total + weighted.to(total.dtype)
    assert total is not None
    return total, parts
