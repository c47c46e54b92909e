"""Confidence-weighted fusion of coefficients over the frames of a video stream (beyond the papers).

Deep3DFace's C-Net (Deng et al., CVPRW 2019, sec. 4) aggregates one face's identity over an *image set* as the
element-wise confidence-weighted mean ``α = Σ_j c_j ⊙ α_j ⊘ Σ_j c_j``. A camera rig streaming the same person
produces such a set over time; :class:`ConfidenceAccumulator` applies the same mean across frames, with older frames
exponentially down-weighted so that the estimate can follow a change of subject or expression::

    S_t = d · S_{t−1} + c_t ⊙ x_t        W_t = d · W_{t−1} + c_t        x̂_t = S_t ⊘ W_t

(``d`` = ``decay``; ``d = 0``: the current frame only; ``d = 1``: the confidence-weighted mean of every frame so far;
the effective memory is about ``1 / (1 − d)`` frames). The confidences of a frame are, e.g., the total C-Net
confidence of its valid views (:meth:`~dfmvr_core.networks.deep3dface.Deep3DFaceNet.aggregate`), the number of valid
views, or ones (a plain exponential moving average). Hand-written: it is three array operations per group, and no
library offers an element-wise, confidence-weighted exponential average with per-coefficient weights.

Typical use: the identity (and albedo) of one tracked person; the expression changes from frame to frame, so fuse it
only with a small ``decay`` (or not at all); pose and lighting are not fused (groups without a confidence pass
through unchanged).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from dfmvr_core.errors import ConfigError, ShapeError

__all__ = ["ConfidenceAccumulator"]

WEIGHT_FLOOR = 1e-12
"""A coefficient whose accumulated confidence is at most this has no estimate yet: the current value passes through."""


class ConfidenceAccumulator:
    """Exponentially decayed, confidence-weighted mean of coefficient groups over frames (see the module docstring).

    Args:
        decay: weight factor of the past per frame, in [0, 1].

    Attributes:
        decay: as given. frames: number of :meth:`update` calls since construction or :meth:`reset`.

    Raises:
        ConfigError: ``decay`` outside [0, 1] or not a number.
    """

    def __init__(self, decay: float = 0.9) -> None:
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not math.isfinite(decay):
            raise ConfigError(f"decay: expected a number in [0, 1], got {decay!r}")
        if not 0.0 <= float(decay) <= 1.0:
            raise ConfigError(f"decay: expected a number in [0, 1] (0 = current frame only), got {decay!r}")
        self.decay = float(decay)
        self.frames = 0
        self._sums: dict[str, np.ndarray] = {}
        self._weights: dict[str, np.ndarray] = {}

    def reset(self) -> None:
        """Forget every frame (e.g. when the tracked person changes)."""
        self.frames = 0
        self._sums.clear()
        self._weights.clear()

    @property
    def weights(self) -> dict[str, np.ndarray]:
        """Accumulated (decayed) confidence per fused group, ``W_t`` (copies, float64)."""
        return {name: w.copy() for name, w in self._weights.items()}

    def update(
        self, coefficients: Mapping[str, np.ndarray], confidences: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Add one frame; returns the fused coefficients.

        Args:
            coefficients: ``{group: array}`` of this frame (any shapes, e.g. ``identity (K_id,)``).
            confidences: ``{group: array}`` for the groups to fuse: non-negative, finite, shaped like the group's
                coefficients or broadcastable to them (a scalar gives every coefficient the same weight); 0 means
                "no information in this frame" (the estimate only decays, it does not move).

        Returns:
            Every group of ``coefficients``: fused groups as ``S_t / W_t`` (where nothing has been seen yet, the
            current value), the others unchanged; arrays of the coefficients' dtype.

        Raises:
            ShapeError: a confidence for a group not in ``coefficients``, NaN/inf coefficients in a fused group,
                negative / NaN confidences, shapes that do not broadcast, or a group whose shape changed since the
                last frame (call :meth:`reset`).
        """
        missing = sorted(set(confidences) - set(coefficients))
        if missing:
            raise ShapeError(f"confidences: groups {missing} have no coefficients; expected keys of coefficients")
        checked: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, conf in confidences.items():
            value = np.asarray(coefficients[name], dtype=np.float64)
            if not np.isfinite(value).all():
                raise ShapeError(f"coefficients[{name!r}]: NaN or inf values; expected finite coefficients")
            weight = np.asarray(conf, dtype=np.float64)
            if not np.isfinite(weight).all() or (weight < 0).any():
                raise ShapeError(f"confidences[{name!r}]: expected finite values >= 0")
            try:
                weight = np.broadcast_to(weight, value.shape)
            except ValueError:
                raise ShapeError(
                    f"confidences[{name!r}]: shape {weight.shape} does not broadcast to the coefficients' {value.shape}"
                ) from None
            if name in self._sums and self._sums[name].shape != value.shape:
                raise ShapeError(
                    f"coefficients[{name!r}]: shape {value.shape}, earlier frames had {self._sums[name].shape}; "
                    "call reset() when the model changes"
                )
            checked[name] = (value, weight)
        out = {name: np.asarray(array) for name, array in coefficients.items()}
        for name, (value, weight) in checked.items():
            sums = self.decay * self._sums.get(name, 0.0) + weight * value
            total = self.decay * self._weights.get(name, 0.0) + weight
            self._sums[name], self._weights[name] = sums, total
            seen = total > WEIGHT_FLOOR
            fused = np.where(seen, sums / np.where(seen, total, 1.0), value)
            out[name] = fused.astype(out[name].dtype if out[name].dtype.kind == "f" else np.float64)
        self.frames += 1
        return out
