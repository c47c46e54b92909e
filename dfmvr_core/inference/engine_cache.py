"""On-disk cache of serialized TensorRT engines, keyed by everything an engine depends on.

A TensorRT engine is specific to the network (the ONNX file), the TensorRT version, the GPU model, the precision
and the optimization profile (here: the maximum batch). Building one takes from seconds (``small``) to many minutes
(``paper`` on a Jetson), so :class:`~dfmvr_core.inference.tensorrt_backend.TensorRTBackend` builds it once and keeps
it here.

**Key** (:meth:`EngineCache.key`): the first 20 hex digits (80 bits) of the SHA-256 of a canonical JSON object
holding the SHA-256 of the ONNX file's bytes (its content, not its name or date: a re-export with other weights
changes the key, a renamed copy does not), the TensorRT version, the GPU name (with its compute capability), the
precision and the maximum batch. Any change of one of them gives another key, hence another file: stale engines are
never picked up, they are simply not found.

**Files** in the cache folder, per key: ``<key>.engine`` (the serialized engine, TensorRT's "plan"),
``<key>.json`` (a human-readable sidecar with the key's fields, the ONNX file it was built from, the build time and
why it was (re)built) and ``<key>.lock`` (the build lock).

**Robustness.** :meth:`EngineCache.load_or_build` deserializes a cached file; when that fails (the callback raises
or returns None: a truncated or corrupt file, or one written by another TensorRT build under the same version
string) it logs why, rebuilds and replaces the file. Builders of the same key in several processes (two nodes
starting at once) are serialised by an exclusive ``fcntl.flock`` on the lock file: the second one waits, then finds
the first one's engine. Files are written to a temporary name and renamed (:func:`dfmvr_core.atomic_io.atomic_path`),
so a reader never sees a partial engine, also where ``fcntl`` does not exist (the lock is then skipped).

Hand-written because no library offers it: TensorRT's own timing cache stores kernel timings, not engines, and
ONNX Runtime's TensorRT provider keeps its engine cache private to the provider.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dfmvr_core.atomic_io import atomic_path, write_json_atomic
from dfmvr_core.errors import ConfigError, DfmvrError, ModelFileError

try:  # POSIX only (Linux, Jetson); elsewhere the atomic rename alone protects readers
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["ENGINE_SUFFIX", "KEY_LENGTH", "EngineCache", "engine_key_fields", "file_sha256"]

_log = logging.getLogger(__name__)

ENGINE_SUFFIX = ".engine"
KEY_LENGTH = 20
"""Hex digits of a key (80 bits of SHA-256)."""

CacheStatus = str
"""``"hit"`` (a cached engine was loaded), ``"built"`` (none existed) or ``"rebuilt"`` (the cached one failed)."""


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks.

    Raises:
        ModelFileError: the file does not exist or cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: ONNX model not found" + (" (it is a folder)" if path.is_dir() else ""))
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read ({exc})") from exc
    return digest.hexdigest()


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name}: expected a non-empty string, got {value!r}")
    return value


def engine_key_fields(
    onnx_path: str | Path, trt_version: str, gpu_name: str, precision: str, max_batch: int
) -> dict[str, Any]:
    """The fields an engine depends on (what :meth:`EngineCache.key` hashes and the sidecar JSON shows):
    ``onnx_sha256``, ``tensorrt_version``, ``gpu``, ``precision``, ``max_batch``.

    Raises:
        ModelFileError: the ONNX file is missing or unreadable. ConfigError: an empty field or bad ``max_batch``.
    """
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise ConfigError(f"max_batch: expected a positive int, got {max_batch!r}")
    return {
        "onnx_sha256": file_sha256(onnx_path),
        "tensorrt_version": _text("trt_version", trt_version),
        "gpu": _text("gpu_name", gpu_name),
        "precision": _text("precision", precision),
        "max_batch": max_batch,
    }


class EngineCache:
    """Serialized TensorRT engines in ``directory`` (created on first write); see the module docstring.

    Args:
        directory: the cache folder (e.g. ``~/.cache/dfmvr/tensorrt`` or the ROS node's ``engine_cache_dir``).

    Raises:
        ConfigError: ``directory`` exists and is not a folder.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory).expanduser()
        if self.directory.exists() and not self.directory.is_dir():
            raise ConfigError(f"engine cache: {self.directory} exists and is not a folder")
        self._fields: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"EngineCache({str(self.directory)!r})"

    def key(self, onnx_path: str | Path, trt_version: str, gpu_name: str, precision: str, max_batch: int) -> str:
        """The cache key of an engine: 20 hex digits of SHA-256 over the ONNX file's content hash and the other
        fields (see the module docstring). The fields are remembered for the sidecar JSON of :meth:`load_or_build`.

        Args:
            onnx_path: the ONNX file the engine is built from (its bytes are hashed).
            trt_version: ``tensorrt.__version__``.
            gpu_name: GPU model, e.g. ``"NVIDIA H100 80GB HBM3 (sm_90)"``.
            precision: ``"fp32"``, ``"tf32"`` or ``"fp16"``.
            max_batch: largest batch of the engine's optimization profile (>= 1).

        Raises:
            ModelFileError: the ONNX file is missing or unreadable.
            ConfigError: an empty field or a non-positive ``max_batch``.
        """
        fields = engine_key_fields(onnx_path, trt_version, gpu_name, precision, max_batch)
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        key = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:KEY_LENGTH]
        self._fields[key] = {**fields, "onnx_file": str(Path(onnx_path).resolve())}
        return key

    @staticmethod
    def _check_key(key: str) -> str:
        if not isinstance(key, str) or len(key) != KEY_LENGTH or any(c not in "0123456789abcdef" for c in key):
            raise ConfigError(f"engine cache key: expected {KEY_LENGTH} lowercase hex digits (from key()), got {key!r}")
        return key

    def path_for(self, key: str) -> Path:
        """``<directory>/<key>.engine``."""
        return self.directory / f"{self._check_key(key)}{ENGINE_SUFFIX}"

    def sidecar_for(self, key: str) -> Path:
        """``<directory>/<key>.json``: the key's fields and the build history, human readable."""
        return self.directory / f"{self._check_key(key)}.json"

    def describe(self, key: str) -> dict[str, Any] | None:
        """The sidecar JSON of ``key`` as a dict, None when there is none (or it is unreadable)."""
        try:
            return json.loads(self.sidecar_for(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    @contextlib.contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        """Exclusive build lock of ``key`` across processes (``fcntl.flock``; blocks until free)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if fcntl is None:  # pragma: no cover - Windows
            yield
            return
        with (self.directory / f"{key}.lock").open("a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @staticmethod
    def _try(deserialize: Callable[[bytes], Any], data: bytes) -> tuple[Any, str | None]:
        """``(engine, None)`` or ``(None, why it failed)``."""
        if not data:
            return None, "the file is empty"
        try:
            engine = deserialize(data)
        except Exception as exc:  # whatever the runtime raises for a corrupt/foreign plan
            return None, f"deserializing it raised {type(exc).__name__}: {str(exc).strip()[:200]}"
        if engine is None:
            return None, "the runtime could not deserialize it (corrupt, truncated, or built by another TensorRT)"
        return engine, None

    @staticmethod
    def _read(path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            _log.warning("engine cache: cannot read %s (%s); rebuilding it", path, exc)
            return b""

    def load_or_build(
        self, key: str, build: Callable[[], bytes], deserialize: Callable[[bytes], Any]
    ) -> tuple[Any, CacheStatus]:
        """The engine of ``key``: deserialized from the cache, else built, stored and deserialized.

        Args:
            key: from :meth:`key`.
            build: returns the serialized engine (bytes-like); called at most once, under the key's lock.
            deserialize: bytes → engine; raising or returning None marks the bytes as unusable.

        Returns:
            ``(engine, status)``, status ``"hit"``, ``"built"`` or ``"rebuilt"`` (the cached file could not be
            deserialized; the reason is logged and stored in the sidecar's ``rebuilt_because``).

        Raises:
            DfmvrError: ``build`` returned nothing, or its own output does not deserialize.
            Whatever ``build`` raises (e.g. :class:`ModelFileError` for an ONNX file TensorRT cannot parse).
        """
        path = self.path_for(key)
        seen = self._read(path)
        reason: str | None = None
        if seen is not None:
            engine, reason = self._try(deserialize, seen)
            if engine is not None:
                _log.info("engine cache: hit %s", path)
                return engine, "hit"
            _log.warning("engine cache: %s is unusable: %s; rebuilding it", path, reason)
        with self._lock(key):
            # Another process may have (re)built it while this one waited for the lock.
            current = self._read(path)
            if current is not None and current != seen:
                engine, _ = self._try(deserialize, current)
                if engine is not None:
                    _log.info("engine cache: %s was built by another process meanwhile", path)
                    return engine, "hit"
            started = time.monotonic()
            data = build()
            data = bytes(data) if data is not None else b""
            engine, why = self._try(deserialize, data)
            if engine is None:
                raise DfmvrError(f"engine cache: the freshly built engine for key {key} is unusable: {why}")
            with atomic_path(path, suffix=".tmp") as tmp:
                tmp.write_bytes(data)
            status = "rebuilt" if reason is not None else "built"
            sidecar = {
                "key": key,
                **self._fields.get(key, {}),
                "engine_file": path.name,
                "engine_bytes": len(data),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "build_seconds": round(time.monotonic() - started, 3),
                "status": status,
            }
            if reason is not None:
                sidecar["rebuilt_because"] = reason
            write_json_atomic(self.sidecar_for(key), sidecar)
        _log.info("engine cache: %s %s in %.1f s", status, path, sidecar["build_seconds"])
        return engine, status
