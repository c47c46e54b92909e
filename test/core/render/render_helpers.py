"""Small meshes shared by the rasterizer and interpolation tests (imported by test modules in this folder)."""

from __future__ import annotations

import torch


def grid_mesh(n: int, size: float, z: float, bulge: float = 0.0, dtype: torch.dtype = torch.float64):
    """``n × n`` vertex grid around the optical axis in the plane ``z`` (metres), optionally bulged towards the
    camera; front faces counter-clockwise in the image. Returns vertices ``(n², 3)`` and faces ``(2 (n-1)², 3)``."""
    s = torch.linspace(-size / 2, size / 2, n, dtype=dtype)
    gy, gx = torch.meshgrid(s, s, indexing="ij")
    gz = z - bulge * (1 - (gx**2 + gy**2) / (size**2 / 2))
    verts = torch.stack([gx, gy, gz], -1).reshape(-1, 3)
    idx = torch.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].flatten(), idx[:-1, 1:].flatten(), idx[1:, :-1].flatten(), idx[1:, 1:].flatten()
    faces = torch.cat([torch.stack([a, c, b], 1), torch.stack([b, c, d], 1)])
    return verts, faces
