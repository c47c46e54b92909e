"""make_dataset / SyntheticMultiViewDataset / dfmvr make-dataset on a tiny dataset (5 samples, shards of 2)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import numpy as np
import pytest
import torch

from dfmvr_core.cli.main import main
from dfmvr_core.errors import ConfigError, ModelFileError
from dfmvr_core.geometry.camera import project_points
from dfmvr_core.geometry.face_crop import CropCamera, crop_pose_to_camera
from dfmvr_core.morphable import CoefficientSizes
from dfmvr_core.synthesis import FaceSceneSampler, SceneConfig, SceneRenderer, scene_seed
from dfmvr_training.data import SPLIT_STREAMS, SyntheticMultiViewDataset, generate_samples, gt_vertices, make_dataset

SEED, COUNT, SHARD = 7, 3, 2
SHARDS = ("shard_00000.npz", "shard_00001.npz")
ARGS = {"count": COUNT, "seed": SEED, "shard_size": SHARD, "progress": False}


@pytest.fixture(scope="module")
def built(tmp_path_factory, ict_npz):
    """The same dataset twice: uninterrupted through the CLI, and interrupted after shard 0, then resumed."""
    root = tmp_path_factory.mktemp("synthetic")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(
            [
                "make-dataset",
                "--model",
                str(ict_npz),
                "--out",
                str(root / "cli"),
                "--count",
                str(COUNT),
                "--seed",
                str(SEED),
                "--shard-size",
                str(SHARD),
                "--no-progress",
            ]
        )
    first = make_dataset(root / "resumed", ict_npz, max_shards=1, **ARGS)
    manifest_after_first = json.loads((root / "resumed" / "manifest.json").read_text())
    shard0 = (root / "resumed" / SHARDS[0]).stat()
    (root / "resumed" / ".shard_00001.npz.abc123.npz").write_bytes(b"partial")  # a killed writer's temporary
    second = make_dataset(root / "resumed", ict_npz, **ARGS)
    return {
        "root": root,
        "rc": rc,
        "stdout": out.getvalue(),
        "first": first,
        "second": second,
        "manifest_after_first": manifest_after_first,
        "shard0_kept": (root / "resumed" / SHARDS[0]).stat().st_mtime_ns == shard0.st_mtime_ns,
    }


def test_train_data_cli_end_to_end(built):
    assert built["rc"] == 0
    text = built["stdout"]
    assert "3 total, 3 written" in text and "2 total, 2 written" in text and "samples/s" in text
    manifest = json.loads((built["root"] / "cli" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["samples_complete"] == COUNT
    assert [e["file"] for e in manifest["shards"]] == list(SHARDS)
    assert [e["count"] for e in manifest["shards"]] == [2, 1]
    assert manifest["model"]["fingerprint"] and manifest["scene_config"]["side_yaw"] == "fixed"


def test_train_data_resume_equals_uninterrupted_run(built):
    first, second = built["first"], built["second"]
    assert (first.shards_written, first.complete) == (1, False)
    assert built["manifest_after_first"]["samples_complete"] == 2 and not built["manifest_after_first"]["complete"]
    assert (second.shards_written, second.samples_written, second.complete) == (1, 1, True)
    assert built["shard0_kept"]  # continued after the complete shard, did not rewrite it
    assert not list((built["root"] / "resumed").glob(".shard_*"))  # the stale temporary was removed
    for name in SHARDS:
        assert (built["root"] / "resumed" / name).read_bytes() == (built["root"] / "cli" / name).read_bytes(), name
    a, b = (json.loads((built["root"] / d / "manifest.json").read_text()) for d in ("cli", "resumed"))
    assert a["shards"] == b["shards"] and a["scene_config"] == b["scene_config"]


def test_train_data_damaged_shard_is_rewritten_on_rerun(built, ict_npz, tmp_path):
    root = shutil.copytree(built["root"] / "cli", tmp_path / "copy")
    good = (root / SHARDS[1]).read_bytes()
    (root / SHARDS[1]).write_bytes(good[:-10] + bytes(10))
    with pytest.warns(UserWarning, match=r"shard_00001\.npz.*damaged"):
        summary = make_dataset(root, ict_npz, **ARGS)
    assert summary.shards_written == 1 and (root / SHARDS[1]).read_bytes() == good


def test_train_data_rerun_of_a_complete_dataset_writes_nothing(built, ict_npz):
    summary = make_dataset(built["root"] / "cli", ict_npz, **ARGS)
    assert summary.shards_written == 0 and summary.complete


@pytest.mark.parametrize(
    "change",
    [
        {"seed": SEED + 1},
        {"count": COUNT + 1},
        {"shard_size": 3},
        {"split": "benchmark"},
        {"scene_config": SceneConfig(side_yaw="random")},
        {"crop": CropCamera(box_scale=1.4)},
    ],
    ids=["seed", "count", "shard_size", "split", "scene_config", "crop"],
)
def test_train_data_other_settings_are_refused(built, ict_npz, change):
    args = {**ARGS, **change}
    name = next(iter(change)).replace("crop", "crop_camera")
    with pytest.raises(ConfigError, match=name):
        make_dataset(built["root"] / "cli", ict_npz, **args)


def _shard(built, k=0):
    with np.load(built["root"] / "cli" / SHARDS[k]) as z:
        return {key: z[key] for key in z.files}


def test_train_data_shard_arrays_are_consistent(built):
    s = _shard(built)
    n, v = 2, 3
    assert s["crops"].shape == (n, v, 224, 224, 3) and s["crops"].dtype == np.uint8
    assert s["parts"].shape == (n, v, 224, 224) and s["landmark_visibility"].dtype == bool
    assert s["pose_label"].dtype == np.float32 and s["A"].dtype == np.float64
    np.testing.assert_array_equal(s["sample_index"], [0, 1])
    np.testing.assert_array_equal(s["scene_seed"], [scene_seed(SEED, i, SPLIT_STREAMS["train"]) for i in range(2)])
    # Pose labels are the crop camera's parameterization of T_camera_from_model.
    label = torch.from_numpy(s["pose_label"]).double()
    T = crop_pose_to_camera(
        label[..., :3], label[..., 3:], torch.from_numpy(s["K"]), torch.from_numpy(s["A"]), CropCamera()
    )
    assert (T - torch.from_numpy(s["T_camera_from_model"])).abs().max() < 1e-6
    # Landmarks in the crop = the 3D landmarks posed by T and projected with K_crop = A·K.
    A3 = np.concatenate((s["A"], np.broadcast_to([0.0, 0.0, 1.0], (n, v, 1, 3))), axis=-2)
    lm_cam = np.einsum("bvij,bnj->bvni", s["T_camera_from_model"][..., :3, :3], s["landmarks_3d"].astype(np.float64))
    lm_cam += s["T_camera_from_model"][..., None, :3, 3]
    projected = project_points(torch.from_numpy(lm_cam), torch.from_numpy(A3 @ s["K"])).numpy()
    np.testing.assert_allclose(projected, s["landmarks_crop"], atol=1e-3)
    assert np.all((s["landmarks_crop"] > 0) & (s["landmarks_crop"] < 223))
    assert (s["parts"] > 0).mean() > 0.25


def test_train_data_seed_and_split_streams_change_the_samples(built, ict_model):
    s = _shard(built)
    other = generate_samples(FaceSceneSampler(ict_model), SceneRenderer(ict_model), [0], SEED + 1, 0)
    assert other["crops"].shape == s["crops"][:1].shape
    assert not np.array_equal(other["crops"][0], s["crops"][0])
    assert not np.array_equal(other["identity"][0], s["identity"][0])
    benchmark = {scene_seed(SEED, i, SPLIT_STREAMS["benchmark"]) for i in range(COUNT)}
    assert not benchmark & {scene_seed(SEED, i, SPLIT_STREAMS["train"]) for i in range(COUNT)}


def test_train_data_dataset_items(built, ict_model):
    ds = SyntheticMultiViewDataset(built["root"] / "cli", verify="sha256")
    assert len(ds) == COUNT and ds.camera_names == ("left", "front", "right")
    assert ds.model_fingerprint == ict_model.fingerprint()
    item = ds[2]  # second shard, first sample
    s = _shard(built, 1)
    assert item["images"].shape == (3, 3, 224, 224) and item["images"].dtype == torch.float32
    torch.testing.assert_close(item["images"], torch.from_numpy(s["crops"][0]).permute(0, 3, 1, 2).float() / 255)
    assert item["parts"].dtype == torch.int64 and item["valid"].all() and item["visibility"].dtype == torch.bool
    K_crop = np.concatenate((s["A"][0], np.tile([[[0.0, 0.0, 1.0]]], (3, 1, 1))), axis=1) @ s["K"][0]
    torch.testing.assert_close(item["K_crop"], torch.from_numpy(K_crop).float())
    assert int(item["sample_index"]) == 2 and item["pose_label"].shape == (3, 6)
    vertices = gt_vertices(ict_model, item)
    lm = vertices[ict_model.landmarks68]
    torch.testing.assert_close(lm, item["landmarks_3d"], atol=1e-6, rtol=0)
    assert torch.equal(ds[-1]["sample_index"], item["sample_index"])
    with pytest.raises(IndexError):
        ds[COUNT]
    one_open = SyntheticMultiViewDataset(built["root"] / "cli", max_open_shards=1)  # reopens shards as needed
    for i in (2, 0, 2, 1):
        torch.testing.assert_close(one_open[i]["images"], ds[i]["images"])
    assert len(one_open._cache) == 1

    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["images"].shape == (2, 3, 3, 224, 224) and gt_vertices(ict_model, batch).shape == (2, 9409, 3)

    sizes = CoefficientSizes(identity=80, expression=53, albedo=70)
    fitted = SyntheticMultiViewDataset(built["root"] / "cli", coefficient_sizes=sizes)[2]
    assert fitted["gt_identity"].shape == (80,) and fitted["gt_identity_full"].shape == (100,)
    torch.testing.assert_close(fitted["gt_identity"], item["gt_identity_full"][:80])
    assert fitted["gt_albedo"].shape == (70,) and not fitted["gt_albedo"][60:].any()


def _copy(built, tmp_path):
    return shutil.copytree(built["root"] / "cli", tmp_path / "copy")


def test_train_data_corrupt_datasets_are_refused(built, tmp_path):
    root = _copy(built, tmp_path)
    shard = root / SHARDS[1]
    data = shard.read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(flipped))
    SyntheticMultiViewDataset(root)  # same size, readable: only the checksum can tell
    with pytest.raises(ModelFileError, match=r"shard_00001\.npz.*checksum"):
        SyntheticMultiViewDataset(root, verify="sha256")
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"shard_00001\.npz.*truncated"):
        SyntheticMultiViewDataset(root)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["shards"][1]["bytes"] = len(data) // 2  # even when the manifest agrees on the size
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match=r"shard_00001\.npz.*(truncated|corrupt)"):
        SyntheticMultiViewDataset(root)
    shard.unlink()
    with pytest.raises(ModelFileError, match=r"shard_00001\.npz.*missing"):
        SyntheticMultiViewDataset(root)
    (root / "manifest.json").write_text("{not json")
    with pytest.raises(ModelFileError, match=r"manifest\.json.*JSON"):
        SyntheticMultiViewDataset(root)


def test_train_data_incomplete_dataset_needs_consent(built, tmp_path):
    root = _copy(built, tmp_path)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["complete"] = False
    manifest["shards"] = manifest["shards"][:1]
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="incomplete"):
        SyntheticMultiViewDataset(root)
    assert len(SyntheticMultiViewDataset(root, allow_incomplete=True)) == 2


def test_train_data_cli_bad_input_exits_2(tmp_path, ict_npz, capsys):
    rc = main(["make-dataset", "--model", str(ict_npz), "--out", str(tmp_path / "x"), "--count", "0", "--seed", "1"])
    assert rc == 2 and "count" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("scene: {side_yaw: 3}\n")
    rc = main(
        [
            "make-dataset",
            "--model",
            str(ict_npz),
            "--out",
            str(tmp_path / "x"),
            "--count",
            "1",
            "--seed",
            "1",
            "--config",
            str(tmp_path / "bad.yaml"),
        ]
    )
    assert rc == 2 and "side_yaw" in capsys.readouterr().err
