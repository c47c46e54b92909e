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

"""A rosbag2 of the rig's cameras → a folder of synchronized image triplets (``dfmvr extract-triplets``).

The bag is read with :class:`~dfmvr_ros.bag_io.BagReader` (no ROS needed). The camera topics are the node's
(``config/dfmvr.yaml``: ``cameras.<name>.namespace`` / ``image_topic`` / ``info_topic``, ``input.image_transport``;
when a camera's configured image topic is absent but the other transport's is there, e.g.
``<ns>/image_raw/compressed``, that one is used). Frames are grouped into capture instants with the node's
synchronizer (:class:`~dfmvr_core.sync.RigSynchronizer`, ``sync.*`` parameters), fed in receive order with the
bag's receive time as the poll clock, so the extracted sets are the ones the node would have reconstructed
(partial sets included in degraded mode, unless ``complete_only``).

Output (every file written atomically)::

    DIR/<camera>/<stamp_ns>.png          one image per camera of each written set; stamp_ns = the set's reference
                                         stamp (zero-padded to 19 digits, so names sort in time), shared by the
                                         set's cameras: the file stem identifies the instant
    DIR/camera_info/<camera>.yaml        the camera's first CameraInfo, ROS camera_calibration YAML
    DIR/extract.json                     what was extracted (topics, counts, synchronizer drops)

which is the layout :class:`dfmvr_training.data.triplets.FolderTripletDataset` reads.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from dfmvr_core.atomic_io import atomic_path, write_json_atomic, write_text_atomic
from dfmvr_core.errors import ConfigError, DfmvrError
from dfmvr_core.sync import MatchedSet, RigSynchronizer, SyncStats
from dfmvr_ros.bag_io import BagError, BagReader
from dfmvr_ros.image_codec import image_from_message
from dfmvr_ros.messages import stamp_to_ns
from dfmvr_ros.node_config import NodeConfig, read_parameter_file

__all__ = [
    "IMAGE_FORMATS",
    "IMAGE_TYPES",
    "ExtractSummary",
    "camera_info_yaml",
    "extract_node_config",
    "extract_triplets",
]

IMAGE_FORMATS = ("png", "jpg")
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
STAMP_DIGITS = 19
_PLACEHOLDER_MODEL = "(not used by extract-triplets)"


def extract_node_config(config_file: str | Path | None = None) -> NodeConfig:
    """The node configuration whose camera topics and synchronizer settings are used (``config_file``: a ROS 2
    parameter file such as ``config/dfmvr.yaml``; None: the node's defaults). ``reconstructor.morphable_model`` is
    not needed here and may be left empty.

    Raises:
        ConfigError: a missing or invalid file, naming the parameter.
    """
    parameters: dict[str, Any] = {}
    if config_file is not None:
        parameters = read_parameter_file(config_file)
    if parameters.get("reconstructor.morphable_model") in (None, ""):
        parameters["reconstructor.morphable_model"] = _PLACEHOLDER_MODEL
    try:
        return NodeConfig.from_parameters(parameters)
    except ConfigError as exc:
        raise ConfigError(f"{config_file}: {exc}" if config_file is not None else str(exc)) from None


def _matrix(rows: int, cols: int, values: Any) -> dict[str, Any]:
    return {"rows": rows, "cols": cols, "data": [float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]}


def camera_info_yaml(camera_name: str, msg: Any) -> str:
    """A ``sensor_msgs/CameraInfo`` as ROS ``camera_calibration`` YAML (the format ``camera_calibration_parsers``
    reads and writes: ``image_width``, ``image_height``, ``camera_name``, ``camera_matrix``, ``distortion_model``,
    ``distortion_coefficients``, ``rectification_matrix``, ``projection_matrix``)."""
    d = np.asarray(msg.d, dtype=np.float64).reshape(-1)
    data = {
        "image_width": int(msg.width),
        "image_height": int(msg.height),
        "camera_name": str(camera_name),
        "camera_matrix": _matrix(3, 3, msg.k),
        "distortion_model": str(msg.distortion_model),
        "distortion_coefficients": _matrix(1, int(d.size), d),
        "rectification_matrix": _matrix(3, 3, msg.r),
        "projection_matrix": _matrix(3, 4, msg.p),
    }
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


@dataclasses.dataclass(frozen=True)
class ExtractSummary:
    """What :func:`extract_triplets` did.

    Attributes:
        bag, out_dir: input bag and output folder.
        cameras: camera names in view order.
        image_topics, info_topics: the topics read per camera (``info_topics`` lacks cameras without CameraInfo).
        messages: messages read.
        sets_matched: sets the synchronizer emitted; ``sets_complete`` of them with every camera.
        sets_written: sets written (every ``every``-th eligible set, at most ``max_sets``).
        frames_written: images written per camera.
        camera_info_written: cameras whose ``camera_info/<camera>.yaml`` was written.
        sync: the synchronizer's counters at the end (drops per camera and reason).
        seconds: wall time.
        warnings: problems that did not stop the extraction (e.g. an uncalibrated CameraInfo).
    """

    bag: Path
    out_dir: Path
    cameras: tuple[str, ...]
    image_topics: Mapping[str, str]
    info_topics: Mapping[str, str]
    messages: int
    sets_matched: int
    sets_complete: int
    sets_written: int
    frames_written: Mapping[str, int]
    camera_info_written: tuple[str, ...]
    sync: SyncStats
    seconds: float
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``extract.json``)."""
        return {
            "bag": str(self.bag),
            "out_dir": str(self.out_dir),
            "cameras": list(self.cameras),
            "image_topics": dict(self.image_topics),
            "info_topics": dict(self.info_topics),
            "messages": self.messages,
            "sets_matched": self.sets_matched,
            "sets_complete": self.sets_complete,
            "sets_written": self.sets_written,
            "frames_written": dict(self.frames_written),
            "camera_info_written": list(self.camera_info_written),
            "sync": {
                "received": dict(self.sync.received),
                "complete_sets": self.sync.complete_sets,
                "partial_sets": self.sync.partial_sets,
                "max_skew_ns": self.sync.max_skew_ns,
                "drops": {cam: dataclasses.asdict(d) for cam, d in self.sync.drops.items()},
            },
            "seconds": round(self.seconds, 3),
            "warnings": list(self.warnings),
        }


def _positive_int(name: str, value: Any, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
    return value


def _select_topics(reader: BagReader, config: NodeConfig, camera_info: bool) -> tuple[dict[str, str], dict[str, str]]:
    """``({camera: image topic}, {camera: info topic})`` present in the bag.

    Raises:
        BagError: an image topic (or, with ``camera_info``, an info topic) missing or of the wrong type; the message
            lists what the bag has.
    """
    images: dict[str, str] = {}
    wanted: dict[str, tuple[str, ...]] = {}
    for cam in config.cameras:
        topic = cam.image_topic_for(config.input.image_transport)
        if topic not in reader.topics and not cam.image_topic:
            other = "compressed" if config.input.image_transport == "raw" else "raw"
            if cam.image_topic_for(other) in reader.topics:
                topic = cam.image_topic_for(other)
        images[cam.name] = topic
        wanted[topic] = IMAGE_TYPES
    infos = {cam.name: cam.camera_info_topic for cam in config.cameras}
    if camera_info:
        wanted.update({topic: (CAMERA_INFO_TYPE,) for topic in infos.values()})
    else:
        infos = {name: topic for name, topic in infos.items() if reader.topics.get(topic) == CAMERA_INFO_TYPE}
    try:
        reader.require_topics(wanted)
    except BagError as exc:
        raise BagError(
            f"{exc}. Set the cameras' topics with --config (cameras.<name>.namespace / image_topic / info_topic)"
            + ("" if not camera_info else ", or pass --no-camera-info to extract without intrinsics")
        ) from None
    return images, infos


def _encode(image: np.ndarray, fmt: str, path: Path) -> bytes:
    ext = ".png" if fmt == "png" else ".jpg"
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if fmt == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, data = cv2.imencode(ext, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise DfmvrError(f"{path}: OpenCV could not encode the image as {fmt}")
    return data.tobytes()


def extract_triplets(
    bag: str | Path,
    out_dir: str | Path,
    *,
    config: NodeConfig | str | Path | None = None,
    every: int = 1,
    max_sets: int | None = None,
    image_format: str = "png",
    complete_only: bool = False,
    camera_info: bool = True,
    progress: bool = True,
) -> ExtractSummary:
    """Write the synchronized camera sets of ``bag`` into ``out_dir`` (see the module docstring).

    Args:
        bag: a rosbag2 directory (or storage file).
        out_dir: the output folder (created; existing files of the same stamps are replaced).
        config: a :class:`NodeConfig`, a parameter file, or None (the node's defaults).
        every: write every N-th set (1 = all).
        max_sets: stop after writing this many sets (None: no limit).
        image_format: ``"png"`` (lossless) or ``"jpg"`` (quality 95).
        complete_only: skip partial sets (a camera missing).
        camera_info: require each camera's CameraInfo topic and write ``camera_info/<camera>.yaml`` (False: the
            topics are optional).
        progress: show a tqdm bar.

    Returns:
        :class:`ExtractSummary` (also written to ``out_dir/extract.json``).

    Raises:
        BagError: missing/unreadable bag, missing topics (listing the bag's topics), a corrupt message.
        ConfigError: bad options or configuration.
        ImageEncodingError: an undecodable image message.
        DfmvrError: an image whose size differs from its camera's CameraInfo (names the topic and stamp).
    """
    start = time.perf_counter()
    every = _positive_int("every", every)
    max_sets = _positive_int("max_sets", max_sets, allow_none=True)
    if image_format not in IMAGE_FORMATS:
        raise ConfigError(f"format: expected one of {list(IMAGE_FORMATS)}, got {image_format!r}")
    if not isinstance(config, NodeConfig):
        config = extract_node_config(config)
    bag, out_dir = Path(bag), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir}: exists and is not a folder")
    cameras = config.camera_names
    with BagReader(bag) as reader:
        image_topics, info_topics = _select_topics(reader, config, camera_info)
        camera_of = {topic: cam for cam, topic in image_topics.items()}
        info_camera_of = {topic: cam for cam, topic in info_topics.items()}
        sync = RigSynchronizer(config.synchronizer_config())
        sizes: dict[str, tuple[int, int]] = {}
        info_written: list[str] = []
        notes: list[str] = []
        frames = dict.fromkeys(cameras, 0)
        counters = {"matched": 0, "complete": 0, "eligible": 0, "written": 0, "messages": 0}

        def write_set(matched: MatchedSet) -> None:
            counters["matched"] += 1
            counters["complete"] += matched.complete
            if complete_only and not matched.complete:
                return
            counters["eligible"] += 1
            if (counters["eligible"] - 1) % every or (max_sets is not None and counters["written"] >= max_sets):
                return
            stem = f"{matched.stamp_ns:0{STAMP_DIGITS}d}"
            for cam, msg in matched.items.items():
                image = image_from_message(msg)
                h, w = image.shape[:2]
                if cam in sizes and sizes[cam] != (w, h):
                    raise DfmvrError(
                        f"{bag}: {image_topics[cam]} at {matched.stamps[cam]} ns: image is {w}x{h} but the camera's "
                        f"CameraInfo says {sizes[cam][0]}x{sizes[cam][1]}"
                    )
                path = out_dir / cam / f"{stem}.{image_format}"
                data = _encode(image, image_format, path)
                with atomic_path(path) as tmp:
                    tmp.write_bytes(data)
                frames[cam] += 1
            counters["written"] += 1

        def done() -> bool:
            return max_sets is not None and counters["written"] >= max_sets

        topics = list(image_topics.values()) + list(info_topics.values())
        total = sum(reader.topic_counts.get(t, 0) for t in topics)
        with tqdm(total=total, unit="msg", desc="extract-triplets", disable=not progress) as bar:
            for message in reader.messages(topics):
                counters["messages"] += 1
                bar.update(1)
                if message.topic in info_camera_of:
                    cam = info_camera_of[message.topic]
                    if cam not in sizes:
                        sizes[cam] = (int(message.msg.width), int(message.msg.height))
                        if not np.any(np.asarray(message.msg.k, dtype=np.float64)):
                            notes.append(f"{message.topic}: K is all zeros (uncalibrated camera); give a rig YAML")
                        write_text_atomic(
                            out_dir / "camera_info" / f"{cam}.yaml",
                            f"# {cam}: first CameraInfo of {message.topic} in {bag.name} (dfmvr extract-triplets)\n"
                            + camera_info_yaml(cam, message.msg),
                        )
                        info_written.append(cam)
                    continue
                stamp = stamp_to_ns(message.msg.header.stamp)
                for matched in sync.add(camera_of[message.topic], stamp, message.msg, now_ns=message.timestamp_ns):
                    write_set(matched)
                if done():
                    break
            if not done():
                for matched in sync.flush():
                    write_set(matched)
    missing_info = [c for c in cameras if c not in info_written]
    if missing_info:
        notes.append(f"no CameraInfo for {missing_info}: pass the rig's intrinsics (rig=) to FolderTripletDataset")
    summary = ExtractSummary(
        bag=bag,
        out_dir=out_dir,
        cameras=cameras,
        image_topics=image_topics,
        info_topics=info_topics,
        messages=counters["messages"],
        sets_matched=counters["matched"],
        sets_complete=counters["complete"],
        sets_written=counters["written"],
        frames_written=frames,
        camera_info_written=tuple(c for c in cameras if c in info_written),
        sync=sync.stats,
        seconds=time.perf_counter() - start,
        warnings=tuple(notes),
    )
    write_json_atomic(out_dir / "extract.json", summary.to_json())
    return summary
