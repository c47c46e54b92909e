"""Image-space randomness of synthetic views: procedural backgrounds and camera-like degradation.

No external data: backgrounds are drawn with OpenCV (gradients, smooth noise upsampled with ``cv2.resize``,
random shapes, a little defocus blur, pixel noise); degradation is Gaussian blur, Gaussian noise and a real JPEG
round trip (``cv2.imencode``/``cv2.imdecode``). Everything is deterministic given the numpy Generator.
Images are ``(H, W, 3)`` uint8 RGB.
"""

from __future__ import annotations

import cv2
import numpy as np
import scipy.ndimage

from dfmvr_core.morphable.parts import FacePart
from dfmvr_core.synthesis.config import BackgroundConfig, DegradationConfig

__all__ = ["degrade_image", "fill_face_holes", "make_background"]

_EYES = (int(FacePart.LEFT_EYE), int(FacePart.RIGHT_EYE))
_MOUTH = (int(FacePart.MOUTH), int(FacePart.UPPER_LIP), int(FacePart.LOWER_LIP))


def _random_colour(rng: np.random.Generator) -> tuple[float, float, float]:
    return tuple(float(c) for c in rng.uniform(0.0, 255.0, 3))


def _draw_shape(canvas: np.ndarray, rng: np.random.Generator) -> None:
    h, w = canvas.shape[:2]
    size = max(h, w)
    colour = _random_colour(rng)
    kind = int(rng.integers(0, 5))
    centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
    if kind == 0:
        cv2.circle(canvas, centre, int(rng.uniform(0.03, 0.25) * size), colour, -1, cv2.LINE_AA)
    elif kind == 1:
        corner = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.rectangle(canvas, centre, corner, colour, -1, cv2.LINE_AA)
    elif kind == 2:
        axes = (int(rng.uniform(0.03, 0.3) * size), int(rng.uniform(0.03, 0.3) * size))
        cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
    elif kind == 3:
        end = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.line(canvas, centre, end, colour, max(1, int(rng.uniform(0.005, 0.04) * size)), cv2.LINE_AA)
    else:
        points = rng.uniform((0, 0), (w, h), (int(rng.integers(3, 7)), 2)).astype(np.int32)
        cv2.fillPoly(canvas, [points], colour, cv2.LINE_AA)


def make_background(height: int, width: int, config: BackgroundConfig, rng: np.random.Generator) -> np.ndarray:
    """A random background image.

    Args:
        height, width: pixels.
        config: what to draw (``procedural``, ``flat`` or ``black``).
        rng: numpy Generator (advanced).

    Returns:
        ``(height, width, 3)`` uint8 RGB.
    """
    if config.kind == "black":
        return np.zeros((height, width, 3), np.uint8)
    if config.kind == "flat":
        return np.broadcast_to(np.array(_random_colour(rng), np.float64).round().astype(np.uint8), (height, width, 3))
    # Linear gradient between two colours along a random direction.
    angle = rng.uniform(0.0, 2.0 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = np.cos(angle) * xs / max(width - 1, 1) + np.sin(angle) * ys / max(height - 1, 1)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    c0, c1 = np.array(_random_colour(rng), np.float32), np.array(_random_colour(rng), np.float32)
    canvas = c0 + ramp[..., None] * (c1 - c0)
    # Smooth random texture: a coarse random grid upsampled bicubically.
    cells = int(rng.integers(3, 9))
    coarse = rng.standard_normal((cells, cells, 3)).astype(np.float32)
    texture = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    canvas += texture * (255.0 * config.texture_amplitude)
    canvas = np.clip(canvas, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(config.shapes_range[0], config.shapes_range[1] + 1))):
        _draw_shape(canvas, rng)
    sigma = float(rng.uniform(0.0, 2.0))
    if sigma > 0.3:
        canvas = cv2.GaussianBlur(canvas, (0, 0), sigma)
    if config.noise_std > 0:
        noise = rng.standard_normal(canvas.shape).astype(np.float32) * (255.0 * config.noise_std)
        canvas = np.clip(canvas.astype(np.float32) + noise, 0, 255).round().astype(np.uint8)
    return np.ascontiguousarray(canvas)


def degrade_image(image: np.ndarray, config: DegradationConfig, rng: np.random.Generator) -> np.ndarray:
    """Blur, noise and JPEG re-encoding, each with probability ``config.probability`` (nothing when disabled).

    Args:
        image: ``(H, W, 3)`` uint8 RGB (not modified).
        rng: numpy Generator (advanced only when ``config.enabled``).

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    if not config.enabled:
        return image
    out = image
    apply = rng.random(3) < config.probability
    blur = float(rng.uniform(*config.blur_sigma_range))
    noise_std = float(rng.uniform(*config.noise_std_range))
    quality = int(rng.integers(config.jpeg_quality_range[0], config.jpeg_quality_range[1] + 1))
    if apply[0] and blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), blur)
    if apply[1] and noise_std > 0:
        noise = rng.standard_normal(out.shape).astype(np.float32) * (255.0 * noise_std)
        out = np.clip(out.astype(np.float32) + noise, 0, 255).round().astype(np.uint8)
    if apply[2]:
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            out = cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(out)


def fill_face_holes(
    image: np.ndarray, parts: np.ndarray, mask: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Paint the mesh's eye and mouth openings (ICT's full face area has no eyeballs or mouth socket).

    A hole is background enclosed by the rendered surface (``scipy.ndimage.binary_fill_holes``); it takes the part
    of the nearest labelled pixel (``distance_transform_edt``): next to an eye it becomes that eye (a random dark
    iris colour), next to the lips or mouth the mouth interior (a random dark red). Other holes are left alone.

    Args:
        image: ``(H, W, 3)`` uint8 RGB (not modified).
        parts: ``(H, W)`` uint8 FacePart labels (not modified).
        mask: ``(H, W)`` bool rendered surface.
        rng: numpy Generator (advanced by a fixed amount).

    Returns:
        ``(image, parts)`` with the holes painted and labelled.
    """
    iris = rng.uniform((20, 15, 10), (110, 90, 80))
    mouth = rng.uniform((40, 8, 8), (95, 35, 35))
    holes = scipy.ndimage.binary_fill_holes(mask) & ~mask
    if not holes.any() or not (parts > 0).any():
        return image, parts
    nearest = scipy.ndimage.distance_transform_edt(parts == 0, return_distances=False, return_indices=True)
    label = parts[nearest[0], nearest[1]]
    image, parts = image.copy(), parts.copy()
    eye = holes & np.isin(label, _EYES)
    mouth_hole = holes & np.isin(label, _MOUTH)
    image[eye] = np.round(iris).astype(np.uint8)
    parts[eye] = label[eye]
    image[mouth_hole] = np.round(mouth).astype(np.uint8)
    parts[mouth_hole] = int(FacePart.MOUTH)
    return image, parts
