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

"""ament_flake8 over the Python tree with the project's configuration (setup.cfg [flake8], line length 120)."""

import pytest
from ament_lint_config import FLAKE8_CONFIG, PYTHON_PATHS, REPO

main_with_errors = pytest.importorskip(
    "ament_flake8.main", reason="python3-ament-flake8 not installed (Debian package)"
).main_with_errors


def test_flake8(monkeypatch):
    monkeypatch.chdir(REPO)
    rc, errors = main_with_errors(argv=["--config", FLAKE8_CONFIG, *PYTHON_PATHS])
    assert rc == 0, f"Found {len(errors)} code style errors / warnings:\n" + "\n".join(errors)


def test_flake8_config_keeps_line_length_120(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = str(REPO / FLAKE8_CONFIG)
    ok = tmp_path / "ok.py"
    ok.write_text("X = " + repr("a" * 110) + "\n")  # 116 characters: too long for ament's default 99
    long = tmp_path / "long.py"
    long.write_text("X = " + repr("a" * 120) + "\n")  # 126 characters
    assert main_with_errors(argv=["--config", config, str(ok)])[0] == 0
    rc, errors = main_with_errors(argv=["--config", config, str(long)])
    assert rc == 1 and any("E501" in e for e in errors)
