"""Optional visibility backend: PyTorch3D's rasterizer resolves which triangle each pixel sees.

Used by :func:`~dfmvr_core.render.rasterizer.rasterize` with ``backend="pytorch3d"`` where ``pytorch3d``
is importable (it is not installable from the package index on our machines; users who have a CUDA build
may prefer its binned CUDA kernels for large batches). Only visibility comes from PyTorch3D: the
differentiable barycentrics and depth are still computed by dfmvr, so gradients are identical across
backends. dfmvr's own policies are applied before PyTorch3D sees the mesh: triangles with a vertex in front
of the near plane, and (with culling) back-facing triangles, are replaced by degenerate triangles, which
PyTorch3D never rasterizes.

Coordinate mapping (PyTorch3D's NDC: +X left, +Y up, the shorter image side spans [-1, 1], pixel centres
at ``(W - 2u - 1) / s`` and ``(H - 2v - 1) / s`` with ``s = min(H, W)``; ``z`` is the camera depth, used
for its z-buffer).
"""

from __future__ import annotations

import torch
from torch import Tensor

from dfmvr_core.errors import ConfigError


def pytorch3d_available() -> bool:
    """Whether ``pytorch3d`` can be imported here."""
    try:
        import pytorch3d.renderer  # noqa: F401
    except ImportError:
        return False
    return True


def pytorch3d_triangle_ids(
    u: Tensor, v: Tensor, z: Tensor, in_front: Tensor, faces: Tensor, height: int, width: int, cull_backfaces: bool
) -> Tensor:
    """Visible triangle per pixel with PyTorch3D.

    Args:
        u, v: (B, N) float, pixel coordinates (OpenCV: integer = pixel centre).
        z: (B, N) float, camera depth in metres.
        in_front: (B, N) bool, vertex at or beyond the near plane.
        faces: (F, 3) int64.
        height, width: image size in pixels.
        cull_backfaces: drop triangles that are clockwise in the displayed image.

    Returns:
        (B, H, W) int64 triangle index into ``faces``, -1 for background.

    Raises:
        ConfigError: pytorch3d is not importable.
    """
    try:
        from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
        from pytorch3d.structures import Meshes
    except ImportError as exc:
        raise ConfigError(
            "backend: 'pytorch3d' was requested but pytorch3d cannot be imported "
            f"({exc}); use backend='torch' (the default) or install pytorch3d from source"
        ) from None
    batch, n_faces = u.shape[0], faces.shape[0]
    s = float(min(height, width))
    verts = torch.stack([(width - 2.0 * u - 1.0) / s, (height - 2.0 * v - 1.0) / s, z], dim=-1).float()
    keep = in_front[:, faces].all(dim=-1)  # (B, F)
    if cull_backfaces:
        u0, u1, u2 = (u[:, faces[:, i]] for i in range(3))
        v0, v1, v2 = (v[:, faces[:, i]] for i in range(3))
        keep &= (u1 - u0) * (v2 - v0) - (v1 - v0) * (u2 - u0) < 0  # front: counter-clockwise as displayed
    degenerate = faces[:, :1].expand(n_faces, 3)
    faces_b = torch.where(keep.unsqueeze(-1), faces.unsqueeze(0), degenerate.unsqueeze(0))
    meshes = Meshes(verts=list(verts), faces=list(faces_b))
    pix_to_face, _, _, _ = rasterize_meshes(
        meshes, image_size=(height, width), blur_radius=0.0, faces_per_pixel=1,
        perspective_correct=False, cull_backfaces=False,
    )  # fmt: skip
    packed = pix_to_face[..., 0].long()
    offsets = (torch.arange(batch, device=packed.device) * n_faces).view(batch, 1, 1)
    return torch.where(packed >= 0, packed - offsets, torch.full_like(packed, -1))
