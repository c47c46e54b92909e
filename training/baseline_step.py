"""One training step of the comparison baselines: Deep3DFace (R-Net, C-Net stage) and UH-E2FAR.

The step classes have :class:`~dfmvr_training.step.ReconstructionLoss`'s call signature ``(net, batch, used_views,
epoch) -> StepResult`` and reuse its decoding (:func:`~dfmvr_training.step.decode_prediction`: pose in the canonical
crop camera, rendered with ``K_crop``), so everything the trainer does around a step is shared.

Two ways to feed a network:

* **single view** (Deep3DFace's R-Net and UH-E2FAR are single-image methods): every sample trains on one of its views
  (``used_views`` one-hot, :func:`choose_single_views`). The network is called through :class:`SingleImageForward` on
  the ``(B, 3, S, S)`` selected images only: no compute is spent on the other views, and no black placeholder image
  enters the backbone's BatchNorm statistics. Losses see ``R = 1`` view per sample.
* **all views** (Deep3DFace's C-Net stage): ``net(images, parts, used_views)`` as DF-MVR, the shared coefficients
  aggregated over the valid views, losses over the ``R = V`` views.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.geometry.camera import project_points
from dfmvr_core.geometry.face_crop import CropCamera
from dfmvr_core.morphable import FacePart, MorphableModel
from dfmvr_core.render.face_renderer import FaceRenderer
from dfmvr_training.logging_tb import error_grid
from dfmvr_training.losses import (
    Deep3DFaceLossWeights,
    SkinColorModel,
    UHE2FARLossWeights,
    expressive_shape_loss,
    landmark_2d_loss,
    landmark_2d_weights,
    landmark_squared_loss,
    lighting_regularization_loss,
    neutral_shape_loss,
    perception_loss,
    regularization_loss,
    skin_attention,
    skin_photo_loss,
    texture_variance_loss,
)
from dfmvr_training.step import StepResult, autocast_context, decode_prediction, front_face_weights

__all__ = [
    "BaselineStepResult",
    "Deep3DFaceLoss",
    "SingleImageForward",
    "UHE2FARLoss",
    "choose_single_views",
    "gather_views",
    "weighted_sum",
]

SKIN_VERTEX_PARTS = (FacePart.SKIN, FacePart.NOSE)
"""Vertices of the texture-variance term (Deep3DFace eq. 6: "a pre-defined skin region")."""


@dataclass
class BaselineStepResult(StepResult):
    """:class:`StepResult` of a baseline step: ``rendering`` is the ``(B, R)`` rendering of the supervised views
    (Deep3DFace), or None (UH-E2FAR renders nothing: its losses are geometric); ``preview`` draws the first sample's
    ``input | rendering | error`` grid on demand."""


class SingleImageForward(nn.Module):
    """A baseline network called on single images ``(N, 3, S, S)`` RGB in [0, 1] → ``identity (N, K_id)``,
    ``expression (N, K_exp)``, ``albedo (N, K_tex)``, ``lighting (N, 27)``, ``pose (N, 6)``.

    Uses the network's per-image part: Deep3DFace's ``rnet``; UH-E2FAR's ``forward_single`` (its albedo is 0, the mean
    albedo, and its lighting ambient white, as in its multi-view forward). The wrapped network's parameters are
    shared (the trainer optimises and saves ``net``; this module is what DDP wraps and the step calls).

    Raises:
        ConfigError: a network without a per-image part (DF-MVR).
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        if not hasattr(net, "rnet") and not hasattr(net, "forward_single"):
            raise ConfigError(f"single-view training needs a per-image network, got {type(net).__name__}")
        self.net = net

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        net = self.net
        if hasattr(net, "rnet"):
            return dict(net.rnet(images))
        out = dict(net.forward_single(images))
        out["albedo"] = out["identity"].new_zeros(out["identity"].shape[0], net.sizes.albedo)
        out["lighting"] = net.ambient_lighting(out["pose"][:, None])[:, 0]
        return out


def choose_single_views(valid: Tensor, generator: torch.Generator) -> Tensor:
    """One random valid view per sample, as a one-hot ``(B, V)`` bool mask (all False for a sample without a valid
    view). Deep3DFace trains on single images; drawing the view each step lets every view of the data be seen.

    Args:
        valid: (B, V) bool (on any device).
        generator: CPU generator (the trainer's; its state is checkpointed, so resumed runs draw the same views).
    """
    if valid.dtype != torch.bool or valid.dim() != 2:
        raise ShapeError(f"valid: expected a (B, V) bool tensor, got {tuple(valid.shape)} {valid.dtype}")
    scores = torch.rand(valid.shape, generator=generator).to(valid.device)
    scores = torch.where(valid, scores, torch.full_like(scores, -1.0))
    chosen = torch.nn.functional.one_hot(scores.argmax(dim=1), valid.shape[1]).bool()
    return chosen & valid


def gather_views(value: Tensor, index: Tensor) -> Tensor:
    """``value[b, index[b]]`` kept as a view axis: (B, V, ...) → (B, 1, ...)."""
    shape = (value.shape[0], 1, *value.shape[2:])
    idx = index.view(-1, 1, *([1] * (value.dim() - 2))).expand(shape)
    return value.gather(1, idx)


def weighted_sum(terms: Mapping[str, Tensor], multipliers: Mapping[str, float]) -> tuple[Tensor, dict[str, Tensor]]:
    """``Σ_k w_k · mean_b(L_k)`` and each weighted term (detached) for logging.

    Raises:
        ConfigError: a term without a multiplier.
        ShapeError: a term that is not (B,) or not finite.
    """
    total: Tensor | None = None
    weighted: dict[str, Tensor] = {}
    for name, value in terms.items():
        if name not in multipliers:
            raise ConfigError(f"terms: no weight for loss term {name!r}; expected names from {tuple(multipliers)}")
        if value.dim() != 1:
            raise ShapeError(f"terms[{name!r}]: expected a (B,) per-sample loss, got shape {tuple(value.shape)}")
        part = multipliers[name] * value.mean()
        weighted[name] = part.detach()
        total = part if total is None else total + part
    if total is None:
        raise ConfigError("terms: expected at least one loss term")
    return total, weighted


@dataclass
class _Views:
    """The supervised views of a batch: ``R = 1`` (single view) or ``R = V``."""

    images: Tensor  # (B, R, 3, S, S)
    K_crop: Tensor  # (B, R, 3, 3)
    landmarks: Tensor  # (B, R, 68, 2)
    visibility: Tensor  # (B, R, 68)
    valid: Tensor  # (B, R) bool


class _BaselineLoss:
    """Forward pass (single view or all views) shared by the baseline steps."""

    def __init__(self, model: MorphableModel, crop: CropCamera, amp: str, single_view: bool) -> None:
        self.model = model
        self.crop = crop
        self.amp = amp
        self.single_view = single_view

    def forward(self, net: nn.Module, batch: Mapping[str, Tensor], used_views: Tensor) -> tuple[dict, _Views]:
        images = batch["images"]
        if self.single_view:
            counts = used_views.sum(dim=1)
            if bool((counts > 1).any()):
                raise ShapeError("used_views: single-view training expects at most one used view per sample")
            index = used_views.float().argmax(dim=1)
            views = _Views(
                images=gather_views(images, index),
                K_crop=gather_views(batch["K_crop"], index),
                landmarks=gather_views(batch["landmarks"], index),
                visibility=gather_views(batch["visibility"], index),
                valid=counts[:, None] > 0,
            )
            with autocast_context(self.amp, images.device):
                out = net(views.images[:, 0])
            out = {k: v.float() for k, v in out.items()}
            out["lighting"] = out["lighting"][:, None]
            out["pose"] = out["pose"][:, None]
        else:
            views = _Views(images, batch["K_crop"], batch["landmarks"], batch["visibility"], used_views)
            with autocast_context(self.amp, images.device):
                out = net(images, batch["input_parts"], used_views)
            out = {k: v.float() for k, v in out.items()}
        return out, views

    def landmark_scale(self, reference_px: int) -> float:
        return reference_px / self.crop.size


class Deep3DFaceLoss(_BaselineLoss):
    """Deep3DFace's hybrid loss for one batch (Deng et al. 2019 eq. 7; the terms are in
    :mod:`dfmvr_training.losses.deep3dface`).

    Args:
        model: the morphable model (float32, on the training device).
        renderer: a :class:`FaceRenderer` of ``model`` at the crop size.
        weights: :class:`Deep3DFaceLossWeights` (perception forced to 0 by the caller when there is no embedder).
        crop: the datasets' canonical crop camera.
        skin_model: the skin-colour classifier of the photometric attention.
        embedder: frozen face-recognition network for the perception loss (needed when ``weights.perception > 0``).
        amp: ``none`` / ``bf16`` / ``fp16`` autocast of the network forward (CUDA only).
        single_view: R-Net stage (one view per sample, ``net`` a :class:`SingleImageForward`) or all views (C-Net
            stage, ``net`` the multi-view network).

    Raises:
        ConfigError: a perception weight without an embedder.
    """

    def __init__(
        self,
        model: MorphableModel,
        renderer: FaceRenderer,
        weights: Deep3DFaceLossWeights,
        crop: CropCamera,
        skin_model: SkinColorModel,
        embedder: nn.Module | None = None,
        amp: str = "none",
        single_view: bool = True,
    ) -> None:
        super().__init__(model, crop, amp, single_view)
        if weights.perception > 0 and embedder is None:
            raise ConfigError("perception: weight > 0 needs a face-recognition embedder (perception_embedder)")
        self.renderer = renderer
        self.weights = weights
        self.skin_model = skin_model
        self.embedder = embedder
        self.multipliers = weights.term_weights()
        self.landmark_weights = landmark_2d_weights(weights.landmark_scheme, device=model.device)
        labels = model.part_labels
        self.skin_vertices = (labels == SKIN_VERTEX_PARTS[0]) | (labels == SKIN_VERTEX_PARTS[1])

    def __call__(self, net: nn.Module, batch: Mapping[str, Tensor], used_views: Tensor, epoch: int) -> StepResult:
        """Loss of one batch (``epoch`` unused: every term is on from the start).

        Args:
            net: :class:`SingleImageForward` (single view) or the network (all views), possibly DDP-wrapped.
            batch: collated samples on the device: ``images`` (B, V, 3, S, S), ``input_parts``, ``landmarks``
                (B, V, 68, 2) px, ``visibility`` (B, V, 68), ``K_crop`` (B, V, 3, 3).
            used_views: (B, V) bool: one-hot for single-view training, else the views the network sees.
        """
        out, views = self.forward(net, batch, used_views)
        w = self.weights
        _, albedo, vertices_cam = decode_prediction(self.model, out, views.K_crop, self.crop)
        rendering = self.renderer.render(vertices_cam, views.K_crop, albedo, out["lighting"])
        input_rgb = views.images.movedim(2, -1)
        attention = skin_attention(self.skin_model.probability(input_rgb))
        terms: dict[str, Tensor] = {
            "photo": skin_photo_loss(rendering.rgb, input_rgb, rendering.face_mask, attention, views.valid),
            "landmark": landmark_squared_loss(
                rendering.landmarks,
                views.landmarks,
                views.valid,
                weights=self.landmark_weights,
                visibility=views.visibility,
                scale=self.landmark_scale(w.landmark_reference_px),
            ),
            "regularization": regularization_loss(
                out["identity"], out["expression"], out["albedo"], w.regularization_weights
            ),
            "lighting": lighting_regularization_loss(out["lighting"]),
            "reflectance": texture_variance_loss(albedo, self.skin_vertices.to(albedo.device)),
        }
        if self.multipliers["perception"] > 0:
            assert self.embedder is not None  # checked in __init__
            # the rendered face over the input's background: the embedder sees a whole face crop, as for the input
            mask = rendering.face_mask.detach()[..., None]
            composite = torch.where(mask, rendering.rgb, input_rgb)
            terms["perception"] = perception_loss(
                self.embedder,
                input_rgb,
                composite,
                views.valid,
                input_size=w.perception_input_size,
                signed_input=w.perception_signed_input,
            )
        total, weighted = weighted_sum(terms, self.multipliers)
        raw = {k: v.detach().mean() for k, v in terms.items()}
        first_input, first_rgb, first_mask = input_rgb[0].detach(), rendering.rgb[0].detach(), rendering.face_mask[0]
        return BaselineStepResult(
            total=total,
            terms=weighted,
            raw=raw,
            rendering=rendering,
            used_views=used_views,
            preview=lambda: error_grid(first_input, first_rgb, first_mask),
        )


class UHE2FARLoss(_BaselineLoss):
    """UH-E2FAR's multi-task loss for one batch (Dou et al. 2017; :mod:`dfmvr_training.losses.uh_e2far`): neutral and
    expressive shape against the synthetic ground truth, 2D landmarks for the pose head.

    Args:
        model: the morphable model (float32, on the training device); the ground-truth coefficients refer to it.
        renderer: a :class:`FaceRenderer` at the crop size (previews only: the losses are geometric).
        weights: :class:`UHE2FARLossWeights`.
        crop: the datasets' canonical crop camera.
        amp: autocast of the network forward (CUDA only).
        single_view: one view per sample (:class:`SingleImageForward`, the default: UH-E2FAR is a single-image
            method) or all views (the multi-view mean of the network's forward).
    """

    def __init__(
        self,
        model: MorphableModel,
        renderer: FaceRenderer,
        weights: UHE2FARLossWeights,
        crop: CropCamera,
        amp: str = "none",
        single_view: bool = True,
    ) -> None:
        super().__init__(model, crop, amp, single_view)
        self.renderer = renderer
        self.weights = weights
        self.multipliers = weights.term_weights()
        self.landmark_weights = landmark_2d_weights(weights.landmark_scheme, device=model.device)
        self.vertex_weights = front_face_weights(model) if weights.vertex_region == "front_face" else None

    def __call__(self, net: nn.Module, batch: Mapping[str, Tensor], used_views: Tensor, epoch: int) -> StepResult:
        """Loss of one batch (``epoch`` unused).

        Args:
            net: :class:`SingleImageForward` (single view) or the network (all views), possibly DDP-wrapped.
            batch: as :class:`Deep3DFaceLoss`, plus ``gt_identity_full`` (B, K_id), ``gt_expression_full``
                (B, K_exp) and optionally ``has_3d`` (B,) bool (False: no ground truth, the shape terms give 0).
            used_views: (B, V) bool.
        """
        out, views = self.forward(net, batch, used_views)
        w = self.weights
        vertices, _, vertices_cam = decode_prediction(self.model, out, views.K_crop, self.crop)
        b, r = vertices_cam.shape[:2]
        landmarks = project_points(self.model.landmarks(vertices_cam.flatten(0, 1)), views.K_crop.flatten(0, 1)).view(
            b, r, -1, 2
        )
        if "gt_identity_full" in batch:
            gt_identity, gt_expression = batch["gt_identity_full"], batch["gt_expression_full"]
            has_3d = batch.get("has_3d")
        else:  # no ground truth in this batch (real triplets only): the shape terms count 0
            gt_identity, gt_expression = out["identity"].detach(), out["expression"].detach()
            has_3d = torch.zeros(b, dtype=torch.bool, device=vertices.device)
        dtype = self.model.dtype
        terms = {
            "neutral": neutral_shape_loss(
                self.model, out["identity"], gt_identity.to(dtype), has_3d, self.vertex_weights
            ),
            "expression": expressive_shape_loss(
                self.model, out["expression"], gt_expression.to(dtype), has_3d, self.vertex_weights
            ),
            "landmark": landmark_2d_loss(
                landmarks, views.landmarks, views.valid, weights=self.landmark_weights, visibility=views.visibility
            )
            * self.landmark_scale(w.landmark_reference_px),
        }
        total, weighted = weighted_sum(terms, self.multipliers)
        raw = {k: v.detach().mean() for k, v in terms.items()}
        first = {
            "cam": vertices_cam[:1].detach(),
            "K": views.K_crop[:1],
            "lighting": out["lighting"][:1].detach(),
            "albedo": out["albedo"][:1].detach(),
            "input": views.images[0].movedim(1, -1).detach(),
        }

        def preview() -> np.ndarray:  # rendered only when a preview is drawn
            with torch.no_grad():
                albedo = self.model.decode_albedo(first["albedo"])
                rendering = self.renderer.render(first["cam"], first["K"], albedo, first["lighting"])
            return error_grid(first["input"], rendering.rgb[0], rendering.face_mask[0])

        return BaselineStepResult(
            total=total, terms=weighted, raw=raw, rendering=None, used_views=used_views, preview=preview
        )
