# Copyright 2026 dfmvr maintainers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""build_outputs: what the node publishes (and the replay writes) for one reconstruction, for Humble and Jazzy."""

from __future__ import annotations

import numpy as np
import pytest
from ros_output_helpers import (
    CAMERAS,
    MESH_FACES,
    MESH_VERTICES,
    STAMP_NS,
    fake_reconstruction,
    gray_images,
    node_config,
    rigid,
)

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_ros.image_codec import image_from_message
from dfmvr_ros.messages import (
    coefficients_from_array,
    matrix_from_pose,
    matrix_from_transform,
    mesh_from_topology,
    points_from_cloud,
    rosbags_types,
    stamp_to_ns,
)
from dfmvr_ros.outputs import MSGTYPES, build_outputs, overlay_image, topology_message


@pytest.fixture(scope="module", params=["humble", "jazzy"])
def types(request):
    return rosbags_types(request.param)


def roundtrip(types, output):
    """CDR-serialize and deserialize (what a bag writer and a subscriber do)."""
    data = types.typestore.serialize_cdr(output.message, output.msgtype)
    assert len(data) > 4
    return types.typestore.deserialize_cdr(data, output.msgtype)


def header_stamps(msg):
    """Every header stamp inside a message (nested TF transforms included)."""
    if hasattr(msg, "header"):
        return [stamp_to_ns(msg.header.stamp)]
    if hasattr(msg, "transforms"):
        return [stamp_to_ns(t.header.stamp) for t in msg.transforms]
    return []


def test_all_outputs_serialize_and_carry_the_stamp(types):
    config = node_config()
    recon = fake_reconstruction()
    outputs = build_outputs(
        types,
        recon,
        STAMP_NS,
        config,
        with_marker=True,
        with_overlay=True,
        overlay_images=gray_images(),
        faces=MESH_FACES,
    )
    topics = [o.topic for o in outputs]
    assert topics == [
        "/robot/dfmvr/head_pose",
        "/tf",
        "/robot/dfmvr/mesh/vertices",
        "/robot/dfmvr/coefficients",
        "/robot/dfmvr/mesh/marker",
        "/robot/dfmvr/debug/overlay",
    ]
    by_topic = {}
    for output in outputs:
        assert output.msgtype == MSGTYPES[next(k for k, v in config.topics.all().items() if v == output.topic)]
        msg = roundtrip(types, output)
        by_topic[output.topic] = msg
        for stamp in header_stamps(msg):
            assert stamp == STAMP_NS

    frame = "front_camera_optical_frame"
    pose = by_topic["/robot/dfmvr/head_pose"]
    assert pose.header.frame_id == frame
    np.testing.assert_allclose(matrix_from_pose(pose), recon.T_rig_from_model, atol=1e-9)

    (tf,) = by_topic["/tf"].transforms
    assert (tf.header.frame_id, tf.child_frame_id) == (frame, "face")
    np.testing.assert_allclose(matrix_from_transform(tf), recon.T_rig_from_model, atol=1e-9)

    cloud = by_topic["/robot/dfmvr/mesh/vertices"]
    assert cloud.header.frame_id == frame
    np.testing.assert_allclose(points_from_cloud(cloud), recon.vertices_rig, atol=1e-7)

    blocks = coefficients_from_array(by_topic["/robot/dfmvr/coefficients"])
    assert list(blocks) == ["identity", "expression", "albedo", "lighting", "pose"]
    for name, block in recon.coefficients.items():
        np.testing.assert_array_equal(blocks[name], block)

    marker = by_topic["/robot/dfmvr/mesh/marker"]
    assert marker.header.frame_id == frame and marker.ns == "dfmvr_face"
    points = np.array([(p.x, p.y, p.z) for p in marker.points])
    np.testing.assert_allclose(points, recon.vertices_rig[MESH_FACES].reshape(-1, 3), atol=1e-6)
    assert marker.color.a == pytest.approx(0.9)

    overlay = by_topic["/robot/dfmvr/debug/overlay"]
    assert overlay.encoding == "rgb8" and overlay.height == 24  # 48 px scaled by publish.overlay_scale 0.5
    assert overlay.width >= 3 * 32


def test_target_frame_re_expresses_every_geometric_output(types):
    config = node_config(**{"frames.target_frame": "base_link"})
    recon = fake_reconstruction()
    T_base_from_ref = rigid((0.3, 0.0, -0.4), (0.2, 0.1, 1.2))
    outputs = build_outputs(
        types, recon, STAMP_NS, config, with_marker=True, faces=MESH_FACES, T_target_from_reference=T_base_from_ref
    )
    msgs = {o.topic: roundtrip(types, o) for o in outputs}
    pose = msgs["/robot/dfmvr/head_pose"]
    assert pose.header.frame_id == "base_link"
    np.testing.assert_allclose(matrix_from_pose(pose), T_base_from_ref @ recon.T_rig_from_model, atol=1e-9)
    assert msgs["/tf"].transforms[0].header.frame_id == "base_link"
    expected = recon.vertices_rig.astype(np.float64) @ T_base_from_ref[:3, :3].T + T_base_from_ref[:3, 3]
    np.testing.assert_allclose(points_from_cloud(msgs["/robot/dfmvr/mesh/vertices"]), expected, atol=1e-6)
    # the mesh in the output frame equals the model-frame mesh moved by the published pose
    moved = MESH_VERTICES.astype(np.float64) @ matrix_from_pose(pose)[:3, :3].T + matrix_from_pose(pose)[:3, 3]
    np.testing.assert_allclose(points_from_cloud(msgs["/robot/dfmvr/mesh/vertices"]), moved, atol=1e-6)
    assert msgs["/robot/dfmvr/mesh/marker"].header.frame_id == "base_link"

    with pytest.raises(ConfigError, match=r"frames\.target_frame"):
        build_outputs(types, recon, STAMP_NS, config)
    with pytest.raises(ConfigError, match=r"frames\.target_frame"):
        build_outputs(types, recon, STAMP_NS, node_config(), T_target_from_reference=T_base_from_ref)


def test_toggles_and_on_demand_outputs(types):
    recon = fake_reconstruction()
    config = node_config(**{"publish.vertices": False, "publish.tf": False, "publish.marker": False})
    outputs = build_outputs(types, recon, STAMP_NS, config, with_marker=True, faces=MESH_FACES)
    assert [o.topic for o in outputs] == ["/robot/dfmvr/head_pose", "/robot/dfmvr/coefficients"]
    # on-demand outputs are off unless asked for (no subscriber)
    outputs = build_outputs(types, recon, STAMP_NS, node_config())
    assert "/robot/dfmvr/mesh/marker" not in [o.topic for o in outputs]
    assert "/robot/dfmvr/debug/overlay" not in [o.topic for o in outputs]
    with pytest.raises(ConfigError, match="faces"):
        build_outputs(types, recon, STAMP_NS, node_config(), with_marker=True)
    with pytest.raises(ConfigError, match="overlay_images"):
        build_outputs(types, recon, STAMP_NS, node_config(), with_overlay=True, faces=MESH_FACES)


def test_no_face_publishes_only_the_overlay(types):
    recon = fake_reconstruction((False, False, False))
    config = node_config()
    assert build_outputs(types, recon, STAMP_NS, config, with_marker=True, faces=MESH_FACES) == []
    outputs = build_outputs(
        types, recon, STAMP_NS, config, with_overlay=True, overlay_images=gray_images(), faces=MESH_FACES
    )
    assert [o.topic for o in outputs] == ["/robot/dfmvr/debug/overlay"]
    assert stamp_to_ns(roundtrip(types, outputs[0]).header.stamp) == STAMP_NS


def test_topology_is_the_mesh(types):
    output = topology_message(types, node_config(), MESH_FACES, MESH_VERTICES)
    assert output.topic == "/robot/dfmvr/mesh/topology" and output.msgtype == "shape_msgs/msg/Mesh"
    faces, vertices = mesh_from_topology(roundtrip(types, output))
    np.testing.assert_array_equal(faces, MESH_FACES)
    np.testing.assert_allclose(vertices, MESH_VERTICES, atol=1e-7)


def test_overlay_draws_valid_views_and_labels_the_others():
    recon = fake_reconstruction((True, False, True))
    images = gray_images()
    images[2] = None
    picture = overlay_image(recon, images, MESH_FACES, scale=1.0)
    assert picture.dtype == np.uint8 and picture.shape[0] == 48
    gap = 4
    panels = [picture[:, i * (64 + gap) : i * (64 + gap) + 64] for i in range(3)]
    # left: valid, the mesh (light blue) is drawn over the grey image at the projected centre
    blue = panels[0][..., 2].astype(int) - panels[0][..., 0] > 8  # light blue mesh, not grey or white text
    assert blue.sum() > 100 and not (images[0][..., 2].astype(int) - images[0][..., 0] > 0).any()
    cy, cx = np.argwhere(blue).mean(axis=0)
    u, v = recon.landmarks_2d[0].mean(axis=0)  # the mesh's projected centre
    assert abs(cx - u) < 2 and abs(cy - v) < 2
    assert (panels[0][..., 1] > 200).any()  # landmark dots (green)
    # front: invalid, image kept, the reason written in red, nothing drawn in the middle
    np.testing.assert_array_equal(panels[1][30:, :], images[1][30:, :])
    assert (panels[1][:30, :, 0] > 200).any()
    # right: missing image, black panel with the reason
    assert panels[2][30:].max() == 0 and panels[2][:30].max() > 0


def test_overlay_scale_maps_intrinsics_and_checks_inputs(monkeypatch):
    import dfmvr_core.inference.overlay as overlay_module

    calls = []

    def recording_draw(image, vertices_camera, faces, K, *, landmarks_2d=None, label=None, **kwargs):
        calls.append((image.shape, np.asarray(K), np.asarray(landmarks_2d), label))
        return image

    monkeypatch.setattr(overlay_module, "draw_overlay", recording_draw)
    recon = fake_reconstruction((True, True, False))
    half = overlay_image(recon, gray_images(), MESH_FACES, scale=0.5)
    assert half.shape[0] == 24
    assert [c[3] for c in calls] == ["left", "front"]  # only valid views are drawn
    shape, K, landmarks, _ = calls[0]
    assert shape == (24, 32, 3)
    # pixel centres at integers: u' = (u + 0.5) * s - 0.5
    np.testing.assert_allclose(K, [[80.0, 0, 15.5], [0, 80.0, 11.5], [0, 0, 1]])
    np.testing.assert_allclose(landmarks, (recon.landmarks_2d[0] + 0.5) * 0.5 - 0.5, atol=1e-5)
    with pytest.raises(ShapeError, match="expected 3 images"):
        overlay_image(recon, gray_images()[:2], MESH_FACES)
    bad = gray_images()
    bad[0] = bad[0][..., 0]
    with pytest.raises(ShapeError, match=r"overlay_images\['left'\]"):
        overlay_image(recon, bad, MESH_FACES)


def test_overlay_message_decodes_to_the_picture():
    types = rosbags_types("humble")
    recon = fake_reconstruction()
    config = node_config(**{"publish.overlay_scale": 1.0})
    (output,) = [
        o
        for o in build_outputs(
            types, recon, STAMP_NS, config, with_overlay=True, overlay_images=gray_images(), faces=MESH_FACES
        )
        if o.topic.endswith("overlay")
    ]
    decoded = image_from_message(roundtrip(types, output))
    np.testing.assert_array_equal(decoded, overlay_image(recon, gray_images(), MESH_FACES, scale=1.0))
    assert roundtrip(types, output).header.frame_id == "front_camera_optical_frame"
    assert len(CAMERAS) == 3
