"""EngineCache with fake build/deserialize functions and fake engine bytes: miss → built, hit, corrupt or foreign
file → rebuilt, keys, sidecar JSON, concurrent builders (no TensorRT needed)."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time

import pytest

from dfmvr_core.errors import ConfigError, DfmvrError, ModelFileError
from dfmvr_core.inference import EngineCache
from dfmvr_core.inference.engine_cache import KEY_LENGTH, file_sha256

MAGIC = b"FAKE-ENGINE:"


class FakeEngines:
    """Counts builds; a valid engine is ``MAGIC + payload``; deserializing anything else returns None (as TensorRT
    does for a corrupt plan) or raises, as chosen."""

    def __init__(self, payload: bytes = b"v1", raise_on_bad: bool = False, delay: float = 0.0) -> None:
        self.payload, self.raise_on_bad, self.delay = payload, raise_on_bad, delay
        self.builds = 0

    def build(self) -> bytes:
        self.builds += 1
        time.sleep(self.delay)
        return MAGIC + self.payload

    def deserialize(self, data: bytes):
        if data.startswith(MAGIC):
            return {"engine": data[len(MAGIC) :]}
        if self.raise_on_bad:
            raise RuntimeError("Serialization assertion magicTagRead == kMAGIC_TAG failed")
        return None


@pytest.fixture
def onnx_file(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not really onnx, only hashed" * 10)
    return path


def key_of(cache, path, **changes):
    fields = {"trt_version": "10.3.0", "gpu_name": "NVIDIA H100 (sm_90)", "precision": "fp16", "max_batch": 4}
    fields.update(changes)
    return cache.key(path, **fields)


def test_miss_builds_then_hits(tmp_path, onnx_file):
    cache = EngineCache(tmp_path / "cache")
    fake = FakeEngines()
    key = key_of(cache, onnx_file)
    assert len(key) == KEY_LENGTH and all(c in "0123456789abcdef" for c in key)
    engine, status = cache.load_or_build(key, fake.build, fake.deserialize)
    assert (engine, status, fake.builds) == ({"engine": b"v1"}, "built", 1)
    assert cache.path_for(key) == tmp_path / "cache" / f"{key}.engine"
    assert cache.path_for(key).read_bytes() == MAGIC + b"v1"
    sidecar = json.loads(cache.sidecar_for(key).read_text())
    assert sidecar["key"] == key and sidecar["status"] == "built" and sidecar["engine_bytes"] == len(MAGIC) + 2
    assert sidecar["onnx_sha256"] == file_sha256(onnx_file) and sidecar["onnx_file"] == str(onnx_file.resolve())
    assert (sidecar["tensorrt_version"], sidecar["gpu"], sidecar["precision"], sidecar["max_batch"]) == (
        "10.3.0",
        "NVIDIA H100 (sm_90)",
        "fp16",
        4,
    )
    assert cache.describe(key) == sidecar
    # a second cache object (another process) finds it without building
    engine, status = EngineCache(tmp_path / "cache").load_or_build(key, fake.build, fake.deserialize)
    assert (engine, status, fake.builds) == ({"engine": b"v1"}, "hit", 1)
    assert sorted(p.suffix for p in (tmp_path / "cache").iterdir()) == [".engine", ".json", ".lock"]


@pytest.mark.parametrize("raise_on_bad", [False, True])
@pytest.mark.parametrize("bad_bytes", [b"truncated garbage", b""])
def test_corrupt_or_foreign_file_is_rebuilt(tmp_path, onnx_file, caplog, raise_on_bad, bad_bytes):
    cache = EngineCache(tmp_path)
    fake = FakeEngines(payload=b"v2", raise_on_bad=raise_on_bad)
    key = key_of(cache, onnx_file)
    cache.path_for(key).write_bytes(bad_bytes)
    with caplog.at_level(logging.WARNING, logger="dfmvr_core.inference.engine_cache"):
        engine, status = cache.load_or_build(key, fake.build, fake.deserialize)
    assert (engine, status, fake.builds) == ({"engine": b"v2"}, "rebuilt", 1)
    assert cache.path_for(key).read_bytes() == MAGIC + b"v2"  # replaced
    why = cache.describe(key)["rebuilt_because"]
    if not bad_bytes:
        assert why == "the file is empty"
    elif raise_on_bad:
        assert "raised RuntimeError: Serialization assertion" in why
    else:
        assert "could not deserialize it" in why
    assert f"{cache.path_for(key)} is unusable" in caplog.text and "rebuilding it" in caplog.text
    assert cache.load_or_build(key, fake.build, fake.deserialize)[1] == "hit"


def test_key_changes_with_every_field_and_the_onnx_content(tmp_path, onnx_file):
    cache = EngineCache(tmp_path)
    base = key_of(cache, onnx_file)
    assert key_of(cache, onnx_file) == base  # deterministic
    changed = [
        key_of(cache, onnx_file, trt_version="10.4.0"),
        key_of(cache, onnx_file, gpu_name="Orin (sm_87)"),
        key_of(cache, onnx_file, precision="fp32"),
        key_of(cache, onnx_file, max_batch=1),
    ]
    assert len({base, *changed}) == 5
    copy = tmp_path / "renamed.onnx"
    shutil.copy(onnx_file, copy)
    assert key_of(cache, copy) == base  # the content counts, not the name
    onnx_file.write_bytes(onnx_file.read_bytes() + b"!")  # re-export with other weights
    assert key_of(cache, onnx_file) != base


def test_bad_arguments(tmp_path, onnx_file):
    cache = EngineCache(tmp_path)
    with pytest.raises(ModelFileError, match=r"missing\.onnx: ONNX model not found"):
        key_of(cache, tmp_path / "missing.onnx")
    with pytest.raises(ConfigError, match="max_batch: expected a positive int"):
        key_of(cache, onnx_file, max_batch=0)
    with pytest.raises(ConfigError, match="gpu_name: expected a non-empty string"):
        key_of(cache, onnx_file, gpu_name="")
    with pytest.raises(ConfigError, match="engine cache key: expected 20 lowercase hex digits"):
        cache.path_for("../../etc/passwd")
    with pytest.raises(ConfigError, match="exists and is not a folder"):
        EngineCache(onnx_file)


def test_a_build_that_does_not_deserialize_is_an_error_and_writes_nothing(tmp_path, onnx_file):
    cache = EngineCache(tmp_path / "c")
    key = key_of(cache, onnx_file)
    fake = FakeEngines()
    with pytest.raises(DfmvrError, match=f"the freshly built engine for key {key} is unusable"):
        cache.load_or_build(key, lambda: b"broken", fake.deserialize)
    assert not cache.path_for(key).exists() and cache.describe(key) is None
    with pytest.raises(ValueError, match="parser failed"):  # the builder's own errors pass through

        def failing() -> bytes:
            raise ValueError("parser failed")

        cache.load_or_build(key, failing, fake.deserialize)
    assert not cache.path_for(key).exists()


def test_concurrent_builders_build_once(tmp_path, onnx_file):
    cache_dir = tmp_path / "shared"
    fake = FakeEngines(delay=0.3)
    key = key_of(EngineCache(cache_dir), onnx_file)
    results: list[tuple] = []

    def worker() -> None:
        results.append(EngineCache(cache_dir).load_or_build(key, fake.build, fake.deserialize))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert fake.builds == 1
    assert sorted(status for _, status in results) == ["built", "hit", "hit"]
    assert all(engine == {"engine": b"v1"} for engine, _ in results)
    assert not [p for p in cache_dir.iterdir() if p.name.startswith(".")]  # no temporary files left
