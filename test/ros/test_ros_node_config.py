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

"""NodeConfig: config/dfmvr.yaml, flat ROS parameters, and bad values refused with the parameter's name (no rclpy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfmvr_core.errors import ConfigError
from dfmvr_core.inference.default_model import packaged_checkpoint_path
from dfmvr_core.sync import RigSynchronizerConfig
from dfmvr_ros.node_config import (
    NodeConfig,
    OutputTopics,
    default_parameters,
    load_node_config,
    read_parameter_file,
)

REPO = Path(__file__).resolve().parents[2]
YAML = REPO / "config" / "dfmvr.yaml"
MODEL = {"reconstructor.morphable_model": "/models/face.npz"}


def params(**overrides):
    out = default_parameters()
    out.update(MODEL)
    out.update(overrides)
    return out


def test_shipped_yaml_lists_every_parameter_with_its_default():
    assert read_parameter_file(YAML) == default_parameters()


def test_shipped_yaml_loads_into_the_documented_defaults():
    config = load_node_config(YAML, overrides=MODEL)
    assert config.camera_names == ("left", "front", "right")
    assert config.reference_camera == "front"
    assert config.reference_frame == "front_camera_optical_frame" == config.output_frame
    assert config.image_topics() == {c: f"/cameras/{c}/image_raw" for c in ("left", "front", "right")}
    assert config.camera_info_topics()["right"] == "/cameras/right/camera_info"
    assert config.topics == OutputTopics.for_node("/dfmvr")
    assert config.topics.head_pose == "/dfmvr/head_pose" and config.topics.topology == "/dfmvr/mesh/topology"
    assert config.reconstructor.morphable_model == Path("/models/face.npz")
    assert config.reconstructor.checkpoint == packaged_checkpoint_path()  # "default": the embedded model
    assert config.reconstructor.num_threads is None
    assert config.input.qos.reliability == "best_effort" and config.input.qos.depth == 5
    sync = config.synchronizer_config()
    assert isinstance(sync, RigSynchronizerConfig)
    assert sync.cameras == ("left", "front", "right") and sync.slop_s is None and sync.partial_timeout_s == 0.15


def test_yaml_without_model_is_refused_naming_the_parameter():
    with pytest.raises(ConfigError, match=r"dfmvr.yaml: reconstructor.morphable_model: required"):
        load_node_config(YAML)


def test_round_trip_through_flat_parameters():
    config = NodeConfig.from_parameters(
        params(**{"sync.slop_s": 0.01, "reconstructor.num_threads": 2, "frames.target_frame": "base_link"}),
        node_fqn="/robot/dfmvr",
    )
    assert config.sync.slop_s == 0.01 and config.reconstructor.num_threads == 2
    assert config.output_frame == "base_link" and config.topics.vertices == "/robot/dfmvr/mesh/vertices"
    flat = config.to_parameters()
    assert flat["sync.slop_s"] == 0.01 and flat["reconstructor.checkpoint"] == str(packaged_checkpoint_path())
    assert NodeConfig.from_parameters(flat, node_fqn="/robot/dfmvr") == config
    fresh = NodeConfig.from_parameters(params(**{"reconstructor.checkpoint": ""}), node_fqn="/robot/dfmvr")
    assert fresh.reconstructor.checkpoint is None  # "" = untrained weights (tests), not the embedded model
    assert fresh.to_parameters()["reconstructor.checkpoint"] == ""


def test_nested_parameters_and_ros_builtin_parameters_are_accepted():
    nested = {
        "use_sim_time": True,
        "qos_overrides": {"/parameter_events": {"publisher": {"depth": 1000}}},
        "reconstructor": {"morphable_model": "m.npz", "backend": "torch", "crop": {"size": 112}},
        "sync": {"partial_timeout_s": 0, "slop_s": 0},
    }
    config = NodeConfig.from_parameters(nested)
    assert config.reconstructor.backend == "torch" and config.reconstructor.crop.size == 112
    assert config.sync.partial_timeout_s is None and config.sync.slop_s is None  # 0 = off / auto


def test_custom_cameras_and_compressed_transport():
    base = {**default_parameters(("a", "b")), **MODEL}
    config = NodeConfig.from_parameters(
        dict(
            base,
            **{
                "cameras.reference": "b",
                "cameras.a.namespace": "/rig/cam_a",
                "cameras.a.frame_id": "cam_a_optical",
                "cameras.b.image_topic": "/other/image",
                "input.image_transport": "compressed",
            },
        )
    )
    assert config.image_topics() == {"a": "/rig/cam_a/image_raw/compressed", "b": "/other/image"}
    assert config.camera("a").frame_id == "cam_a_optical"
    assert config.reference_frame == "b_camera_optical_frame"
    config.check_rig(("b", "a"), "b")
    with pytest.raises(ConfigError, match=r"cameras\.names"):
        config.check_rig(("left", "front", "right"), "front")
    with pytest.raises(ConfigError, match=r"cameras\.reference"):
        config.check_rig(("a", "b"), "a")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sync.slopp_s": 0.1}, r"^sync.slopp_s: unknown parameter; parameters of 'sync'"),
        ({"publsh.tf": True}, r"^publsh.tf: unknown parameter; known sections"),
        ({"cameras.back.namespace": "/b"}, r"^cameras.back.namespace: camera 'back' is not in cameras.names"),
        ({"sync.queue_size": 0}, r"^sync.queue_size: expected 1..1000"),
        ({"sync.queue_size": 2.5}, r"^sync.queue_size: expected an integer"),
        ({"sync.slop_s": 0.5}, r"^sync.slop_s: expected seconds in \(0, 0.0333"),
        ({"sync.partial_timeout_s": 1.0}, r"^sync.partial_timeout_s: expected seconds"),
        ({"sync.expected_rate_hz": -1.0}, r"^sync.expected_rate_hz"),
        ({"sync.poll_rate_hz": 0.0}, r"^sync.poll_rate_hz: expected a value in \(0"),
        ({"input.image_transport": "theora"}, r"^input.image_transport: expected one of \['raw', 'compressed'\]"),
        ({"input.qos.reliability": "sometimes"}, r"^input.qos.reliability: expected one of"),
        ({"input.qos.depth": 0}, r"^input.qos.depth: expected an integer in 1..1000"),
        ({"input.use_camera_info": "yes"}, r"^input.use_camera_info: expected true or false"),
        ({"reconstructor.backend": "tflite"}, r"^reconstructor.backend: expected one of \['torch', 'onnxruntime'"),
        ({"reconstructor.device": "gpu"}, r"^reconstructor.device: expected 'cpu', 'cuda' or 'cuda:N'"),
        ({"reconstructor.backend": "tensorrt"}, r"^reconstructor.backend: 'tensorrt' runs on CUDA devices only"),
        ({"reconstructor.precision": "fp16"}, r"^reconstructor.precision: 'fp16' needs a CUDA device"),
        ({"reconstructor.mask_source": "parser"}, r"^reconstructor.parser_checkpoint: required"),
        ({"reconstructor.num_threads": -2}, r"^reconstructor.num_threads"),
        ({"reconstructor.crop.size": 8}, r"^reconstructor.crop.size"),
        ({"reconstructor.morphable_model": ""}, r"^reconstructor.morphable_model: required"),
        ({"frames.face_frame": ""}, r"^frames.face_frame: expected a tf2 frame id"),
        ({"frames.target_frame": "/map"}, r"^frames.target_frame: expected a tf2 frame id"),
        ({"frames.tf_timeout_s": -0.1}, r"^frames.tf_timeout_s: expected a value in \[0, 10\]"),
        ({"publish.marker_color": [1.0, 0.0, 0.0]}, r"^publish.marker_color: expected 4 values"),
        ({"publish.marker_color": [1.0, 0.0, 0.0, 2.0]}, r"^publish.marker_color\[3\]"),
        ({"publish.overlay_scale": 0.0}, r"^publish.overlay_scale"),
        ({"publish.diagnostics_period_s": 0.0}, r"^publish.diagnostics_period_s"),
        ({"publish.tf": 1}, r"^publish.tf: expected true or false"),
        ({"cameras.names": []}, r"^cameras.names: expected at least one camera name"),
        ({"cameras.names": "left"}, r"^cameras.names: expected a list"),
        ({"cameras.names": ["left", "left"]}, r"^cameras.names: duplicate camera name 'left'"),
        ({"cameras.names": ["left", "front-2"]}, r"^cameras.names\[1\]: expected a parameter token"),
        (
            {"cameras.names": ["a", "b"]},
            r"^cameras.front.frame_id: camera 'front' is not in cameras.names \['a', 'b'\]",
        ),
        ({"cameras.reference": "back"}, r"^cameras.reference: expected one of cameras.names"),
        ({"cameras.left.namespace": "/cams//left"}, r"^cameras.left.namespace: expected a ROS topic name"),
        ({"cameras.left.frame_id": "left frame"}, r"^cameras.left.frame_id: expected a tf2 frame id"),
        ({"cameras.left.namespace": 3}, r"^cameras.left.namespace: expected a string"),
        ({"cameras.front.namespace": "/cameras/left"}, r"^cameras: two inputs share the topic '/cameras/left/"),
        ({"autostart": "true"}, r"^autostart: expected true or false"),
    ],
)
def test_bad_values_are_refused_naming_the_parameter(overrides, message):
    with pytest.raises(ConfigError, match=message):
        NodeConfig.from_parameters(params(**overrides))


def test_parameter_file_sections_merge_like_rcl(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "/**:\n  ros__parameters:\n    sync: {queue_size: 8}\n    reconstructor: {morphable_model: a.npz}\n"
        "other_node:\n  ros__parameters: {sync: {queue_size: 99}}\n"
        "/robot/dfmvr:\n  ros__parameters:\n    sync.queue_size: 9\n"
    )
    assert load_node_config(path).sync.queue_size == 8
    config = load_node_config(path, namespace="/robot")
    assert config.sync.queue_size == 9 and config.topics.head_pose == "/robot/dfmvr/head_pose"
    other = tmp_path / "other.yaml"
    other.write_text("other_node:\n  ros__parameters: {a: 1}\n")
    with pytest.raises(ConfigError, match="no parameters for node /dfmvr"):
        read_parameter_file(other)


def test_bad_parameter_files(tmp_path):
    with pytest.raises(ConfigError, match="parameter file not found"):
        read_parameter_file(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("/**: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_parameter_file(broken)
    no_params = tmp_path / "np.yaml"
    no_params.write_text("/**:\n  parameters: {}\n")
    with pytest.raises(ConfigError, match="has no 'ros__parameters'"):
        read_parameter_file(no_params)
    bad_value = tmp_path / "bad.yaml"
    bad_value.write_text("/**:\n  ros__parameters:\n    reconstructor: {morphable_model: m.npz, device: tpu}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: reconstructor.device"):
        load_node_config(bad_value)
