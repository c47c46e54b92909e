"""Render morphable-model faces into several camera views: RGB under SH light, masks, depth, part
labels and landmark projections — what DF-MVR's losses compare with the input (paper eq. 2-4).

Built on :func:`~dfmvr_core.render.rasterizer.rasterize` (pure PyTorch); batches of ``B`` faces seen by
``V`` cameras are flattened to ``B·V`` rasterizer items that share the model's topology.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.geometry.camera import project_points
from dfmvr_core.morphable import NUM_FACE_PARTS, MorphableModel, shade
from dfmvr_core.morphable.lighting import SH_COEFFICIENTS
from dfmvr_core.render.interpolation import interpolate, interpolate_one_hot_labels
from dfmvr_core.render.rasterizer import Fragments, rasterize
from dfmvr_core.validation import check_shape


@dataclass(frozen=True)
class FaceRenderConfig:
    """Image size and rasterizer policy.

    Attributes:
        height, width: output size in pixels (DF-MVR renders its 224×224 crops).
        near: metres; triangles closer than this are dropped (see the rasterizer's near-plane policy).
        cull_backfaces: drop triangles facing away from the camera. On for faces: the open back of a
            face mesh (and its inside, seen through the eye and mouth holes) is never drawn.
        background: value of RGB pixels where no face is visible.
        rasterizer_backend: "torch" (default) or "pytorch3d" (visibility only; see ``rasterize``).
    """

    height: int = 224
    width: int = 224
    near: float = 0.01
    cull_backfaces: bool = True
    background: float = 0.0
    rasterizer_backend: str = "torch"

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 8192:
                raise ConfigError(f"{name}: expected an integer number of pixels in [1, 8192], got {value!r}")
        if self.rasterizer_backend not in ("torch", "pytorch3d"):
            raise ConfigError(f"rasterizer_backend: expected 'torch' or 'pytorch3d', got {self.rasterizer_backend!r}")
        if not 0 < self.near < 10:
            raise ConfigError(f"near: expected a distance in (0, 10) metres, got {self.near!r}")


@dataclass(frozen=True)
class FaceRendering:
    """Renderings of ``B`` faces in ``V`` views of ``H × W`` pixels.

    Attributes:
        rgb: (B, V, H, W, 3) float, shaded colour (albedo × SH irradiance, not clamped); ``background``
            where no face is visible. Differentiable w.r.t. vertices, albedo and lighting.
        mask: (B, V, H, W) bool, any mesh surface visible.
        face_mask: (B, V, H, W) bool, a face part (not :attr:`FacePart.OTHER`: ears, neck) is visible.
        depth: (B, V, H, W) float, metres, camera z of the visible surface; 0 where ``mask`` is False.
        parts: (B, V, H, W) int64 :class:`~dfmvr_core.morphable.FacePart` map (0 = background or OTHER):
            the paper's 10-class face mask of the rendering.
        landmarks: (B, V, 68, 2) float, pixels (OpenCV convention), the 68 landmarks projected (whether
            or not occluded). Differentiable.
        landmarks_depth: (B, V, 68) float, metres, camera z of each landmark.
        fragments: the rasterizer output for the flattened ``B·V`` items.
    """

    rgb: Tensor
    mask: Tensor
    face_mask: Tensor
    depth: Tensor
    parts: Tensor
    landmarks: Tensor
    landmarks_depth: Tensor
    fragments: Fragments


class FaceRenderer:
    """Renders a :class:`MorphableModel`'s faces into camera views (optical frames, pinhole intrinsics)."""

    def __init__(self, model: MorphableModel, config: FaceRenderConfig | None = None) -> None:
        self.model = model
        self.config = config or FaceRenderConfig()

    def render(self, vertices_cam: Tensor, K: Tensor, albedo: Tensor, sh: Tensor) -> FaceRendering:
        """Render faces already expressed in each view's camera frame.

        Args:
            vertices_cam: (B, V, N, 3) float, metres, camera optical frame of each view.
            K: (B, V, 3, 3) or (V, 3, 3) float pinhole intrinsics (pixels) of each view.
            albedo: (B, N, 3) float per-vertex reflectance (shared by the views of one face).
            sh: (B, V, 27) float SH lighting per view, in that camera's frame (lighting module layout).

        Returns:
            :class:`FaceRendering`.
        """
        n = self.model.num_vertices
        dims = check_shape("vertices_cam", vertices_cam, ("B", "V", n, 3))
        b, v = dims["B"], dims["V"]
        if K.dim() == 3:
            check_shape("K", K, (v, 3, 3))
            K = K.unsqueeze(0).expand(b, v, 3, 3)
        check_shape("K", K, (b, v, 3, 3))
        check_shape("albedo", albedo, (b, n, 3))
        check_shape("sh", sh, (b, v, SH_COEFFICIENTS))
        cfg = self.config
        faces = self.model.triangles.to(vertices_cam.device)
        flat_vertices = vertices_cam.reshape(b * v, n, 3)
        flat_K = K.reshape(b * v, 3, 3).to(vertices_cam.dtype)
        fragments = rasterize(
            flat_vertices,
            flat_K,
            faces,
            cfg.height,
            cfg.width,
            near=cfg.near,
            cull_backfaces=cfg.cull_backfaces,
            backend=cfg.rasterizer_backend,
        )
        normals = self.model.vertex_normals(flat_vertices)
        flat_albedo = albedo.unsqueeze(1).expand(b, v, n, 3).reshape(b * v, n, 3)
        colour = shade(flat_albedo, normals, sh.reshape(b * v, SH_COEFFICIENTS).to(albedo.dtype))
        rgb = interpolate(colour, fragments, faces, fill=cfg.background)
        labels = self.model.part_labels.to(vertices_cam.device)
        parts = interpolate_one_hot_labels(labels, NUM_FACE_PARTS, fragments, faces, background=0)
        landmarks_cam = self.model.landmarks(flat_vertices)
        landmarks = project_points(landmarks_cam, flat_K)
        shape = (b, v, cfg.height, cfg.width)
        return FaceRendering(
            rgb=rgb.view(*shape, 3),
            mask=fragments.mask.view(shape),
            face_mask=(parts > 0).view(shape),
            depth=fragments.depth.view(shape),
            parts=parts.view(shape),
            landmarks=landmarks.view(b, v, 68, 2),
            landmarks_depth=landmarks_cam[..., 2].reshape(b, v, 68),
            fragments=fragments,
        )

    def render_posed(
        self, vertices: Tensor, rotation: Tensor, translation: Tensor, K: Tensor, albedo: Tensor, sh: Tensor
    ) -> FaceRendering:
        """Render model-frame faces placed in each view by a rigid pose ``X_cam = R·X + t``.

        Args:
            vertices: (B, N, 3) float, metres, model frame.
            rotation: (B, V, 3, 3) rotation model → camera of each view.
            translation: (B, V, 3) metres.
            K, albedo, sh: as :meth:`render`.
        """
        dims = check_shape("vertices", vertices, ("B", self.model.num_vertices, 3))
        check_shape("rotation", rotation, (dims["B"], "V", 3, 3))
        check_shape("translation", translation, (dims["B"], rotation.shape[1], 3))
        if rotation.dtype != vertices.dtype or translation.dtype != vertices.dtype:
            raise ShapeError(
                f"rotation/translation dtype ({rotation.dtype}, {translation.dtype}) "
                f"must match vertices ({vertices.dtype})"
            )
        vertices_cam = torch.einsum("bvij,bnj->bvni", rotation, vertices) + translation.unsqueeze(2)
        return self.render(vertices_cam, K, albedo, sh)
