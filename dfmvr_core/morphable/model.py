"""The morphable face model (3DMM) type: one class for ICT-FaceKit, BFM and any future model.

DF-MVR paper eq. (1): S = S̄ + B_id·α + B_exp·β and T = T̄ + B_t·γ. Everything here is torch, batched,
float32 by default, **metres**, in the model frame (x towards the viewer's right = subject's left,
y up, z out of the face towards the viewer). Loaders convert their file's units at load time.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

from dfmvr_core.errors import ModelFileError, ShapeError
from dfmvr_core.morphable.lighting import SH_COEFFICIENTS
from dfmvr_core.morphable.parts import NUM_FACE_PARTS
from dfmvr_core.validation import check_shape

POSE_COEFFICIENTS = 6
"""Pose values per view regressed by the network: 3 Euler angles (radians) + 3 translation (metres)."""


@dataclass(frozen=True)
class CoefficientSizes:
    """Sizes of the coefficient groups a network regresses for this model (never hard-code 257)."""

    identity: int
    expression: int
    albedo: int
    lighting: int = SH_COEFFICIENTS
    pose_per_view: int = POSE_COEFFICIENTS

    def total(self, views: int = 3) -> int:
        """Length of the flat coefficient vector for ``views`` views: id + exp + tex + light·V + pose·V."""
        return self.identity + self.expression + self.albedo + (self.lighting + self.pose_per_view) * views


@dataclass
class MorphableModel:
    """A linear 3D morphable face model.

    Attributes:
        name: short identifier, e.g. "ict-facekit-full" or "bfm09-front".
        mean_shape: (N, 3) float, metres, model frame.
        id_basis: (K_id, N, 3) float, metres per unit coefficient (coefficients ~ N(0, 1)).
        exp_basis: (K_exp, N, 3) float, metres per unit coefficient.
        mean_albedo: (N, 3) float, linear RGB reflectance in [0, 1].
        albedo_basis: (K_tex, N, 3) float, reflectance per unit coefficient.
        triangles: (F, 3) int64, vertex indices, counter-clockwise seen from outside the face
            (front face towards the viewer in the model frame).
        landmarks68: (68,) int64, vertex index of each iBUG-68 landmark, in iBUG order.
        part_labels: (N,) int64, :class:`~dfmvr_core.morphable.parts.FacePart` of each vertex.
        exp_names: names of the expression components (blendshape names for ICT; empty for PCA models).
        expression_kind: "blendshape" (weights meant to lie in [0, 1]) or "pca" (coefficients ~ N(0, 1)).
        source: provenance text (file, licence).
    """

    name: str
    mean_shape: torch.Tensor
    id_basis: torch.Tensor
    exp_basis: torch.Tensor
    mean_albedo: torch.Tensor
    albedo_basis: torch.Tensor
    triangles: torch.Tensor
    landmarks68: torch.Tensor
    part_labels: torch.Tensor
    exp_names: tuple[str, ...] = ()
    expression_kind: str = "pca"
    source: str = ""
    _flat_bases: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ validation and properties
    def validate(self, origin: str = "") -> None:
        """Check every array's shape, dtype, index range and finiteness.

        Raises:
            ModelFileError: naming ``origin`` (the file) and the offending array.
        """
        where = f"{origin}: " if origin else f"morphable model {self.name!r}: "
        try:
            check_shape("mean_shape", self.mean_shape, (None, 3))
            n = self.mean_shape.shape[0]
            check_shape("id_basis", self.id_basis, (None, n, 3))
            check_shape("exp_basis", self.exp_basis, (None, n, 3))
            check_shape("mean_albedo", self.mean_albedo, (n, 3))
            check_shape("albedo_basis", self.albedo_basis, (None, n, 3))
            check_shape("triangles", self.triangles, (None, 3))
            check_shape("landmarks68", self.landmarks68, (68,))
            check_shape("part_labels", self.part_labels, (n,))
        except ShapeError as exc:
            raise ModelFileError(f"{where}{exc}") from None
        for key in ("mean_shape", "id_basis", "exp_basis", "mean_albedo", "albedo_basis"):
            value = getattr(self, key)
            if not value.is_floating_point():
                raise ModelFileError(f"{where}{key} must be floating point, got {value.dtype}")
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                raise ModelFileError(f"{where}{key} has {bad} non-finite value(s) (NaN or inf)")
        for key, upper in (("triangles", n), ("landmarks68", n), ("part_labels", NUM_FACE_PARTS)):
            value = getattr(self, key)
            if value.is_floating_point():
                raise ModelFileError(f"{where}{key} must be integer, got {value.dtype}")
            if value.numel() and (int(value.min()) < 0 or int(value.max()) >= upper):
                raise ModelFileError(
                    f"{where}{key} values must lie in [0, {upper}), got [{int(value.min())}, {int(value.max())}]"
                )
        if self.expression_kind not in ("pca", "blendshape"):
            raise ModelFileError(f"{where}expression_kind must be 'pca' or 'blendshape', got {self.expression_kind!r}")
        if self.exp_names and len(self.exp_names) != self.exp_basis.shape[0]:
            raise ModelFileError(
                f"{where}{len(self.exp_names)} expression names for {self.exp_basis.shape[0]} expression components"
            )

    @property
    def num_vertices(self) -> int:
        return int(self.mean_shape.shape[0])

    @property
    def num_triangles(self) -> int:
        return int(self.triangles.shape[0])

    @property
    def coefficient_sizes(self) -> CoefficientSizes:
        return CoefficientSizes(
            identity=int(self.id_basis.shape[0]),
            expression=int(self.exp_basis.shape[0]),
            albedo=int(self.albedo_basis.shape[0]),
        )

    @property
    def device(self) -> torch.device:
        return self.mean_shape.device

    @property
    def dtype(self) -> torch.dtype:
        return self.mean_shape.dtype

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> MorphableModel:
        """A copy on ``device`` with floating arrays in ``dtype`` (integer arrays keep int64)."""
        kwargs = {}
        for f in dataclasses.fields(self):
            if not f.init:
                continue
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                value = value.to(device=device, dtype=dtype if value.is_floating_point() else None)
            kwargs[f.name] = value
        return MorphableModel(**kwargs)

    def fingerprint(self) -> str:
        """SHA-256 (hex, first 16 chars) of the topology, landmark indices and basis sizes.

        Stored in checkpoints so that a checkpoint trained for another model (or another build of the
        albedo basis) is refused with a clear message.
        """
        h = hashlib.sha256()
        h.update(self.name.encode())
        for key in ("triangles", "landmarks68", "part_labels"):
            h.update(getattr(self, key).detach().cpu().numpy().astype(np.int64).tobytes())
        sizes = self.coefficient_sizes
        h.update(f"{self.num_vertices}/{sizes.identity}/{sizes.expression}/{sizes.albedo}".encode())
        return h.hexdigest()[:16]

    # ------------------------------------------------------------------ decoding (paper eq. 1)
    def _check_dtype(self, name: str, coeffs: torch.Tensor) -> None:
        if coeffs.dtype != self.dtype:
            raise ShapeError(
                f"{name}: dtype {coeffs.dtype} differs from the model's {self.dtype}; "
                f"convert the coefficients or call model.to(dtype=...)"
            )

    def _flat(self, key: str) -> torch.Tensor:
        basis = getattr(self, key)
        cached = self._flat_bases.get(key)
        if cached is None or cached.device != basis.device or cached.dtype != basis.dtype:
            cached = basis.reshape(basis.shape[0], -1)  # (K, N*3), a view: no copy
            self._flat_bases[key] = cached
        return cached

    def decode_shape(self, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """Vertices S = S̄ + B_id·α + B_exp·β (paper eq. 1).

        Args:
            identity: (B, K_id) float coefficients α.
            expression: (B, K_exp) float coefficients β.

        Returns:
            (B, N, 3) float, metres, model frame.
        """
        check_shape("identity", identity, (None, self.id_basis.shape[0]))
        check_shape("expression", expression, (identity.shape[0], self.exp_basis.shape[0]))
        self._check_dtype("identity", identity)
        self._check_dtype("expression", expression)
        flat = torch.addmm(self.mean_shape.reshape(1, -1), identity, self._flat("id_basis"))
        flat = torch.addmm(flat, expression, self._flat("exp_basis"))
        return flat.view(identity.shape[0], self.num_vertices, 3)

    def decode_albedo(self, albedo: torch.Tensor) -> torch.Tensor:
        """Per-vertex reflectance T = T̄ + B_t·γ (paper eq. 1).

        Args:
            albedo: (B, K_tex) float coefficients γ.

        Returns:
            (B, N, 3) float linear RGB (not clamped).
        """
        check_shape("albedo", albedo, (None, self.albedo_basis.shape[0]))
        self._check_dtype("albedo", albedo)
        flat = torch.addmm(self.mean_albedo.reshape(1, -1), albedo, self._flat("albedo_basis"))
        return flat.view(albedo.shape[0], self.num_vertices, 3)

    def decode(
        self, identity: torch.Tensor, expression: torch.Tensor, albedo: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Vertices and albedo for a batch of coefficients: ``(B, N, 3)`` metres, ``(B, N, 3)`` RGB."""
        vertices = self.decode_shape(identity, expression)
        check_shape("albedo", albedo, (identity.shape[0], self.albedo_basis.shape[0]))
        return vertices, self.decode_albedo(albedo)

    def zero_coefficients(self, batch: int = 1) -> dict[str, torch.Tensor]:
        """Zero identity/expression/albedo coefficients (the mean face), each (batch, K)."""
        sizes = self.coefficient_sizes
        make = lambda k: torch.zeros(batch, k, dtype=self.dtype, device=self.device)  # noqa: E731
        return {"identity": make(sizes.identity), "expression": make(sizes.expression), "albedo": make(sizes.albedo)}

    # ------------------------------------------------------------------ geometry helpers
    def vertex_normals(self, vertices: torch.Tensor) -> torch.Tensor:
        """Area-weighted unit vertex normals (outward, towards the viewer for a frontal face).

        Args:
            vertices: (B, N, 3) float, any frame (normals come out in the same frame).

        Returns:
            (B, N, 3) float unit vectors.
        """
        check_shape("vertices", vertices, (None, self.num_vertices, 3))
        tri = self.triangles.to(vertices.device)
        v0, v1, v2 = (vertices[:, tri[:, i]] for i in range(3))
        face_normals = torch.cross(v1 - v0, v2 - v0, dim=-1)  # length = 2·area: area weighting for free
        normals = torch.zeros_like(vertices)
        for i in range(3):
            normals.index_add_(1, tri[:, i], face_normals)
        return torch.nn.functional.normalize(normals, dim=-1, eps=1e-12)

    def landmarks(self, vertices: torch.Tensor) -> torch.Tensor:
        """The 68 iBUG landmarks of each mesh: (B, N, 3) -> (B, 68, 3), same units and frame."""
        check_shape("vertices", vertices, (None, self.num_vertices, 3))
        return vertices[:, self.landmarks68.to(vertices.device)]

    def bounding_box(self) -> tuple[np.ndarray, np.ndarray]:
        """(min, max) corners of the mean shape, metres, model frame."""
        mean = self.mean_shape.detach().cpu().numpy()
        return mean.min(axis=0), mean.max(axis=0)

    def connected_components(self) -> int:
        """Number of connected components of the triangle mesh (vertices used by no triangle excluded)."""
        import scipy.sparse
        import scipy.sparse.csgraph

        tri = self.triangles.cpu().numpy()
        edges = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
        n = self.num_vertices
        graph = scipy.sparse.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
        _, labels = scipy.sparse.csgraph.connected_components(graph, directed=False)
        used = np.unique(tri)
        return int(np.unique(labels[used]).size)
