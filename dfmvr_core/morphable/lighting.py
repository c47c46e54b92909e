"""Spherical-harmonics (SH) lighting of a Lambertian surface: 27 values = 3 bands (9 functions) × RGB.

This is the illumination model of Deep3DFace (Deng et al. 2019, eq. for C(n) with Ramamoorthi & Hanrahan's
irradiance constants), which DF-MVR inherits for its rendered images (paper eq. 2 compares them with the
input). Hand-written because it is nine polynomial terms evaluated in batched, differentiable torch.

Layout of the 27 values: ``sh.view(B, 3, 9)``, channel-major (R's 9 coefficients, then G, then B), each
9-vector ordered l = 0; l = 1 (y, z, x); l = 2 (xy, yz, 3z²−1, xz, x²−y²). Normals are unit vectors in the
frame the caller renders in (dfmvr uses the camera's optical frame: x right, y down, z forward).
A network predicting lighting usually adds an ambient offset to the DC term (see ``AMBIENT_DC``).
"""

from __future__ import annotations

import math

import torch

from dfmvr_core.errors import ShapeError
from dfmvr_core.validation import check_shape

SH_COEFFICIENTS = 27
"""Number of SH lighting values per image (3 bands × RGB)."""

AMBIENT_DC = 0.8
"""Deep3DFace's initial DC lighting value: with all other terms 0 the irradiance is 0.8·a0·c0 ≈ 0.71.
Networks add it to their raw DC outputs so an untrained head starts from plain ambient light."""

# Lambertian convolution constants (a_l) times the real SH normalisation (c_l).
_A0, _A1, _A2 = math.pi, 2.0 * math.pi / math.sqrt(3.0), 2.0 * math.pi / math.sqrt(8.0)
_C0 = 1.0 / math.sqrt(4.0 * math.pi)
_C1 = math.sqrt(3.0) / math.sqrt(4.0 * math.pi)
_C2 = 3.0 * math.sqrt(5.0) / math.sqrt(12.0 * math.pi)


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """Irradiance SH basis at unit normals.

    Args:
        normals: (..., 3) float, unit vectors.

    Returns:
        (..., 9) float, the nine basis values (with the Lambertian constants folded in).
    """
    check_shape("normals", normals, (..., 3))
    x, y, z = normals.unbind(-1)
    return torch.stack(
        [
            torch.full_like(x, _A0 * _C0),
            _A1 * _C1 * y,
            _A1 * _C1 * z,
            _A1 * _C1 * x,
            _A2 * _C2 * x * y,
            _A2 * _C2 * y * z,
            _A2 * _C2 * 0.5 / math.sqrt(3.0) * (3.0 * z * z - 1.0),
            _A2 * _C2 * x * z,
            _A2 * _C2 * 0.5 * (x * x - y * y),
        ],
        dim=-1,
    )


def shade(albedo: torch.Tensor, normals: torch.Tensor, sh: torch.Tensor) -> torch.Tensor:
    """Lambertian colour under SH lighting: ``albedo * (basis(normals) · sh_rgb)``.

    Args:
        albedo: (B, ..., 3) float RGB reflectance in [0, 1].
        normals: (B, ..., 3) float unit normals, same frame as the lighting.
        sh: (B, 27) float lighting coefficients (layout in the module docstring).

    Returns:
        (B, ..., 3) float RGB (not clamped).
    """
    check_shape("albedo", albedo, (..., 3))
    check_shape("sh", sh, (None, SH_COEFFICIENTS))
    if albedo.shape[0] != sh.shape[0] or normals.shape != albedo.shape:
        raise ShapeError(
            f"shade: expected albedo and normals of equal shape (B, ..., 3) and sh (B, 27); got albedo "
            f"{tuple(albedo.shape)}, normals {tuple(normals.shape)}, sh {tuple(sh.shape)}"
        )
    basis = sh_basis(normals)  # (B, ..., 9)
    coeffs = sh.view(sh.shape[0], *([1] * (albedo.dim() - 2)), 3, 9)
    irradiance = (basis.unsqueeze(-2) * coeffs).sum(-1)  # (B, ..., 3)
    return albedo * irradiance


def ambient_sh(
    batch: int, intensity: float = 1.0, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """SH coefficients of uniform white light whose irradiance equals ``intensity`` everywhere.

    Returns:
        (batch, 27) float.
    """
    sh = torch.zeros(batch, 3, 9, dtype=dtype, device=device)
    sh[:, :, 0] = intensity / (_A0 * _C0)
    return sh.view(batch, SH_COEFFICIENTS)
