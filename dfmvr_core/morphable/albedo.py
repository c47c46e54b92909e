"""A license-clean albedo (reflectance) model for meshes that ship none, such as ICT-FaceKit.

Mean albedo: one skin tone, with darker brows, redder lips and lighter eye rims taken from the vertex
part labels, smoothed over the mesh so part borders are soft.
Variation modes: the lowest-frequency eigenvectors of the mesh's graph Laplacian (smooth fields over the
surface; the first is the constant field) times three colour directions (luminance, red-green, yellow-blue).
Each mode is scaled so that a coefficient of 1 changes the albedo by its stated standard deviation (RMS
over vertices), so coefficients are ~ N(0, 1) like a PCA model's.

The eigenvectors come from ``scipy.sparse.linalg.eigsh`` (shift-invert). Their signs are made
deterministic (largest-magnitude entry positive) so the same mesh always gives the same basis; loaders
record the result's fingerprint through the model, and ``dfmvr assets convert-ict`` stores the basis in the
written file so trained checkpoints never depend on a solver's sign choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from dfmvr_core.errors import ConfigError
from dfmvr_core.morphable.parts import FacePart

_PART_TONES: dict[int, tuple[float, float, float]] = {
    FacePart.OTHER: (0.78, 0.58, 0.48),
    FacePart.SKIN: (0.78, 0.58, 0.48),
    FacePart.LEFT_BROW: (0.33, 0.24, 0.19),
    FacePart.RIGHT_BROW: (0.33, 0.24, 0.19),
    FacePart.LEFT_EYE: (0.70, 0.62, 0.58),
    FacePart.RIGHT_EYE: (0.70, 0.62, 0.58),
    FacePart.NOSE: (0.80, 0.58, 0.48),
    FacePart.MOUTH: (0.45, 0.20, 0.20),
    FacePart.UPPER_LIP: (0.68, 0.38, 0.38),
    FacePart.LOWER_LIP: (0.70, 0.40, 0.40),
}

# Colour directions (unit RGB vectors) and the albedo std per unit coefficient of the constant mode.
_COLOUR_DIRECTIONS = np.array([[1.0, 1.0, 1.0], [1.0, -1.0, 0.0], [1.0, 1.0, -2.0]], dtype=np.float64)
_COLOUR_DIRECTIONS /= np.linalg.norm(_COLOUR_DIRECTIONS, axis=1, keepdims=True)


@dataclass(frozen=True)
class LaplacianAlbedoConfig:
    """Parameters of :func:`laplacian_albedo`.

    Attributes:
        eigenvectors: number of Laplacian eigenvectors (smooth fields), ≥ 1; modes = 3 × eigenvectors.
        luminance_std: albedo RMS change per unit coefficient of the constant brightness mode.
        chroma_std: the same for the two colour (chroma) directions.
        decay: std of eigenvector k is std_0 / (1 + k)^decay (higher frequencies vary less).
        smoothing_iterations: neighbour-averaging passes applied to the mean albedo.
    """

    eigenvectors: int = 20
    luminance_std: float = 0.12
    chroma_std: float = 0.025
    decay: float = 0.5
    smoothing_iterations: int = 3

    def __post_init__(self) -> None:
        if self.eigenvectors < 1:
            raise ConfigError(f"eigenvectors: expected an integer ≥ 1, got {self.eigenvectors}")
        for name in ("luminance_std", "chroma_std", "decay"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ConfigError(f"{name}: expected a finite number ≥ 0, got {value}")


def _adjacency(triangles: np.ndarray, n: int) -> scipy.sparse.csr_matrix:
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    edges = np.concatenate([edges, edges[:, ::-1]])
    adj = scipy.sparse.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n)).tocsr()
    adj.data[:] = 1.0  # duplicate edges (shared by two triangles) summed: reset to 1
    return adj


def laplacian_albedo(
    triangles: np.ndarray, part_labels: np.ndarray, config: LaplacianAlbedoConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Build the mean albedo and the albedo basis of a mesh.

    Args:
        triangles: (F, 3) int vertex indices.
        part_labels: (N,) int :class:`FacePart` per vertex (gives the mean tones).
        config: mode counts and standard deviations.

    Returns:
        mean_albedo (N, 3) float32 linear RGB in [0, 1]; basis (3·k, N, 3) float32, ordered by
        eigenvector then colour direction (luminance, red-green, yellow-blue).
    """
    config = config or LaplacianAlbedoConfig()
    n = int(part_labels.shape[0])
    adj = _adjacency(np.asarray(triangles, np.int64), n)
    degree = np.asarray(adj.sum(axis=1)).ravel()
    isolated = degree == 0
    degree_safe = np.where(isolated, 1.0, degree)

    tones = np.array([_PART_TONES[int(p)] for p in FacePart], dtype=np.float64)
    mean = tones[np.asarray(part_labels, np.int64)]
    walk = scipy.sparse.diags(1.0 / degree_safe) @ adj
    for _ in range(config.smoothing_iterations):
        mean = np.where(isolated[:, None], mean, 0.5 * mean + 0.5 * (walk @ mean))

    # Graph Laplacian L = D - A (vertices used by no triangle get a self-loop so L stays non-singular
    # apart from the constant field of each component).
    laplacian = scipy.sparse.diags(degree) - adj + scipy.sparse.diags(isolated.astype(np.float64))
    k = min(config.eigenvectors, n - 2)
    # Shift-invert around a small negative sigma finds the smallest eigenvalues quickly and robustly.
    _, vectors = scipy.sparse.linalg.eigsh(laplacian.tocsc(), k=k, sigma=-1e-3, which="LM", v0=np.ones(n) / np.sqrt(n))
    # eigsh returns ascending eigenvalues for sigma shift-invert with which="LM" sorted by magnitude of
    # 1/(λ-σ) — sort by the Rayleigh quotient to be explicit.
    rayleigh = np.einsum("ij,ij->j", vectors, laplacian @ vectors)
    vectors = vectors[:, np.argsort(rayleigh)]
    signs = np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(k)])
    vectors = vectors * signs * np.sqrt(n)  # unit RMS per vertex, deterministic sign

    stds = np.array([config.luminance_std, config.chroma_std, config.chroma_std])
    basis = np.empty((3 * k, n, 3), np.float64)
    for i in range(k):
        scale = 1.0 / (1.0 + i) ** config.decay
        for c in range(3):
            basis[3 * i + c] = vectors[:, i, None] * (_COLOUR_DIRECTIONS[c] * stds[c] * scale)[None, :]
    return np.clip(mean, 0.0, 1.0).astype(np.float32), basis.astype(np.float32)
