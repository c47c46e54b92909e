"""One DF-MVR training step's computation: network forward, 3DMM decode, pose to the real crop camera, rendering and
the paper's losses (section IV, eq. 1-8). The optimiser side (backward, clipping, stepping) is the trainer's.

Pose convention (:mod:`dfmvr_core.geometry.face_crop`): the network's per-view pose is in the canonical crop camera;
``crop_pose_to_camera`` maps it to the real camera. It only depends on ``K_crop = A·K``, so the step passes
``K = K_crop`` and ``A = [[1, 0, 0], [0, 1, 0]]`` and renders with ``K_crop``: the rendering reproduces the input
crop's geometry exactly.

View dropout (paper V-C): the network sees the dropped views as black images; the per-view losses (photo, mask, 2D
landmarks) are computed on the views the network saw only (a dropped view's pose cannot be inferred from a black
image). The 3D landmark and regularisation terms do not depend on views.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from dfmvr_core.geometry.camera import project_points
from dfmvr_core.geometry.face_crop import CropCamera, crop_pose_to_camera
from dfmvr_core.morphable import FacePart, MorphableModel
from dfmvr_core.render.face_renderer import FaceRenderer, FaceRendering
from dfmvr_training.data.synthetic import gt_vertices
from dfmvr_training.logging_tb import error_grid
from dfmvr_training.losses import (
    LossWeights,
    landmark_2d_loss,
    landmark_2d_weights,
    landmark_3d_loss,
    lighting_regularization_loss,
    mask_loss,
    parse_rendered_views,
    photo_loss,
    reflectance_loss,
    regularization_loss,
    total_loss,
    vertex_loss,
)

__all__ = ["ReconstructionLoss", "StepResult", "autocast_context", "decode_prediction", "to_device"]


def to_device(batch: Mapping[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """Every tensor of a collated batch on ``device`` (non-blocking from pinned memory)."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()}


def autocast_context(amp: str, device: torch.device) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``amp`` = ``bf16`` / ``fp16`` on CUDA; a no-op otherwise."""
    if amp == "none" or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


@dataclass
class StepResult:
    """What one forward + loss pass produced.

    Attributes:
        total: scalar loss (differentiable).
        terms: ``{term: weighted mean}`` detached (sum to ``total``), see :func:`total_loss`.
        raw: ``{term: unweighted batch mean}`` detached (photo in RGB units, landmark_2d in px, landmark_3d in m).
        rendering: the rendering, or None when no term needed one (photo and mask weights 0: the 2D landmarks are
            projected without rasterising).
        used_views: (B, V) bool, the views the network saw and the per-view losses used.
        preview: draws the first sample's ``input | rendering | error`` grid (uint8 RGB) on demand (rendering it
            then if the step did not).
    """

    total: Tensor
    terms: dict[str, Tensor]
    raw: dict[str, Tensor]
    rendering: FaceRendering | None
    used_views: Tensor
    preview: Callable[[], np.ndarray]


def decode_prediction(
    model: MorphableModel, out: Mapping[str, Tensor], K_crop: Tensor, crop: CropCamera
) -> tuple[Tensor, Tensor, Tensor]:
    """Network output → model-frame vertices, albedo and the vertices in each view's real camera.

    Args:
        model: the morphable model (float32, on the output's device).
        out: :meth:`DFMVRNet.forward`'s dict (float32).
        K_crop: (B, V, 3, 3) crop intrinsics ``A·K``.
        crop: the canonical crop camera of the dataset.

    Returns:
        ``vertices (B, N, 3)`` metres model frame, ``albedo (B, N, 3)`` RGB, ``vertices_cam (B, V, N, 3)`` metres in
        each camera's optical frame.
    """
    vertices, albedo = model.decode(out["identity"], out["expression"], out["albedo"])
    pose = out["pose"]
    b, v = pose.shape[:2]
    affine = torch.eye(2, 3, dtype=pose.dtype, device=pose.device).expand(b, v, 2, 3)
    T = crop_pose_to_camera(pose[..., :3], pose[..., 3:], K_crop.to(pose.dtype), affine, crop)
    vertices_cam = torch.einsum("bvij,bnj->bvni", T[..., :3, :3], vertices) + T[..., None, :3, 3]
    return vertices, albedo, vertices_cam


class ReconstructionLoss:
    """Forward + render + losses of one batch (paper IV-E: ``L_all = ω_p L_p + ω_m L_m + ω_l L_l + ω_reg L_reg``).

    Args:
        model: the morphable model (float32, on the training device).
        renderer: a :class:`FaceRenderer` of ``model`` at the crop size.
        weights: the effective loss weights (ablations and ``mask_loss_source: none`` applied).
        crop: the datasets' canonical crop camera.
        parser: frozen face parser (eval mode) for the mask loss, or None (then ω_m must be 0).
        amp: ``none`` / ``bf16`` / ``fp16`` autocast of the network forward (CUDA only).
    """

    def __init__(
        self,
        model: MorphableModel,
        renderer: FaceRenderer,
        weights: LossWeights,
        crop: CropCamera,
        parser: nn.Module | None = None,
        amp: str = "none",
    ) -> None:
        self.model = model
        self.renderer = renderer
        self.weights = weights
        self.crop = crop
        self.parser = parser
        self.amp = amp
        self.multipliers = weights.term_weights()
        self.landmark_weights = landmark_2d_weights(weights.landmark_2d_scheme, device=model.device)
        self.skin_mask = model.part_labels == FacePart.SKIN
        self.front_face = front_face_weights(model)

    def __call__(self, net: nn.Module, batch: Mapping[str, Tensor], used_views: Tensor, epoch: int) -> StepResult:
        """Loss of one batch.

        Args:
            net: the DF-MVR network (possibly DDP-wrapped), in training mode.
            batch: collated samples on the device: ``images`` (B, V, 3, S, S), ``input_parts`` (B, V, S, S) int64
                (network mask input and the input's face mask M), ``landmarks`` (B, V, 68, 2) px, ``visibility``,
                ``K_crop`` (B, V, 3, 3), ``landmarks_3d`` (B, 68, 3) m (optional, with ``has_3d`` (B,) bool: samples
                without 3D ground truth get no 3D landmark loss).
            used_views: (B, V) bool, the views the network sees (after view dropout).
            epoch: current epoch (for ``mask_start_epoch``).
        """
        images = batch["images"]
        parts = batch["input_parts"]
        with autocast_context(self.amp, images.device):
            out = net(images, parts, used_views)
        out = {k: v.float() for k, v in out.items()}
        vertices, albedo, vertices_cam = decode_prediction(self.model, out, batch["K_crop"], self.crop)
        m = self.multipliers
        # Only the photo and mask terms look at pixels; without them the landmarks are projected directly (the
        # renderer projects them the same way), which saves the rasterisation (about a fifth of a CPU step).
        rendering = None
        if m["photo"] > 0 or m["mask"] > 0:
            rendering = self.renderer.render(vertices_cam, batch["K_crop"], albedo, out["lighting"])
            landmarks_2d = rendering.landmarks
        else:
            landmarks_2d = project_landmarks(self.model, vertices_cam, batch["K_crop"])
        if not self.weights.landmark_2d_shape_gradient:  # eq. 4 trains the pose only: the shape enters detached
            _, _, posed_shape = decode_prediction(self.model, _detach_shape(out), batch["K_crop"], self.crop)
            landmarks_2d = project_landmarks(self.model, posed_shape, batch["K_crop"])
        input_rgb = images.movedim(2, -1)
        w = self.weights
        terms: dict[str, Tensor] = {
            "landmark_2d": landmark_2d_loss(
                landmarks_2d,
                batch["landmarks"],
                used_views,
                weights=self.landmark_weights,
                visibility=batch["visibility"],
            ),
            "regularization": regularization_loss(
                out["identity"], out["expression"], out["albedo"], w.regularization_weights
            ),
        }
        if rendering is not None:
            terms["photo"] = photo_loss(
                rendering.rgb, input_rgb, rendering.face_mask, parts, valid=used_views, region=w.photo_region
            )
        if m["landmark_3d"] > 0:
            predicted_3d = self.model.landmarks(vertices)
            target_3d = batch.get("landmarks_3d")
            has_3d = batch.get("has_3d")  # real-image datasets have no 3D ground truth (their samples are skipped)
            if target_3d is None:
                target_3d = torch.zeros_like(predicted_3d)
                has_3d = torch.zeros(predicted_3d.shape[0], dtype=torch.bool, device=predicted_3d.device)
            terms["landmark_3d"] = landmark_3d_loss(predicted_3d, target_3d, has_3d)
        if m["mask"] > 0:
            assert rendering is not None
            if self.parser is None:
                raise RuntimeError("mask loss weight > 0 but no face parser was loaded")  # TrainConfig prevents it
            logits = parse_rendered_views(self.parser, rendering.rgb, used_views)
            terms["mask"] = mask_loss(logits.float(), parts, used_views, region=w.mask_region)
        if m["lighting"] > 0:
            terms["lighting"] = lighting_regularization_loss(out["lighting"])
        if m["reflectance"] > 0:
            terms["reflectance"] = reflectance_loss(albedo, self.skin_mask)
        if m["vertex"] > 0:
            terms["vertex"] = self._vertex_term(vertices, batch)
        total, weighted = total_loss(terms, w, epoch)
        raw = {k: v.detach().mean() for k, v in terms.items()}
        return StepResult(
            total=total,
            terms=weighted,
            raw=raw,
            rendering=rendering,
            used_views=used_views,
            preview=self._preview(rendering, input_rgb, vertices_cam, batch["K_crop"], albedo, out["lighting"]),
        )

    def _preview(
        self,
        rendering: FaceRendering | None,
        input_rgb: Tensor,
        vertices_cam: Tensor,
        K_crop: Tensor,
        albedo: Tensor,
        lighting: Tensor,
    ) -> Callable[[], np.ndarray]:
        """The first sample's ``input | rendering | error`` grid, drawn on demand (rendered then if needed)."""
        first_input = input_rgb[0].detach()
        if rendering is not None:
            rgb, mask = rendering.rgb[0].detach(), rendering.face_mask[0]
            return lambda: error_grid(first_input, rgb, mask)
        first = (vertices_cam[:1].detach(), K_crop[:1], albedo[:1].detach(), lighting[:1].detach())

        def preview() -> np.ndarray:
            with torch.no_grad():
                rendered = self.renderer.render(*first)
            return error_grid(first_input, rendered.rgb[0], rendered.face_mask[0])

        return preview

    def _vertex_term(self, vertices: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        """Dense shape supervision over the front face (``LossWeights.vertex``): samples without ground-truth
        coefficients (real triplets, ``has_3d`` False) count 0."""
        if "gt_identity_full" not in batch:
            none = torch.zeros(len(vertices), dtype=torch.bool, device=vertices.device)
            return vertex_loss(vertices, vertices.detach(), none)
        target = gt_vertices(self.model, batch).to(vertices.dtype)
        return vertex_loss(vertices, target, batch.get("has_3d"), self.front_face)


FRONT_FACE_RADIUS_M = 0.095
"""The evaluated front-face region (Deep3DFace's protocol, :class:`~dfmvr_core.evaluation.EvalConfig`)."""


def _detach_shape(out: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The network outputs with identity and expression detached (the pose, lighting and albedo keep gradients)."""
    return {k: v.detach() if k in ("identity", "expression") else v for k, v in out.items()}


def project_landmarks(model: MorphableModel, vertices_cam: Tensor, K: Tensor) -> Tensor:
    """The 68 landmarks of camera-frame vertices projected with ``K``, as :meth:`FaceRenderer.render` does.

    Args:
        model: the morphable model (landmark vertex indices).
        vertices_cam: (B, V, N, 3) float, metres, each view's optical frame.
        K: (B, V, 3, 3) float pinhole intrinsics, pixels.

    Returns:
        (B, V, 68, 2) float pixels (OpenCV convention).
    """
    b, v, n, _ = vertices_cam.shape
    flat = model.landmarks(vertices_cam.reshape(b * v, n, 3))
    return project_points(flat, K.reshape(b * v, 3, 3).to(vertices_cam.dtype)).view(b, v, 68, 2)


def front_face_weights(model: MorphableModel, radius_m: float = FRONT_FACE_RADIUS_M) -> Tensor:
    """(N,) float 0/1: the mean shape's vertices within ``radius_m`` of its nose tip (iBUG landmark 30), the region
    the benchmark RMSE measures."""
    mean = model.mean_shape.float()
    nose = mean[model.landmarks68[30]]
    return ((mean - nose).norm(dim=-1) <= radius_m).float()
