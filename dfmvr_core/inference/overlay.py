"""Overlay pictures: the reconstructed mesh drawn over the input image of a camera.

The mesh is rasterized with the project's renderer (:func:`~dfmvr_core.render.rasterize`, pure PyTorch) in the
camera's real intrinsics, shaded by its normals (headlight Lambert, so the shape reads at a glance), alpha-blended
over the image; the 68 landmarks are drawn as dots. What a person checks first: does the mesh sit on the face?
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from dfmvr_core.errors import ShapeError
from dfmvr_core.render.interpolation import interpolate
from dfmvr_core.render.rasterizer import rasterize
from dfmvr_core.validation import check_shape

__all__ = ["draw_overlay", "side_by_side"]

MESH_COLOR = np.array((0.55, 0.80, 1.0))
"""Light blue (RGB in [0, 1]), distinct from skin tones."""


def _vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    tri = vertices[faces]
    n = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    out = torch.zeros_like(vertices).index_add_(0, faces.reshape(-1), n.repeat_interleave(3, dim=0))
    return torch.nn.functional.normalize(out, dim=-1)


def draw_overlay(
    image: np.ndarray,
    vertices_camera: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    *,
    landmarks_2d: np.ndarray | None = None,
    alpha: float = 0.55,
    label: str | None = None,
) -> np.ndarray:
    """The mesh drawn over ``image``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        vertices_camera: ``(N, 3)`` float metres, this camera's optical frame.
        faces: ``(F, 3)`` int vertex indices.
        K: ``(3, 3)`` camera matrix, pixels.
        landmarks_2d: optional ``(L, 2)`` pixels drawn as green dots.
        alpha: mesh opacity in [0, 1].
        label: optional text drawn in the top-left corner.

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ShapeError(f"image: expected (H, W, 3) uint8 RGB, got {got}")
    check_shape("vertices_camera", vertices_camera, (None, 3))
    check_shape("faces", faces, (None, 3))
    check_shape("K", K, (3, 3))
    h, w = image.shape[:2]
    verts = torch.as_tensor(np.asarray(vertices_camera, dtype=np.float32))
    tris = torch.as_tensor(np.asarray(faces, dtype=np.int64))
    fragments = rasterize(
        verts[None], torch.as_tensor(np.asarray(K, dtype=np.float32)), tris, h, w, cull_backfaces=True
    )
    normals = interpolate(_vertex_normals(verts, tris), fragments, tris)[0].contiguous()
    positions = interpolate(verts, fragments, tris)[0].contiguous()
    view = torch.nn.functional.normalize(-positions, dim=-1)
    shade = (normals * view).sum(-1).abs().clamp(0.15, 1.0).numpy()
    mask = fragments.mask[0].numpy()
    out = image.astype(np.float32) / 255.0
    mesh_rgb = shade[..., None] * MESH_COLOR
    out[mask] = (1.0 - alpha) * out[mask] + alpha * mesh_rgb[mask]
    result = np.ascontiguousarray((out.clip(0, 1) * 255).round().astype(np.uint8))
    if landmarks_2d is not None:
        for u, v in np.asarray(landmarks_2d, dtype=np.float64):
            if np.isfinite(u) and np.isfinite(v):
                cv2.circle(result, (round(u), round(v)), 2, (40, 220, 40), -1, lineType=cv2.LINE_AA)
    if label:
        cv2.putText(result, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    return result


def side_by_side(panels: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Concatenate ``(H_i, W_i, 3)`` uint8 panels horizontally (bottom-padded to the tallest, black gaps)."""
    if not panels:
        raise ShapeError("panels: expected at least one image")
    height = max(p.shape[0] for p in panels)
    padded = [cv2.copyMakeBorder(p, 0, height - p.shape[0], 0, gap, cv2.BORDER_CONSTANT) for p in panels]
    return np.concatenate(padded, axis=1)
