"""Shard files of the synthetic dataset: uncompressed ``.npz`` written atomically, read back as memory maps.

A shard is ``np.savez`` output (a ZIP archive of ``.npy`` members, stored without compression), so it opens with
plain ``np.load``. For training, :func:`open_npz_memmaps` maps each member straight from the file instead of reading
it: numpy's ``np.load(mmap_mode=...)`` only maps ``.npy`` files, not ``.npz`` members, so the offset of each
member's data is found here from the ZIP local header and the ``.npy`` header (``numpy.lib.format``). Random access
to one sample then reads that sample's bytes only, whatever the shard size.
"""

from __future__ import annotations

import dataclasses
import hashlib
import mmap
import struct
import zipfile
from pathlib import Path

import numpy as np

from dfmvr_core.atomic_io import atomic_path
from dfmvr_core.errors import ModelFileError

__all__ = ["NpyMember", "npz_members", "open_npz_memmaps", "sha256_file", "write_npz_shard"]

_LOCAL_HEADER = b"PK\x03\x04"
_LOCAL_HEADER_SIZE = 30


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_npz_shard(path: str | Path, arrays: dict[str, np.ndarray]) -> tuple[str, int]:
    """Write ``arrays`` as an uncompressed ``.npz`` atomically (temporary file, then rename).

    Args:
        path: target ``.npz`` path.
        arrays: name → array (stored C-contiguous so they can be memory-mapped).

    Returns:
        ``(sha256 hex, size in bytes)`` of the written file.
    """
    contiguous = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    with atomic_path(path) as tmp:
        np.savez(tmp, **contiguous)
        digest = sha256_file(tmp)
        size = tmp.stat().st_size
    return digest, size


@dataclasses.dataclass(frozen=True)
class NpyMember:
    """Where one ``.npy`` member's data lies in an ``.npz`` file."""

    offset: int
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool


def npz_members(path: str | Path) -> dict[str, NpyMember]:
    """Locate every member of an uncompressed ``.npz`` (headers only; no data is read).

    Raises:
        ModelFileError: missing file, not a ZIP archive (e.g. truncated), a compressed or non-``.npy`` member, an
            object array or a member whose data runs past its stored size; the message names the file and member.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: shard file not found")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ModelFileError(f"{path}: not a readable .npz shard (truncated or corrupt: {exc})") from None
    members: dict[str, NpyMember] = {}
    file_size = path.stat().st_size
    with open(path, "rb") as f:
        for info in infos:
            where = f"{path}: member {info.filename!r}"
            if not info.filename.endswith(".npy"):
                raise ModelFileError(f"{where}: expected only .npy members")
            if info.compress_type != zipfile.ZIP_STORED:
                raise ModelFileError(f"{where}: compressed; expected np.savez's uncompressed storage")
            f.seek(info.header_offset)
            local = f.read(_LOCAL_HEADER_SIZE)
            if len(local) < _LOCAL_HEADER_SIZE or local[:4] != _LOCAL_HEADER:
                raise ModelFileError(f"{where}: bad ZIP local header (corrupt shard)")
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            start = info.header_offset + _LOCAL_HEADER_SIZE + name_len + extra_len
            f.seek(start)
            try:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            except (ValueError, OSError) as exc:
                raise ModelFileError(f"{where}: bad .npy header ({exc})") from None
            if dtype.hasobject:
                raise ModelFileError(f"{where}: object arrays are not allowed in shards")
            offset = f.tell()
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if offset + nbytes > min(start + info.file_size, file_size):
                raise ModelFileError(f"{where}: data runs past the member's stored size (corrupt shard)")
            members[info.filename[: -len(".npy")]] = NpyMember(offset, tuple(shape), dtype, bool(fortran))
    return members


def open_npz_memmaps(path: str | Path, members: dict[str, NpyMember] | None = None) -> dict[str, np.ndarray]:
    """Memory-map an uncompressed ``.npz``: one read-only ``mmap`` of the file, one array view per member.

    One mapping per file (not per member) keeps one file descriptor per open shard. The mapping closes when the
    last returned array is dropped.

    Args:
        path: an ``np.savez`` file.
        members: its :func:`npz_members` (located here when None).

    Returns:
        member name (without ``.npy``) → read-only array backed by the file.

    Raises:
        ModelFileError: as :func:`npz_members`.
    """
    members = npz_members(path) if members is None else members
    with open(path, "rb") as f:
        mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    return {
        name: np.ndarray(m.shape, m.dtype, buffer=mapping, offset=m.offset, order="F" if m.fortran_order else "C")
        for name, m in members.items()
    }
