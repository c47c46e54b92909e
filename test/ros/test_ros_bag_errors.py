"""Broken bags and misuse give BagError (naming the bag and the problem); interrupted writes leave no half bag."""

from __future__ import annotations

import os
import shutil
import sqlite3

import numpy as np
import pytest

from dfmvr_core.errors import ConfigError, DfmvrError
from dfmvr_ros import messages as M
from dfmvr_ros.bag_io import BagError, BagReader, BagWriter

FRAMES = 6


@pytest.fixture(scope="module")
def sample_bags(tmp_path_factory):
    """One small bag per storage plugin: FRAMES 16×16 images on /cam, t = 0, 10, 20 … ns."""
    root = tmp_path_factory.mktemp("bags")
    rng = np.random.default_rng(0)
    paths = {}
    for storage in ("sqlite3", "mcap"):
        path = root / f"bag_{storage}"
        with BagWriter(path, storage=storage) as bag:
            bag.add_topic("/cam", "sensor_msgs/msg/Image")
            for i in range(FRAMES):
                image = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
                bag.write("/cam", 10 * i, M.image_message(bag.types, 10 * i, "cam", image))
        paths[storage] = path
    return paths


def _copy(sample_bags, storage, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(sample_bags[storage], target)
    return target, next(p for p in target.iterdir() if p.suffix in (".db3", ".mcap"))


def test_bag_error_is_a_dfmvr_error():
    assert issubclass(BagError, DfmvrError)


def test_missing_path_and_folder_without_metadata(tmp_path):
    with pytest.raises(BagError, match="not found"):
        BagReader(tmp_path / "nope")
    (tmp_path / "x.db3").write_bytes(b"")
    with pytest.raises(BagError, match=r"no metadata\.yaml.*x\.db3"):
        BagReader(tmp_path)
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(BagError, match="not a rosbag2 bag"):
        BagReader(tmp_path / "notes.txt")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("rosbag2_bagfile_information: [unclosed\n", "not valid YAML"),
        ("just a string\n", "rosbag2_bagfile_information"),
        ("rosbag2_bagfile_information:\n  version: 42\n  storage_identifier: sqlite3\n", "version 42"),
        ("rosbag2_bagfile_information:\n  version: 5\n  storage_identifier: leveldb\n", "'leveldb' is not supported"),
        ("rosbag2_bagfile_information:\n  version: 5\n  storage_identifier: sqlite3\n", "cannot open bag"),
    ],
)
def test_garbage_metadata(sample_bags, tmp_path, text, match):
    path, _ = _copy(sample_bags, "sqlite3", tmp_path)
    (path / "metadata.yaml").write_text(text)
    with pytest.raises(BagError, match=match) as info:
        BagReader(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_deleted_storage_file(sample_bags, tmp_path, storage):
    path, storage_file = _copy(sample_bags, storage, tmp_path)
    storage_file.unlink()
    with pytest.raises(BagError, match=f"missing.*{storage_file.name}"):
        BagReader(path)


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_storage_file(sample_bags, tmp_path, storage, keep):
    path, storage_file = _copy(sample_bags, storage, tmp_path)
    os.truncate(storage_file, int(storage_file.stat().st_size * keep))
    with pytest.raises(BagError, match=str(path)):
        with BagReader(path) as bag:
            list(bag.messages())


def test_corrupt_record_raises_where_it_is_and_keeps_earlier_messages(sample_bags, tmp_path):
    path, db = _copy(sample_bags, "sqlite3", tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE messages SET data = ? WHERE timestamp = 30", (b"\x00\x01\x00\x00\x05",))
    conn.close()
    received = []
    with BagReader(path) as bag:
        with pytest.raises(BagError, match=r"message 4 on /cam at 30 ns is corrupt.*sensor_msgs/msg/Image"):
            for message in bag.messages():
                received.append(message)
    assert [m.timestamp_ns for m in received] == [0, 10, 20]
    assert all(m.msg.width == 16 for m in received)


def test_require_topics_lists_what_the_bag_has(sample_bags):
    with BagReader(sample_bags["mcap"]) as bag:
        with pytest.raises(BagError, match=r"'/left' is missing.*The bag has: /cam \(sensor_msgs/msg/Image, 6 msgs\)"):
            bag.require_topics({"/cam": ["sensor_msgs/msg/Image"], "/left": ["sensor_msgs/msg/Image"]})
        with pytest.raises(
            BagError, match="'/cam' has type sensor_msgs/msg/Image, expected sensor_msgs/msg/Compressed"
        ):
            bag.require_topics({"/cam": ["sensor_msgs/msg/CompressedImage"]})
        with pytest.raises(BagError, match=r"\['/right'\] not in the bag"):
            bag.messages(["/cam", "/right"])  # raised by the call, before any iteration
    with pytest.raises(BagError, match="closed"):
        bag.messages()


def test_unknown_message_type_without_definition(tmp_path, shared_data):
    path = tmp_path / "custom"
    shutil.copytree(shared_data / "rosbag2_ros_humble_images" / "images.bag", path)
    os.chmod(path, 0o755)
    for p in path.iterdir():
        os.chmod(p, 0o644)
    text = (path / "metadata.yaml").read_text().replace("sensor_msgs/msg/Image", "my_msgs/msg/Thing")
    (path / "metadata.yaml").write_text(text)
    with sqlite3.connect(path / "images.bag_0.db3") as conn:
        conn.execute("UPDATE topics SET type = 'my_msgs/msg/Thing'")
    conn.close()
    with BagReader(path) as bag:
        assert bag.topics == {"/image": "my_msgs/msg/Thing"}
        with pytest.raises(BagError, match=r"no message definition for \['my_msgs/msg/Thing'\]"):
            bag.messages()


def test_writer_refuses_existing_paths(tmp_path, sample_bags):
    with pytest.raises(BagError, match=r"already exists.*overwrite"):
        BagWriter(sample_bags["sqlite3"])
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "thesis.tex").write_text("do not delete")
    with pytest.raises(BagError, match="not a rosbag2 directory"):
        BagWriter(folder, overwrite=True)
    assert (folder / "thesis.tex").exists()
    with pytest.raises(ConfigError, match="distro"):
        BagWriter(tmp_path / "b", distro="noetic")
    with pytest.raises(ConfigError, match="storage"):
        BagWriter(tmp_path / "b", storage="leveldb")


def test_interrupted_writer_leaves_no_bag(tmp_path):
    path = tmp_path / "out"
    with pytest.raises(RuntimeError, match="boom"):
        with BagWriter(path) as bag:
            bag.add_topic("/cam", "sensor_msgs/msg/Image")
            bag.write("/cam", 0, M.image_message(bag.types, 0, "cam", np.zeros((2, 2, 3), np.uint8)))
            assert (tmp_path / "out.partial").is_dir() and not path.exists()
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_stale_partial_folder_is_replaced(tmp_path):
    stale = tmp_path / "out.partial"
    stale.mkdir()
    (stale / "junk").write_text("left by a killed run")
    with BagWriter(tmp_path / "out") as bag:
        bag.add_topic("/cam", "sensor_msgs/msg/Image")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with BagReader(tmp_path / "out") as reader:
        assert reader.message_count == 0 and reader.start_ns is None


def test_writer_misuse(tmp_path):
    writer = BagWriter(tmp_path / "out")
    with pytest.raises(BagError, match="not open"):
        writer.add_topic("/cam", "sensor_msgs/msg/Image")
    with writer as bag:
        bag.add_topic("/cam", "sensor_msgs/msg/Image")
        with pytest.raises(BagError, match="already added"):
            bag.add_topic("/cam", "sensor_msgs/msg/Image")
        with pytest.raises(BagError, match="absolute"):
            bag.add_topic("cam", "sensor_msgs/msg/Image")
        with pytest.raises(BagError, match="not defined in ROS 2 humble"):
            bag.add_topic("/x", "my_msgs/msg/Thing")
        image = M.image_message(bag.types, 0, "cam", np.zeros((2, 2, 3), np.uint8))
        with pytest.raises(BagError, match="'/nope' was not added"):
            bag.write("/nope", 0, image)
        with pytest.raises(BagError, match="timestamp_ns"):
            bag.write("/cam", -5, image)
        with pytest.raises(BagError, match="has type sensor_msgs/msg/Image, got a std_msgs/msg/Header"):
            bag.write("/cam", 0, M.header(bag.types, 0, "cam"))
        image.data = [1, 2, 3]  # not what rosbags serializes
        with pytest.raises(BagError, match="cannot serialize"):
            bag.write("/cam", 0, image)
    with pytest.raises(BagError, match="not open"):
        bag.write("/cam", 0, image)
