"""Atomic writes: all-or-nothing, no temporary left behind, ordinary file permissions."""

from __future__ import annotations

import os
import stat

import pytest

from dfmvr_core.atomic_io import atomic_path, write_json_atomic, write_text_atomic


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_written_files_get_umask_permissions_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "sub" / "a.json", {"x": 1})
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "sub" / "a.json").stat().st_mode)
    assert mode == 0o644
    assert (tmp_path / "sub" / "a.json").read_text().strip().startswith("{")
