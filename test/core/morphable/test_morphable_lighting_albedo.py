"""SH lighting (27 values, Deep3DFace's model) and the Laplacian albedo model for ICT."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.morphable import LaplacianAlbedoConfig, ambient_sh, laplacian_albedo, sh_basis, shade


def test_ambient_light_returns_the_albedo_scaled_by_intensity():
    g = torch.Generator().manual_seed(0)
    albedo = torch.rand(2, 50, 3, generator=g)
    normals = torch.nn.functional.normalize(torch.randn(2, 50, 3, generator=g), dim=-1)
    torch.testing.assert_close(shade(albedo, normals, ambient_sh(2, intensity=0.7)), albedo * 0.7)


def test_first_order_light_follows_the_normal_direction():
    # Light from +z: a normal facing +z is brighter than one facing -z, by the l=1 term.
    sh = ambient_sh(1).view(1, 3, 9).clone()
    sh[:, :, 2] = 0.3
    normals = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]])
    out = shade(torch.ones(1, 3, 3), normals, sh.view(1, 27))
    a1c1 = 2 * math.pi / math.sqrt(3) * math.sqrt(3) / math.sqrt(4 * math.pi)
    torch.testing.assert_close(out[0, :, 0], torch.tensor([1 + 0.3 * a1c1, 1 - 0.3 * a1c1, 1.0]))


def test_sh_basis_matches_the_real_spherical_harmonics_times_lambert_constants():
    # Y_2^0 ∝ (3z²−1): for z = 1 the l=2, m=0 entry is a2·c2·(2/(2√3)).
    basis = sh_basis(torch.tensor([[0.0, 0.0, 1.0]]))[0]
    a2c2 = (2 * math.pi / math.sqrt(8)) * (3 * math.sqrt(5) / math.sqrt(12 * math.pi))
    assert basis[6].item() == pytest.approx(a2c2 / math.sqrt(3), rel=1e-6)
    assert basis[4].item() == 0 and basis[5].item() == 0 and basis[7].item() == 0


def test_shade_refuses_mismatched_inputs():
    with pytest.raises(ShapeError, match=r"sh: expected shape \(\*, 27\)"):
        shade(torch.ones(1, 4, 3), torch.ones(1, 4, 3), torch.zeros(1, 26))
    with pytest.raises(ShapeError, match="equal shape"):
        shade(torch.ones(1, 4, 3), torch.ones(1, 5, 3), torch.zeros(1, 27))


def test_laplacian_albedo_modes_are_smooth_deterministic_and_unit_scaled(ict_model):
    tris = ict_model.triangles.numpy()
    labels = ict_model.part_labels.numpy()
    config = LaplacianAlbedoConfig(eigenvectors=6)
    mean, basis = laplacian_albedo(tris, labels, config)
    _, basis2 = laplacian_albedo(tris, labels, config)
    np.testing.assert_array_equal(basis, basis2)  # deterministic signs
    assert basis.shape == (18, ict_model.num_vertices, 3)
    assert np.all((mean >= 0) & (mean <= 1))
    # Mode 0 = constant field along the luminance direction, RMS = luminance_std.
    np.testing.assert_allclose(basis[0], np.broadcast_to(basis[0][0], basis[0].shape), atol=1e-6)
    rms = np.sqrt((basis[0] ** 2).sum(-1).mean())
    assert rms == pytest.approx(config.luminance_std, rel=1e-4)
    # Smoothness: neighbouring vertices differ much less than random pairs for a higher mode.
    mode = basis[3 * 5][:, 0]
    edge_diff = np.abs(mode[tris[:, 0]] - mode[tris[:, 1]]).mean()
    rng = np.random.default_rng(0)
    random_diff = np.abs(mode[rng.integers(0, len(mode), 5000)] - mode[rng.integers(0, len(mode), 5000)]).mean()
    assert edge_diff < 0.1 * random_diff
    # Lips are redder than skin in the mean albedo.
    lips = mean[labels == 8].mean(0)
    skin = mean[labels == 1].mean(0)
    assert lips[0] / lips[1] > skin[0] / skin[1]


def test_albedo_config_is_validated():
    with pytest.raises(ConfigError, match="eigenvectors"):
        LaplacianAlbedoConfig(eigenvectors=0)
    with pytest.raises(ConfigError, match="chroma_std"):
        LaplacianAlbedoConfig(chroma_std=float("nan"))
