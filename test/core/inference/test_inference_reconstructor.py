"""FaceReconstructor end to end on the ICT face rendered in the default rig (torch and ONNX Runtime backends)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.geometry.face_crop import camera_pose_to_crop
from dfmvr_core.geometry.pose import MODEL_TO_OPTICAL, make_transform, transform_points
from dfmvr_core.geometry.rig import CameraRig, RigConfig
from dfmvr_core.inference.default_model import packaged_checkpoint_path
from dfmvr_core.inference.reconstructor import FaceReconstructor, ReconstructorConfig
from dfmvr_core.preview import PreviewOptions, render_rig_views, sample_face


@pytest.fixture(scope="module")
def scene(ict_model):
    """The ICT mean face frontal at the rig's subject point: images, GT landmarks, GT pose in the rig."""
    model = ict_model.to(dtype=torch.float64)
    rig = CameraRig.from_config(RigConfig())
    vertices, albedo = sample_face(model, PreviewOptions())
    R = torch.tensor(MODEL_TO_OPTICAL, dtype=torch.float64)
    vertices_rig = transform_points(vertices[0], R, rig.subject_center_rig)
    images, landmarks = render_rig_views(model, vertices_rig, albedo, rig)
    T_rig = make_transform(R, rig.subject_center_rig).numpy()
    return {
        "images": images,
        "landmarks": [np.asarray(lm, np.float32) for lm in landmarks],
        "T_rig_from_model": T_rig,
        "vertices_rig": vertices_rig.numpy(),
        "rig": rig,
    }


@pytest.fixture(scope="module")
def torch_reconstructor(ict_npz, tmp_path_factory):
    config = ReconstructorConfig(
        morphable_model=ict_npz, backend="torch", detector="none", cache_dir=tmp_path_factory.mktemp("cache")
    )
    return FaceReconstructor(config)


class _FakeBackend:
    """Returns fixed coefficients (what a perfectly trained network would output)."""

    name = "fake"

    def __init__(self, outputs: dict[str, torch.Tensor]) -> None:
        self.outputs = outputs
        self.calls: list[tuple] = []

    def run(self, images, masks, valid):
        self.calls.append((np.asarray(images).copy(), None if masks is None else np.asarray(masks).copy(), valid))
        return {k: v[None] for k, v in self.outputs.items()}


def test_reconstruct_shapes_frames_and_timings(torch_reconstructor, scene) -> None:
    rec = torch_reconstructor
    result = rec.reconstruct(scene["images"], landmarks=scene["landmarks"])
    assert result.ok and result.valid.tolist() == [True, True, True]
    assert result.reasons == (None, None, None)
    n = rec.mean_vertices.shape[0]
    assert result.vertices_rig.shape == (n, 3) and result.vertices_camera.shape == (3, n, 3)
    assert result.vertices_rig.dtype == np.float32
    # Each camera's vertices are the rig vertices seen through the rig extrinsics.
    for i, name in enumerate(rec.camera_names):
        T = scene["rig"].T_camera_from_rig(name).double().numpy()
        expected = result.vertices_rig.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
        np.testing.assert_allclose(result.vertices_camera[i], expected, atol=1e-5)
    assert set(result.timings_ms) == {"preprocess", "masks", "network", "decode", "total"}
    assert result.masks.shape == (3, 224, 224) and result.masks.max() > 0
    assert result.landmarks_2d.shape == (3, 68, 2) and np.isfinite(result.landmarks_2d).all()
    assert {k: v.shape for k, v in result.coefficients.items()}["pose"] == (3, 6)


def _perfect_outputs(rec, scene, first):
    """The coefficients a perfect network would output for ``scene``: mean face, the crops' pose labels."""
    poses = []
    for i, name in enumerate(rec.camera_names):
        T_cam = scene["rig"].T_camera_from_rig(name).double().numpy() @ scene["T_rig_from_model"]
        crop = first.crops[i]
        angles, translation = camera_pose_to_crop(
            torch.as_tensor(T_cam), torch.as_tensor(crop.K), torch.as_tensor(crop.A), rec.config.crop
        )
        poses.append(torch.cat((angles, translation)).float())
    sizes = rec.coefficient_sizes
    return {
        "identity": torch.zeros(sizes.identity),
        "expression": torch.zeros(sizes.expression),
        "albedo": torch.zeros(sizes.albedo),
        "lighting": torch.zeros(3, 27),
        "pose": torch.stack(poses),
    }


@pytest.mark.parametrize("metric_pose", [True, False])
def test_perfect_coefficients_give_the_rendering_pose(scene, ict_npz, tmp_path, monkeypatch, metric_pose) -> None:
    """Coefficients equal to the ground truth (pose labels from the crops) reproduce the rendered face exactly, from
    the network's poses alone and from the rig's triangulated landmarks."""
    config = ReconstructorConfig(
        morphable_model=ict_npz, backend="torch", detector="none", cache_dir=tmp_path, metric_pose=metric_pose
    )
    rec = FaceReconstructor(config)
    first = rec.reconstruct(scene["images"], landmarks=scene["landmarks"])
    fake = _FakeBackend(_perfect_outputs(rec, scene, first))
    monkeypatch.setattr(rec, "_backend", fake)
    result = rec.reconstruct(scene["images"], landmarks=scene["landmarks"])
    assert result.pose_source == ("rig" if metric_pose else "network")
    assert result.metric_scale == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(result.T_rig_from_model, scene["T_rig_from_model"], atol=2e-6)
    np.testing.assert_allclose(result.vertices_rig, scene["vertices_rig"], atol=1e-5)
    for i in range(3):
        np.testing.assert_allclose(result.landmarks_2d[i], scene["landmarks"][i], atol=0.05)
    images, masks, valid = fake.calls[-1]
    assert images.shape == (1, 3, 3, 224, 224) and 0.0 <= images.min() and images.max() <= 1.0
    assert masks.shape == (1, 3, 224, 224) and np.asarray(valid).tolist() == [[True, True, True]]


def test_missing_and_faceless_views(torch_reconstructor, scene) -> None:
    rec = torch_reconstructor
    result = rec.reconstruct([scene["images"][0], scene["images"][1], None], landmarks=[*scene["landmarks"][:2], None])
    assert result.ok and result.valid.tolist() == [True, True, False]
    assert result.reasons[2] == "missing image"
    assert result.vertices_camera.shape[0] == 3  # the fused face is still placed in every camera
    blank = [np.zeros_like(image) for image in scene["images"]]
    nothing = rec.reconstruct(blank)
    assert not nothing.ok and nothing.vertices_rig is None and not nothing.valid.any()
    assert all("no face" in reason for reason in nothing.reasons)


def test_roi_without_landmarks_needs_a_detector_for_landmark_masks(torch_reconstructor, scene) -> None:
    rois = [np.r_[lm.min(0), lm.max(0)] for lm in scene["landmarks"]]
    result = torch_reconstructor.reconstruct(scene["images"], rois=rois)
    assert not result.ok
    assert all("no landmarks found in the ROI" in reason for reason in result.reasons)


def test_bad_inputs_name_the_camera(torch_reconstructor, scene) -> None:
    rec = torch_reconstructor
    small = cv2.resize(scene["images"][1], (320, 240))
    with pytest.raises(ShapeError, match=r"^front: "):
        rec.reconstruct([scene["images"][0], small, scene["images"][2]], landmarks=scene["landmarks"])
    with pytest.raises(ShapeError, match=r"^images: expected one entry per camera"):
        rec.reconstruct(scene["images"][:2])
    with pytest.raises(ConfigError, match=r"^precision: 'fp16' needs a CUDA device"):
        ReconstructorConfig(morphable_model=Path("x.npz"), precision="fp16", backend="torch")
    with pytest.raises(ConfigError, match=r"^backend: expected one of"):
        ReconstructorConfig(morphable_model=Path("x.npz"), backend="tflite")


def test_onnxruntime_backend_matches_torch(torch_reconstructor, scene, ict_npz, tmp_path) -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (the export extra)")
    config = ReconstructorConfig(morphable_model=ict_npz, backend="onnxruntime", detector="none", cache_dir=tmp_path)
    ort = FaceReconstructor(config)
    a = torch_reconstructor.reconstruct(scene["images"], landmarks=scene["landmarks"])
    b = ort.reconstruct(scene["images"], landmarks=scene["landmarks"])
    for key in a.coefficients:
        np.testing.assert_allclose(b.coefficients[key], a.coefficients[key], atol=1e-4, err_msg=key)
    np.testing.assert_allclose(b.vertices_rig, a.vertices_rig, atol=5e-5)  # 0.05 mm
    assert list((tmp_path / "onnx").glob("fresh-small-*.onnx")), "the export is cached"


def test_reconstruct_cli_writes_files(scene, ict_npz, tmp_path) -> None:
    from dfmvr_core.cli.main import main

    paths = {}
    for name, image in zip(("left", "front", "right"), scene["images"], strict=True):
        paths[name] = tmp_path / f"{name}.png"
        cv2.imwrite(str(paths[name]), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    faces = {
        n: {"landmarks": lm.tolist()} for n, lm in zip(("left", "front", "right"), scene["landmarks"], strict=True)
    }
    (tmp_path / "faces.json").write_text(json.dumps(faces))
    out = tmp_path / "out"
    argv = ["reconstruct", "--left", str(paths["left"]), "--front", str(paths["front"]), "--right", str(paths["right"])]
    argv += [
        "--model",
        str(ict_npz),
        "--backend",
        "torch",
        "--detector",
        "none",
        "--faces",
        str(tmp_path / "faces.json"),
    ]
    assert main([*argv, "-o", str(out)]) == 0
    for name in ("mesh.ply", "mesh.obj", "pose.json", "coefficients.json", "overlays.png", "report.json"):
        assert (out / name).is_file(), name
    for name in ("left", "front", "right"):
        overlay = cv2.imread(str(out / f"overlay_{name}.png"))
        assert overlay.shape == (480, 640, 3)
    pose = json.loads((out / "pose.json").read_text())
    assert len(pose["T_rig_from_model"]["quaternion_xyzw"]) == 4
    report = json.loads((out / "report.json").read_text())
    assert report["ok"] and report["views"]["front"]["valid"]
    assert report["checkpoint"] == str(packaged_checkpoint_path())  # no --checkpoint: the embedded default model
    assert not list(out.glob("*.tmp*")), "no temporary files left behind"
    # A missing image file is a clear error (exit 2), not a traceback.
    assert main(["reconstruct", "--front", str(tmp_path / "nope.png"), "--model", str(ict_npz), "-o", str(out)]) == 2


def test_mediapipe_detector_end_to_end(ict_npz, scene, tmp_path) -> None:
    """The default detector finds the rendered face in every view; the crops match the ground-truth ones."""
    pytest.importorskip("mediapipe", reason="mediapipe not installed (the landmarks extra)")
    config = ReconstructorConfig(morphable_model=ict_npz, backend="torch", detector="mediapipe", cache_dir=tmp_path)
    rec = FaceReconstructor(config)
    result = rec.reconstruct(scene["images"])
    assert result.ok and result.valid.all(), result.reasons
    for crop, lm in zip(result.crops, scene["landmarks"], strict=True):
        assert crop.source == "detector"
        assert float(np.abs(crop.landmarks - lm).mean()) < 6.0  # px, MediaPipe vs the model's landmarks
    # A ROI without landmarks: the detector is run inside the crop for the landmark masks.
    rois = [np.r_[lm.min(0), lm.max(0)] for lm in scene["landmarks"]]
    from_roi = rec.reconstruct(scene["images"], rois=rois)
    assert from_roi.ok and from_roi.valid.all(), from_roi.reasons
    assert all(c.source == "roi" and c.landmarks_crop is not None for c in from_roi.crops)


def test_parser_mask_source_with_a_ten_class_parser(ict_npz, scene, tmp_path) -> None:
    """A parser trained by `dfmvr train --mode parser` (10 face parts) loads and feeds the network's masks."""
    from dfmvr_core.networks.face_parser import BiSeNet

    torch.manual_seed(0)
    parser = BiSeNet(10)
    path = tmp_path / "parser.pth"
    torch.save({"format": "dfmvr-face-parser", "state_dict": parser.state_dict()}, path)
    config = ReconstructorConfig(
        morphable_model=ict_npz,
        backend="torch",
        detector="none",
        mask_source="parser",
        parser_checkpoint=path,
        cache_dir=tmp_path,
    )
    rec = FaceReconstructor(config)
    result = rec.reconstruct(scene["images"], landmarks=scene["landmarks"])
    assert result.ok and result.masks.shape == (3, 224, 224)
    assert 0 <= result.masks.min() and result.masks.max() <= 9
    crop = torch.from_numpy(result.crops[1].image).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        expected = parser.eval().parse_labels(crop)[0].numpy()
    # The parser's 10 classes are the face parts themselves: no CelebA mapping in between.
    assert (result.masks[1] == expected).mean() > 0.999


def test_compile_and_graph_options_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"^compile: expected one of"):
        ReconstructorConfig(morphable_model=Path("x.npz"), backend="torch", compile="fast")
    with pytest.raises(ConfigError, match=r"^compile/cuda_graphs: apply to the torch backend only"):
        ReconstructorConfig(morphable_model=Path("x.npz"), backend="onnxruntime", compile="default")
    with pytest.raises(ConfigError, match=r"^cuda_graphs: needs a CUDA device"):
        ReconstructorConfig(morphable_model=Path("x.npz"), backend="torch", cuda_graphs=True)


def test_rig_gives_the_metric_size_and_pose_the_crops_cannot_show(torch_reconstructor, scene, monkeypatch) -> None:
    """A face 8 % larger than the decoded one: the network's crops look the same (same pose labels, so its pose is
    8 % too close), the rig's triangulated landmarks give the true size and position."""
    rec = torch_reconstructor
    first = rec.reconstruct(scene["images"], landmarks=scene["landmarks"])
    monkeypatch.setattr(rec, "_backend", _FakeBackend(_perfect_outputs(rec, scene, first)))
    # The landmarks of the same face, 8 % larger about the model origin, at the same pose: what the cameras see.
    big = 1.08
    lm_model = rec.mean_vertices[rec._landmark_indices].astype(np.float64) * big
    T = scene["T_rig_from_model"]
    landmarks = []
    for name in rec.camera_names:
        cam = (scene["rig"].T_camera_from_rig(name).double().numpy() @ T)[:3]
        points = lm_model @ cam[:, :3].T + cam[:, 3]
        uv = points @ rec.rig.intrinsics[name].matrix(torch.float64).numpy().T
        landmarks.append((uv[:, :2] / uv[:, 2:]).astype(np.float32))
    result = rec.reconstruct(scene["images"], landmarks=landmarks)
    assert result.pose_source == "rig" and result.pose_note == ""
    assert result.metric_scale == pytest.approx(big, rel=1e-5)
    np.testing.assert_allclose(result.T_rig_from_model, T, atol=1e-5)
    np.testing.assert_allclose(result.vertices_model, rec.mean_vertices * big, atol=1e-5)
    expected_rig = big * rec.mean_vertices.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
    np.testing.assert_allclose(result.vertices_rig, expected_rig, atol=2e-5)
    # one view: no triangulation, the network's pose and the decoded size, and why
    single = rec.reconstruct([None, scene["images"][1], None], landmarks=[None, landmarks[1], None])
    assert single.pose_source == "network" and single.metric_scale == 1.0
    assert "triangulation needs two" in single.pose_note


def test_metric_pose_refuses_implausible_fits() -> None:
    from dfmvr_core.inference.metric_pose import metric_pose_from_landmarks

    rig = CameraRig.from_config(RigConfig())
    names = rig.names
    K = np.stack([rig.intrinsics[n].matrix(torch.float64).numpy() for n in names])
    T_cam = np.stack([rig.T_camera_from_rig(n).double().numpy() for n in names])
    rng = np.random.default_rng(0)
    model = rng.normal(0.0, 0.04, (68, 3))
    T = np.eye(4)
    T[:3, :3] = np.asarray(MODEL_TO_OPTICAL)
    T[:3, 3] = rig.subject_center_rig.numpy()

    def project(points_model):
        out = []
        for v in range(3):
            cam = (T_cam[v] @ T)[:3]
            uv = (points_model @ cam[:, :3].T + cam[:, 3]) @ K[v].T
            out.append(uv[:, :2] / uv[:, 2:])
        return np.stack(out)

    views = np.ones(3, dtype=bool)
    good, note = metric_pose_from_landmarks(project(model * 1.1), views, K, T_cam, model)
    assert note == "" and good.scale == pytest.approx(1.1, rel=1e-6) and good.points == 51
    assert good.residual_mm < 1e-6 and good.reprojection_px < 1e-6
    none, note = metric_pose_from_landmarks(project(model * 2.0), views, K, T_cam, model)
    assert none is None and "not a plausible face size" in note
    shifted = project(model)
    shifted[0] += 60.0  # one camera's landmarks 60 px off: the views disagree
    none, note = metric_pose_from_landmarks(shifted, views, K, T_cam, model)
    assert none is None and "views disagree" in note
    none, note = metric_pose_from_landmarks(project(model), np.array([False, True, False]), K, T_cam, model)
    assert none is None and "needs two" in note
