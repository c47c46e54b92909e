"""Shard files: atomic uncompressed npz, memory-mapped members, clear errors on damaged files."""

from __future__ import annotations

import hashlib
import mmap

import numpy as np
import pytest

from dfmvr_core.errors import ModelFileError
from dfmvr_training.data.shards import npz_members, open_npz_memmaps, write_npz_shard


def test_train_data_shard_round_trip_is_memory_mapped(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "crops": rng.integers(0, 255, (3, 2, 5, 5, 3), dtype=np.uint8),
        "T": np.asfortranarray(rng.standard_normal((4, 4))),  # stored C-contiguous by the writer
        "flags": rng.random((3, 7)) < 0.5,
        "seeds": np.arange(3, dtype=np.uint64) * (2**62),
        "empty": np.zeros((0, 68, 2), np.float32),
    }
    path = tmp_path / "shard_00000.npz"
    digest, size = write_npz_shard(path, arrays)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest() and size == path.stat().st_size
    assert not list(tmp_path.glob(".shard_*"))  # the temporary was renamed, not left behind
    with np.load(path) as plain:  # an ordinary npz
        np.testing.assert_array_equal(plain["T"], arrays["T"])
    mapped = open_npz_memmaps(path)
    assert set(mapped) == set(arrays)
    for key, value in arrays.items():
        np.testing.assert_array_equal(mapped[key], value)
        assert mapped[key].dtype == value.dtype and not mapped[key].flags.writeable
    assert isinstance(mapped["crops"].base, mmap.mmap)  # a view of the file, not a copy


def test_train_data_damaged_shards_raise_model_file_error(tmp_path):
    path = tmp_path / "s.npz"
    write_npz_shard(path, {"a": np.arange(1000.0)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"s\.npz.*truncated or corrupt"):
        npz_members(path)
    np.savez_compressed(path, a=np.arange(1000.0))
    with pytest.raises(ModelFileError, match="compressed"):
        open_npz_memmaps(path)
    with pytest.raises(ModelFileError, match="not found"):
        npz_members(tmp_path / "missing.npz")
    np.savez(path, a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ModelFileError, match="object arrays"):
        npz_members(path)
