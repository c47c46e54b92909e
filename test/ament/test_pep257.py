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

"""ament_pep257 over the Python tree, Google convention with the ignores documented in ament_lint_config."""

import pytest
from ament_lint_config import PEP257_ADD_IGNORE, PEP257_CONVENTION, PYTHON_PATHS, REPO

main = pytest.importorskip("ament_pep257.main", reason="python3-ament-pep257 not installed (Debian package)").main

ARGS = ["--convention", PEP257_CONVENTION, "--add-ignore", *PEP257_ADD_IGNORE]


def test_pep257(monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(argv=[*PYTHON_PATHS, *ARGS]) == 0, "docstring style errors (see the output above)"


def test_pep257_still_checks_docstrings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.py").write_text('def f():\n    """  Padded summary."""\n')  # D210: whitespace around text
    assert main(argv=["bad.py", *ARGS]) == 1
