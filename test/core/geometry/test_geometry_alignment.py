"""Weighted Umeyama similarity alignment."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from dfmvr_core.errors import ShapeError
from dfmvr_core.geometry import apply_similarity, similarity_align

FAST = settings(max_examples=50, deadline=None)
seeds = st.integers(0, 2**32 - 1)


def _random_problem(seed: int, batch: int = 3, n: int = 12) -> tuple[torch.Tensor, ...]:
    rng = np.random.default_rng(seed)
    source = torch.from_numpy(rng.normal(size=(batch, n, 3)) * 0.05)  # landmark-sized, metres
    scale = torch.from_numpy(rng.uniform(0.5, 2.0, size=batch))
    R = torch.from_numpy(Rotation.random(batch, random_state=seed).as_matrix())
    t = torch.from_numpy(rng.normal(size=(batch, 3)))
    return source, scale, R, t


@FAST
@given(seeds)
def test_recovers_an_exact_similarity(seed: int) -> None:
    source, scale, R, t = _random_problem(seed)
    target = apply_similarity(source, scale, R, t)
    s_hat, R_hat, t_hat = similarity_align(source, target)
    assert torch.allclose(s_hat, scale, atol=1e-9)
    assert torch.allclose(R_hat, R, atol=1e-9)
    assert torch.allclose(t_hat, t, atol=1e-9)
    # the paper's eq. 5 form a' = s (R a + t_paper) with t_paper = t / s gives the same points
    paper = s_hat[:, None, None] * (source @ R_hat.transpose(-1, -2) + (t_hat / s_hat[:, None])[:, None])
    assert torch.allclose(paper, target, atol=1e-9)


@FAST
@given(seeds)
def test_approximately_recovers_under_noise(seed: int) -> None:
    source, scale, R, t = _random_problem(seed, batch=2, n=200)
    noise = torch.from_numpy(np.random.default_rng(seed + 1).normal(size=source.shape)) * 1e-3
    s_hat, R_hat, t_hat = similarity_align(source, apply_similarity(source, scale, R, t) + noise)
    assert torch.allclose(s_hat, scale, rtol=0.05)
    angle_err = Rotation.from_matrix((R_hat @ R.transpose(-1, -2)).numpy()).magnitude()
    assert (angle_err < np.radians(3.0)).all()
    assert torch.allclose(t_hat, t, atol=0.02)


@FAST
@given(seeds)
def test_rotation_matches_scipy_align_vectors(seed: int) -> None:
    source, _, R, _ = _random_problem(seed, batch=1, n=10)
    target = (
        source @ R.transpose(-1, -2) + torch.from_numpy(np.random.default_rng(seed).normal(size=source.shape)) * 0.01
    )
    a = (source - source.mean(-2, keepdim=True))[0].numpy()
    b = (target - target.mean(-2, keepdim=True))[0].numpy()
    expected, _ = Rotation.align_vectors(b, a)  # rotation taking a (source) onto b (target)
    s_hat, R_hat, _ = similarity_align(source, target, with_scale=False)
    assert torch.equal(s_hat, torch.ones(1, dtype=torch.float64))
    np.testing.assert_allclose(R_hat[0].numpy(), expected.as_matrix(), atol=1e-8)


def test_weights_ignore_outliers_and_match_scipy_weighted() -> None:
    source, scale, R, t = _random_problem(7, batch=2, n=10)
    target = apply_similarity(source, scale, R, t)
    target[:, :2] += 5.0  # two gross outliers
    weights = torch.ones(2, 10, dtype=torch.float64)
    weights[:, :2] = 0.0
    s_hat, R_hat, t_hat = similarity_align(source, target, weights)
    assert torch.allclose(s_hat, scale, atol=1e-9) and torch.allclose(R_hat, R, atol=1e-9)
    assert torch.allclose(t_hat, t, atol=1e-9)
    s_bad, _, _ = similarity_align(source, target)  # unweighted is pulled away by the outliers
    assert not torch.allclose(s_bad, scale, atol=1e-3)
    # general positive weights: the rotation is scipy's weighted Kabsch about the weighted centroids
    w = torch.linspace(0.2, 3.0, 10, dtype=torch.float64)
    _, R_w, _ = similarity_align(source[:1], target[:1], w[None])
    wn = (w / w.sum())[:, None]
    a = (source[0] - (wn * source[0]).sum(0)).numpy()
    b = (target[0] - (wn * target[0]).sum(0)).numpy()
    expected, _ = Rotation.align_vectors(b, a, weights=w.numpy())
    np.testing.assert_allclose(R_w[0].numpy(), expected.as_matrix(), atol=1e-8)


def test_reflection_returns_a_proper_rotation() -> None:
    source, _, _, _ = _random_problem(3, batch=1, n=8)
    mirrored = source * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    _, R_hat, _ = similarity_align(source, mirrored, with_scale=False)
    assert torch.linalg.det(R_hat).item() == pytest.approx(1.0)
    assert torch.allclose(R_hat[0] @ R_hat[0].T, torch.eye(3, dtype=torch.float64), atol=1e-12)
    a = (source - source.mean(-2, keepdim=True))[0].numpy()
    b = (mirrored - mirrored.mean(-2, keepdim=True))[0].numpy()
    expected, _ = Rotation.align_vectors(b, a)  # scipy also returns the best PROPER rotation
    np.testing.assert_allclose(R_hat[0].numpy(), expected.as_matrix(), atol=1e-8)


def test_gradient_wrt_source_matches_finite_differences() -> None:
    source, scale, R, t = _random_problem(11, batch=1, n=5)
    target = apply_similarity(source, scale, R, t) + 0.01 * torch.from_numpy(
        np.random.default_rng(1).normal(size=(1, 5, 3))
    )
    source.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s: similarity_align(s, target), (source,))


def test_float32_and_batch_shapes() -> None:
    source, scale, R, t = (x.float() for x in _random_problem(5, batch=4, n=6))
    s_hat, R_hat, t_hat = similarity_align(source, apply_similarity(source, scale, R, t))
    assert (s_hat.shape, R_hat.shape, t_hat.shape) == ((4,), (4, 3, 3), (4, 3))
    assert s_hat.dtype == R_hat.dtype == t_hat.dtype == torch.float32
    assert torch.allclose(R_hat, R, atol=1e-4)


def test_bad_inputs_name_the_argument() -> None:
    src = torch.zeros(2, 5, 3)
    with pytest.raises(ShapeError, match=r"^source: need at least N = 3"):
        similarity_align(torch.zeros(2, 2, 3), torch.zeros(2, 2, 3))
    with pytest.raises(ShapeError, match=r"^target: expected shape \(2, 5, 3\), got \(2, 4, 3\)"):
        similarity_align(src, torch.zeros(2, 4, 3))
    with pytest.raises(ShapeError, match=r"^source: expected shape \(B, N, 3\), got \(5, 3\)"):
        similarity_align(torch.zeros(5, 3), torch.zeros(5, 3))
    with pytest.raises(ShapeError, match=r"^weights: expected shape \(2, 5\)"):
        similarity_align(src, src, torch.ones(2, 4))
    with pytest.raises(ShapeError, match=r"^weights: expected non-negative"):
        similarity_align(src, src, -torch.ones(2, 5))
    with pytest.raises(ShapeError, match=r"^weights: expected a positive weight sum"):
        similarity_align(src, src, torch.zeros(2, 5))
    nan_src = src.clone()
    nan_src[0, 0, 0] = float("nan")
    with pytest.raises(ShapeError, match=r"^source: 1 non-finite"):
        similarity_align(nan_src, src)
    with pytest.raises(ShapeError, match=r"^R: expected shape"):
        apply_similarity(src, torch.ones(2), torch.zeros(2, 3), torch.zeros(2, 3))
