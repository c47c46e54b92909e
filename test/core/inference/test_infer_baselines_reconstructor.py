"""FaceReconstructor running the baselines (the interface the ROS node and replay use): torch and ONNX Runtime
backends on the ICT face rendered in the default rig, missing views, the checkpoint's kind, the crop size check.
Tiny networks at 64 px (crop size 64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from dfmvr_core.errors import ConfigError, ModelFileError
from dfmvr_core.geometry.face_crop import CropCamera
from dfmvr_core.geometry.pose import MODEL_TO_OPTICAL, transform_points
from dfmvr_core.geometry.rig import CameraRig, RigConfig
from dfmvr_core.inference import save_checkpoint
from dfmvr_core.inference.reconstructor import FaceReconstructor, ReconstructorConfig
from dfmvr_core.networks.registry import build_network, load_any_network_config
from dfmvr_core.preview import PreviewOptions, render_rig_views, sample_face

S = 64
TINY = {
    "deep3dface_cnet": {"kind": "deep3dface", "aggregation": "cnet"},
    "uh_e2far": {"kind": "uh_e2far"},
}


@pytest.fixture(scope="module")
def scene(ict_model):
    model = ict_model.to(dtype=torch.float64)
    rig = CameraRig.from_config(RigConfig())
    vertices, albedo = sample_face(model, PreviewOptions())
    R = torch.tensor(MODEL_TO_OPTICAL, dtype=torch.float64)
    vertices_rig = transform_points(vertices[0], R, rig.subject_center_rig)
    images, landmarks = render_rig_views(model, vertices_rig, albedo, rig)
    return {"images": images, "landmarks": [np.asarray(lm, np.float32) for lm in landmarks]}


@pytest.fixture(scope="module")
def trained(ict_model, tmp_path_factory):
    """Per baseline: (network YAML, checkpoint for the ICT model, the network)."""
    folder = tmp_path_factory.mktemp("baselines")
    out = {}
    for name, fields in TINY.items():
        section = {"name": f"tiny-{name}", "backbone_depth": 18, "backbone_width": 0.25, "input_size": S, **fields}
        config_path = folder / f"{name}.yaml"
        config_path.write_text(yaml.safe_dump({"network": section}))
        torch.manual_seed(0)
        net = build_network(load_any_network_config(config_path), ict_model.coefficient_sizes, "blendshape")
        for p in net.parameters():
            p.data.add_(0.01 * torch.randn_like(p))
        checkpoint = save_checkpoint(folder / f"{name}.pt", net, model_fingerprint=ict_model.fingerprint())
        out[name] = (config_path, checkpoint, net.eval())
    return out


def reconstructor(ict_npz, tmp_path, network, checkpoint, backend, size: int = S) -> FaceReconstructor:
    config = ReconstructorConfig(
        morphable_model=ict_npz,
        network=str(network),
        checkpoint=checkpoint,
        backend=backend,
        detector="none",
        crop=CropCamera(size=size),
        cache_dir=tmp_path / "cache",
    )
    return FaceReconstructor(config)


@pytest.mark.parametrize("name", sorted(TINY))
def test_torch_and_onnxruntime_reconstruct_with_a_baseline(name, trained, scene, ict_npz, tmp_path):
    config_path, checkpoint, net = trained[name]
    results = {}
    for backend in ("torch", "onnxruntime"):
        rec = reconstructor(ict_npz, tmp_path, config_path, checkpoint, backend)
        assert rec.network_kind == net.kind
        result = rec.reconstruct(scene["images"], landmarks=scene["landmarks"])
        assert result.ok and result.valid.tolist() == [True, True, True] and result.masks is None
        assert np.isfinite(result.vertices_rig).all() and result.vertices_camera.shape[0] == 3
        results[backend] = result
    for key, value in results["torch"].coefficients.items():
        np.testing.assert_allclose(results["onnxruntime"].coefficients[key], value, atol=1e-4)
    # the coefficients are the network's on the crops it was given
    crops = np.stack([c.image for c in results["torch"].crops]).transpose(0, 3, 1, 2)[None]
    with torch.no_grad():
        expected = net(torch.from_numpy(crops.astype(np.float32) / 255.0))
    np.testing.assert_allclose(results["torch"].coefficients["identity"], expected["identity"][0], atol=1e-5)


def test_missing_view_still_reconstructs(trained, scene, ict_npz, tmp_path):
    config_path, checkpoint, net = trained["deep3dface_cnet"]
    rec = reconstructor(ict_npz, tmp_path, config_path, checkpoint, "torch")
    result = rec.reconstruct([*scene["images"][:2], None], landmarks=[*scene["landmarks"][:2], None])
    assert result.ok and result.valid.tolist() == [True, True, False] and result.reasons[2] == "missing image"
    crops = np.zeros((1, 3, 3, S, S), np.float32)
    for i in range(2):
        crops[0, i] = result.crops[i].image.transpose(2, 0, 1) / 255.0
    with torch.no_grad():
        expected = net(torch.from_numpy(crops), None, torch.tensor([[True, True, False]]))
    np.testing.assert_allclose(result.coefficients["identity"], expected["identity"][0], atol=1e-5)


def test_checkpoint_of_another_kind_and_crop_size_are_refused(trained, ict_npz, tmp_path):
    config_path, checkpoint, _ = trained["uh_e2far"]
    with pytest.raises(ModelFileError, match=r"holds a 'uh_e2far' network .*expected a 'dfmvr' network"):
        reconstructor(ict_npz, tmp_path, "small", checkpoint, "torch", size=224)
    with pytest.raises(ModelFileError, match=r"holds a 'uh_e2far' network .*expected a 'deep3dface' network"):
        reconstructor(ict_npz, tmp_path, trained["deep3dface_cnet"][0], checkpoint, "torch")
    with pytest.raises(ConfigError, match=r"takes 64 px views, but crop\.size is 224"):
        reconstructor(ict_npz, tmp_path, config_path, checkpoint, "torch", size=224)
