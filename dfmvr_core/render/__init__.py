"""Differentiable pure-PyTorch mesh rasterizer (CPU or CUDA, no compiled extension).

:func:`rasterize` resolves visibility and perspective-correct barycentrics for ``B`` (meshes × views)
items sharing one topology; :func:`interpolate` turns per-vertex attributes into images and
:func:`interpolate_one_hot_labels` makes part-label maps. See :mod:`dfmvr_core.render.rasterizer` for the
conventions (OpenCV pixels, optical camera frame, counter-clockwise front faces, near-plane policy).
"""

from dfmvr_core.render.interpolation import interpolate, interpolate_one_hot_labels
from dfmvr_core.render.rasterizer import Fragments, fragments_from_triangle_ids, rasterize

__all__ = [
    "Fragments",
    "fragments_from_triangle_ids",
    "interpolate",
    "interpolate_one_hot_labels",
    "rasterize",
]
