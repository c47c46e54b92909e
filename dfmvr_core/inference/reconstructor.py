"""One inference API, whatever the backend: three camera images in, face mesh and head pose out.

Data flow (``../shared/DESIGN.md``): per view, face landmarks (given, or detected with MediaPipe) or a face ROI →
square crop at 224 with its affine kept (:mod:`dfmvr_core.preprocess`) → face-part mask (landmark polygons or the
BiSeNet parser) → the network (DF-MVR, or a baseline: Deep3DFace / UH-E2FAR, RGB only, see
:mod:`dfmvr_core.networks.registry`; torch / ONNX Runtime / TensorRT backend) → coefficients (paper eq. 1) → 3DMM
decode in float32 (also when the network ran in fp16) → per-view pose mapped from the crop's canonical camera to the
real camera (:func:`~dfmvr_core.geometry.face_crop.crop_pose_to_camera`) and to the rig frame with the rig extrinsics →
one fused head pose (rotation: chordal L2 mean of the valid views' rotations, ``scipy.spatial.transform.Rotation.mean``;
translation: the mean) → vertices in the rig frame and in every camera frame. With two or more views whose landmarks are
known (``metric_pose``, the default), the head pose and the face's size come instead from the landmarks triangulated
by the calibrated cameras (:mod:`~dfmvr_core.inference.metric_pose`): the network cannot see size in its
face-normalised crops, the rig can.

A view whose image is missing or where no face is found is marked invalid (the network's missing-view input) and the
others still reconstruct; with no valid view the result says so (``ok=False``), it never raises for "no face".
Bad input (wrong image size or dtype, NaN ROIs, …) raises a :class:`~dfmvr_core.errors.DfmvrError` naming it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.geometry.camera import PinholeIntrinsics
from dfmvr_core.geometry.face_crop import crop_pose_to_camera
from dfmvr_core.geometry.rig import CameraRig, RigConfig, load_rig
from dfmvr_core.inference.metric_pose import MetricPose, metric_pose_from_landmarks
from dfmvr_core.inference.reconstructor_config import ReconstructorConfig
from dfmvr_core.morphable import NUM_FACE_PARTS, CoefficientSizes, MorphableModel, load_morphable_model
from dfmvr_core.networks.registry import AnyNetworkConfig, build_network, load_any_network_config, network_kind

__all__ = ["FaceReconstructor", "Reconstruction", "ReconstructorConfig"]

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reconstruction:
    """The result of one multi-view reconstruction (see the module docstring for frames).

    Attributes:
        camera_names: view order, e.g. ``("left", "front", "right")``.
        valid: ``(V,)`` bool, the view had a face and was used.
        reasons: per view, why it is invalid (None when valid).
        ok: at least one valid view; when False every geometry field below is None.
        coefficients: ``identity (I,)``, ``expression (E,)``, ``albedo (T,)``, ``lighting (V, 27)``, ``pose (V, 6)``
            float32 (pose: pitch/yaw/roll radians + translation metres in the crop's canonical camera).
        vertices_model: ``(N, 3)`` float32 metres, model frame.
        vertices_rig: ``(N, 3)`` float32 metres, rig frame (the reference camera's optical frame).
        vertices_camera: ``(V, N, 3)`` float32 metres, each camera's optical frame (from the fused pose).
        T_rig_from_model: ``(4, 4)`` float64, fused head pose.
        T_camera_from_model: ``(V, 4, 4)`` float64, each view's own predicted pose (identity where invalid).
        T_camera_from_model_fused: ``(V, 4, 4)`` float64, the fused pose seen from each camera
            (``T_camera_from_rig · T_rig_from_model``; what ``vertices_camera`` uses).
        landmarks_2d: ``(V, 68, 2)`` float32 pixels, the fused mesh's landmarks projected into each image.
        crops: per view the :class:`~dfmvr_core.preprocess.ViewCrop` (None where the image was missing).
        masks: ``(V, S, S)`` int64 face-part masks fed to the network (None for ``mask_source: none``).
        intrinsics: per view the intrinsics used.
        timings_ms: wall time per stage: ``preprocess``, ``masks``, ``network``, ``decode``, ``total``.
        pose_source: where ``T_rig_from_model`` comes from: ``"rig"`` (landmarks triangulated by the calibrated
            cameras, :mod:`~dfmvr_core.inference.metric_pose`: metric position and face size) or ``"network"`` (the
            fused per-view predictions; one view, no landmarks, ``metric_pose: false`` or an untrusted fit).
        metric_scale: the face-size factor applied to the decoded shape (``vertices_*`` are ``metric_scale`` × the
            coefficients' shape); 1.0 when ``pose_source`` is ``"network"``.
        pose_note: why the rig pose was not used ("" when it was, or when ``metric_pose`` is off).
    """

    camera_names: tuple[str, ...]
    valid: np.ndarray
    reasons: tuple[str | None, ...]
    ok: bool
    coefficients: dict[str, np.ndarray] | None
    vertices_model: np.ndarray | None
    vertices_rig: np.ndarray | None
    vertices_camera: np.ndarray | None
    T_rig_from_model: np.ndarray | None
    T_camera_from_model: np.ndarray | None
    T_camera_from_model_fused: np.ndarray | None
    landmarks_2d: np.ndarray | None
    crops: tuple[Any, ...]
    masks: np.ndarray | None
    intrinsics: tuple[PinholeIntrinsics, ...]
    timings_ms: dict[str, float]
    pose_source: str = "network"
    metric_scale: float = 1.0
    pose_note: str = ""


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _fuse_poses(T_rig_from_model: np.ndarray) -> np.ndarray:
    """``(K, 4, 4)`` per-view head poses in the rig frame → one ``(4, 4)``: rotation chordal mean, translation mean."""
    rotation = Rotation.from_matrix(T_rig_from_model[:, :3, :3]).mean()
    fused = np.eye(4)
    fused[:3, :3] = rotation.as_matrix()
    fused[:3, 3] = T_rig_from_model[:, :3, 3].mean(axis=0)
    return fused


class FaceReconstructor:
    """Images of the rig's cameras → :class:`Reconstruction` (see the module docstring).

    Args:
        config: what to run.
        detector: a landmark detector overriding ``config.detector`` (anything with
            ``detect(image RGB uint8) -> FaceLandmarks | None``), e.g. a fake one in tests.

    Raises:
        ConfigError / ModelFileError / MissingDependencyError: at construction, for a bad configuration, an
            unreadable or mismatched model/checkpoint/ONNX file, or a missing optional dependency.
    """

    def __init__(self, config: ReconstructorConfig, *, detector: Any | None = None) -> None:
        from dfmvr_core.preprocess import build_detector

        self.config = config
        if config.num_threads is not None:
            torch.set_num_threads(config.num_threads)
        self._device = torch.device(config.device)
        self.model: MorphableModel = load_morphable_model(config.morphable_model).to(dtype=torch.float32)
        self.rig = load_rig(config.rig) if config.rig is not None else CameraRig.from_config(RigConfig())
        self.camera_names: tuple[str, ...] = tuple(self.rig.names)
        self.reference_camera: str = self.rig.reference_camera
        self.coefficient_sizes: CoefficientSizes = self.model.coefficient_sizes
        self.faces: np.ndarray = self.model.triangles.cpu().numpy().astype(np.int32)
        self._landmark_indices = self.model.landmarks68.cpu().numpy()
        zero = self.model.zero_coefficients(1)
        self.mean_vertices: np.ndarray = (
            self.model.decode_shape(zero["identity"], zero["expression"])[0].cpu().numpy().astype(np.float32)
        )
        self._T_rig_from_camera = np.stack([self.rig.T_rig_from_camera(n).double().numpy() for n in self.camera_names])
        self._T_camera_from_rig = np.stack([self.rig.T_camera_from_rig(n).double().numpy() for n in self.camera_names])
        self._network_config: AnyNetworkConfig = load_any_network_config(config.network)
        self.network_kind: str = network_kind(self._network_config)
        if self._network_config.views != len(self.camera_names):
            raise ConfigError(
                f"network: the network takes {self._network_config.views} views, the rig has "
                f"{len(self.camera_names)} cameras {list(self.camera_names)}"
            )
        if self._network_config.input_size != config.crop.size:
            raise ConfigError(
                f"network: {self._network_config.name!r} takes {self._network_config.input_size} px views, but "
                f"crop.size is {config.crop.size}; set crop.size to the network's input_size"
            )
        if self._network_config.mask_input == "none" and config.mask_source != "none":
            LOG.info("network %s takes no mask input; mask_source %r is ignored", config.network, config.mask_source)
        if self._network_config.mask_input != "none" and config.mask_source == "none":
            raise ConfigError(
                f"mask_source: 'none' but network {config.network!r} expects a face-part mask input "
                f"(mask_input {self._network_config.mask_input!r}); use 'landmarks' or 'parser'"
            )
        self._network = self._load_network()
        self._backend = self._build_backend()
        self.backend_name: str = str(getattr(self._backend, "name", config.backend))
        self._parser = self._build_parser() if self._uses_masks and config.mask_source == "parser" else None
        self._detector = detector if detector is not None else build_detector(config.detector)

    # ------------------------------------------------------------------ construction helpers
    @property
    def _uses_masks(self) -> bool:
        return self._network_config.mask_input != "none"

    def _load_network(self) -> torch.nn.Module:
        from dfmvr_core.inference.checkpoint import load_checkpoint

        config = self.config
        if config.checkpoint is None:
            LOG.warning(
                "no checkpoint: running FRESHLY INITIALISED (untrained) weights; the output is meaningless "
                "(use this only to test the pipeline)"
            )
            torch.manual_seed(0)
            self._fresh = True
            return build_network(self._network_config, self.coefficient_sizes, self.model.expression_kind).eval()
        self._fresh = False
        checkpoint = load_checkpoint(
            config.checkpoint,
            config=self._network_config,
            sizes=self.coefficient_sizes,
            expression_kind=self.model.expression_kind,
            model_fingerprint=self.model.fingerprint(),
        )
        return checkpoint.build_network("cpu")

    def _onnx_file(self) -> Path:
        """The ONNX file of the network: ``config.onnx_path`` or an export cached by checkpoint digest."""
        from dfmvr_core.inference.export import export_onnx

        if self.config.onnx_path is not None:
            return self.config.onnx_path
        if self._fresh:
            tag = f"fresh-{self._network_config.name}-{self.model.fingerprint()}"
        else:
            tag = f"{self._network_config.name}-{_file_digest(self.config.checkpoint)}"
        path = self.config.resolved_cache_dir / "onnx" / f"{tag}.onnx"
        if not path.is_file():
            LOG.info("exporting the network to %s (once; cached)", path)
            export_onnx(
                self._network,
                path,
                model_fingerprint=self.model.fingerprint(),
                fresh_weights=self._fresh,
                weights_source=str(self.config.checkpoint or "fresh initialisation"),
            )
        return path

    def _build_backend(self) -> Any:
        from dfmvr_core.inference import backends

        config = self.config
        if config.backend == "torch":
            return backends.TorchBackend(
                self._network,
                device=config.device,
                precision=config.precision,
                compile=False if config.compile == "none" else config.compile,
                cuda_graphs=config.cuda_graphs,
            )
        onnx_path = self._onnx_file()
        if config.backend == "onnxruntime":
            providers = None if config.device.startswith("cuda") else ["CPUExecutionProvider"]
            return backends.OnnxRuntimeCoefficientBackend(
                onnx_path, providers=providers, num_threads=config.num_threads
            )
        from dfmvr_core.inference.engine_cache import EngineCache
        from dfmvr_core.inference.tensorrt_backend import TensorRTBackend

        cache = EngineCache(config.resolved_cache_dir / "engines")
        return TensorRTBackend(onnx_path, cache=cache, precision=config.precision, device=config.device)

    def _build_parser(self) -> Any:
        from dfmvr_core.inference.parser_backends import TorchFaceParser
        from dfmvr_core.networks.face_parser import load_face_parser

        parser = load_face_parser(self.config.parser_checkpoint, map_location="cpu")
        self._parser_classes = int(parser.conv_out.conv_out.out_channels)
        return TorchFaceParser(parser, device=self.config.device)

    # ------------------------------------------------------------------ inference
    def _check_sequence(self, name: str, values: Sequence[Any] | None) -> list[Any]:
        n = len(self.camera_names)
        if values is None:
            return [None] * n
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != n:
            got = f"{len(values)} items" if isinstance(values, Sequence) else type(values).__name__
            raise ShapeError(
                f"{name}: expected one entry per camera {list(self.camera_names)} (None = missing), got {got}"
            )
        return list(values)

    @property
    def _needs_landmarks(self) -> bool:
        return self._uses_masks and self.config.mask_source == "landmarks"

    def _landmarks_in_crop(self, crop: Any) -> Any:
        """A ROI crop has no landmarks, but the landmark masks need them: detect them in the crop itself."""
        import dataclasses

        from dfmvr_core.geometry.crop import apply_affine, invert_affine

        found = self._detector.detect(crop.image) if self._detector is not None else None
        if found is None:
            return dataclasses.replace(
                crop, valid=False, reason="no landmarks found in the ROI (needed for the landmark face-part mask)"
            )
        in_crop = np.asarray(found.points68, dtype=np.float32)
        A_inv = invert_affine(torch.as_tensor(crop.A, dtype=torch.float64))
        in_image = apply_affine(torch.as_tensor(in_crop, dtype=torch.float64), A_inv).numpy().astype(np.float32)
        return dataclasses.replace(crop, landmarks=in_image, landmarks_crop=in_crop)

    def _masks(self, crops: list[Any], valid: np.ndarray) -> np.ndarray | None:
        from dfmvr_core.networks.face_parts import celeba_to_face_parts
        from dfmvr_core.preprocess import parts_from_landmarks

        if not self._uses_masks:
            return None
        size = self.config.crop.size
        masks = np.zeros((len(crops), size, size), dtype=np.int64)
        if self.config.mask_source == "landmarks":
            for i, crop in enumerate(crops):
                if valid[i]:
                    masks[i] = parts_from_landmarks(crop.landmarks_crop, size)
            return masks
        idx = np.flatnonzero(valid)
        if idx.size:
            images = torch.from_numpy(np.stack([crops[i].image for i in idx])).permute(0, 3, 1, 2).float() / 255.0
            labels = self._parser.parse_labels(images)
            labels = torch.as_tensor(labels).cpu()
            parts = labels if self._parser_classes == NUM_FACE_PARTS else celeba_to_face_parts(labels)
            masks[idx] = parts.numpy()
        return masks

    def reconstruct(
        self,
        images: Sequence[np.ndarray | None],
        camera_infos: Sequence[PinholeIntrinsics | None] | None = None,
        rois: Sequence[np.ndarray | None] | None = None,
        landmarks: Sequence[np.ndarray | None] | None = None,
    ) -> Reconstruction:
        """Reconstruct one face from one synchronized set of views.

        Args:
            images: per camera (rig order), ``(H, W, 3)`` uint8 RGB, or None for a missing view.
            camera_infos: per camera intrinsics of that image (None → the rig's); the image size must match.
            rois: per camera ``(4,)`` face box ``(x0, y0, x1, y1)`` pixels, or None.
            landmarks: per camera ``(68, 2)`` iBUG landmarks in pixels (skips detection), or None.

        Returns:
            A :class:`Reconstruction`.

        Raises:
            ShapeError: wrong number of entries, a bad image (dtype, channels, size vs. intrinsics), NaN ROIs or
                landmarks.
        """
        from dfmvr_core.preprocess import crop_view

        t_start = time.perf_counter()
        images = self._check_sequence("images", images)
        infos = self._check_sequence("camera_infos", camera_infos)
        rois = self._check_sequence("rois", rois)
        landmarks = self._check_sequence("landmarks", landmarks)
        rig_intrinsics = self.rig.intrinsics
        intrinsics = tuple(
            rig_intrinsics[name] if info is None else info for name, info in zip(self.camera_names, infos, strict=True)
        )

        crops: list[Any] = []
        reasons: list[str | None] = []
        for name, image, K, roi, lm in zip(self.camera_names, images, intrinsics, rois, landmarks, strict=True):
            if image is None:
                crops.append(None)
                reasons.append("missing image")
                continue
            try:
                crop = crop_view(
                    image,
                    K,
                    camera=self.config.crop,
                    roi=roi,
                    landmarks=lm,
                    detector=self._detector,
                    min_face_px=self.config.min_face_px,
                )
            except ShapeError as exc:
                raise ShapeError(f"{name}: {exc}") from None
            if crop.valid and crop.landmarks_crop is None and self._needs_landmarks:
                crop = self._landmarks_in_crop(crop)
            crops.append(crop)
            reasons.append(None if crop.valid else crop.reason)
        valid = np.array([c is not None and c.valid for c in crops], dtype=bool)
        t_pre = time.perf_counter()

        masks = self._masks(crops, valid)
        t_masks = time.perf_counter()
        timings = {"preprocess": (t_pre - t_start) * 1e3, "masks": (t_masks - t_pre) * 1e3}
        if not valid.any():
            timings.update(network=0.0, decode=0.0, total=(time.perf_counter() - t_start) * 1e3)
            return Reconstruction(
                self.camera_names, valid, tuple(reasons), False, None, None, None, None, None, None, None, None,
                tuple(crops), masks, intrinsics, timings,
            )  # fmt: skip

        size = self.config.crop.size
        batch_images = np.zeros((1, len(crops), 3, size, size), dtype=np.float32)
        for i, crop in enumerate(crops):
            if valid[i]:
                batch_images[0, i] = crop.image.transpose(2, 0, 1).astype(np.float32) / 255.0
        batch_masks = None if masks is None else masks[None]
        outputs = self._backend.run(batch_images, batch_masks, valid[None])
        coefficients = {k: torch.as_tensor(v).detach().float().cpu()[0] for k, v in outputs.items()}
        t_net = time.perf_counter()

        result = self._decode(coefficients, crops, valid, intrinsics)
        t_dec = time.perf_counter()
        timings.update(network=(t_net - t_masks) * 1e3, decode=(t_dec - t_net) * 1e3, total=(t_dec - t_start) * 1e3)
        return Reconstruction(
            camera_names=self.camera_names,
            valid=valid,
            reasons=tuple(reasons),
            ok=True,
            coefficients={k: v.numpy().astype(np.float32) for k, v in coefficients.items()},
            crops=tuple(crops),
            masks=masks,
            intrinsics=intrinsics,
            timings_ms=timings,
            **result,
        )

    def _decode(
        self,
        coefficients: dict[str, torch.Tensor],
        crops: list[Any],
        valid: np.ndarray,
        intrinsics: tuple[PinholeIntrinsics, ...],
    ) -> dict[str, np.ndarray]:
        """3DMM decode (paper eq. 1, float32) and poses: per view, fused (or metric from the rig), and the vertices in
        every frame."""
        vertices = self.model.decode_shape(coefficients["identity"][None], coefficients["expression"][None])[0]
        vertices_model = vertices.numpy().astype(np.float64)
        V = len(self.camera_names)
        T_cam = np.tile(np.eye(4), (V, 1, 1))
        idx = np.flatnonzero(valid)
        pose = coefficients["pose"].double()
        K = torch.stack([intrinsics[i].matrix(torch.float64) for i in idx])
        A = torch.stack([torch.as_tensor(crops[i].A, dtype=torch.float64) for i in idx])
        T_cam[idx] = crop_pose_to_camera(pose[idx, :3], pose[idx, 3:], K, A, self.config.crop).numpy()
        T_rig_views = self._T_rig_from_camera[idx] @ T_cam[idx]
        T_rig = _fuse_poses(T_rig_views)
        source, scale, note = "network", 1.0, ""
        if self.config.metric_pose:
            metric, note = self._metric_pose(vertices_model, crops, valid, intrinsics)
            if metric is not None:
                source, scale, T_rig = "rig", metric.scale, metric.T_rig_from_model
                vertices_model = vertices_model * scale
        vertices_rig = vertices_model @ T_rig[:3, :3].T + T_rig[:3, 3]
        T_cam_fused = self._T_camera_from_rig @ T_rig
        vertices_camera = np.einsum("vij,nj->vni", T_cam_fused[:, :3, :3], vertices_model) + T_cam_fused[:, None, :3, 3]
        lm_idx = self._landmark_indices
        lm_cam = vertices_camera[:, lm_idx]
        landmarks_2d = np.empty((V, lm_idx.size, 2))
        for i in range(V):
            Kn = intrinsics[i].matrix(torch.float64).numpy()
            proj = lm_cam[i] @ Kn.T
            landmarks_2d[i] = proj[:, :2] / np.maximum(proj[:, 2:3], 1e-9)
        return {
            "vertices_model": vertices_model.astype(np.float32),
            "vertices_rig": vertices_rig.astype(np.float32),
            "vertices_camera": vertices_camera.astype(np.float32),
            "T_rig_from_model": T_rig,
            "T_camera_from_model": T_cam,
            "T_camera_from_model_fused": T_cam_fused,
            "landmarks_2d": landmarks_2d.astype(np.float32),
            "pose_source": source,
            "metric_scale": float(scale),
            "pose_note": note,
        }

    def _metric_pose(
        self, vertices_model: np.ndarray, crops: list[Any], valid: np.ndarray, intrinsics: tuple[PinholeIntrinsics, ...]
    ) -> tuple[MetricPose | None, str]:
        """The rig's metric pose and face size from the valid views' landmarks (None + why when not usable)."""
        views = np.array([bool(valid[i]) and crops[i].landmarks is not None for i in range(len(crops))])
        landmarks = np.full((len(crops), 68, 2), np.nan)
        for i in np.flatnonzero(views):
            landmarks[i] = crops[i].landmarks
        K = np.stack([info.matrix(torch.float64).numpy() for info in intrinsics])
        model_landmarks = vertices_model[self._landmark_indices]
        return metric_pose_from_landmarks(landmarks, views, K, self._T_camera_from_rig, model_landmarks)

    def warmup(self, runs: int = 2) -> None:
        """Run the network ``runs`` times on blank input (first-call allocation, engine/JIT set-up)."""
        size = self.config.crop.size
        V = len(self.camera_names)
        images = np.zeros((1, V, 3, size, size), dtype=np.float32)
        masks = np.zeros((1, V, size, size), dtype=np.int64) if self._uses_masks else None
        valid = np.ones((1, V), dtype=bool)
        for _ in range(runs):
            self._backend.run(images, masks, valid)
