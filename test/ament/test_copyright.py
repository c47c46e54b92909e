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

"""ament_copyright: the Apache-2.0 header (package.xml's licence) on the files listed in ament_lint_config."""

import pytest
from ament_lint_config import COPYRIGHT_FILES, REPO

main = pytest.importorskip("ament_copyright.main", reason="python3-ament-copyright not installed (Debian package)").main


def test_copyright(monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(argv=COPYRIGHT_FILES) == 0, "files without the Apache-2.0 copyright notice (see the output above)"


def test_copyright_refuses_a_file_without_the_header(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plain.py").write_text('"""No header."""\n\nX = 1\n')
    assert main(argv=["plain.py"]) == 1
