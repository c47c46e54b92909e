"""Deep3DFace's hybrid loss (Deng et al., CVPRW 2019, section 3; "Accurate 3D Face Reconstruction with Weakly-Supervised
Learning: From Single Image to Image Set") as pure, batched, differentiable functions returning per-sample ``(B,)``
losses, plus the naive Bayes skin-colour classifier its photometric attention needs.

``L(x) = w_photo L_photo + w_lm L_lm + w_per L_per + w_reg L_coef + w_gamma L_gamma + w_tex L_tex``  (eq. 7)

=========================================  =====  ==============================================================
term                                       eq.    function
=========================================  =====  ==============================================================
skin-attention photometric loss            2      :func:`skin_photo_loss`, :func:`skin_attention`
skin colour classifier                     --     :class:`SkinColorModel`
landmark loss (weighted squared distance)  3      :func:`landmark_squared_loss`
perception-level loss (1 − cosine)         4      :func:`perception_loss`, :func:`load_embedder`
coefficient regularisation                 5      :func:`~dfmvr_training.losses.regularization_loss`
texture variance (uniform skin albedo)     6      :func:`texture_variance_loss`
monochromatic light (authors' code)        --     :func:`~dfmvr_training.losses.lighting_regularization_loss`
=========================================  =====  ==============================================================

Images are channels last, ``(B, V, H, W, 3)`` RGB in [0, 1], as :class:`~dfmvr_core.render.FaceRendering` and the DF-MVR
losses; each loss averages over the valid views of a sample (one view for R-Net training, several for the C-Net).
"""

from __future__ import annotations

import dataclasses
import math
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dfmvr_core.atomic_io import atomic_path
from dfmvr_core.config import from_mapping
from dfmvr_core.errors import ConfigError, ModelFileError, ShapeError
from dfmvr_core.validation import check_shape

from ._checks import check_float, check_mask, check_weight_mask, mean_over_views, safe_ratio
from .landmarks import LANDMARK_2D_SCHEMES, landmark_2d_weights
from .regularization import reflectance_loss

__all__ = [
    "DEEP3DFACE_PRESETS",
    "DEEP3DFACE_TERM_NAMES",
    "DEEP3DFACE_WEIGHTS",
    "SKIN_MODEL_FORMAT",
    "Deep3DFaceLossWeights",
    "SkinColorModel",
    "landmark_squared_loss",
    "load_deep3dface_loss_weights",
    "load_embedder",
    "perception_loss",
    "rgb_to_ycrcb",
    "skin_attention",
    "skin_photo_loss",
    "texture_variance_loss",
]

SKIN_MODEL_FORMAT = "dfmvr-skin-color-model"
_SKIN_MODEL_VERSION = 1
_VARIANCE_FLOOR = 1e-6  # squared colour units of [0, 1] images; keeps a one-colour class from a zero variance


# ---------------------------------------------------------------------------------------------------- skin colour
def rgb_to_ycrcb(rgb: Tensor) -> Tensor:
    """ITU-R BT.601 full-range YCrCb of RGB in [0, 1] (OpenCV's ``COLOR_RGB2YCrCb`` scaled to [0, 1]).

    Skin classifiers work on YCrCb because skin tones cluster in chroma (Cr, Cb) and the channels are far less
    correlated than R, G, B, which a naive Bayes classifier (independent features) needs.

    Args:
        rgb: (..., 3) float RGB in [0, 1].

    Returns:
        (..., 3) float (Y, Cr, Cb), each in [0, 1].
    """
    r, g, b = rgb.unbind(-1)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return torch.stack((y, (r - y) * 0.713 + 0.5, (b - y) * 0.564 + 0.5), dim=-1)


@dataclass(frozen=True)
class SkinColorModel:
    """Gaussian naive Bayes skin / non-skin classifier on a pixel's YCrCb colour (Deep3DFace section 3.1.1: "a naive
    Bayesian classifier of mixture Gaussians" trained on skin images; here one Gaussian per class, fitted on our
    synthetic data's exact part labels).

    Hand-written: scikit-learn's ``GaussianNB`` is not a dependency of dfmvr, and the closed form (class priors, per
    channel means and variances; ``log p(x|c) = Σ_d log N(x_d; μ_cd, σ²_cd)``) is a few lines of arithmetic that must
    run batched on the training device anyway.

    Attributes:
        mean: (2, 3) float64, per class (0 non-skin, 1 skin) mean YCrCb.
        var: (2, 3) float64, per class channel variances (> 0).
        prior: (2,) float64 class priors (sum 1).
    """

    mean: np.ndarray
    var: np.ndarray
    prior: np.ndarray

    def __post_init__(self) -> None:
        for name, shape in (("mean", (2, 3)), ("var", (2, 3)), ("prior", (2,))):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != shape:
                raise ShapeError(f"{name}: expected shape {shape}, got {value.shape}")
            if not np.isfinite(value).all():
                raise ShapeError(f"{name}: expected finite values, got NaN or inf")
            object.__setattr__(self, name, value)
        if (self.var <= 0).any():
            raise ShapeError(f"var: expected variances > 0, got {self.var.tolist()}")
        if (self.prior <= 0).any() or (self.prior >= 1).any() or abs(self.prior.sum() - 1) > 1e-6:
            raise ShapeError(f"prior: expected two class priors in (0, 1) summing to 1, got {self.prior.tolist()}")

    # ------------------------------------------------------------------------------------------------ fitting
    @classmethod
    def fit(cls, images: Tensor, skin_masks: Tensor) -> SkinColorModel:
        """Fit on labelled pixels.

        Args:
            images: (..., H, W, 3) float RGB in [0, 1] (channels last).
            skin_masks: (..., H, W) bool, True on skin pixels; every other pixel is a non-skin example.

        Raises:
            ShapeError: shapes disagree, NaN/inf, or a class without any pixel.
        """
        return cls.fit_batches([(images, skin_masks)])

    @classmethod
    def fit_batches(cls, batches: Iterable[tuple[Tensor, Tensor]]) -> SkinColorModel:
        """Fit on a stream of ``(images, skin_masks)`` pairs (as :meth:`fit`), accumulating per-class counts, sums and
        sums of squares in float64: the exact fit of all pixels without holding them in memory."""
        count = np.zeros(2)
        total = np.zeros((2, 3))
        squares = np.zeros((2, 3))
        for images, skin_masks in batches:
            dims = check_shape("images", images, (..., "H", "W", 3))
            check_float("images", images)
            skin = check_mask("skin_masks", skin_masks, (*images.shape[:-3], dims["H"], dims["W"]), images.device)
            colours = rgb_to_ycrcb(images.double()).reshape(-1, 3)
            labels = skin.reshape(-1)
            for c, selected in enumerate((~labels, labels)):
                values = colours[selected]
                count[c] += values.shape[0]
                total[c] += values.sum(0).cpu().numpy()
                squares[c] += values.square().sum(0).cpu().numpy()
        for c, name in enumerate(("non-skin", "skin")):
            if count[c] == 0:
                raise ShapeError(f"skin_masks: no {name} pixel to fit the skin colour model on")
        mean = total / count[:, None]
        var = np.maximum(squares / count[:, None] - mean**2, 0.0) + _VARIANCE_FLOOR
        return cls(mean=mean, var=var, prior=count / count.sum())

    # ------------------------------------------------------------------------------------------------ inference
    def probability(self, images: Tensor) -> Tensor:
        """Posterior skin probability ``P(skin | colour)`` of every pixel.

        Args:
            images: (..., 3) float RGB in [0, 1] (e.g. (B, V, H, W, 3)).

        Returns:
            (...) float in [0, 1], dtype and device of ``images``; no gradient (the classifier is fixed).
        """
        check_shape("images", images, (..., 3))
        check_float("images", images)
        with torch.no_grad():
            x = rgb_to_ycrcb(images.double())
            mean = torch.as_tensor(self.mean, device=images.device)
            var = torch.as_tensor(self.var, device=images.device)
            log_prior = torch.as_tensor(np.log(self.prior), device=images.device)
            # log N(x; μ, σ²) summed over the 3 independent channels, per class: (..., 2)
            log_like = -0.5 * ((x[..., None, :] - mean) ** 2 / var + torch.log(2 * math.pi * var)).sum(-1)
            logits = log_like + log_prior
            return torch.sigmoid(logits[..., 1] - logits[..., 0]).to(images.dtype)

    # ------------------------------------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write the model as an ``.npz`` (atomically). Returns the path."""
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(
                handle,
                format=np.array(SKIN_MODEL_FORMAT),
                format_version=np.array(_SKIN_MODEL_VERSION),
                color_space=np.array("ycrcb"),
                mean=self.mean,
                var=self.var,
                prior=self.prior,
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> SkinColorModel:
        """Read a model written by :meth:`save`.

        Raises:
            ModelFileError: missing or unreadable file, another format or version, missing entries, bad values (named).
        """
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"{path}: skin colour model not found (write one with SkinColorModel.save)")
        try:
            with np.load(path, allow_pickle=False) as data:
                entries = {key: data[key] for key in data.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise ModelFileError(f"{path}: not a readable .npz skin colour model ({exc})") from None
        missing = [k for k in ("format", "format_version", "color_space", "mean", "var", "prior") if k not in entries]
        if missing:
            raise ModelFileError(f"{path}: skin colour model lacks {missing}")
        if str(entries["format"]) != SKIN_MODEL_FORMAT or int(entries["format_version"]) != _SKIN_MODEL_VERSION:
            raise ModelFileError(
                f"{path}: format {str(entries['format'])!r} v{entries['format_version']}, expected "
                f"{SKIN_MODEL_FORMAT!r} v{_SKIN_MODEL_VERSION}"
            )
        if str(entries["color_space"]) != "ycrcb":
            raise ModelFileError(f"{path}: colour space {str(entries['color_space'])!r}, expected 'ycrcb'")
        try:
            return cls(mean=entries["mean"], var=entries["var"], prior=entries["prior"])
        except ShapeError as exc:
            raise ModelFileError(f"{path}: {exc}") from None


def skin_attention(probability: Tensor) -> Tensor:
    """Deep3DFace's per-pixel photometric attention (section 3.1.1): ``A_i = 1`` where ``P_i > 0.5``, else ``P_i``.

    Args:
        probability: (...) float skin probabilities in [0, 1] (:meth:`SkinColorModel.probability`).

    Returns:
        (...) float in [0, 1].
    """
    check_weight_mask("probability", probability, tuple(probability.shape))
    probability = probability.float() if probability.dtype == torch.bool else probability
    return torch.where(probability > 0.5, torch.ones_like(probability), probability)


# ---------------------------------------------------------------------------------------------------- losses
def skin_photo_loss(
    rendered_rgb: Tensor,
    input_rgb: Tensor,
    rendered_face_mask: Tensor,
    attention: Tensor,
    valid: Tensor | None = None,
) -> Tensor:
    """Skin-attention photometric loss, Deep3DFace eq. 2: ``L_photo = Σ_{i∈M} A_i ‖I_i − I'_i‖₂ / Σ_{i∈M} A_i`` per
    view, averaged over the valid views.

    Args:
        rendered_rgb: (B, V, H, W, 3) float RGB (``FaceRendering.rgb``). Differentiable.
        input_rgb: (B, V, H, W, 3) float RGB in [0, 1], the input images (a constant).
        rendered_face_mask: (B, V, H, W) bool or [0, 1]: the reprojected face region M (treated as a constant, as the
            authors' code detaches it).
        attention: (B, V, H, W) float in [0, 1], the skin attention A (:func:`skin_attention`).
        valid: (B, V) bool, views that count; None = all.

    Returns:
        (B,) float in RGB units (Euclidean distance of [0, 1] colours, at most √3). Views whose weighted region is
        empty leave the view mean; a sample without any counted view gets 0.

    Raises:
        ShapeError: shapes disagree (names the argument), NaN/inf, masks outside [0, 1].
    """
    dims = check_shape("rendered_rgb", rendered_rgb, ("B", "V", "H", "W", 3))
    b, v, h, w = dims["B"], dims["V"], dims["H"], dims["W"]
    check_float("rendered_rgb", rendered_rgb)
    check_shape("input_rgb", input_rgb, (b, v, h, w, 3))
    check_float("input_rgb", input_rgb)
    region = check_weight_mask("rendered_face_mask", rendered_face_mask, (b, v, h, w))
    attention = check_weight_mask("attention", attention, (b, v, h, w))
    valid_mask = check_mask("valid", valid, (b, v), rendered_rgb.device)
    if valid_mask is None:
        valid_mask = torch.ones(b, v, dtype=torch.bool, device=rendered_rgb.device)
    dtype = rendered_rgb.dtype
    weights = attention.to(rendered_rgb.device, dtype) * region.detach().to(rendered_rgb.device, dtype)
    difference = rendered_rgb - input_rgb.to(dtype)
    distance = (difference.square().sum(-1) + 1e-12).sqrt()  # finite gradient where the images agree
    denominator = weights.sum(dim=(-2, -1))
    per_view = safe_ratio((weights * distance).sum(dim=(-2, -1)), denominator)
    return mean_over_views(per_view, valid_mask & (denominator > 0))


def landmark_squared_loss(
    pred_lm: Tensor,
    target_lm: Tensor,
    valid: Tensor | None = None,
    weights: Tensor | None = None,
    visibility: Tensor | None = None,
    *,
    scale: float = 1.0,
) -> Tensor:
    """Deep3DFace's landmark loss, eq. 3: ``L_lm = 1/N Σ_n ω_n ‖q_n − q'_n‖²`` (squared distance, unlike DF-MVR's
    eq. 4), per view, averaged over the valid views.

    Args:
        pred_lm: (B, V, N, 2) float pixels (``FaceRendering.landmarks``). Differentiable.
        target_lm: (B, V, N, 2) float pixels.
        valid: (B, V) bool; None = all.
        weights: (N,) ω_n >= 0; None = 20 on landmarks 28-30 and 60-67, 1 elsewhere (Deep3DFace, needs N = 68).
        visibility: (B, V, N) bool, landmarks to count (N becomes their number); None = all.
        scale: distances are multiplied by this before squaring: ``224 / crop size`` gives pixels of a 224 crop, the
            size the published weight 1.6e-3 was set for.

    Returns:
        (B,) float, squared (scaled) pixels.
    """
    dims = check_shape("pred_lm", pred_lm, ("B", "V", "N", 2))
    b, v, n = dims["B"], dims["V"], dims["N"]
    check_float("pred_lm", pred_lm)
    check_shape("target_lm", target_lm, (b, v, n, 2))
    check_float("target_lm", target_lm)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < math.inf:
        raise ConfigError(f"scale: expected a positive finite factor, got {scale!r}")
    valid_mask = check_mask("valid", valid, (b, v), pred_lm.device)
    if valid_mask is None:
        valid_mask = torch.ones(b, v, dtype=torch.bool, device=pred_lm.device)
    if weights is None:
        if n != 68:
            raise ShapeError(f"weights: required for N = {n} landmarks (the default weights are for N = 68)")
        weights = landmark_2d_weights("deep3dface", dtype=pred_lm.dtype, device=pred_lm.device)
    check_shape("weights", weights, (n,))
    check_float("weights", weights)
    if bool((weights < 0).any()):
        raise ShapeError("weights: expected non-negative landmark weights")
    visible = check_mask("visibility", visibility, (b, v, n), pred_lm.device)
    if visible is None:
        visible = torch.ones(b, v, n, dtype=torch.bool, device=pred_lm.device)
    squared = ((pred_lm - target_lm.to(pred_lm.dtype)) * scale).square().sum(-1)  # (B, V, N)
    w = weights.to(pred_lm.device, pred_lm.dtype) * visible.to(pred_lm.dtype)
    count = visible.sum(-1).to(pred_lm.dtype)
    per_view = safe_ratio((w * squared).sum(-1), count)
    return mean_over_views(per_view, valid_mask & (count > 0))


def load_embedder(path: str | Path, device: torch.device | str | None = None) -> nn.Module:
    """A face-recognition embedder from a file, frozen (eval mode, no parameter gradients; gradients still reach its
    input).

    dfmvr ships no recognition network (Deep3DFace uses ArcFace/FaceNet, whose weights have their own licences); any
    network mapping (N, 3, S, S) images to (N, D) embeddings works, saved as

    * ``.pt2``: a ``torch.export`` program (``torch.export.save(torch.export.export(model.eval(), (x,),
      dynamic_shapes=...), "r50.pt2")``, with a dynamic batch dimension), or
    * any other suffix: TorchScript (``torch.jit.script(model).save("r50.pt")``; deprecated by PyTorch, still read).

    Raises:
        ModelFileError: missing file, or not a readable program of that kind.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: perception embedder not found (a torch.export .pt2 or TorchScript file)")
    kind = "torch.export program" if path.suffix == ".pt2" else "TorchScript embedder"
    try:
        if path.suffix == ".pt2":
            module = torch.export.load(str(path)).module()
            if device is not None:
                module = module.to(device)
        else:
            module = torch.jit.load(str(path), map_location=device if device is not None else "cpu")
    except (RuntimeError, ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path}: not a {kind} ({first})") from None
    return freeze_embedder(module)


def freeze_embedder(module: nn.Module) -> nn.Module:
    """``module`` in eval mode with ``requires_grad`` off on every parameter (gradients still reach its input).

    ``torch.export`` programs keep the mode they were exported in (they refuse ``eval()``)."""
    if not isinstance(module, nn.Module):
        raise ConfigError(f"embedder: expected a torch.nn.Module, got {type(module).__name__}")
    try:
        module.eval()
    except NotImplementedError:
        pass
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


def _embed(embedder: nn.Module, images: Tensor, input_size: int | None, signed: bool) -> Tensor:
    x = images.movedim(-1, 1)  # (N, 3, H, W)
    if input_size is not None and tuple(x.shape[-2:]) != (input_size, input_size):
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False, antialias=True)
    if signed:
        x = 2 * x - 1
    out = embedder(x)
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != x.shape[0] or not out.is_floating_point():
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ShapeError(f"embedder: expected float embeddings of shape ({x.shape[0]}, D), got {shape}")
    if not bool(torch.isfinite(out).all()):
        raise ShapeError("embedder: produced NaN or inf embeddings")
    return F.normalize(out.float(), dim=-1, eps=1e-8)


def perception_loss(
    embedder: nn.Module,
    input_rgb: Tensor,
    rendered_rgb: Tensor,
    valid: Tensor | None = None,
    *,
    input_size: int | None = 112,
    signed_input: bool = True,
) -> Tensor:
    """Perception-level loss, Deep3DFace eq. 4: ``L_per = 1 − <f(I), f(I')> / (‖f(I)‖ ‖f(I')‖)`` with ``f`` a frozen
    face recognition network, per view, averaged over the valid views.

    The input's embedding is a constant (no gradient); the rendering's embedding carries the gradient through the
    frozen ``embedder`` to the rendered pixels.

    Args:
        embedder: frozen module (N, 3, S, S) → (N, D) (:func:`load_embedder`, or any ``nn.Module``; its mode and
            ``requires_grad`` are left as the caller set them).
        input_rgb: (B, V, H, W, 3) float RGB in [0, 1], the input face crops.
        rendered_rgb: (B, V, H, W, 3) float RGB, the renderings (composited over the input's background by the caller
            when the embedder expects a whole face crop). Differentiable.
        valid: (B, V) bool; only valid views are embedded. None = all.
        input_size: the embedder's input side S (images are resized, antialiased bilinear); None = keep H × W.
        signed_input: feed ``2x − 1`` (ArcFace's [-1, 1] convention, as the authors' code) instead of [0, 1].

    Returns:
        (B,) float in [0, 2]; 0 when the embeddings point the same way.

    Raises:
        ShapeError: shapes disagree, NaN/inf, an embedder output that is not (N, D) float or not finite.
    """
    dims = check_shape("input_rgb", input_rgb, ("B", "V", "H", "W", 3))
    b, v, h, w = dims["B"], dims["V"], dims["H"], dims["W"]
    check_float("input_rgb", input_rgb)
    check_shape("rendered_rgb", rendered_rgb, (b, v, h, w, 3))
    check_float("rendered_rgb", rendered_rgb)
    if input_size is not None and (isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 8):
        raise ConfigError(f"input_size: expected an integer >= 8 or None, got {input_size!r}")
    valid_mask = check_mask("valid", valid, (b, v), rendered_rgb.device)
    if valid_mask is None:
        valid_mask = torch.ones(b, v, dtype=torch.bool, device=rendered_rgb.device)
    per_view = rendered_rgb.new_zeros(b, v)
    if bool(valid_mask.any()):
        with torch.no_grad():
            target = _embed(embedder, input_rgb[valid_mask].to(rendered_rgb.dtype), input_size, signed_input)
        predicted = _embed(embedder, rendered_rgb[valid_mask], input_size, signed_input)
        if predicted.shape != target.shape:
            raise ShapeError(f"embedder: embedding sizes differ ({tuple(predicted.shape)} vs {tuple(target.shape)})")
        per_view = per_view.index_put((valid_mask,), (1 - (predicted * target).sum(-1)).to(per_view.dtype))
    return mean_over_views(per_view, valid_mask)


def texture_variance_loss(albedo: Tensor, skin_mask: Tensor) -> Tensor:
    """Deep3DFace eq. 6 texture variance (uniform skin albedo): :func:`~dfmvr_training.losses.reflectance_loss`.

    Args:
        albedo: (B, N, 3) float per-vertex albedo.
        skin_mask: (N,) bool skin-region vertices.

    Returns:
        (B,) float, squared RGB units.
    """
    return reflectance_loss(albedo, skin_mask)


# ---------------------------------------------------------------------------------------------------- weights
_D3DF_WEIGHT_FIELDS = (
    "photo",
    "landmark",
    "perception",
    "regularization",
    "reg_identity",
    "reg_expression",
    "reg_albedo",
    "lighting",
    "reflectance",
)
DEEP3DFACE_TERM_NAMES: tuple[str, ...] = (
    "photo",
    "landmark",
    "perception",
    "regularization",
    "lighting",
    "reflectance",
)


@dataclass(frozen=True)
class Deep3DFaceLossWeights:
    """Weights of Deep3DFace's hybrid loss (eq. 7) and the options of its terms; defaults are the published ones
    (:data:`DEEP3DFACE_WEIGHTS`).

    Attributes:
        photo: w_photo, skin-attention photometric loss (eq. 2). 1.92.
        landmark: w_lm, squared landmark distance (eq. 3) in pixels of 224 crops. 1.6e-3.
        perception: w_per, perception loss (eq. 4). 0.2.
        regularization: w_reg, coefficient regulariser (eq. 5). 3e-4.
        reg_identity, reg_expression, reg_albedo: ω_α, ω_β, ω_γ inside eq. 5. 1, 0.8, 1.7e-2.
        lighting: w_gamma, monochromatic SH light prior (authors' code). 10.
        reflectance: w_tex, texture variance (eq. 6). 5.
        landmark_scheme: which landmarks get weight 20 (:func:`landmark_2d_weights`); "deep3dface": 28-30 and 60-67.
        landmark_reference_px: the crop size the landmark weight was set for (224): distances of other crop sizes are
            scaled by ``landmark_reference_px / size`` before squaring, so the weight carries over.
        perception_input_size: the embedder's input side (ArcFace: 112); renderings and inputs are resized to it.
        perception_signed_input: feed the embedder ``2x − 1`` ([-1, 1], ArcFace) instead of [0, 1].
    """

    photo: float = 1.92
    landmark: float = 1.6e-3
    perception: float = 0.2
    regularization: float = 3.0e-4
    reg_identity: float = 1.0
    reg_expression: float = 0.8
    reg_albedo: float = 1.7e-2
    lighting: float = 10.0
    reflectance: float = 5.0
    landmark_scheme: str = "deep3dface"
    landmark_reference_px: int = 224
    perception_input_size: int = 112
    perception_signed_input: bool = True

    def __post_init__(self) -> None:
        for name in _D3DF_WEIGHT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ConfigError(f"{name}: expected a finite weight >= 0, got {value!r}")
        if self.landmark_scheme not in LANDMARK_2D_SCHEMES:
            raise ConfigError(
                f"landmark_scheme: expected one of {tuple(LANDMARK_2D_SCHEMES)}, got {self.landmark_scheme!r}"
            )
        for name, low in (("landmark_reference_px", 1), ("perception_input_size", 8)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 4096:
                raise ConfigError(f"{name}: expected an integer in [{low}, 4096], got {value!r}")
        if not isinstance(self.perception_signed_input, bool):
            raise ConfigError(f"perception_signed_input: expected true or false, got {self.perception_signed_input!r}")

    @property
    def regularization_weights(self) -> tuple[float, float, float]:
        """(ω_α, ω_β, ω_γ) for :func:`~dfmvr_training.losses.regularization_loss`."""
        return (self.reg_identity, self.reg_expression, self.reg_albedo)

    def term_weights(self) -> dict[str, float]:
        """The multiplier of each term of :data:`DEEP3DFACE_TERM_NAMES`."""
        return {name: float(getattr(self, name)) for name in DEEP3DFACE_TERM_NAMES}


DEEP3DFACE_WEIGHTS = Deep3DFaceLossWeights()
"""The published weights, as sicxu/Deep3DFaceRecon_pytorch ``models/facerecon_model.py`` sets them (``--w_color 1.92
--w_lm 1.6e-3 --w_feat 0.2 --w_reg 3e-4 --w_id 1.0 --w_exp 0.8 --w_tex 1.7e-2 --w_gamma 10 --w_reflc 5``; its
``models/losses.py`` squares the landmark distances with 20× on 28-30 and the last 8 points)."""

DEEP3DFACE_PRESETS: dict[str, Deep3DFaceLossWeights] = {"deep3dface": DEEP3DFACE_WEIGHTS}


def load_deep3dface_loss_weights(data: Mapping[str, Any] | None) -> Deep3DFaceLossWeights:
    """Weights from a mapping ``{preset: deep3dface (default), <field>: value, ...}`` (a train config's ``losses:``).

    Raises:
        ConfigError: unknown preset or field, invalid value (named).
    """
    data = dict(data or {})
    preset = data.pop("preset", "deep3dface")
    if preset not in DEEP3DFACE_PRESETS:
        allowed = tuple(DEEP3DFACE_PRESETS)
        raise ConfigError(f"preset: expected one of {allowed} for a Deep3DFace network, got {preset!r}")
    merged = {**dataclasses.asdict(DEEP3DFACE_PRESETS[preset]), **data}
    return from_mapping(Deep3DFaceLossWeights, merged)
