"""Pure-PyTorch triangle rasterizer with perspective-correct, differentiable barycentrics.

Runs wherever PyTorch runs (CPU or CUDA, the device of the inputs); no compiled extension and no
global state (beyond a small cache of constant per-window index tensors).

Conventions
-----------
* Vertices are given in each view's camera optical frame (x right, y down, z forward, metres) together
  with pinhole intrinsics ``K`` (pixels), or already projected (``K=None``, see :func:`rasterize`).
* Pixel coordinates follow OpenCV: integer coordinates are pixel centres; the centre of pixel
  ``(row y, col x)`` is at image coordinates ``(x, y)``. A pixel is covered by a triangle when its
  centre lies inside the projected triangle or on its boundary (inclusive edge test, no top-left rule:
  a pixel centre exactly on a shared edge belongs to both triangles and the depth tie-break decides).
* Images are ``(B, H, W[, C])`` where ``B`` is "meshes × views" flattened; all items share the
  topology ``faces``.
* **Front faces**: a triangle ``(v0, v1, v2)`` is front-facing when its right-handed normal
  ``(v1 - v0) × (v2 - v0)`` points towards the camera (``n · v0 < 0``), i.e. its vertices appear
  **counter-clockwise in the displayed image** (y down). Equivalently the image-space signed area
  ``(u1-u0)(v2-v0) - (v1-v0)(u2-u0)`` is negative (for ``fx, fy > 0``). With ``cull_backfaces=True``
  the other triangles are dropped; by default both windings are rasterized.
* **Near plane**: a triangle with any vertex at camera depth ``z < near`` is dropped as a whole (no
  clipping). This simple policy is enough for objects in front of the camera; a mesh crossing the near
  plane loses the crossing triangles.
* **Visibility** is a z-buffer on the perspective-correct camera depth of each pixel; it carries no
  gradient. The depth test compares float32 inverse depths (relative resolution ~6e-8, whatever the
  input dtype); ties go to the smaller triangle id, so the output is deterministic.
* Gradients flow to the vertex positions (and ``K``) through ``bary`` and ``depth`` for the visible
  (pixel, triangle) pairs only, like nvdiffrast without antialiasing: there are no silhouette / occlusion
  gradients.

Algorithm (visibility)
----------------------
Each triangle's pixel-centre bounding box is enumerated on a small window of cells. The three
screen-space barycentric edge functions and the inverse depth are affine in the pixel coordinates, so
they are evaluated per cell from three per-triangle coefficients (by incremental additions for windows of
up to 16 cells, with one small matrix product for larger ones; the arithmetic depends only on the window
size, never on the chunking). All triangles first go through a small window (at most 4 × 4, chosen per
chunk from a histogram of box sizes; enough for most triangles of a dense mesh), evaluated cell by cell in
small reused buffers. Triangles whose box is larger are then bucketed by box size rounded up to powers of
two (capped at the image size), so small triangles never pay for big ones, and boxes above the chunk size
are split into bands of rows; each bucket (a slice of the coefficients, sorted by bucket) is evaluated on
all its cells at once, in a few kernel launches. Covered cells are resolved with ``scatter_reduce(amax)``
over an int64 key packing the float32 inverse depth (high word) with the complemented triangle id (low
word). Work is chunked so that at most ``max_pixels_per_chunk`` cells (and ``max_pixels_per_chunk // 16``
triangles) are live at once.

Algorithm (barycentrics)
------------------------
Once visibility is known, barycentrics, depth and their gradients are computed on the covered pixels only
(listed once, ``Fragments._topology``) and expanded to the ``(B, H, W)`` images; :func:`interpolate` given
the same ``faces`` and fragments works on the covered pixels too (about half of a face crop).

Performance notes (CPU)
-----------------------
At mesh sizes of 20k-70k triangles and 224 × 224 images the cost is a few hundred kernel launches on
arrays of 1e4-1e5 elements (launch overhead and memory traffic), not arithmetic: the code keeps the number
of launches independent of the number of buckets' cells where it can, works on contiguous per-triangle /
per-cell rows, uses ``index_select`` instead of advanced indexing, avoids ``torch.where`` / ``masked_fill``
on large random masks (masks are applied arithmetically) and int64 division (float64 is exact and faster),
and skips the background pixels in the differentiable part.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.render.pytorch3d_visibility import pytorch3d_triangle_ids
from dfmvr_core.validation import check_finite, check_shape

__all__ = ["Fragments", "fragments_from_triangle_ids", "rasterize"]

_DEFAULT_MAX_PIXELS_PER_CHUNK = 1 << 22
_MAX_BASE_WINDOW = 4  # the first pass uses a window of at most 4 × 4 pixel centres (chosen per chunk)
_CELL_OVERHEAD = 2000  # per-cell fixed cost of the first pass, in triangle-cell equivalents
_PASS2_SETUP = 8  # per-triangle setup cost of the second pass, in cell equivalents
_COMPACT_BELOW = 0.85  # drop triangles that cover no pixel centre when they are more than 15 %


@dataclass(frozen=True)
class _Topology:
    """What :func:`rasterize` already knows, for :mod:`~dfmvr_core.render.interpolation` (used only when it
    gets the very same ``faces`` object, and the compact fields only with the very same ``bary`` view).

    ``faces`` the object itself and ``max_index`` its largest vertex index; ``pix`` ``(M,)`` int64 flat
    indices (into ``B*H*W``) of the covered pixels, ascending; ``corners`` ``(3, M)`` int64 corner vertex
    indices (in ``[0, N)``) of their triangles; ``item`` ``(M,)`` int64 batch item of each (None when
    ``B == 1``); ``bary`` the public ``(B, H, W, 3)`` view and ``bary_c`` ``(3, M)`` the differentiable
    barycentrics of the covered pixels it was expanded from."""

    faces: Tensor
    max_index: int
    pix: Tensor
    corners: Tensor
    item: Tensor | None
    bary: Tensor
    bary_c: Tensor


@dataclass(frozen=True)
class Fragments:
    """Per-pixel output of :func:`rasterize`; ``B`` = meshes × views, ``H``/``W`` = image size.

    Attributes:
        triangle_id: ``(B, H, W)`` int64, index into ``faces`` of the visible triangle; ``-1`` for
            background.
        bary: ``(B, H, W, 3)`` float (dtype of the vertices), perspective-correct barycentric weights of
            the visible triangle's vertices ``faces[triangle_id]`` (they sum to 1); ``0`` for background.
            Differentiable w.r.t. the vertex positions (and ``K``). Stored channels-first, so this is a
            non-contiguous view; call ``.contiguous()`` before ``.view()``.
        depth: ``(B, H, W)`` float, camera-frame depth ``z`` of the visible surface in metres; ``0`` for
            background (use ``mask``). Differentiable like ``bary``.
        mask: ``(B, H, W)`` bool, ``True`` where a triangle is visible (``triangle_id >= 0``).
    """

    triangle_id: Tensor
    bary: Tensor
    depth: Tensor
    mask: Tensor
    # private cache for interpolate(), used only when it gets the very same ``faces`` object
    _topology: _Topology | None = field(default=None, repr=False, compare=False)

    @property
    def batch_size(self) -> int:
        return int(self.triangle_id.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        return int(self.triangle_id.shape[1]), int(self.triangle_id.shape[2])


# ----------------------------------------------------------------------------------------------------------
# input checks and projection
# ----------------------------------------------------------------------------------------------------------


def _is_int_dtype(t: Tensor) -> bool:
    return not (t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool)


def _check_vertices_faces(vertices: Any, faces: Any, vertices_name: str) -> tuple[int, int, int]:
    """Check vertices ``(B, N, 3)`` and faces ``(F, 3)``; return ``B``, ``F`` and the largest index (-1 if none)."""
    if not isinstance(vertices, Tensor):
        raise ShapeError(f"{vertices_name}: expected a torch.Tensor, got {type(vertices).__name__}")
    if not isinstance(faces, Tensor):
        raise ShapeError(f"faces: expected a torch.Tensor, got {type(faces).__name__}")
    dims = check_shape(vertices_name, vertices, ("B", "N", 3))
    check_shape("faces", faces, ("F", 3))
    if vertices.dtype not in (torch.float32, torch.float64):
        raise ShapeError(f"{vertices_name}: expected dtype float32 or float64, got {vertices.dtype}")
    if not _is_int_dtype(faces):
        raise ShapeError(f"faces: expected an integer dtype (int64), got {faces.dtype}")
    if faces.device != vertices.device:
        raise ShapeError(f"faces: on {faces.device}, expected the device of {vertices_name} ({vertices.device})")
    _check_finite_fast(vertices_name, vertices)
    n = dims["N"]
    hi = -1
    if faces.numel() > 0:
        lo, hi = (int(x) for x in faces.aminmax())
        if lo < 0 or hi >= n:
            raise ShapeError(
                f"faces: vertex indices must lie in [0, {n - 1}] ({vertices_name} has N={n} vertices), "
                f"got values in [{lo}, {hi}]"
            )
    return dims["B"], int(faces.shape[0]), hi


def _check_finite_fast(name: str, value: Tensor) -> None:
    """:func:`check_finite` behind a one-reduction screen (a sum is finite unless some entry is not, or
    it overflows; only then are the entries counted)."""
    if value.numel() and not bool(torch.isfinite(value.sum())):
        check_finite(name, value)


def _check_intrinsics(K: Any, batch: int, vertices: Tensor) -> Tensor | None:
    if K is None:
        return None
    if not isinstance(K, Tensor):
        raise ShapeError(f"K: expected a torch.Tensor or None, got {type(K).__name__}")
    if K.dim() == 2:
        check_shape("K", K, (3, 3))
        K = K.unsqueeze(0).expand(batch, 3, 3)
    else:
        check_shape("K", K, (batch, 3, 3))
    if not K.dtype.is_floating_point:
        raise ShapeError(f"K: expected a floating dtype, got {K.dtype}")
    if K.device != vertices.device:
        raise ShapeError(f"K: on {K.device}, expected the device of the vertices ({vertices.device})")
    _check_finite_fast("K", K)
    return K.to(vertices.dtype)


def _check_near(near: Any) -> float:
    if isinstance(near, bool) or not isinstance(near, (int, float)) or not math.isfinite(near) or near <= 0:
        raise ShapeError(f"near: expected a positive finite distance in metres, got {near!r}")
    return float(near)


@torch.no_grad()
def _project_private(vertices_cam: Tensor, K: Tensor | None, near: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Pinhole projection tables, no gradient (private helper; ``dfmvr_core.geometry`` will own the public
    projection; gradients of the projection are part of :class:`_PerspectiveBary`).

    Args:
        vertices_cam: ``(B, N, 3)`` camera optical frame, metres; or ``(u, v, z)`` when ``K`` is None.
        K: ``(B, 3, 3)`` intrinsics ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` (pixels) or None. The last
            row is assumed to be ``0 0 1`` and not read.
        near: vertices with ``z < near`` get a dummy finite projection (as if ``z = 1``); they are never
            used because every triangle touching them is dropped, and the dummy keeps gradients NaN-free.

    Returns:
        ``u, v`` ``(B, N)`` pixel coordinates (OpenCV), ``iz = 1 / z`` ``(B, N)`` in 1/metres (dummy ``1``
        for ``z < near``) and ``in_front = z >= near`` ``(B, N)`` bool.
    """
    x, y, z = vertices_cam.detach().unbind(-1)
    in_front = z >= near
    iz = torch.where(in_front, z, 1.0).reciprocal_()
    if K is None:
        return x, y, iz, in_front
    xn, yn = x * iz, y * iz
    k = K.detach().unsqueeze(-1)  # (B, 3, 3, 1) broadcasts over N
    u = (k[:, 0, 0] * xn).addcmul_(k[:, 0, 1], yn).add_(k[:, 0, 2])
    v = (k[:, 1, 0] * xn).addcmul_(k[:, 1, 1], yn).add_(k[:, 1, 2])
    return u, v, iz, in_front


# ----------------------------------------------------------------------------------------------------------
# visibility (no gradient)
#
# Performance notes (CPU): everything below works on contiguous per-triangle / per-cell rows, uses
# index_select instead of advanced indexing, and avoids torch.where / masked_fill on large random masks
# (branchy and slow on CPU): masks are applied arithmetically. A bucket of the second pass costs a fixed
# dozen launches (all its cells at once); only the first pass, with tens of thousands of triangles and at
# most 16 cells, goes cell by cell (its per-cell temporaries then stay in cache).
# ----------------------------------------------------------------------------------------------------------


def _setup_triangles(
    tu: list[Tensor],
    tv: list[Tensor],
    tiz: list[Tensor],
    x0: Tensor,
    y0: Tensor,
    pre_valid: Tensor,
    cull_backfaces: bool,
) -> tuple[Tensor, Tensor]:
    """Affine functions of the cell offset ``(dx, dy)`` from each triangle's window origin ``(x0, y0)``.

    Args:
        tu, tv, tiz: three ``(T,)`` rows each: corner image coordinates (pixels) and inverse depths.
        x0, y0: ``(T,)`` window origins (float, integral values).
        pre_valid: ``(T,)`` bool from the box / near tests.

    Returns:
        ``coef`` ``(3, 4, T)`` = ``[d/ddx, d/ddy, value at origin] × [l0, l1, l2, 1/z] × triangle`` where
        ``l_i`` are screen-space barycentrics (invalid triangles get ``l0 = -1``: they cover nothing), and
        ``valid`` ``(T,)`` (``pre_valid`` plus the area / backface test).
    """
    t_count = x0.shape[0]
    du = [t - x0 for t in tu]
    dv = [t - y0 for t in tv]
    coef = x0.new_empty(3, 4, t_count)
    for i in range(3):
        j, k = (i + 1) % 3, (i + 2) % 3
        # w_i(p) = (a_j - p) x (a_k - p): d/dpx = v_j - v_k, d/dpy = u_k - u_j
        torch.sub(tv[j], tv[k], out=coef[0, i])
        torch.sub(tu[k], tu[j], out=coef[1, i])
        torch.mul(du[j], dv[k], out=coef[2, i]).addcmul_(dv[j], du[k], value=-1.0)
    area = coef[2, 0] + coef[2, 1] + coef[2, 2]  # twice the signed area; < 0: front-facing
    valid = pre_valid & ((area < 0) if cull_backfaces else (area != 0))
    valid_f = valid.to(x0.dtype)
    scale = torch.nan_to_num(valid_f / area, nan=0.0, posinf=0.0, neginf=0.0)
    coef[:2, :3] *= scale
    # 0 + c * scale: exact zeros come out as +0.0, never -0.0, so that a pixel centre exactly on an edge
    # counts as covered by the sign test of _ZBuffer.splat
    torch.addcmul(torch.zeros((), dtype=x0.dtype, device=x0.device), coef[2, :3], scale, out=coef[2, :3])
    coef[2, 0] += valid_f - 1.0  # invalid triangles: l0 = -1 everywhere (valid ones: + 0.0, exact)
    iz_row = coef[:, 3]
    torch.mul(coef[:, 0], tiz[0], out=iz_row)
    iz_row.addcmul_(coef[:, 1], tiz[1]).addcmul_(coef[:, 2], tiz[2])
    return coef, valid


@functools.lru_cache(maxsize=64)
def _window_grid(w: int, h: int, width: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """Constants of a ``w × h`` window in images ``width`` pixels wide: ``(w*h, 3)`` cell rows
    ``[dx, dy, 1]`` (``dtype``) and ``(w*h, 1)`` int64 flat pixel offsets ``dy * width + dx`` (cells in
    row-major order). Cached (read-only constants): rebuilding them costs a dozen small ops per bucket."""
    dy, dx = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    dx, dy = dx.reshape(-1), dy.reshape(-1)
    cells = torch.stack([dx, dy, torch.ones_like(dx)], 1).to(dtype)
    return cells, (dy * width + dx).unsqueeze(1)


class _ZBuffer:
    """Z-buffer of int64 keys ``(B*H*W,)`` resolved with ``scatter_reduce(amax)``.

    A key packs two 32-bit words: high = IEEE float32 bits of the pixel's inverse depth ``1/z`` (positive,
    so its integer order is the depth order, nearer = larger), low = ``2**32 - 1 - face_id`` (equal depth:
    smaller id wins). Keys are assembled for free by writing the two 32-bit words into a ``(T, 2)`` int32
    buffer viewed as int64 (little-endian: word 1 is the high word). Uncovered cells write ``-1/z`` (sign
    copied from ``min l_i < 0``), i.e. a negative key that never beats the initial ``-1``; keys below
    ``2**32`` decode as background. The depth test therefore has float32 precision (relative ~6e-8)
    whatever the input dtype.
    """

    _PER_CELL_MAX = 16  # windows up to this many cells are evaluated incrementally (adds), larger ones by matmul
    _SCATTER_PER_CELL_MIN = 4096  # small windows with this many triangles go cell by cell

    def __init__(self, batch: int, height: int, width: int, like: Tensor) -> None:
        self.batch, self.height, self.width = batch, height, width
        self.keys = torch.full((batch * height * width,), -1, dtype=torch.int64, device=like.device)

    @staticmethod
    def low_words(face_ids: Tensor) -> Tensor:
        """``(T,)`` int32 ``~face_id`` (= ``2**32 - 1 - face_id`` as unsigned bits)."""
        return (-1 - face_ids).to(torch.int32)

    def splat(self, coef: Tensor, low: Tensor, pix_base: Tensor, w: int, h: int) -> None:
        """Evaluate ``coef`` ``(3, 4, T)`` on a ``w × h`` window at each triangle's origin and z-test.

        ``low`` ``(T,)`` from :meth:`low_words`; ``pix_base`` ``(T,)`` int64 flat index of each window
        origin (the window lies inside the image). ``coef`` may be a strided view (a slice of triangles).

        The arithmetic depends only on ``(w, h)`` (never on ``T`` or on the chunking): windows of at most
        ``_PER_CELL_MAX`` cells add the per-cell steps incrementally (value at ``(dx, dy)`` = origin,
        ``+ d/ddy`` ``dy`` times, then ``+ d/ddx`` ``dx`` times), larger ones use one matrix product
        ``[dx, dy, 1] @ coef``. How the cells are scheduled depends on ``T``: with many triangles (the
        first pass) cell by cell in small reused buffers, otherwise all cells at once, in a number of
        launches that grows with ``w + h`` (small windows) or not at all (matrix product).
        """
        t_count = coef.shape[2]
        n_cells = w * h
        if n_cells <= self._PER_CELL_MAX and t_count >= self._SCATTER_PER_CELL_MIN:
            # many triangles (first pass): cell by cell in small reused buffers (cache friendly); the
            # window lies inside the image, so shifting the buffer replaces ``pix_base + offset``
            packed = torch.empty(t_count, 2, dtype=torch.int32, device=coef.device)
            packed[:, 0] = low
            hi, key = packed[:, 1].view(torch.float32), packed.view(torch.int64).view(t_count)
            row = torch.empty_like(coef[2])  # values at cell (0, dy)
            cell = torch.empty_like(coef[2])
            lmin = torch.empty_like(coef[2, 0])
            for dy in range(h):
                if dy:
                    torch.add(coef[2] if dy == 1 else row, coef[1], out=row)
                vals = coef[2] if dy == 0 else row
                for dx in range(w):
                    if dx:  # incremental: one 4-row add per cell
                        vals = torch.add(vals, coef[0], out=cell)
                    torch.minimum(torch.minimum(vals[0], vals[1], out=lmin), vals[2], out=lmin)
                    # covered (min l_i >= 0): +1/z; else a negative word, i.e. a negative key (ignored)
                    torch.copysign(vals[3], lmin, out=hi)
                    self.keys[dy * self.width + dx :].scatter_reduce_(0, pix_base, key, reduce="amax")
            return
        # otherwise all cells at once: few kernel launches per window (bucket), whatever its size
        if n_cells <= self._PER_CELL_MAX:
            vals = coef.new_empty(h, w, 4, t_count)
            vals[0, 0] = coef[2]
            for dy in range(1, h):
                torch.add(vals[dy - 1, 0], coef[1], out=vals[dy, 0])
            for dx in range(1, w):  # one add per column, all rows at once
                torch.add(vals[:, dx - 1], coef[0], out=vals[:, dx])
            vals = vals.view(n_cells, 4, t_count)
        else:
            cells, _ = _window_grid(w, h, self.width, coef.dtype, coef.device)
            vals = (cells @ coef.reshape(3, 4 * t_count)).view(n_cells, 4, t_count)
        lmin = torch.minimum(vals[:, 0], vals[:, 1])
        torch.minimum(lmin, vals[:, 2], out=lmin)
        packed = torch.empty(n_cells, t_count, 2, dtype=torch.int32, device=coef.device)
        packed[:, :, 0] = low
        torch.copysign(vals[:, 3], lmin, out=packed[:, :, 1].view(torch.float32))
        keys = packed.view(torch.int64).view(n_cells, t_count)
        _, offset = _window_grid(w, h, self.width, coef.dtype, coef.device)
        pix = pix_base + offset
        self.keys.scatter_reduce_(0, pix.view(-1), keys.view(-1), reduce="amax")

    def triangle_ids(self) -> Tensor:
        tri = 0xFFFFFFFF - (self.keys & 0xFFFFFFFF)
        tri.masked_fill_(self.keys < (1 << 32), -1)
        return tri.view(self.batch, self.height, self.width)


def _base_window(box_w: Tensor, box_h: Tensor, valid: Tensor, width: int, height: int) -> tuple[int, int]:
    """Window ``(w0, h0)`` of the first pass that minimizes the estimated work.

    Every triangle costs ``w0 * h0`` cells in the first pass; a box larger than the window also goes
    through the bucketed second pass, which costs its power-of-two window plus a per-triangle setup of
    about ``_PASS2_SETUP`` cells. Estimated from a histogram of box sizes (pixel centres, clipped to the
    image; sizes above 4 count as 8) over a subsample of at most ~8k triangles.
    """
    cap = _MAX_BASE_WINDOW + 1
    step = max(1, box_w.shape[0] // 8192)
    bw, bh, ok = box_w[::step], box_h[::step], valid[::step]
    code = (bw.clamp(0, cap) * (cap + 1) + bh.clamp(0, cap)).to(torch.int64) * ok  # invalid -> bin 0
    hist = torch.bincount(code, minlength=(cap + 1) ** 2).tolist()
    n_tri = sum(hist[1:])
    if n_tri == 0:
        return min(2, width), min(2, height)
    pow2 = [0, 1, 2, 4, 4, 8]
    bins = [
        (b_w, b_h, count * (_PASS2_SETUP + min(pow2[b_w], width) * min(pow2[b_h], height)))
        for b_w in range(1, cap + 1)
        for b_h in range(1, cap + 1)
        if (count := hist[b_w * (cap + 1) + b_h])
    ]
    overhead = _CELL_OVERHEAD / step
    best = (math.inf, 1, 1)
    for w0 in range(1, min(_MAX_BASE_WINDOW, width) + 1):
        for h0 in range(1, min(_MAX_BASE_WINDOW, height) + 1):
            cost = (n_tri + overhead) * w0 * h0 + sum(c for b_w, b_h, c in bins if b_w > w0 or b_h > h0)
            best = min(best, (cost, w0, h0))
    return best[1], best[2]


def _splat_chunk(
    zb: _ZBuffer,
    u: Tensor,
    v: Tensor,
    iz: Tensor,
    corners: Tensor,
    face_ids: Tensor,
    pix_item: Tensor | None,
    cull_backfaces: bool,
    max_cells: int,
) -> None:
    """Rasterize ``T`` triangles into ``zb``.

    Args:
        u, v, iz: ``(B*N,)`` flattened projected vertex tables; ``iz <= 0`` marks vertices before ``near``.
        corners: ``(3, T)`` rows of the tables for the corners of each triangle.
        face_ids: ``(T,)`` index into ``faces``; pix_item: ``(T,)`` flat index of pixel (0, 0) of each
            triangle's batch item, or None when all are item 0.
    """
    height, width = zb.height, zb.width
    tu = [u.index_select(0, c) for c in corners]
    tv = [v.index_select(0, c) for c in corners]
    tiz = [iz.index_select(0, c) for c in corners]
    xmin = torch.minimum(torch.minimum(tu[0], tu[1]), tu[2]).ceil_().clamp_(0, width)
    xmax = torch.maximum(torch.maximum(tu[0], tu[1]), tu[2]).floor_().clamp_(-1, width - 1)
    ymin = torch.minimum(torch.minimum(tv[0], tv[1]), tv[2]).ceil_().clamp_(0, height)
    ymax = torch.maximum(torch.maximum(tv[0], tv[1]), tv[2]).floor_().clamp_(-1, height - 1)
    pre_valid = (torch.minimum(torch.minimum(tiz[0], tiz[1]), tiz[2]) > 0) & (xmin <= xmax) & (ymin <= ymax)
    sel = pre_valid.nonzero().squeeze(1)  # (one host sync, as a count would need)
    if sel.numel() == 0:
        return
    if sel.numel() < _COMPACT_BELOW * pre_valid.numel():
        # many triangles cover no pixel centre (sub-pixel, off-screen, behind): drop them before the setup
        tu, tv, tiz = ([t.index_select(0, sel) for t in rows] for rows in (tu, tv, tiz))
        xmin, xmax, ymin, ymax = (t.index_select(0, sel) for t in (xmin, xmax, ymin, ymax))
        face_ids = face_ids.index_select(0, sel)
        pix_item = pix_item.index_select(0, sel) if pix_item is not None else None
        pre_valid = torch.ones_like(xmin, dtype=torch.bool)

    # ---- pass 1: every triangle on a small w0 × h0 window (exact for boxes up to that size) ----------
    w0, h0 = _base_window(xmax - xmin + 1, ymax - ymin + 1, pre_valid, width, height)
    x0 = xmin.clamp(max=width - w0)  # keep the window inside the image; it still covers the box start
    y0 = ymin.clamp(max=height - h0)
    coef, valid = _setup_triangles(tu, tv, tiz, x0, y0, pre_valid, cull_backfaces)
    low = zb.low_words(face_ids)
    pix_base = (y0 * width + x0).to(torch.int64)
    if pix_item is not None:
        pix_base += pix_item
    zb.splat(coef, low, pix_base, w0, h0)

    # ---- pass 2: larger boxes, bucketed by power-of-two window size ---------------------------------
    big = valid & ((xmax - xmin >= w0) | (ymax - ymin >= h0))
    sel = big.nonzero().squeeze(1)
    if sel.numel() == 0:
        return
    tu, tv, tiz = ([t.index_select(0, sel) for t in rows] for rows in (tu, tv, tiz))
    xmin, ymin, low = xmin[sel], ymin[sel], low[sel]
    pix_item = pix_item[sel] if pix_item is not None else None
    box_w = (xmax[sel] - xmin + 1).to(torch.int64)
    box_h = (ymax[sel] - ymin + 1).to(torch.int64)
    win_w = torch.exp2(torch.ceil(torch.log2(box_w.to(torch.float64)))).to(torch.int64).clamp_(max=width)
    win_h = torch.exp2(torch.ceil(torch.log2(box_h.to(torch.float64)))).to(torch.int64).clamp_(max=height)
    over = win_w * win_h > max_cells
    if bool(over.any()):
        # split into bands of ``band`` rows: largest power of two with win_w * band <= max_cells (>= 1)
        fit = (max_cells // win_w).clamp_(min=1).to(torch.float64)
        band = torch.where(over, torch.exp2(torch.floor(torch.log2(fit))).to(torch.int64), win_h)
        n_bands = (box_h + band - 1) // band
        rep = torch.repeat_interleave(torch.arange(sel.numel(), device=sel.device), n_bands)
        first = torch.cumsum(n_bands, 0) - n_bands
        j = torch.arange(rep.numel(), device=sel.device) - first[rep]
        tu, tv, tiz = ([t[rep] for t in rows] for rows in (tu, tv, tiz))
        xmin, low, win_w, win_h = xmin[rep], low[rep], win_w[rep], band[rep]
        ymin = ymin[rep] + (j * win_h).to(ymin.dtype)
        pix_item = pix_item[rep] if pix_item is not None else None
    # sort by window size first, so that each bucket is a slice of the (3, 4, T) coefficients (no copy)
    bucket, order = torch.sort(win_w * (height + 1) + win_h)
    tu, tv, tiz = ([t.index_select(0, order) for t in rows] for rows in (tu, tv, tiz))
    xmin, ymin, low, win_w, win_h = (t.index_select(0, order) for t in (xmin, ymin, low, win_w, win_h))
    pix_item = pix_item.index_select(0, order) if pix_item is not None else None
    x0 = torch.minimum(xmin, (width - win_w).to(xmin.dtype))
    y0 = torch.minimum(ymin, (height - win_h).to(ymin.dtype))
    coef, _ = _setup_triangles(tu, tv, tiz, x0, y0, torch.ones_like(x0, dtype=torch.bool), False)
    pix_base = (y0 * width + x0).to(torch.int64)
    if pix_item is not None:
        pix_base += pix_item
    sizes, counts = torch.unique_consecutive(bucket, return_counts=True)
    start = 0
    for size, count in zip(sizes.tolist(), counts.tolist(), strict=True):
        w, h = divmod(size, height + 1)
        step = max(1, max_cells // (w * h))
        for c0 in range(start, start + count, step):
            c1 = min(c0 + step, start + count)
            zb.splat(coef[:, :, c0:c1], low[c0:c1], pix_base[c0:c1], w, h)
        start += count


def _visibility(
    u: Tensor, v: Tensor, iz: Tensor, faces_t: Tensor, height: int, width: int, cull_backfaces: bool, max_cells: int
) -> Tensor:
    """Visible triangle id per pixel, ``(B, H, W)`` int64, ``-1`` = background. No gradient.

    ``u, v, iz``: ``(B, N)`` projected vertices (pixels) and inverse depths (1/m); ``iz <= 0`` marks
    vertices in front of the near plane (their triangles are dropped). ``faces_t``: ``(3, F)`` int64.
    """
    batch, n_vertices = u.shape
    n_faces = faces_t.shape[1]
    zb = _ZBuffer(batch, height, width, u)
    if n_faces == 0 or batch == 0:
        return zb.triangle_ids()
    u, v, iz = u.reshape(-1), v.reshape(-1), iz.reshape(-1)
    tri_chunk = max(1, max_cells // 16)
    views_per_chunk = max(1, tri_chunk // n_faces)
    faces_per_chunk = min(n_faces, tri_chunk)
    arange_f = torch.arange(n_faces, device=u.device)
    for b0 in range(0, batch, views_per_chunk):
        b1 = min(batch, b0 + views_per_chunk)
        for f0 in range(0, n_faces, faces_per_chunk):
            f1 = min(n_faces, f0 + faces_per_chunk)
            corners = faces_t[:, f0:f1]
            face_ids = arange_f[f0:f1]
            pix_item = None
            if b1 - b0 > 1 or b0 > 0:
                items = torch.arange(b0, b1, device=u.device).view(-1, 1)
                corners = (corners.unsqueeze(1) + items * n_vertices).reshape(3, -1)
                face_ids = face_ids.expand(b1 - b0, -1).reshape(-1)
                pix_item = (items * (height * width)).expand(-1, f1 - f0).reshape(-1)
            _splat_chunk(zb, u, v, iz, corners.contiguous(), face_ids, pix_item, cull_backfaces, max_cells)
    return zb.triangle_ids()


# ----------------------------------------------------------------------------------------------------------
# differentiable barycentrics for fixed visibility
# ----------------------------------------------------------------------------------------------------------


class _PerspectiveBary(torch.autograd.Function):
    """Perspective-correct barycentrics and depth of pixel centres in given triangles, with the projection
    of the vertices fused in (one autograd node; the backward pass is written out by hand).

    Inputs: ``vertices`` ``(B, N, 3)`` (camera frame, or ``(u, v, z)`` when ``K`` is None), ``K``
    ``(B, 3, 3)`` or None, the projection tables of :func:`_project_private` ``u, v, iz, in_front``
    ``(B, N)``, corner rows ``corners`` ``(3, M)`` int64 into the flattened ``(B*N)`` tables and the pixel
    centre coordinates ``px``, ``py`` ``(M,)`` (dtype of ``u``) of ``M`` covered pixels. Outputs ``bary``
    ``(3, M)`` and ``depth`` ``(M,)``. With the screen-space edge functions ``w_i = (a_j - p) × (a_k - p)``:
    ``q_i = w_i / z_i``, ``bary_i = q_i / Σq``, ``depth = Σw / Σq`` (0 for a degenerate ``Σq = 0``).
    Either output's gradient may be absent (None).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        vertices: Tensor,
        K: Tensor | None,
        u: Tensor,
        v: Tensor,
        iz: Tensor,
        in_front: Tensor,
        corners: Tensor,
        px: Tensor,
        py: Tensor,
    ) -> tuple[Tensor, Tensor]:
        ctx.set_materialize_grads(False)
        uf, vf, izf = u.reshape(-1), v.reshape(-1), iz.reshape(-1)
        du = [uf.index_select(0, c).sub_(px) for c in corners]
        dv = [vf.index_select(0, c).sub_(py) for c in corners]
        tiz = [izf.index_select(0, c) for c in corners]
        w = []
        for i in range(3):
            j, k = (i + 1) % 3, (i + 2) % 3
            w.append((du[j] * dv[k]).addcmul_(dv[j], du[k], value=-1.0))
        q = [w[i] * tiz[i] for i in range(3)]
        inv = torch.nan_to_num((q[0] + q[1] + q[2]).reciprocal_(), nan=0.0, posinf=0.0, neginf=0.0)
        bary = u.new_empty(3, corners.shape[1])
        for i in range(3):
            torch.mul(q[i], inv, out=bary[i])
        depth = (w[0] + w[1] + w[2]).mul_(inv)
        ctx.save_for_backward(*du, *dv, *tiz, *w, inv, bary, depth, corners, vertices, K, u, iz, in_front)
        ctx.has_k = K is not None
        return bary, depth

    @staticmethod
    def backward(ctx: Any, g_bary: Tensor | None, g_depth: Tensor | None) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        saved = ctx.saved_tensors
        du, dv, tiz, w = saved[0:3], saved[3:6], saved[6:9], saved[9:12]
        inv, bary, depth, corners, vertices, K, u, iz, in_front = saved[12:21]
        if g_bary is None and g_depth is None:
            return (None,) * 9
        g_bary = bary.new_zeros(bary.shape) if g_bary is None else g_bary.contiguous()
        # bary_j = q_j / S, depth = W / S (S = Σq, W = Σw, inv = 1/S or 0 if degenerate):
        # dL/dq_i = (g_i - Σ_j g_j bary_j - g_depth depth) / S ;  dL/dw_i = dL/dq_i / z_i + g_depth / S
        common = g_bary[0] * bary[0]
        common.addcmul_(g_bary[1], bary[1]).addcmul_(g_bary[2], bary[2])
        if g_depth is not None:
            common.addcmul_(g_depth, depth)
        g_q = [(g_bary[i] - common).mul_(inv) for i in range(3)]
        if g_depth is None:  # depth unused (e.g. only interpolated attributes): skip its terms
            g_w = [g_q[i] * tiz[i] for i in range(3)]
        else:
            g_d = g_depth * inv
            g_w = [torch.addcmul(g_d, g_q[i], tiz[i]) for i in range(3)]
        size = u.numel()
        flat = corners.reshape(-1)
        rows = inv.new_empty(3, inv.shape[0])
        # w_i = du_j dv_k - dv_j du_k  =>  dL/du_m = g_{m-1} dv_{m+1} - g_{m+1} dv_{m-1}
        for m in range(3):
            torch.mul(g_w[(m + 2) % 3], dv[(m + 1) % 3], out=rows[m])
            rows[m].addcmul_(g_w[(m + 1) % 3], dv[(m + 2) % 3], value=-1.0)
        g_u = rows.new_zeros(size).scatter_add_(0, flat, rows.view(-1)).view_as(u)
        # dL/dv_m = g_{m+1} du_{m-1} - g_{m-1} du_{m+1}
        for m in range(3):
            torch.mul(g_w[(m + 1) % 3], du[(m + 2) % 3], out=rows[m])
            rows[m].addcmul_(g_w[(m + 2) % 3], du[(m + 1) % 3], value=-1.0)
        g_v = rows.new_zeros(size).scatter_add_(0, flat, rows.view(-1)).view_as(u)
        for i in range(3):
            torch.mul(g_q[i], w[i], out=rows[i])
        g_iz = rows.new_zeros(size).scatter_add_(0, flat, rows.view(-1)).view_as(u)

        # through the projection: u = K00 x/z + K01 y/z + K02, v = K10 x/z + K11 y/z + K12, iz = 1/z
        g_vertices = g_k = None
        if ctx.has_k:
            x, y = vertices[..., 0], vertices[..., 1]
            xn, yn = x * iz, y * iz
            k = K.unsqueeze(-1)
            g_xn = (k[:, 0, 0] * g_u).addcmul_(k[:, 1, 0], g_v)
            g_yn = (k[:, 0, 1] * g_u).addcmul_(k[:, 1, 1], g_v)
            g_iz.addcmul_(g_xn, x).addcmul_(g_yn, y)
            if ctx.needs_input_grad[0]:
                g_vertices = torch.stack([g_xn * iz, g_yn * iz, (g_iz * iz).mul_(iz).mul_(in_front).neg_()], dim=-1)
            if ctx.needs_input_grad[1]:
                zero = torch.zeros_like(g_u[:, 0])
                row0 = torch.stack([(g_u * xn).sum(1), (g_u * yn).sum(1), g_u.sum(1)], dim=1)
                row1 = torch.stack([(g_v * xn).sum(1), (g_v * yn).sum(1), g_v.sum(1)], dim=1)
                g_k = torch.stack([row0, row1, torch.stack([zero, zero, zero], dim=1)], dim=1)
        elif ctx.needs_input_grad[0]:
            g_vertices = torch.stack([g_u, g_v, (g_iz * iz).mul_(iz).mul_(in_front).neg_()], dim=-1)
        return g_vertices, g_k, None, None, None, None, None, None, None


class _ExpandPixels(torch.autograd.Function):
    """``(3, M)`` barycentrics and ``(M,)`` depths of the covered pixels ``pix`` ``(M,)`` -> ``(3, P)`` and
    ``(P,)`` images, 0 elsewhere (constant: no gradient flows there). Backward: gathers at ``pix``."""

    @staticmethod
    def forward(ctx: Any, bary: Tensor, depth: Tensor, pix: Tensor, size: int) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(pix)
        bary_full = bary.new_zeros(3, size)
        for i in range(3):
            bary_full[i].index_copy_(0, pix, bary[i])
        return bary_full, depth.new_zeros(size).index_copy_(0, pix, depth)

    @staticmethod
    def backward(ctx: Any, g_bary: Tensor | None, g_depth: Tensor | None) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        (pix,) = ctx.saved_tensors
        g_b = None
        if g_bary is not None and ctx.needs_input_grad[0]:
            g_b = g_bary.new_empty(3, pix.shape[0])
            for i in range(3):
                torch.index_select(g_bary[i], 0, pix, out=g_b[i])
        g_d = g_depth.index_select(0, pix) if g_depth is not None and ctx.needs_input_grad[1] else None
        return g_b, g_d, None, None


def _faces_t(faces: Tensor) -> Tensor:
    """``(3, F)`` contiguous int64 corner rows of ``(F, 3)`` faces."""
    faces = faces.to(torch.int64)
    out = faces.new_empty(3, faces.shape[0])
    for i in range(3):  # row copies: much faster than .t().contiguous() on CPU
        out[i].copy_(faces[:, i])
    return out


def _pixel_corners(faces_t: Tensor, triangle_id: Tensor) -> Tensor:
    """``(3, B*H*W)`` int64 vertex index (in ``[0, N)``) of each pixel's triangle corners (0 for background)."""
    tri = triangle_id.reshape(-1).clamp(min=0)
    if faces_t.shape[1] == 0:
        return tri.new_zeros(3, tri.shape[0])
    out = tri.new_empty(3, tri.shape[0])
    for i in range(3):
        torch.index_select(faces_t[i], 0, tri, out=out[i])
    return out


def _offset_rows(corners: Tensor, batch: int, n_vertices: int) -> Tensor:
    """Add ``b * n_vertices`` to the corner rows of pixels of batch item ``b`` (flattened ``(B*N)`` tables)."""
    if batch == 1:
        return corners
    offs = (torch.arange(batch, device=corners.device) * n_vertices).view(1, batch, 1)
    return (corners.view(3, batch, -1) + offs).view(3, -1)


def _make_fragments(
    vertices: Tensor,
    K: Tensor | None,
    tables: tuple[Tensor, Tensor, Tensor, Tensor],
    faces: Tensor,
    max_index: int,
    faces_t: Tensor,
    triangle_id: Tensor,
) -> Fragments:
    """Differentiable barycentrics / depth for a visibility map; the work is done on the covered pixels only
    (the ``M = mask.sum()`` pixels listed by ``pix``) and expanded to the images at the end."""
    batch, height, width = triangle_id.shape
    mask = triangle_id >= 0
    pix = mask.view(-1).nonzero().squeeze(1)
    tri = triangle_id.view(-1).index_select(0, pix)
    corners = tri.new_empty(3, tri.shape[0])
    for i in range(3):
        torch.index_select(faces_t[i], 0, tri, out=corners[i])
    n_vertices = vertices.shape[1]
    # item, row and column of each covered pixel; float64 division is exact here (indices < 2**52) and
    # several times faster than int64 floor division on CPU
    flat = pix.to(torch.float64)
    item = None
    if batch > 1:
        item_f = torch.div(flat, height * width).floor_()
        flat.sub_(item_f * (height * width))
        item = item_f.to(torch.int64)
    row = torch.div(flat, width).floor_()
    px = flat.sub_(row * width).to(vertices.dtype)
    py = row.to(vertices.dtype)
    if n_vertices == 0:  # no vertex at all (so no face): nothing to differentiate
        bary_c, depth_c = vertices.new_zeros(3, 0), vertices.new_zeros(0)
    else:
        rows = corners if item is None else corners + item * n_vertices
        bary_c, depth_c = _PerspectiveBary.apply(vertices, K, *tables, rows, px, py)
    bary, depth = _ExpandPixels.apply(bary_c, depth_c, pix, batch * height * width)
    bary = bary.view(3, batch, height, width).permute(1, 2, 3, 0)
    return Fragments(
        triangle_id=triangle_id,
        bary=bary,
        depth=depth.view(batch, height, width),
        mask=mask,
        _topology=_Topology(faces, max_index, pix, corners, item, bary, bary_c),
    )


def fragments_from_triangle_ids(
    vertices_cam: Tensor, K: Tensor | None, faces: Tensor, triangle_id: Tensor, *, near: float = 1e-3
) -> Fragments:
    """Differentiable barycentrics and depth for a *given* visibility map (second half of :func:`rasterize`).

    Useful to keep visibility fixed while optimizing (e.g. ``gradcheck``) or to re-use one visibility pass.

    Args:
        vertices_cam: ``(B, N, 3)`` float32/float64, camera optical frame (x right, y down, z forward),
            metres; with ``K=None``: already projected ``(u, v, z)``: pixels (OpenCV) and depth in metres.
        K: ``(B, 3, 3)`` or ``(3, 3)`` pinhole intrinsics in pixels (last row ``0 0 1``), or None.
        faces: ``(F, 3)`` int64 vertex indices.
        triangle_id: ``(B, H, W)`` int64, ``-1`` = background, else an index into ``faces`` (whose vertices
            should have ``z >= near``; others give meaningless values).
        near: metres; only used to keep the projection of vertices behind it finite.

    Returns:
        :class:`Fragments` whose ``bary``/``depth`` are differentiable w.r.t. ``vertices_cam`` and ``K``.
    """
    batch, n_faces, max_index = _check_vertices_faces(vertices_cam, faces, "vertices_cam")
    K = _check_intrinsics(K, batch, vertices_cam)
    near = _check_near(near)
    if not isinstance(triangle_id, Tensor):
        raise ShapeError(f"triangle_id: expected a torch.Tensor, got {type(triangle_id).__name__}")
    check_shape("triangle_id", triangle_id, (batch, None, None))
    if triangle_id.dtype != torch.int64:
        raise ShapeError(f"triangle_id: expected dtype int64, got {triangle_id.dtype}")
    if triangle_id.numel():
        lo, hi = (int(x) for x in triangle_id.aminmax())
        if lo < -1 or hi >= n_faces:
            raise ShapeError(f"triangle_id: values must lie in [-1, {n_faces - 1}] (F={n_faces}), got [{lo}, {hi}]")
    tables = _project_private(vertices_cam, K, near)
    return _make_fragments(vertices_cam, K, tables, faces, max_index, _faces_t(faces), triangle_id)


def rasterize(
    vertices_cam: Tensor,
    K: Tensor | None,
    faces: Tensor,
    height: int,
    width: int,
    *,
    near: float = 1e-3,
    cull_backfaces: bool = False,
    max_pixels_per_chunk: int = _DEFAULT_MAX_PIXELS_PER_CHUNK,
    backend: str = "torch",
) -> Fragments:
    """Rasterize ``B`` meshes sharing the topology ``faces`` into ``height × width`` images.

    Args:
        vertices_cam: ``(B, N, 3)`` float32 or float64 vertex positions in each item's camera optical
            frame (x right, y down, z forward), metres. ``B`` = meshes × views flattened.
            With ``K=None`` the vertices are taken as already projected: ``(u, v, z)`` with ``u, v`` in
            pixels (OpenCV, integer = pixel centre) and ``z`` the camera depth in metres (used for the
            z-buffer, the near test and perspective correction).
        K: ``(B, 3, 3)`` (or ``(3, 3)``, shared) pinhole intrinsics ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``
            in pixels (last row not read), or None (see above). Cast to the dtype of ``vertices_cam``.
        faces: ``(F, 3)`` int64 vertex indices in ``[0, N)``. Front faces are counter-clockwise in the
            displayed (y-down) image, i.e. their normal ``(v1-v0) × (v2-v0)`` points to the camera.
        height, width: image size in pixels.
        near: metres; triangles with any vertex at ``z < near`` are dropped whole (no clipping).
        cull_backfaces: drop back-facing triangles (clockwise in the image). Default: keep both windings.
        max_pixels_per_chunk: bound on the (triangle, candidate pixel) cells evaluated at once: at most
            ``max(max_pixels_per_chunk, 2 * width)`` per group (each cell costs ~30 bytes of temporaries);
            triangles are set up ``max_pixels_per_chunk // 16`` at a time (~150 bytes each). Peak memory
            also holds the ``(B, H, W)`` outputs and their autograd state (~200 bytes per pixel for
            float32). Does not change the result.
        backend: ``"torch"`` (default, this module) or ``"pytorch3d"`` (visibility from PyTorch3D's
            rasterizer where it is installed, see :mod:`dfmvr_core.render.pytorch3d_visibility`; the
            barycentrics, depth and their gradients are computed here either way).

    Returns:
        :class:`Fragments` (``triangle_id``, ``bary``, ``depth``, ``mask``). ``bary`` and ``depth`` are
        differentiable w.r.t. ``vertices_cam`` and ``K``; visibility is not. No triangle at all (or none in
        view) gives all-background images, not an error.

    Raises:
        ShapeError: wrong shapes/dtypes/devices, non-finite values, face indices out of range, bad image
            size or parameters; the message names the argument.
        ConfigError: unknown ``backend``, or ``"pytorch3d"`` where it cannot be imported.
    """
    if backend not in ("torch", "pytorch3d"):
        raise ConfigError(f"backend: expected 'torch' or 'pytorch3d', got {backend!r}")
    batch, _, max_index = _check_vertices_faces(vertices_cam, faces, "vertices_cam")
    K = _check_intrinsics(K, batch, vertices_cam)
    for name, value in (("height", height), ("width", width), ("max_pixels_per_chunk", max_pixels_per_chunk)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ShapeError(f"{name}: expected a positive int, got {value!r}")
    near = _check_near(near)
    faces_t = _faces_t(faces)
    tables = _project_private(vertices_cam, K, near)
    u, v, iz, in_front = tables
    with torch.no_grad():
        if backend == "pytorch3d":
            triangle_id = pytorch3d_triangle_ids(
                u, v, iz.reciprocal(), in_front, faces.to(torch.int64), height, width, bool(cull_backfaces)
            )
        else:
            iz_marked = torch.where(in_front, iz, -1.0)  # iz <= 0: behind the near plane
            triangle_id = _visibility(
                u, v, iz_marked, faces_t, height, width, bool(cull_backfaces), max_pixels_per_chunk
            )
    return _make_fragments(vertices_cam, K, tables, faces, max_index, faces_t, triangle_id)
