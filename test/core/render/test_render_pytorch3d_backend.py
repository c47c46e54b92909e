"""The optional PyTorch3D visibility backend: a clear error where it is absent, agreement where present."""

from __future__ import annotations

import pytest
import torch

from dfmvr_core.errors import ConfigError
from dfmvr_core.render import rasterize
from dfmvr_core.render.pytorch3d_visibility import pytorch3d_available


def _scene(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(12, 1, 3, generator=g) * torch.tensor([0.2, 0.2, 0.3]) + torch.tensor([-0.1, -0.1, 0.5])
    vertices = (centres + 0.05 * torch.randn(12, 3, 3, generator=g)).reshape(1, 36, 3)
    faces = torch.arange(36).view(12, 3)
    K = torch.tensor([[60.0, 0.0, 31.5], [0.0, 60.0, 23.5], [0.0, 0.0, 1.0]])
    return vertices, K, faces


def test_unknown_backend_is_refused():
    vertices, K, faces = _scene()
    with pytest.raises(ConfigError, match="backend: expected 'torch' or 'pytorch3d'"):
        rasterize(vertices, K, faces, 48, 64, backend="opengl")


@pytest.mark.skipif(pytorch3d_available(), reason="checks the error raised where pytorch3d is absent")
def test_missing_pytorch3d_gives_a_clear_error():
    vertices, K, faces = _scene()
    with pytest.raises(ConfigError, match="'pytorch3d' was requested but pytorch3d cannot be imported"):
        rasterize(vertices, K, faces, 48, 64, backend="pytorch3d")


@pytest.mark.skipif(not pytorch3d_available(), reason="pytorch3d is not installed (not on the package index here)")
@pytest.mark.parametrize("cull", [False, True])
def test_pytorch3d_visibility_agrees_with_the_torch_backend(cull):
    vertices, K, faces = _scene()
    ours = rasterize(vertices, K, faces, 48, 64, cull_backfaces=cull)
    theirs = rasterize(vertices, K, faces, 48, 64, cull_backfaces=cull, backend="pytorch3d")
    agree = (ours.triangle_id == theirs.triangle_id).float().mean().item()
    assert agree > 0.99  # pixel centres exactly on shared edges may differ
    both = ours.mask & theirs.mask & (ours.triangle_id == theirs.triangle_id)
    torch.testing.assert_close(ours.bary[both], theirs.bary[both])
