"""Packaging invariants: package.xml, setup.py and constraints agree; dfmvr_core never imports upwards."""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from importlib.metadata import entry_points
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

ROS_DEPENDENCIES = {
    "rclpy", "sensor_msgs", "geometry_msgs", "visualization_msgs", "std_msgs",
    "diagnostic_msgs", "tf2_ros", "cv_bridge", "message_filters",
}  # fmt: skip


def _setup_source() -> str:
    return (REPO / "setup.py").read_text()


def test_package_xml_is_format_3_ament_python_with_the_node_dependencies():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "dfmvr"
    assert root.find("export/build_type").text == "ament_python"
    exec_deps = {e.text for e in root.findall("exec_depend")}
    assert ROS_DEPENDENCIES <= exec_deps, ROS_DEPENDENCIES - exec_deps
    version = re.search(r'version="([^"]+)"', _setup_source()).group(1)
    assert root.findtext("version") == version


def test_setup_installs_the_ament_resource_and_data_folders():
    source = _setup_source()
    assert (REPO / "resource" / "dfmvr").is_file()
    for needle in (
        "share/ament_index/resource_index/packages",
        "share/{PACKAGE_NAME}/launch",
        "share/{PACKAGE_NAME}/config",
        '"dfmvr_training": "training"',
    ):
        assert needle in source
    cfg = (REPO / "setup.cfg").read_text()
    assert "script_dir=$base/lib/dfmvr" in cfg and "install_scripts=$base/lib/dfmvr" in cfg


def test_every_requirement_has_an_exact_pin_and_torch_is_pinned():
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    assert pins["torch"] == "2.13.0"
    tree = ast.parse(_setup_source())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    kwargs = {
        k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg in ("install_requires", "extras_require")
    }
    requirements = list(kwargs["install_requires"]) + [r for reqs in kwargs["extras_require"].values() for r in reqs]
    for requirement in requirements:
        name = re.split(r"[<>=!\[ ]", requirement, maxsplit=1)[0].lower()
        assert name in pins, f"{name} has no exact pin in constraints.txt"
    assert set(kwargs["extras_require"]) == {"train", "export", "landmarks", "dev"}


def test_cli_subcommands_are_registered_as_entry_points():
    names = {e.name for e in entry_points(group="dfmvr.commands")}
    assert {"assets", "bench", "export"} <= names


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module.split(".")[0])
    return modules


def test_dfmvr_core_never_imports_ros_or_the_packages_above_it():
    forbidden = {
        "rclpy",
        "sensor_msgs",
        "geometry_msgs",
        "std_msgs",
        "visualization_msgs",
        "tf2_ros",
        "cv_bridge",
        "message_filters",
        "sensor_msgs_py",
        "dfmvr_ros",
        "dfmvr_training",
    }
    offenders = {}
    for path in (REPO / "dfmvr_core").rglob("*.py"):
        bad = _imported_modules(path) & forbidden
        if bad:
            offenders[str(path.relative_to(REPO))] = sorted(bad)
    assert not offenders, offenders


def test_training_never_imports_ros():
    for path in (REPO / "training").rglob("*.py"):
        assert not _imported_modules(path) & {"rclpy", "dfmvr_ros"}, path
