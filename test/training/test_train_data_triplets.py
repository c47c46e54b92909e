"""FolderTripletDataset: a folder of camera triplets → the trainer's sample dict (MediaPipe on rendered faces)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import warnings

import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import DataLoader
from triplet_helpers import CAMERAS, INTRINSICS, TableDetector, rendered_faces, write_rgb

from dfmvr_core.errors import ConfigError, ModelFileError, ShapeError
from dfmvr_core.geometry.crop import apply_affine
from dfmvr_core.morphable import FacePart
from dfmvr_training.data.triplets import (
    CACHE_DIRNAME,
    CACHE_NAME,
    ApproximateIntrinsics,
    FolderTripletDataset,
    face_turn,
    read_camera_info_yaml,
)

RIG = dict.fromkeys(CAMERAS, INTRINSICS)


@pytest.fixture(scope="module")
def faces(ict_model):
    return rendered_faces(ict_model)


def _shifted(image: np.ndarray, dx: int) -> np.ndarray:
    return np.ascontiguousarray(np.roll(image, dx, axis=1))


def make_folder(root, faces, stems=("000", "001", "002"), skip=(("right", "002"),), blank=(("front", "001"),)):
    """Per stem k the rendered views shifted by 6·k px; ``skip`` (camera, stem) files are left out, ``blank`` ones
    are a face-less grey image."""
    for cam in CAMERAS:
        (root / cam).mkdir(parents=True, exist_ok=True)
        for k, stem in enumerate(stems):
            if (cam, stem) in skip:
                continue
            image = _shifted(faces[cam].image, 6 * k)
            if (cam, stem) in blank:
                image = np.full_like(image, 90)
            write_rgb(root / cam / f"{stem}.png", image)
    return root


def write_camera_info(path, width=320, height=240, k=None, d=(0.0, 0.0, 0.0, 0.0, 0.0)):
    k = k if k is not None else [300.0, 0.0, 159.5, 0.0, 300.0, 119.5, 0.0, 0.0, 1.0]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        yaml.safe_dump(
            {
                "image_width": width,
                "image_height": height,
                "camera_name": path.stem,
                "camera_matrix": {"rows": 3, "cols": 3, "data": list(k)},
                "distortion_model": "plumb_bob",
                "distortion_coefficients": {"rows": 1, "cols": len(d), "data": list(d)},
            }
        )
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory, faces):
    pytest.importorskip("mediapipe", reason="mediapipe is dfmvr's optional 'landmarks' extra")
    root = make_folder(tmp_path_factory.mktemp("triplets"), faces)
    for cam in CAMERAS:
        write_camera_info(root / "camera_info" / f"{cam}.yaml")
    return root


@pytest.fixture(scope="module")
def dataset(folder):
    return FolderTripletDataset(folder, progress=False)  # intrinsics from camera_info/, MediaPipe detection


def test_items_have_the_trainers_keys_and_weak_labels(dataset, faces) -> None:
    assert len(dataset) == 3 and [r.key for r in dataset.records] == ["000", "001", "002"]
    sample = dataset[0]
    expected = {
        "images": ((3, 3, 224, 224), torch.float32),
        "parts": ((3, 224, 224), torch.int64),
        "landmarks": ((3, 68, 2), torch.float32),
        "visibility": ((3, 68), torch.bool),
        "K_crop": ((3, 3, 3), torch.float32),
        "K": ((3, 3, 3), torch.float32),
        "A": ((3, 2, 3), torch.float32),
        "valid": ((3,), torch.bool),
        "has_3d": ((), torch.bool),
        "sample_index": ((), torch.int64),
    }
    assert {k: (tuple(v.shape), v.dtype) for k, v in sample.items()} == expected
    assert sample["valid"].all() and not sample["has_3d"] and sample["visibility"].all()
    assert 0.0 <= float(sample["images"].min()) and float(sample["images"].max()) <= 1.0
    K = torch.from_numpy(INTRINSICS.matrix(dtype=torch.float64).numpy()).float()
    torch.testing.assert_close(sample["K"], K.expand(3, 3, 3))
    A3 = torch.cat((sample["A"], torch.tensor([0.0, 0.0, 1.0]).expand(3, 1, 3)), dim=1)
    torch.testing.assert_close(sample["K_crop"], A3 @ sample["K"], rtol=1e-5, atol=1e-3)
    for v, cam in enumerate(CAMERAS):
        # The detected landmarks land on the rendered face's landmarks, mapped into the crop by A.
        truth = apply_affine(torch.from_numpy(faces[cam].landmarks).float(), sample["A"][v])
        error = torch.linalg.vector_norm(sample["landmarks"][v] - truth, dim=-1)
        assert float(error[17:].mean()) < 7.0, (cam, float(error.mean()))  # crop px; measured 2.7-3.9
        labels = set(torch.unique(sample["parts"][v]).tolist())
        assert {FacePart.SKIN, FacePart.NOSE, FacePart.UPPER_LIP} <= labels
    # The face-part mask comes from the landmarks: the nose tip sits on NOSE.
    tip = sample["landmarks"][1, 30].round().long()
    assert int(sample["parts"][1, tip[1], tip[0]]) == FacePart.NOSE


def test_missing_file_and_no_face_make_views_invalid(dataset) -> None:
    blank_front, missing_right = dataset[1], dataset[2]
    assert blank_front["valid"].tolist() == [True, False, True]
    assert missing_right["valid"].tolist() == [True, True, False]
    for sample, v in ((blank_front, 1), (missing_right, 2)):
        assert float(sample["images"][v].abs().sum()) == 0.0 and int(sample["parts"][v].abs().sum()) == 0
        assert not sample["visibility"][v].any()
        assert torch.isfinite(sample["K_crop"][v]).all() and float(torch.linalg.det(sample["K_crop"][v])) > 0
    # Blank view: A letterboxes the 320-px-wide image into 224 px (crop focal 300 · 224/320 = 210).
    assert float(blank_front["K_crop"][1, 0, 0]) == pytest.approx(210.0)


def test_cache_is_reused_and_a_changed_image_is_detected_again(folder, dataset) -> None:
    cache = json.loads((folder / CACHE_DIRNAME / CACHE_NAME).read_text())
    assert cache["detector"] == "mediapipe" and len(cache["entries"]) == 8  # 9 views − 1 missing file
    assert cache["entries"]["front/001.png"]["points"] is None  # the blank image: no face, remembered
    again = FolderTripletDataset(folder, progress=False)
    summary = again.prepare()
    assert (summary.images, summary.from_cache, summary.detected, summary.faces) == (8, 8, 0, 7)
    torch.testing.assert_close(again[0]["landmarks"], dataset[0]["landmarks"])
    cached_only = FolderTripletDataset(folder, detector="none", progress=False)  # the cache's landmarks, no detector
    torch.testing.assert_close(cached_only[0]["landmarks"], dataset[0]["landmarks"])

    # Another detector: its own entries; a rewritten file (new size/mtime) is detected again, the others not.
    copy = folder.parent / "triplets_copy"
    shutil.copytree(folder, copy)
    detector = TableDetector()
    first = FolderTripletDataset(copy, detector=detector, progress=False)
    assert detector.calls == 8 and not first[0]["valid"].any()  # nothing registered: no faces
    image = (np.asarray(first.loader(copy / "left" / "000.png")) // 2).astype(np.uint8)
    write_rgb(copy / "left" / "000.png", image)
    stat = os.stat(copy / "left" / "000.png")
    os.utime(copy / "left" / "000.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    FolderTripletDataset(copy, detector=detector, progress=False)
    assert detector.calls == 9


def test_rig_intrinsics_and_size_mismatch_names_the_file(tmp_path, faces) -> None:
    root = make_folder(tmp_path / "d", faces, stems=("a",), skip=(), blank=())
    detector = TableDetector()
    ds = FolderTripletDataset(root, rig=RIG, detector=detector, progress=False)
    assert ds[0]["K"].shape == (3, 3, 3)
    # A rig YAML works too (config/rig.yaml is 640x480: every image is the wrong size).
    with pytest.raises(ShapeError, match=r"left/a\.png: image is 320x240 .* intrinsics are for 640x480"):
        FolderTripletDataset(root, rig="config/rig.yaml", detector=detector, cache=False, progress=False)
    write_rgb(root / "front" / "a.png", faces["front"].image[::2, ::2])
    with pytest.raises(ShapeError, match=r"front/a\.png: image is 160x120"):
        FolderTripletDataset(root, rig=RIG, detector=detector, progress=False)


def test_folder_errors_are_clear(tmp_path, faces) -> None:
    detector = TableDetector()
    with pytest.raises(ConfigError, match="triplet folder not found"):
        FolderTripletDataset(tmp_path / "nope", rig=RIG, detector=detector)
    root = make_folder(tmp_path / "d", faces, stems=("a",), skip=(), blank=())
    with pytest.raises(ConfigError, match=r"camera_info/left\.yaml.*not found.*rig="):
        FolderTripletDataset(root, detector=detector)
    with pytest.raises(ConfigError, match=r"rig: has no camera\(s\) \['right'\]"):
        FolderTripletDataset(root, rig={"left": INTRINSICS, "front": INTRINSICS}, detector=detector)
    shutil.copy(root / "left" / "a.png", root / "left" / "a.jpg")
    with pytest.raises(ConfigError, match="two images with the stem 'a'"):
        FolderTripletDataset(root, rig=RIG, detector=detector)
    (root / "left" / "a.jpg").unlink()
    shutil.rmtree(root / "right")
    with pytest.raises(ConfigError, match=r"right: camera folder not found.*found folders \['front', 'left'\]"):
        FolderTripletDataset(root, rig=RIG, detector=detector)
    empty = tmp_path / "empty"
    for cam in CAMERAS:
        (empty / cam).mkdir(parents=True)
    with pytest.raises(ConfigError, match="no images"):
        FolderTripletDataset(empty, rig=RIG, detector=detector)
    with pytest.raises(ConfigError, match="mask_source"):
        make_folder(tmp_path / "m", faces, stems=("a",), skip=(), blank=())
        FolderTripletDataset(tmp_path / "m", rig=RIG, detector=detector, mask_source="parser")
    (tmp_path / "m" / CACHE_DIRNAME).mkdir()
    (tmp_path / "m" / CACHE_DIRNAME / CACHE_NAME).write_text("{not json")
    with pytest.raises(ModelFileError, match="landmark cache is not readable JSON"):
        FolderTripletDataset(tmp_path / "m", rig=RIG, detector=detector)


def test_camera_info_yaml(tmp_path) -> None:
    path = tmp_path / "cam.yaml"
    write_camera_info(path, 640, 480, k=[500.0, 0.0, 320.0, 0.0, 510.0, 240.0, 0.0, 0.0, 1.0])
    intr = read_camera_info_yaml(path)
    assert (intr.fx, intr.fy, intr.cx, intr.cy, intr.width, intr.height) == (500, 510, 320, 240, 640, 480)
    write_camera_info(path, d=(0.1, 0.0, 0.0, 0.0, 0.0))
    with pytest.warns(UserWarning, match="non-zero distortion"):
        read_camera_info_yaml(path)
    write_camera_info(path, k=[0.0] * 9)
    with pytest.raises(ConfigError, match="all zeros"):
        read_camera_info_yaml(path)
    write_camera_info(path, k=[1.0] * 8)
    with pytest.raises(ConfigError, match=r"camera_matrix\.data: expected 9"):
        read_camera_info_yaml(path)
    path.write_text("image_width: 640\n")
    with pytest.raises(ConfigError, match="image_height"):
        read_camera_info_yaml(path)
    with pytest.raises(ConfigError, match="not found"):
        read_camera_info_yaml(tmp_path / "missing.yaml")


def test_swapped_side_cameras_warn(tmp_path, faces) -> None:
    """The rendered left view turns to the image's right; folders swapped left↔right trigger the warning."""
    assert face_turn(faces["left"].landmarks) > 0.3 > -0.3 > face_turn(faces["right"].landmarks)
    detector = TableDetector()
    swapped = {"left": "right", "front": "front", "right": "left"}
    for k in range(3):
        for cam in CAMERAS:
            image = _shifted(faces[swapped[cam]].image, 6 * k)
            write_rgb(tmp_path / cam / f"{k}.png", image)
            detector.add(image, faces[swapped[cam]].landmarks + np.array((6.0 * k, 0.0)))
    with pytest.warns(UserWarning, match="side views look swapped"):
        ds = FolderTripletDataset(tmp_path, rig=RIG, detector=detector, progress=False)
    assert ds.check_view_order().looks_swapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FolderTripletDataset(tmp_path, rig=RIG, detector=detector, cameras=("right", "front", "left"), progress=False)


def test_dataloader_collates_and_the_dataset_pickles(dataset) -> None:
    clone = pickle.loads(pickle.dumps(dataset))  # DataLoader workers get a copy: no MediaPipe graph inside
    batch = next(iter(DataLoader(clone, batch_size=2)))
    assert batch["images"].shape == (2, 3, 3, 224, 224) and batch["valid"].shape == (2, 3)
    assert batch["has_3d"].tolist() == [False, False] and batch["sample_index"].tolist() == [0, 1]


def test_approximate_intrinsics() -> None:
    intr = ApproximateIntrinsics(1.5)("front", 640, 480)
    assert (intr.fx, intr.fy, intr.cx, intr.cy, intr.width, intr.height) == (960, 960, 319.5, 239.5, 640, 480)
    with pytest.raises(ConfigError, match="focal_factor"):
        ApproximateIntrinsics(0.0)
