"""Render :class:`~dfmvr_core.synthesis.sampler.FaceScene` s into full camera images or straight into face crops.

Two targets, one code path:

* ``"full"``: each camera's whole image (``scene.image_size``) with its real intrinsics ``K`` — for rosbags and
  demos.
* ``"crop"``: the network's ``S × S`` face crop of each view, rendered directly (fast: no 640×480 render). The crop
  box comes from the projected ground-truth landmarks (:func:`~dfmvr_core.geometry.face_crop.face_box_from_landmarks`
  with the crop camera's ``box_scale``), jittered by the scene's ``crop_jitter`` (detector noise); the image → crop
  affine ``A`` is :func:`~dfmvr_core.geometry.crop.crop_transform_from_box` and the face is rendered with
  ``K_crop = intrinsics_in_crop(K, A)``, which is exactly what cropping a full render with ``A`` gives (up to the
  resampling of the crop; the tests compare both). Crop pixels that fall outside the real image are black and
  label-free, as :func:`~dfmvr_core.geometry.crop.warp_to_crop`'s zero border makes them.

The face's shading is the renderer's own model (albedo × SH irradiance, linear, clamped to [0, 1]); no gamma, so
the training renderer can reproduce the face exactly. The face is composited over a procedural background and the
result optionally degraded (:mod:`dfmvr_core.synthesis.images`). Several scenes are rendered per call: the
renderer batches ``B`` scenes × ``V`` views.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.geometry.camera import project_points
from dfmvr_core.geometry.crop import crop_transform_from_box, intrinsics_in_crop
from dfmvr_core.geometry.face_crop import CropCamera, face_box_from_landmarks
from dfmvr_core.morphable import MorphableModel
from dfmvr_core.render.face_renderer import FaceRenderConfig, FaceRenderer
from dfmvr_core.synthesis.config import SceneConfig
from dfmvr_core.synthesis.images import degrade_image, fill_face_holes, make_background
from dfmvr_core.synthesis.sampler import FaceScene
from dfmvr_core.validation import check_shape

__all__ = [
    "LANDMARK_VISIBILITY_TOLERANCE_M",
    "SceneRenderer",
    "SceneRendering",
    "crop_boxes",
    "render_scene",
]

LANDMARK_VISIBILITY_TOLERANCE_M = 0.01
"""A landmark is visible when the rendered surface within one pixel of it is no nearer than its own depth minus
this (metres): tolerant of the surface's depth slope at grazing angles, strict for a landmark hidden behind the
nose or the cheek (centimetres behind)."""

TARGETS = ("full", "crop")


@dataclasses.dataclass(frozen=True)
class SceneRendering:
    """One scene rendered into its ``V`` views (numpy, CPU).

    Attributes:
        target: ``"full"`` (camera images) or ``"crop"`` (face crops).
        images: (V, H, W, 3) uint8 RGB, face composited over the background (and degraded when configured).
        parts: (V, H, W) uint8 :class:`~dfmvr_core.morphable.FacePart` labels (0 = background / other); with
            ``fill_holes`` the eye and mouth openings carry the eye / mouth-interior labels.
        face_mask: (V, H, W) bool, a face part is visible (``parts > 0``).
        mask: (V, H, W) bool, the rendered mesh surface (ears and neck included, the openings excluded).
        depth: (V, H, W) float32 metres, camera z of the visible surface, 0 elsewhere.
        landmarks_2d: (V, 68, 2) float32 pixels of ``images`` (OpenCV convention), projected whether visible or not.
        landmark_visibility: (V, 68) bool: inside the image and not hidden (depth test against ``depth``).
        K: (V, 3, 3) float64, the intrinsics ``images`` were rendered with (``K_crop = A·K`` for crops).
        K_camera: (V, 3, 3) float64, the real cameras' intrinsics (full-image pixels).
        A: (V, 2, 3) float64 image → crop affines (``target == "crop"``), else None.
        T_camera_from_model: (V, 4, 4) float64, camera(optical)-from-model, metres.
        vertices: (N, 3) float32 metres, model frame.
        landmarks_3d: (68, 3) float32 metres, model frame.
    """

    target: str
    images: np.ndarray
    parts: np.ndarray
    face_mask: np.ndarray
    mask: np.ndarray
    depth: np.ndarray
    landmarks_2d: np.ndarray
    landmark_visibility: np.ndarray
    K: np.ndarray
    K_camera: np.ndarray
    A: np.ndarray | None
    T_camera_from_model: np.ndarray
    vertices: np.ndarray
    landmarks_3d: np.ndarray


def crop_boxes(landmarks_2d: torch.Tensor, jitter: torch.Tensor, camera: CropCamera) -> torch.Tensor:
    """Image → crop affines of jittered landmark boxes.

    The box is :func:`face_box_from_landmarks` (``camera.box_scale``); its centre moves by ``jitter[..., :2]`` box
    sides and its side is multiplied by ``exp(jitter[..., 2])``.

    Args:
        landmarks_2d: (..., 68, 2) float image pixels.
        jitter: (..., 3) float ``(du, dv, log_scale)``.
        camera: the crop camera (``size``, ``box_scale``).

    Returns:
        (..., 2, 3) affines in the dtype of ``landmarks_2d``.
    """
    check_shape("jitter", jitter, (..., 3))
    centre, side = face_box_from_landmarks(landmarks_2d, camera.box_scale)
    jitter = jitter.to(landmarks_2d.dtype)
    centre = centre + jitter[..., :2] * side[..., None]
    side = side * torch.exp(jitter[..., 2])
    return crop_transform_from_box(centre, side, camera.size)


def _landmark_visibility(depth: torch.Tensor, mask: torch.Tensor, uv: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """(M, 68) bool from depth/mask (M, H, W), landmark pixels uv (M, 68, 2) and depths z (M, 68)."""
    h, w = depth.shape[-2:]
    far = torch.where(mask, depth.double(), torch.full_like(depth, torch.inf, dtype=torch.float64))
    pooled = F.max_pool2d(far[:, None], 3, stride=1, padding=1)[:, 0]  # farthest surface within one pixel
    col = uv[..., 0].round()
    row = uv[..., 1].round()
    inside = (col >= 0) & (col <= w - 1) & (row >= 0) & (row <= h - 1) & (z > 0)
    flat = (row.clamp(0, h - 1) * w + col.clamp(0, w - 1)).long()
    surface = torch.gather(pooled.reshape(pooled.shape[0], -1), 1, flat)
    return inside & (surface >= z - LANDMARK_VISIBILITY_TOLERANCE_M)


def _inside_image(A: torch.Tensor, image_size: tuple[int, int], size: int) -> torch.Tensor:
    """(M, size, size) bool: crop pixels whose image position lies in the real image ([−0.5, W − 0.5]).

    ``A`` is axis-aligned (scale and offset, as :func:`crop_transform_from_box` makes it), so rows and columns
    separate.
    """
    h, w = image_size
    pix = torch.arange(size, dtype=A.dtype)
    u = (pix[None, :] - A[:, 0, 2:3]) / A[:, 0, 0:1]  # (M, size) image column of each crop column
    v = (pix[None, :] - A[:, 1, 2:3]) / A[:, 1, 1:2]
    ok_u = (u >= -0.5) & (u <= w - 0.5)
    ok_v = (v >= -0.5) & (v <= h - 0.5)
    return ok_v[:, :, None] & ok_u[:, None, :]


class SceneRenderer:
    """Renders scenes of one morphable model; caches the float32 model and the per-size face renderers.

    Args:
        model: the morphable model the scenes were sampled for.
        config: the scene config (its ``background`` and ``degradation`` are used here).
        crop_camera: crop size and ``box_scale`` of ``"crop"`` renders.
        device: torch device to render on (the outputs are numpy on the CPU).
    """

    def __init__(
        self,
        model: MorphableModel,
        config: SceneConfig | None = None,
        crop_camera: CropCamera | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.config = config or SceneConfig()
        self.crop_camera = crop_camera or CropCamera()
        if not isinstance(self.crop_camera, CropCamera):
            raise ConfigError(f"crop_camera: expected a CropCamera, got {type(self.crop_camera).__name__}")
        self.device = torch.device(device)
        self.model = model.to(device=self.device, dtype=torch.float32)
        self._renderers: dict[tuple[int, int], FaceRenderer] = {}

    def _renderer(self, height: int, width: int) -> FaceRenderer:
        key = (height, width)
        if key not in self._renderers:
            self._renderers[key] = FaceRenderer(self.model, FaceRenderConfig(height=height, width=width))
        return self._renderers[key]

    def render(self, scenes: Sequence[FaceScene], target: str = "crop") -> list[SceneRendering]:
        """Render a batch of scenes (one renderer call for all ``B × V`` views).

        Args:
            scenes: scenes from :class:`~dfmvr_core.synthesis.sampler.FaceSceneSampler` for this model; all with
                the same number of views and image size.
            target: ``"crop"`` (``S × S`` face crops, ``S = crop_camera.size``) or ``"full"`` (camera images).

        Returns:
            One :class:`SceneRendering` per scene, in order.
        """
        if target not in TARGETS:
            raise ConfigError(f"target: expected one of {list(TARGETS)}, got {target!r}")
        scenes = list(scenes)
        if not scenes:
            return []
        views = {s.num_views for s in scenes}
        sizes = {tuple(s.image_size) for s in scenes}
        if len(views) != 1 or len(sizes) != 1:
            raise ShapeError(
                f"scenes: expected one view count and image size per batch, got views {sorted(views)}, "
                f"sizes {sorted(sizes)}"
            )
        image_size = sizes.pop()
        model, dev = self.model, self.device
        sizes_k = model.coefficient_sizes
        for i, s in enumerate(scenes):
            if (s.identity.shape, s.expression.shape, s.albedo.shape) != (
                (sizes_k.identity,),
                (sizes_k.expression,),
                (sizes_k.albedo,),
            ):
                raise ShapeError(
                    f"scenes[{i}]: coefficient sizes {s.identity.shape[0]}/{s.expression.shape[0]}/"
                    f"{s.albedo.shape[0]} do not match the model's {sizes_k.identity}/{sizes_k.expression}/"
                    f"{sizes_k.albedo}"
                )

        def stack(name: str, dtype: torch.dtype) -> torch.Tensor:
            return torch.as_tensor(np.stack([getattr(s, name) for s in scenes]), dtype=dtype, device=dev)

        with torch.inference_mode():
            vertices, albedo = model.decode(
                stack("identity", torch.float32), stack("expression", torch.float32), stack("albedo", torch.float32)
            )
            T = torch.as_tensor(np.stack([s.T_camera_from_model for s in scenes]), dtype=torch.float64, device=dev)
            K_cam = stack("K", torch.float64)
            v64 = vertices.double()
            verts_cam = torch.einsum("bvij,bnj->bvni", T[..., :3, :3], v64) + T[..., None, :3, 3]
            lm_cam = verts_cam[:, :, model.landmarks68.to(dev)]  # (B, V, 68, 3) float64
            if target == "crop":
                A = crop_boxes(project_points(lm_cam, K_cam), stack("crop_jitter", torch.float64), self.crop_camera)
                K_render = intrinsics_in_crop(K_cam, A)
                height = width = self.crop_camera.size
            else:
                A = None
                K_render = K_cam
                height, width = image_size
            rendering = self._renderer(height, width).render(
                verts_cam.float(), K_render.float(), albedo, stack("lighting", torch.float32)
            )
            b, v = verts_cam.shape[:2]
            landmarks = project_points(lm_cam, K_render)  # float64 pixels of the rendered images
            mask = rendering.mask.reshape(b * v, height, width)
            depth = rendering.depth.reshape(b * v, height, width)
            parts = rendering.parts.reshape(b * v, height, width)
            if A is not None:
                inside = _inside_image(A.reshape(b * v, 2, 3), image_size, height)
                mask = mask & inside
                parts = parts * inside
                depth = depth * inside
            lm_flat = landmarks.reshape(b * v, 68, 2)
            visible = _landmark_visibility(depth, mask, lm_flat, lm_cam[..., 2].reshape(b * v, 68))
            if A is not None:
                # A landmark whose crop pixel lies outside the real image is not visible either.
                col, row = lm_flat.round().unbind(-1)
                flat = (row.clamp(0, height - 1) * width + col.clamp(0, width - 1)).long()
                visible = visible & torch.gather(inside.reshape(b * v, -1), 1, flat)
            rgb = (rendering.rgb.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).reshape(b * v, height, width, 3)
            landmarks_3d = vertices[:, model.landmarks68.to(dev)]
        out = []
        for i, scene in enumerate(scenes):
            rng = np.random.default_rng(scene.image_seed)
            sl = slice(i * v, (i + 1) * v)
            face = rgb[sl].cpu().numpy()
            view_mask = mask[sl].cpu().numpy()
            images = np.empty_like(face)
            parts_np = parts[sl].cpu().numpy().astype(np.uint8)
            inside_np = None if A is None else inside[sl].cpu().numpy()
            for j in range(v):
                background = make_background(height, width, self.config.background, rng)
                composed = np.where(view_mask[j][..., None], face[j], background)
                if self.config.fill_holes:
                    composed, parts_np[j] = fill_face_holes(composed, parts_np[j], view_mask[j], rng)
                if inside_np is not None:
                    composed = composed * inside_np[j][..., None].astype(np.uint8)
                    parts_np[j] *= inside_np[j]
                images[j] = degrade_image(composed, self.config.degradation, rng)
            out.append(
                SceneRendering(
                    target=target,
                    images=images,
                    parts=parts_np,
                    face_mask=parts_np > 0,
                    mask=view_mask,
                    depth=depth[sl].float().cpu().numpy(),
                    landmarks_2d=landmarks[i].float().cpu().numpy(),
                    landmark_visibility=visible[sl].cpu().numpy(),
                    K=K_render[i].cpu().numpy(),
                    K_camera=K_cam[i].cpu().numpy(),
                    A=None if A is None else A[i].cpu().numpy(),
                    T_camera_from_model=T[i].cpu().numpy(),
                    vertices=vertices[i].cpu().numpy(),
                    landmarks_3d=landmarks_3d[i].cpu().numpy(),
                )
            )
        return out


def render_scene(
    model: MorphableModel,
    scene: FaceScene,
    *,
    target: str = "crop",
    config: SceneConfig | None = None,
    crop_camera: CropCamera | None = None,
    renderer: SceneRenderer | None = None,
) -> SceneRendering:
    """Render one scene (see :class:`SceneRenderer`; pass ``renderer`` to reuse its caches across calls)."""
    renderer = renderer or SceneRenderer(model, config, crop_camera)
    return renderer.render([scene], target)[0]
