"""MorphableModel: decoding (paper eq. 1), normals, landmarks, validation, device/dtype moves."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from dfmvr_core.errors import ModelFileError, ShapeError
from dfmvr_core.morphable import FacePart, MorphableModel


def tiny_model(n_id: int = 4, n_exp: int = 3, n_tex: int = 2) -> MorphableModel:
    """A tetrahedron-like 4-vertex model with 68 landmarks pointing at vertex 0..3."""
    g = torch.Generator().manual_seed(0)
    verts = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 0.1]])
    return MorphableModel(
        name="tiny",
        mean_shape=verts,
        id_basis=torch.randn(n_id, 4, 3, generator=g) * 0.01,
        exp_basis=torch.randn(n_exp, 4, 3, generator=g) * 0.01,
        mean_albedo=torch.full((4, 3), 0.5),
        albedo_basis=torch.randn(n_tex, 4, 3, generator=g) * 0.1,
        triangles=torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]),
        landmarks68=torch.arange(68) % 4,
        part_labels=torch.tensor([1, 1, 6, 8]),
    )


def test_decode_is_the_linear_model_of_eq1():
    model = tiny_model()
    g = torch.Generator().manual_seed(1)
    alpha, beta, gamma = torch.randn(5, 4, generator=g), torch.randn(5, 3, generator=g), torch.randn(5, 2, generator=g)
    vertices, albedo = model.decode(alpha, beta, gamma)
    expected = (
        model.mean_shape
        + torch.einsum("bk,knc->bnc", alpha, model.id_basis)
        + torch.einsum("bk,knc->bnc", beta, model.exp_basis)
    )
    torch.testing.assert_close(vertices, expected)
    torch.testing.assert_close(albedo, model.mean_albedo + torch.einsum("bk,knc->bnc", gamma, model.albedo_basis))
    zero = model.zero_coefficients(2)
    torch.testing.assert_close(model.decode_shape(zero["identity"], zero["expression"])[1], model.mean_shape)


def test_decode_is_differentiable_wrt_coefficients():
    model = tiny_model()
    alpha = torch.zeros(1, 4, requires_grad=True)
    beta = torch.zeros(1, 3, requires_grad=True)
    model.decode_shape(alpha, beta).sum().backward()
    torch.testing.assert_close(alpha.grad[0], model.id_basis.sum(dim=(1, 2)))
    torch.testing.assert_close(beta.grad[0], model.exp_basis.sum(dim=(1, 2)))


def test_decode_rejects_wrong_coefficient_sizes_naming_the_expected_shape():
    model = tiny_model()
    with pytest.raises(ShapeError, match=r"identity: expected shape \(\*, 4\), got \(1, 5\)"):
        model.decode_shape(torch.zeros(1, 5), torch.zeros(1, 3))
    with pytest.raises(ShapeError, match="expression"):
        model.decode_shape(torch.zeros(2, 4), torch.zeros(1, 3))
    with pytest.raises(ShapeError, match="albedo"):
        model.decode_albedo(torch.zeros(1, 7))


def test_coefficient_sizes_come_from_the_model():
    sizes = tiny_model(n_id=4, n_exp=3, n_tex=2).coefficient_sizes
    assert (sizes.identity, sizes.expression, sizes.albedo, sizes.lighting, sizes.pose_per_view) == (4, 3, 2, 27, 6)
    assert sizes.total(views=3) == 4 + 3 + 2 + 3 * (27 + 6)


def test_vertex_normals_point_outwards_for_ccw_triangles():
    model = tiny_model()
    normals = model.vertex_normals(model.mean_shape[None])[0]
    centroid = model.mean_shape.mean(0)
    outward = model.mean_shape - centroid
    assert torch.all((normals * outward).sum(-1) > 0)
    torch.testing.assert_close(normals.norm(dim=-1), torch.ones(4))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("mean_shape", torch.full((4, 3), float("nan")), "mean_shape has 12 non-finite"),
        ("triangles", torch.tensor([[0, 1, 9]]), r"triangles values must lie in \[0, 4\)"),
        ("id_basis", torch.zeros(2, 5, 3), r"id_basis: expected shape \(\*, 4, 3\)"),
        ("part_labels", torch.tensor([0, 1, 2, 99]), r"part_labels values must lie in \[0, 10\)"),
        ("landmarks68", torch.zeros(67, dtype=torch.int64), r"landmarks68: expected shape \(68\)"),
    ],
)
def test_invalid_arrays_are_refused_with_the_array_named(field, value, message):
    model = tiny_model()
    kwargs = {f.name: getattr(model, f.name) for f in dataclasses.fields(model) if f.init}
    kwargs[field] = value
    with pytest.raises(ModelFileError, match=message):
        MorphableModel(**kwargs)


def test_to_changes_float_dtype_and_keeps_indices_int64():
    model = tiny_model().to(dtype=torch.float64)
    assert model.mean_shape.dtype == torch.float64
    assert model.triangles.dtype == torch.int64
    v, _ = model.decode(
        torch.zeros(1, 4, dtype=torch.float64),
        torch.zeros(1, 3, dtype=torch.float64),
        torch.zeros(1, 2, dtype=torch.float64),
    )
    assert v.dtype == torch.float64


def test_fingerprint_changes_with_topology():
    a = tiny_model()
    b = a.to()
    assert a.fingerprint() == b.fingerprint()
    b.triangles = torch.tensor([[0, 1, 2], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    assert a.fingerprint() != b.fingerprint()


def test_ict_model_loads_in_metres_with_expected_topology(ict_model):
    assert ict_model.num_vertices == 9409
    assert ict_model.num_triangles == 18460
    sizes = ict_model.coefficient_sizes
    assert (sizes.identity, sizes.expression) == (100, 53)
    assert ict_model.expression_kind == "blendshape"
    lo, hi = ict_model.bounding_box()
    assert 0.15 <= hi[0] - lo[0] <= 0.20  # face width, metres
    assert ict_model.connected_components() == 1
    # Frontal face: the nose tip normal points towards the viewer (+z), i.e. triangles are CCW from outside.
    normals = ict_model.vertex_normals(ict_model.mean_shape[None])[0]
    nose_tip = int(ict_model.landmarks68[30])
    assert normals[nose_tip, 2] > 0.9
    assert np.all(np.isfinite(ict_model.mean_albedo.numpy()))
    assert int((ict_model.part_labels == FacePart.NOSE).sum()) > 100
