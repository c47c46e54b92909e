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

"""ament_xmllint: package.xml is well formed and valid against the package format 3 schema it names."""

import pytest
from ament_lint_config import REPO, XML_FILES

main = pytest.importorskip("ament_xmllint.main", reason="python3-ament-xmllint not installed (Debian package)").main


def test_xmllint(monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(argv=XML_FILES) == 0, "invalid XML (see the output above)"


def test_xmllint_refuses_a_package_xml_breaking_the_schema(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = (REPO / "package.xml").read_text().replace("<license>", "<licence>").replace("</license>", "</licence>")
    (tmp_path / "package.xml").write_text(text)
    assert main(argv=["package.xml"]) == 1
