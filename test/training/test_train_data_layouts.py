"""Dataset adapters on small fixtures written in each dataset's own layout: Pixel-Face, Multi-PIE, CelebAMask-HQ."""

from __future__ import annotations

import pickle
import warnings

import cv2
import numpy as np
import pytest
import torch
from triplet_helpers import CAMERAS, TableDetector, rendered_faces, write_rgb

from dfmvr_core.errors import ConfigError, ModelFileError, ShapeError
from dfmvr_core.geometry.crop import apply_affine
from dfmvr_core.morphable import FacePart
from dfmvr_core.networks.face_parts import CelebAClass
from dfmvr_training.data.layouts import (
    CELEBA_MASK_PARTS,
    MULTIPIE_RING,
    MULTIPIE_YAW_DEG,
    CelebAMaskHQDataset,
    MultiPIEDataset,
    PixelFaceDataset,
    celeba_label_map,
    multipie_records,
    pixel_face_records,
)
from dfmvr_training.data.triplets import CACHE_NAME


@pytest.fixture(scope="module")
def faces(ict_model):
    return rendered_faces(ict_model)


# ------------------------------------------------------------------------------------------------- Pixel-Face
def write_pixel_face(root, faces):
    """Two subjects; photos stored sideways (rotated counter-clockwise) in Images/<0|1|2>/t.jpg, as the dataset
    ships them; folder 2 = left, 1 = front, 0 = right; subject 10086 lacks the right view."""
    folders = {"left": "2", "front": "1", "right": "0"}
    for subject, expressions in (("10075", ("1", "2")), ("10086", ("1",))):
        for expression in expressions:
            images = root / subject / expression / "Images"
            for cam in CAMERAS:
                if subject == "10086" and cam == "right":
                    continue
                stored = cv2.rotate(faces[cam].image, cv2.ROTATE_90_COUNTERCLOCKWISE)
                write_rgb(images / folders[cam] / "t.png", stored).rename(images / folders[cam] / "t.jpg")
            (images / "fusion").mkdir()
            np.savetxt(images / "fusion" / "nicp_106_pts.txt", np.arange(318.0).reshape(106, 3), fmt="%.3f")
            (images / "fusion" / "scan.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    (root / "10086" / "1" / "Images" / "fusion" / "nicp_106_pts.txt").unlink()
    (root / "10086" / "notes").mkdir()  # an expression folder without Images/: skipped
    return root


def test_pixel_face_records_and_views(tmp_path, faces) -> None:
    root = write_pixel_face(tmp_path / "train", faces)
    records = pixel_face_records(root)
    assert [r.key for r in records] == ["10075/1", "10075/2", "10086/1"]
    left, front, right = records[2].paths
    assert left.parts[-3:] == ("Images", "2", "t.jpg") and front.parts[-2] == "1" and right is None
    assert records[0].extras["scan"].name == "scan.obj" and records[2].extras["landmarks_3d"] is None
    assert [r.key for r in pixel_face_records(root, subjects=["10086"])] == ["10086/1"]
    with pytest.raises(ConfigError, match="views: expected folders"):
        pixel_face_records(root, views={"left": "2", "front": "1"})
    with pytest.raises(ConfigError, match="no Pixel-Face samples"):
        pixel_face_records(root, image_name="x.jpg", views={"left": "7", "front": "8", "right": "9"})
    with pytest.raises(ConfigError, match="Pixel-Face folder not found"):
        pixel_face_records(tmp_path / "nope")


def test_pixel_face_dataset_rotates_detects_and_finds_the_scan(tmp_path, faces) -> None:
    pytest.importorskip("mediapipe", reason="mediapipe is dfmvr's optional 'landmarks' extra")
    root = write_pixel_face(tmp_path / "train", faces)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "views look swapped" warning with the default view table
        ds = PixelFaceDataset(root, cache_dir=tmp_path / "cache", progress=False)
    assert (tmp_path / "cache" / CACHE_NAME).is_file() and not (root / ".dfmvr_cache").exists()
    sample = ds[2]
    assert sample["valid"].tolist() == [True, True, False] and not sample["has_3d"]
    assert sample["images"].shape == (3, 3, 224, 224)
    for v, cam in enumerate(CAMERAS[:2]):  # rotated back, each view holds its camera's face
        truth = apply_affine(torch.from_numpy(faces[cam].landmarks).float(), sample["A"][v])
        assert float(torch.linalg.vector_norm(sample["landmarks"][v] - truth, dim=-1)[17:].mean()) < 7.0
    # Approximate intrinsics of the rotated 320x240 photo: f = 320 px, centred.
    torch.testing.assert_close(sample["K"][0], torch.tensor([[320.0, 0, 159.5], [0, 320.0, 119.5], [0, 0, 1]]))
    assert ds.scan_path(0).name == "scan.obj"
    assert ds.landmarks_3d(0).shape == (106, 3) and ds.landmarks_3d(2) is None
    torch.testing.assert_close(pickle.loads(pickle.dumps(ds))[0]["images"], ds[0]["images"])  # DataLoader workers
    with pytest.raises(ConfigError, match="rotate_cw"):
        PixelFaceDataset(root, rotate_cw=45, prepare=False)


def test_pixel_face_swapped_table_warns(tmp_path, faces) -> None:
    root = write_pixel_face(tmp_path / "train", faces)
    detector = TableDetector()
    for cam in CAMERAS:
        detector.add(faces[cam].image, faces[cam].landmarks)
    with pytest.warns(UserWarning, match="side views look swapped"):
        PixelFaceDataset(root, views={"left": "0", "front": "1", "right": "2"}, detector=detector, progress=False)


# -------------------------------------------------------------------------------------------------- Multi-PIE
def write_multipie(root, faces, detector):
    """session01, subject 001, recording 01: cameras 08_0 (left), 05_1 (front), 19_0 (right) and 13_0 under
    illuminations 00 and 07; camera 19_0 misses illumination 07. File names use the release's 3-digit camera form."""
    for cam_id, face in (("08_0", "left"), ("05_1", "front"), ("19_0", "right"), ("13_0", "left")):
        for illumination in (0, 7):
            if cam_id == "19_0" and illumination == 7:
                continue
            image = np.clip(faces[face].image.astype(np.int16) + 3 * illumination, 0, 255).astype(np.uint8)
            name = f"001_01_01_{cam_id.replace('_', '')}_{illumination:02d}.png"
            write_rgb(root / "session01" / "multiview" / "001" / "01" / cam_id / name, image)
            detector.add(image, faces[face].landmarks)
    return root


def test_multipie_records_group_by_illumination(tmp_path, faces) -> None:
    root = write_multipie(tmp_path / "mpie", faces, TableDetector())
    records = multipie_records(root)
    assert [r.key for r in records] == ["session01/001/01/00", "session01/001/01/07"]
    assert [p.parent.name if p else None for p in records[1].paths] == ["08_0", "05_1", None]
    assert records[0].extras == {"session": "session01", "subject": "001", "recording": "01", "illumination": 0}
    assert len(multipie_records(root, min_views=3)) == 1
    assert [r.key for r in multipie_records(root, illuminations=[7])] == ["session01/001/01/07"]
    assert records[0].paths[0] != multipie_records(root, cameras=("13_0", "05_1", "19_0"))[0].paths[0]
    with pytest.raises(ConfigError, match="no Multi-PIE samples"):
        multipie_records(root, subjects=["002"])
    with pytest.raises(ConfigError, match="camera ids like '05_1'"):
        multipie_records(root, cameras=("080", "051", "190"))
    write_rgb(root / "session01" / "multiview" / "001" / "01" / "05_1" / "face.png", faces["front"].image)
    with pytest.raises(ConfigError, match="not a Multi-PIE file name"):
        multipie_records(root)


def test_multipie_dataset_items(tmp_path, faces) -> None:
    detector = TableDetector()
    root = write_multipie(tmp_path / "mpie", faces, detector)
    ds = MultiPIEDataset(root, detector=detector, progress=False)
    assert len(ds) == 2 and ds.camera_ids == ("08_0", "05_1", "19_0")
    first, second = ds[0], ds[1]
    assert first["valid"].all() and second["valid"].tolist() == [True, True, False]
    truth = apply_affine(torch.from_numpy(faces["left"].landmarks).float(), first["A"][0])
    torch.testing.assert_close(first["landmarks"][0], truth, atol=1e-2, rtol=0)
    assert float(first["images"][0].mean()) < float(second["images"][0].mean())  # illumination 07 is brighter
    # The ring: 15° steps, 05_1 frontal, 08_0 / 19_0 the ±45° pair of the paper's rig.
    assert len(MULTIPIE_RING) == 13 and MULTIPIE_YAW_DEG["05_1"] == 0.0
    assert (MULTIPIE_YAW_DEG["08_0"], MULTIPIE_YAW_DEG["19_0"]) == (-45.0, 45.0)
    assert (MULTIPIE_YAW_DEG["13_0"], MULTIPIE_YAW_DEG["04_1"]) == (-30.0, 30.0)


# ---------------------------------------------------------------------------------------------- CelebAMask-HQ
def write_celeba(root):
    """Images 0 and 2001 (64×64; mask folders 0 and 1), 32×32 masks; returns the expected 19-class maps."""
    rng = np.random.default_rng(0)
    expected = {}
    for index in (0, 2001):
        write_rgb(root / "CelebA-HQ-img" / f"{index}.jpg", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
        (root / "CelebAMask-HQ-mask-anno" / str(index // 2000)).mkdir(parents=True, exist_ok=True)
    masks = {
        "skin": (slice(4, 28), slice(4, 28)),
        "l_eye": (slice(10, 13), slice(18, 22)),  # the person's left eye: image right
        "r_eye": (slice(10, 13), slice(8, 12)),
        "hair": (slice(0, 8), slice(0, 32)),  # painted after skin: wins where they overlap
    }
    labels = np.zeros((32, 32), np.int64)
    for part in CELEBA_MASK_PARTS:
        if part in masks:
            mask = np.zeros((32, 32), np.uint8)
            mask[masks[part]] = 255
            cv2.imwrite(str(root / "CelebAMask-HQ-mask-anno" / "0" / f"00000_{part}.png"), mask)
            labels[masks[part]] = CelebAClass[part.upper()]
    expected[0] = labels
    hat = np.zeros((32, 32), np.uint8)
    hat[:5] = 255
    cv2.imwrite(str(root / "CelebAMask-HQ-mask-anno" / "1" / "02001_hat.png"), hat)
    expected[2001] = np.where(hat > 0, int(CelebAClass.HAT), 0)
    return root, expected


def test_celeba_label_map_paints_in_face_parsing_order(tmp_path) -> None:
    root, expected = write_celeba(tmp_path)
    assert CELEBA_MASK_PARTS[:3] == ("skin", "l_brow", "r_brow") and CELEBA_MASK_PARTS[-1] == "hat"
    for index, labels in expected.items():
        np.testing.assert_array_equal(celeba_label_map(root / "CelebAMask-HQ-mask-anno", index), labels)
    assert celeba_label_map(root / "CelebAMask-HQ-mask-anno", 5)[0, 0] == 0  # no masks at all: background
    with pytest.raises(ModelFileError, match="mask folder of image 4000"):
        celeba_label_map(root / "CelebAMask-HQ-mask-anno", 4000)


def test_celeba_dataset_items(tmp_path) -> None:
    root, expected = write_celeba(tmp_path)
    ds = CelebAMaskHQDataset(root, size=32)
    assert len(ds) == 2 and ds.indices == (0, 2001)
    item = ds[0]
    assert item["images"].shape == (1, 3, 32, 32) and item["images"].dtype == torch.float32
    assert item["labels"].shape == (1, 32, 32) and int(item["sample_index"]) == 0 and item["valid"].all()
    np.testing.assert_array_equal(item["labels"][0].numpy(), expected[0])
    parts = item["parts"][0]
    assert int(parts[11, 20]) == FacePart.LEFT_EYE and int(parts[11, 10]) == FacePart.RIGHT_EYE
    assert int(parts[2, 16]) == FacePart.OTHER and int(parts[20, 16]) == FacePart.SKIN  # hair → background
    swapped = CelebAMaskHQDataset(root, size=32, swap_left_right=True)[0]["parts"][0]
    assert int(swapped[11, 20]) == FacePart.RIGHT_EYE
    assert CelebAMaskHQDataset(root, size=16, indices=[2001])[0]["labels"].shape == (1, 16, 16)
    with pytest.raises(ModelFileError, match=r"no image for indices \[7\]"):
        CelebAMaskHQDataset(root, indices=[7])
    with pytest.raises(ConfigError, match="size"):
        CelebAMaskHQDataset(root, size=8)
    with pytest.raises(ConfigError, match="CelebA-HQ-img: not found; expected the CelebAMask-HQ release layout"):
        CelebAMaskHQDataset(tmp_path / "CelebA-HQ-img")
    write_rgb(root / "CelebA-HQ-img" / "0.jpg", np.zeros((64, 48, 3), np.uint8))
    with pytest.raises(ShapeError, match=r"0\.jpg: image is 48x64"):
        ds[0]
