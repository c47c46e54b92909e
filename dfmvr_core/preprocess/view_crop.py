"""One camera view → the network's square face crop, with everything needed to map predictions back.

Policy (the same as training's, :class:`~dfmvr_core.geometry.face_crop.CropCamera`): the crop is the square of side
``box_scale`` × the larger side of the face box, centred on it, resampled to ``size`` pixels. The face box comes from,
in order of priority: given 68 landmarks (their bounding box), a given ROI ``(x0, y0, x1, y1)``, the detector's
landmarks. The crop affine ``A`` (image → crop pixels) and ``K_crop = A·K`` travel with the crop
(:func:`~dfmvr_core.geometry.crop.intrinsics_in_crop`), so a pose predicted in the crop maps to the real camera with
:func:`~dfmvr_core.geometry.face_crop.crop_pose_to_camera`.

"No face" is a result, not an error: no detection, a face smaller than ``min_face_px`` or a face box entirely outside
the image give ``ViewCrop.valid = False`` with a reason. Exceptions are only raised for bad input (types, shapes,
NaN, an image whose size differs from the intrinsics').

Anti-aliasing: ``cv2.warpAffine`` samples bilinearly, which aliases when the crop shrinks the image (a face of 600 px
in a 4K image → 224 px). ``warpAffine`` has no ``INTER_AREA`` (it falls back to bilinear), so when the downscale
factor ``d = side / size`` exceeds 1.25, :func:`crop_image` first shrinks the region the crop reads by the integer
factor ``⌊d⌋`` with ``cv2.resize(INTER_AREA)`` (box averages), blurs the remaining factor ``r < 2`` with a Gaussian of
σ = (r − 1) / 2 (the rule of ``skimage.transform.rescale``'s ``anti_aliasing``), then warps. Only that region is
touched, so the cost does not grow with the image (≈ 3 ms for a 1800-px box in a 1600×1200 image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.geometry.camera import PinholeIntrinsics
from dfmvr_core.geometry.crop import apply_affine, crop_transform_from_box, intrinsics_in_crop, warp_to_crop
from dfmvr_core.geometry.face_crop import CropCamera, face_box_from_landmarks, face_box_from_roi
from dfmvr_core.preprocess.detector import FaceLandmarks, LandmarkDetector
from dfmvr_core.preprocess.images import check_rgb_image
from dfmvr_core.validation import check_finite, check_shape

__all__ = ["ANTIALIAS_MIN_DOWNSCALE", "ViewCrop", "crop_image", "crop_view"]

ANTIALIAS_MIN_DOWNSCALE = 1.25
"""Crops shrinking the image by more than this factor are anti-aliased (see the module docstring)."""

REASON_NO_FACE = "no face detected"
REASON_NO_SOURCE = "no face source: no landmarks, roi or detector given"


@dataclass(frozen=True)
class ViewCrop:
    """The network input of one view and its geometry.

    Attributes:
        image: ``(S, S, 3)`` uint8 RGB crop. For an invalid view: the whole image letterboxed into the crop
            (for display; the network must not use it).
        A: ``(2, 3)`` float64 affine image pixels → crop pixels (the letterbox's for an invalid view).
        K: ``(3, 3)`` float64 real camera matrix (image pixels).
        K_crop: ``(3, 3)`` float64 ``[A; 0 0 1] · K``, the crop's camera matrix.
        valid: a face was found and cropped.
        reason: why the view is invalid (``"no face detected"``, ``"face too small: ..."``, ...), None when valid.
        landmarks: ``(68, 2)`` float32 image pixels (given or detected), None for ROI crops or when unknown.
        landmarks_crop: ``(68, 2)`` float32 crop pixels (``landmarks`` mapped by ``A``), None when ``landmarks``
            is None or the view is invalid.
        box: ``(center_x, center_y, side)`` image pixels of the square crop box, None when no face box was found.
        source: where the face box came from: ``"landmarks"``, ``"roi"``, ``"detector"`` or ``"none"``.
        confidence: the detector's score for ``source == "detector"`` (may be NaN), else None.
    """

    image: np.ndarray
    A: np.ndarray
    K: np.ndarray
    K_crop: np.ndarray
    valid: bool
    reason: str | None
    landmarks: np.ndarray | None
    landmarks_crop: np.ndarray | None
    box: tuple[float, float, float] | None
    source: str = "none"
    confidence: float | None = None


def _as_points(name: str, value: object) -> np.ndarray:
    if isinstance(value, FaceLandmarks):
        value = value.points68
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
        raise ShapeError(f"{name}: expected a (68, 2) numeric array of pixels, got {type(value).__name__}")
    check_shape(name, value, (68, 2))
    check_finite(name, value)
    return value.astype(np.float64)


def _as_roi(value: object) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, (list, tuple)):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
        raise ShapeError(f"roi: expected (x0, y0, x1, y1) pixels as a numeric (4,) array, got {type(value).__name__}")
    check_shape("roi", value, (4,))
    check_finite("roi", value)
    roi = value.astype(np.float64)
    if not (roi[2] > roi[0] and roi[3] > roi[1]):
        raise ShapeError(f"roi: expected (x0, y0, x1, y1) with x1 > x0 and y1 > y0 pixels, got {roi.tolist()}")
    return roi


def crop_image(image: np.ndarray, A: np.ndarray, size: int, antialias: bool = True) -> np.ndarray:
    """``crop(p) = image(A⁻¹ p)`` (bilinear, zero border), low-pass filtered first when ``A`` shrinks the image.

    Anti-aliasing for a downscale factor ``d`` > :data:`ANTIALIAS_MIN_DOWNSCALE`, on the image region the crop reads
    only: ``cv2.resize(INTER_AREA)`` by the integer factor ``k = ⌊d⌋`` (exact k×k box averages), then for the
    remaining factor ``r = d / k`` (< 2) a Gaussian of σ = (r − 1) / 2 when r > 1.25, then the bilinear warp with
    ``A`` re-expressed on the reduced image.

    Args:
        image: ``(H, W, C)`` or ``(H, W)`` uint8/float array.
        A: ``(2, 3)`` float64 image → crop affine with a uniform scale (as :func:`crop_transform_from_box` makes).
        size: crop side, pixels.
        antialias: filter strong downscales (False: plain :func:`~dfmvr_core.geometry.crop.warp_to_crop`).

    Returns:
        ``(size, size, C)`` or ``(size, size)`` array of ``image``'s dtype.
    """
    A = np.asarray(A, dtype=np.float64)
    scale = math.sqrt(abs(float(np.linalg.det(A[:, :2]))))
    downscale = 1.0 / scale if scale > 0 else math.inf
    if not antialias or downscale <= ANTIALIAS_MIN_DOWNSCALE or not math.isfinite(downscale):
        return warp_to_crop(image, A, size)
    k = max(1, math.floor(downscale))
    rest = downscale / k
    sigma = (rest - 1.0) / 2.0 if rest > ANTIALIAS_MIN_DOWNSCALE else 0.0
    # The image region the crop reads (its corners mapped back) plus the filters' support, in image pixels.
    inv = cv2.invertAffineTransform(A)
    corners = np.array(((-0.5, -0.5), (size - 0.5, -0.5), (-0.5, size - 0.5), (size - 0.5, size - 0.5)))
    pts = corners @ inv[:, :2].T + inv[:, 2]
    margin = k * (math.ceil(3.0 * sigma) + 2)
    h, w = image.shape[:2]
    x0 = max(0, math.floor(pts[:, 0].min()) - margin)
    y0 = max(0, math.floor(pts[:, 1].min()) - margin)
    x1 = min(w, math.ceil(pts[:, 0].max()) + margin + 1)
    y1 = min(h, math.ceil(pts[:, 1].max()) + margin + 1)
    if x1 - x0 < k or y1 - y0 < k:  # the crop lies (almost) outside the image: all border
        return warp_to_crop(image, A, size)
    region = image[y0:y1, x0:x1]
    if k > 1:
        rows, cols = region.shape[0] // k, region.shape[1] // k
        region = cv2.resize(region[: rows * k, : cols * k], (cols, rows), interpolation=cv2.INTER_AREA)
    if sigma > 0:
        region = cv2.GaussianBlur(region, (0, 0), sigmaX=sigma, sigmaY=sigma)
    if image.ndim == 3 and region.ndim == 2:
        region = region[..., None]
    # Reduced pixel (i, j) averages region pixels k·i … k·i + k − 1: its centre is image pixel x0 + k·i + (k − 1)/2.
    reduced = np.empty_like(A)
    reduced[:, :2] = A[:, :2] * k
    reduced[:, 2] = A[:, 2] + A[:, :2] @ np.array((x0 + (k - 1) / 2.0, y0 + (k - 1) / 2.0))
    return warp_to_crop(region, reduced, size)


def _letterbox(width: int, height: int, size: int) -> np.ndarray:
    center = torch.tensor(((width - 1) / 2.0, (height - 1) / 2.0), dtype=torch.float64)
    return crop_transform_from_box(center, float(max(width, height)), size).numpy()


def crop_view(
    image: np.ndarray,
    intrinsics: PinholeIntrinsics,
    *,
    camera: CropCamera | None = None,
    roi: np.ndarray | None = None,
    landmarks: np.ndarray | None = None,
    detector: LandmarkDetector | None = None,
    min_face_px: float = 24.0,
    antialias: bool = True,
) -> ViewCrop:
    """Cut the face crop of one view (see the module docstring for the policy).

    Args:
        image: ``(H, W, 3)`` uint8 RGB with ``(W, H)`` = the intrinsics' ``(width, height)``.
        intrinsics: the camera that took ``image`` (pixels, no distortion).
        camera: the crop policy and canonical camera (``CropCamera()`` when None).
        roi: ``(4,)`` face box ``(x0, y0, x1, y1)`` image pixels, bounding the face as the 68 landmarks do.
        landmarks: ``(68, 2)`` iBUG landmarks, image pixels (a :class:`FaceLandmarks` is accepted too).
        detector: used when neither ``landmarks`` nor ``roi`` is given.
        min_face_px: smallest face (larger side of the landmark box / ROI) in image pixels accepted.
        antialias: low-pass filter strongly downscaled crops (INTER_AREA + Gaussian, see :func:`crop_image`).

    Returns:
        A :class:`ViewCrop`; ``valid=False`` with a ``reason`` when no usable face was found.

    Raises:
        ShapeError: wrong image dtype/channels, image size ≠ the intrinsics' size, landmarks/ROI of the wrong shape,
            NaN/inf, or a degenerate ROI (``x1 <= x0`` or ``y1 <= y0``).
        ConfigError: a bad ``min_face_px`` or ``camera``.
    """
    if not isinstance(intrinsics, PinholeIntrinsics):
        raise ShapeError(f"intrinsics: expected PinholeIntrinsics, got {type(intrinsics).__name__}")
    camera = CropCamera() if camera is None else camera
    if not isinstance(camera, CropCamera):
        raise ConfigError(f"camera: expected a CropCamera, got {type(camera).__name__}")
    if isinstance(min_face_px, bool) or not isinstance(min_face_px, (int, float)) or not min_face_px >= 0:
        raise ConfigError(f"min_face_px: expected a non-negative number of pixels, got {min_face_px!r}")
    image = check_rgb_image("image", image)
    h, w = image.shape[:2]
    if (w, h) != (intrinsics.width, intrinsics.height):
        raise ShapeError(
            f"image: {w}x{h} pixels (width x height) but the camera intrinsics are for "
            f"{intrinsics.width}x{intrinsics.height}; expected the image the intrinsics describe"
        )
    points = _as_points("landmarks", landmarks) if landmarks is not None else None
    roi_box = _as_roi(roi) if roi is not None else None
    size = camera.size
    K = intrinsics.matrix(dtype=torch.float64).numpy()

    def result(A: np.ndarray, valid: bool, reason: str | None, **fields: object) -> ViewCrop:
        K_crop = intrinsics_in_crop(torch.from_numpy(K), torch.from_numpy(A)).numpy()
        crop = crop_image(image, A, size, antialias)
        return ViewCrop(image=crop, A=A, K=K, K_crop=K_crop, valid=valid, reason=reason, **fields)  # type: ignore[arg-type]

    def invalid(reason: str, **fields: object) -> ViewCrop:
        fields.setdefault("landmarks", None)
        fields.setdefault("box", None)
        return result(_letterbox(w, h, size), False, reason, landmarks_crop=None, **fields)

    confidence = None
    if points is not None:
        source = "landmarks"
    elif roi_box is not None:
        source = "roi"
    elif detector is not None:
        source = "detector"
        found = detector.detect(image)
        if found is None:
            return invalid(REASON_NO_FACE, source=source)
        points = _as_points("detector landmarks", found)
        confidence = float(found.confidence) if isinstance(found, FaceLandmarks) else float("nan")
    else:
        return invalid(REASON_NO_SOURCE)

    if points is not None:
        lo, hi = points.min(axis=0), points.max(axis=0)
        center, side = face_box_from_landmarks(torch.from_numpy(points), camera.box_scale)
        landmarks_px = points.astype(np.float32)
    else:
        lo, hi = roi_box[:2], roi_box[2:]
        center, side = face_box_from_roi(torch.from_numpy(roi_box), camera.box_scale)
        landmarks_px = None
    box = (float(center[0]), float(center[1]), float(side))
    common = {"landmarks": landmarks_px, "box": box, "source": source, "confidence": confidence}
    face_px = float(np.max(hi - lo))
    if face_px < min_face_px:
        return invalid(f"face too small: {face_px:.1f} px < min_face_px {float(min_face_px):g}", **common)
    if hi[0] < -0.5 or hi[1] < -0.5 or lo[0] > w - 0.5 or lo[1] > h - 0.5:
        return invalid(
            f"face box ({lo[0]:.1f}, {lo[1]:.1f}, {hi[0]:.1f}, {hi[1]:.1f}) lies entirely outside the {w}x{h} image",
            **common,
        )
    A = crop_transform_from_box(center, side, size).numpy()
    landmarks_crop = None
    if points is not None:
        landmarks_crop = apply_affine(torch.from_numpy(points), torch.from_numpy(A)).numpy().astype(np.float32)
    return result(A, True, None, landmarks_crop=landmarks_crop, **common)
