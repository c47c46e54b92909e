"""Per-pixel interpolation of vertex attributes with the barycentrics of :func:`rasterize`.

Performance notes: when given the very ``faces`` object and the very :class:`Fragments` returned by
:func:`rasterize`, the work (forward and backward) is done on the covered pixels only, from the compact
barycentrics and corner indices rasterize kept (``Fragments._topology``); the result is then expanded to
the image with the background ``fill``. Otherwise the same formula is evaluated on every pixel.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from dfmvr_core.errors import ShapeError
from dfmvr_core.render.rasterizer import (
    Fragments,
    _check_finite_fast,
    _faces_t,
    _is_int_dtype,
    _offset_rows,
    _pixel_corners,
    _Topology,
)
from dfmvr_core.validation import check_shape

__all__ = ["interpolate", "interpolate_one_hot_labels"]


def _accumulate_grads(
    ctx: Any, vals: Tensor, bary: Tensor, corners: Tensor, channels: int, m: int, grad_column: Any
) -> tuple[Tensor | None, Tensor | None]:
    """Backward of ``out[c] = Σ_i vals[c, i] · bary[i]`` for both interpolation functions.

    ``grad_column(c)`` gives the output gradient of channel ``c`` at the ``m`` pixels of ``bary`` / ``corners``
    ``(3, m)``. Returns the gradient of the ``(N, C)`` attribute table (scatter-added to the corner vertices)
    and of ``bary``, each None when not needed.
    """
    flat = corners.reshape(-1)
    g_table = bary.new_zeros(ctx.table_shape) if ctx.needs_input_grad[0] else None
    g_bary = bary.new_zeros(3, m) if ctx.needs_input_grad[1] else None
    contrib = bary.new_empty(3, m) if g_table is not None else None
    for c in range(channels):
        g_c = grad_column(c)
        if g_table is not None and contrib is not None:
            for i in range(3):
                torch.mul(bary[i], g_c, out=contrib[i])
            g_table[:, c].scatter_add_(0, flat, contrib.view(-1))
        if g_bary is not None:
            for i in range(3):
                g_bary[i].addcmul_(vals[c, i], g_c)
    return g_table, g_bary


class _Interpolate(torch.autograd.Function):
    """``out[c, p] = Σ_i bary[i, p] · table[corners[i, p], c]``, plus ``fill[c]`` where not ``mask[p]``.

    ``table`` ``(M, C)``, ``bary`` ``(3, P)`` (0 off the mask), ``corners`` ``(3, P)`` int64, ``mask``
    ``(P,)`` bool, ``fill``: list of C floats; returns ``(C, P)``. Gradients go to ``table`` (scatter-add)
    and ``bary``. Off the mask ``bary`` is 0, so nothing flows to ``table`` from there, and the gradient
    w.r.t. ``bary`` there is ignored by :class:`_PerspectiveBary` (which produced constant zeros).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, table: Tensor, bary: Tensor, corners: Tensor, mask: Tensor, fill: list[float]
    ) -> Tensor:
        channels, p = table.shape[1], corners.shape[1]
        vals = table.new_empty(channels, 3, p)
        out = table.new_empty(channels, p)
        background = None
        for c in range(channels):
            column = table[:, c]
            for i in range(3):
                torch.index_select(column, 0, corners[i], out=vals[c, i])
            torch.mul(vals[c, 0], bary[0], out=out[c])
            out[c].addcmul_(vals[c, 1], bary[1]).addcmul_(vals[c, 2], bary[2])
            if fill[c] != 0.0:
                if background is None:
                    background = (~mask).to(table.dtype)
                out[c].add_(background, alpha=fill[c])
        ctx.save_for_backward(vals, bary, corners)
        ctx.table_shape = table.shape
        return out

    @staticmethod
    def backward(ctx: Any, g_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        vals, bary, corners = ctx.saved_tensors
        channels, p = vals.shape[0], vals.shape[2]
        g_table, g_bary = _accumulate_grads(ctx, vals, bary, corners, channels, p, lambda c: g_out[c])
        return g_table, g_bary, None, None, None


class _InterpolatePixels(torch.autograd.Function):
    """:class:`_Interpolate` on the ``M`` covered pixels ``pix`` ``(M,)`` of a ``(C, P)`` image: ``bary``
    and ``corners`` are ``(3, M)``; the other pixels get ``fill[c]`` (constant). Returns ``(C, P)``."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, table: Tensor, bary: Tensor, corners: Tensor, pix: Tensor, size: int, fill: list[float]
    ) -> Tensor:
        channels, m = table.shape[1], corners.shape[1]
        vals = table.new_empty(channels, 3, m)
        out = table.new_empty(channels, size)
        out_c = table.new_empty(m)
        for c in range(channels):
            column = table[:, c]
            for i in range(3):
                torch.index_select(column, 0, corners[i], out=vals[c, i])
            torch.mul(vals[c, 0], bary[0], out=out_c)
            out_c.addcmul_(vals[c, 1], bary[1]).addcmul_(vals[c, 2], bary[2])
            out[c].fill_(fill[c]).index_copy_(0, pix, out_c)
        ctx.save_for_backward(vals, bary, corners, pix)
        ctx.table_shape = table.shape
        return out

    @staticmethod
    def backward(ctx: Any, g_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        vals, bary, corners, pix = ctx.saved_tensors
        channels, m = vals.shape[0], vals.shape[2]
        g_c = g_out.new_empty(m)
        g_table, g_bary = _accumulate_grads(
            ctx, vals, bary, corners, channels, m, lambda c: torch.index_select(g_out[c], 0, pix, out=g_c)
        )
        return g_table, g_bary, None, None, None, None


def _check_common(fragments: Any, faces: Any) -> _Topology | None:
    """Check ``fragments`` / ``faces``; return the fragments' topology cache where it applies."""
    if not isinstance(fragments, Fragments):
        raise ShapeError(f"fragments: expected a Fragments (from rasterize), got {type(fragments).__name__}")
    if not isinstance(faces, Tensor):
        raise ShapeError(f"faces: expected a torch.Tensor, got {type(faces).__name__}")
    topo = fragments._topology
    if topo is not None and topo.faces is faces and topo.bary is fragments.bary:
        return topo
    check_shape("faces", faces, (None, 3))
    if not _is_int_dtype(faces):
        raise ShapeError(f"faces: expected an integer dtype (int64), got {faces.dtype}")
    tri = fragments.triangle_id
    if tri.numel() and int(tri.max()) >= faces.shape[0]:
        raise ShapeError(
            f"faces: has {faces.shape[0]} rows but fragments reference triangle {int(tri.max())}; "
            "expected the faces given to rasterize"
        )
    if faces.numel() and int(faces.min()) < 0:
        raise ShapeError(f"faces: vertex indices must be >= 0, got {int(faces.min())}")
    return None


def _check_max_index(topo: _Topology | None, faces: Tensor, name: str, n_vertices: int) -> None:
    max_index = topo.max_index if topo is not None else (int(faces.max()) if faces.numel() else -1)
    if max_index >= n_vertices:
        raise ShapeError(f"{name}: has N={n_vertices} vertices but faces reference vertex {max_index}")


def _compact_rows(topo: _Topology, per_item: bool, n_vertices: int) -> Tensor:
    """``(3, M)`` rows of the covered pixels' corners in a ``(B*N)`` (per item) or ``(N)`` table."""
    if per_item and topo.item is not None:
        return topo.corners + topo.item * n_vertices
    return topo.corners


def interpolate(
    attributes: Tensor,
    fragments: Fragments,
    faces: Tensor,
    *,
    fill: float | Tensor = 0.0,
) -> Tensor:
    """Interpolate per-vertex attributes at every pixel with the fragments' perspective-correct barycentrics.

    Args:
        attributes: ``(B, N, C)`` per item or ``(N, C)`` shared by all items; floating dtype (cast to the
            dtype of ``fragments.bary``), any units (colours, normals, camera-frame positions, ...).
        fragments: output of :func:`rasterize` for ``B`` items of size ``H × W``.
        faces: ``(F, 3)`` int64, the faces given to :func:`rasterize` (passing the same object skips the
            re-validation and re-uses the per-pixel corner indices computed there).
        fill: background value, a float or a tensor of shape ``(C,)`` / ``(1,)`` (not differentiable).

    Returns:
        ``(B, H, W, C)`` image. Stored channels-first, so this is a non-contiguous view; call
        ``.contiguous()`` before ``.view()``. Differentiable w.r.t. ``attributes`` and, through
        ``fragments.bary``, the vertex positions (interior gradients only; the background is constant).

    Raises:
        ShapeError: naming the argument, for wrong shapes, non-finite attributes or indices out of range.
    """
    topo = _check_common(fragments, faces)
    if not isinstance(attributes, Tensor):
        raise ShapeError(f"attributes: expected a torch.Tensor, got {type(attributes).__name__}")
    batch, height, width = fragments.triangle_id.shape
    if attributes.dim() == 3:
        check_shape("attributes", attributes, (batch, None, None))
    else:
        check_shape("attributes", attributes, (None, None))
    if not attributes.dtype.is_floating_point:
        raise ShapeError(f"attributes: expected a floating dtype, got {attributes.dtype}")
    if attributes.device != fragments.bary.device:
        raise ShapeError(f"attributes: on {attributes.device}, expected {fragments.bary.device}")
    _check_finite_fast("attributes", attributes)
    per_item = attributes.dim() == 3
    n_vertices, channels = attributes.shape[-2], attributes.shape[-1]
    _check_max_index(topo, faces, "attributes", n_vertices)

    dtype = fragments.bary.dtype
    table = attributes.reshape(-1, channels).to(dtype)  # (B*N or N, C)
    fill_t = torch.as_tensor(fill, dtype=torch.float64).detach().cpu()
    if fill_t.dim() > 1 or (fill_t.dim() == 1 and fill_t.shape[0] not in (1, channels)):
        raise ShapeError(f"fill: expected a float or a tensor of shape ({channels},), got shape {tuple(fill_t.shape)}")
    fill_list = [float(x) for x in fill_t.reshape(-1).expand(channels)]
    if topo is not None:  # covered pixels only
        rows = _compact_rows(topo, per_item, n_vertices)
        size = batch * height * width
        out = _InterpolatePixels.apply(table, topo.bary_c, rows, topo.pix, size, fill_list)
    else:
        corners = _pixel_corners(_faces_t(faces), fragments.triangle_id)
        if per_item:
            corners = _offset_rows(corners, batch, n_vertices)
        bary = fragments.bary.permute(3, 0, 1, 2).reshape(3, -1)  # channels-first storage: no copy
        out = _Interpolate.apply(table, bary, corners, fragments.mask.reshape(-1), fill_list)
    return out.view(channels, batch, height, width).permute(1, 2, 3, 0)


@torch.no_grad()
def interpolate_one_hot_labels(
    labels: Tensor,
    num_classes: int,
    fragments: Fragments,
    faces: Tensor,
    *,
    background: int = 0,
) -> Tensor:
    """Per-pixel label map: the argmax of the interpolated one-hot encoding of per-vertex labels.

    Equivalent to ``interpolate(one_hot(labels, num_classes).float(), ...).argmax(-1)`` on covered pixels
    (ties go to the smaller class, as ``argmax``), computed from the three corner labels of each pixel
    without building the one-hot table. Not differentiable.

    Args:
        labels: ``(N,)`` int64 class per vertex in ``[0, num_classes)``, or ``(B, N)`` per item.
        num_classes: number of classes (> 0).
        fragments: output of :func:`rasterize`.
        faces: ``(F, 3)`` int64, the faces given to :func:`rasterize`.
        background: label written where no triangle is visible (any int, e.g. ``-1`` or ``num_classes``).

    Returns:
        ``(B, H, W)`` int64 label map.
    """
    topo = _check_common(fragments, faces)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes <= 0:
        raise ShapeError(f"num_classes: expected a positive int, got {num_classes!r}")
    if not isinstance(labels, Tensor):
        raise ShapeError(f"labels: expected a torch.Tensor, got {type(labels).__name__}")
    batch, height, width = fragments.triangle_id.shape
    if labels.dim() == 2:
        check_shape("labels", labels, (batch, None))
    else:
        check_shape("labels", labels, (None,))
    if not _is_int_dtype(labels):
        raise ShapeError(f"labels: expected an integer dtype (int64), got {labels.dtype}")
    if labels.device != fragments.bary.device:
        raise ShapeError(f"labels: on {labels.device}, expected {fragments.bary.device}")
    if labels.numel():
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_classes:
            raise ShapeError(f"labels: values must lie in [0, {num_classes - 1}], got [{lo}, {hi}]")
    per_item = labels.dim() == 2
    n_vertices = labels.shape[-1]
    _check_max_index(topo, faces, "labels", n_vertices)
    if topo is not None:  # covered pixels only
        corners = _compact_rows(topo, per_item, n_vertices)
        w = topo.bary_c.detach()
    else:
        corners = _pixel_corners(_faces_t(faces), fragments.triangle_id)
        if per_item:
            corners = _offset_rows(corners, batch, n_vertices)
        w = fragments.bary.detach().permute(3, 0, 1, 2).reshape(3, -1)

    flat = labels.to(torch.int64).reshape(-1)
    lab = torch.stack([flat.index_select(0, corners[i]) for i in range(3)])  # (3, P) or (3, M)
    same = lab.unsqueeze(0) == lab.unsqueeze(1)  # (3, 3, P): corner j has the label of corner i
    score = (w.unsqueeze(1) * same).sum(dim=0)  # (3, P): interpolated one-hot value of corner i's label
    best = score.amax(dim=0, keepdim=True)
    # among the labels reaching the maximum pick the smallest class (what argmax of the one-hot does)
    candidates = torch.where(score == best, lab, torch.iinfo(torch.int64).max)
    # two elementwise minimums: int64 amin(dim=0) over 3 rows is a slow strided reduction on CPU (~14 ms at 224²)
    winner = torch.minimum(torch.minimum(candidates[0], candidates[1]), candidates[2])
    if topo is not None:
        out = winner.new_full((batch * height * width,), int(background)).index_copy_(0, topo.pix, winner)
    else:
        out = torch.where(fragments.mask.reshape(-1), winner, int(background))
    return out.view(batch, height, width)
