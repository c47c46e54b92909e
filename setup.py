"""Build script for dfmvr: one file for both worlds.

* Plain Python: ``pip install -c constraints.txt -e .[dev]`` (what ``make test`` does).
* ROS 2: ``colcon build --packages-select dfmvr`` (ament_python). The resource marker, ``package.xml``,
  ``launch/`` and ``config/`` are installed as data files under ``share/dfmvr``, and ``setup.cfg`` puts the
  executables in ``lib/dfmvr`` so that ``ros2 run dfmvr dfmvr_node`` finds them.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE_NAME = "dfmvr"

setup(
    name=PACKAGE_NAME,
    version="0.1.0",
    description="DF-MVR multi-view 3D face reconstruction for robots (ROS 2 perception package)",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=[
        *find_packages(include=["dfmvr_core", "dfmvr_core.*", "dfmvr_ros", "dfmvr_ros.*"]),
        "dfmvr_training",
        *(f"dfmvr_training.{p}" for p in find_packages(where="training")),
    ],
    package_dir={"dfmvr_training": "training"},
    # The embedded default model (checkpoint: default, dfmvr_core/inference/default_model.py).
    package_data={"dfmvr_core": ["weights/*.pt"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE_NAME}"]),
        (f"share/{PACKAGE_NAME}", ["package.xml"]),
        (f"share/{PACKAGE_NAME}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE_NAME}/config", glob("config/*.yaml")),
    ],
    # Ranges here; the exact tested pins live in constraints.txt (torch is never left unpinned there).
    install_requires=[
        "torch>=2.1",
        "numpy>=1.24",
        "scipy>=1.10",
        "opencv-python-headless>=4.8",
        "trimesh>=4.0",
        "rosbags>=0.10",
        "PyYAML>=6.0",
        "tqdm>=4.60",
    ],
    extras_require={
        "train": ["tensorboard>=2.14", "protobuf<5", "matplotlib>=3.7"],
        "export": ["onnx==1.17.0", "onnxruntime>=1.17", "protobuf<5"],
        "landmarks": ["mediapipe==0.10.14", "protobuf<5"],
        "dev": ["pytest>=8", "hypothesis>=6.90", "ruff>=0.5"],
    },
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "dfmvr = dfmvr_core.cli.main:main",
            "dfmvr_node = dfmvr_ros.node:main",
        ],
        # Subcommands of `dfmvr`: each package registers its own, so dfmvr_core never imports upwards.
        "dfmvr.commands": [
            "assets = dfmvr_core.cli.assets:register",
            "bench = dfmvr_core.cli.bench:register",
            "export = dfmvr_core.cli.export:register",
            "reconstruct = dfmvr_core.cli.reconstruct:register",
            "make-dataset = dfmvr_training.cli.make_dataset:register",
            "train = dfmvr_training.cli.train:register",
            "eval = dfmvr_training.cli.evaluate:register",
            "make-bag = dfmvr_ros.cli.make_bag:register",
            "replay = dfmvr_ros.cli.replay:register",
            "extract-triplets = dfmvr_ros.cli.extract_triplets:register",
        ],
    },
)
