"""Synthetic multi-view face scenes: sample faces, light and head poses in a camera rig, render them into camera
images or straight into the network's face crops.

Used by the training data generator (``dfmvr make-dataset``) and the rosbag generator (``dfmvr make-bag``); it
never imports either.
"""

from dfmvr_core.synthesis.config import (
    BackgroundConfig,
    DegradationConfig,
    LightingConfig,
    SceneConfig,
    config_to_dict,
    load_scene_config,
)
from dfmvr_core.synthesis.images import degrade_image, make_background
from dfmvr_core.synthesis.render import (
    LANDMARK_VISIBILITY_TOLERANCE_M,
    SceneRenderer,
    SceneRendering,
    crop_boxes,
    render_scene,
)
from dfmvr_core.synthesis.sampler import FaceScene, FaceSceneSampler, scene_seed

__all__ = [
    "LANDMARK_VISIBILITY_TOLERANCE_M",
    "BackgroundConfig",
    "DegradationConfig",
    "FaceScene",
    "FaceSceneSampler",
    "LightingConfig",
    "SceneConfig",
    "SceneRenderer",
    "SceneRendering",
    "config_to_dict",
    "crop_boxes",
    "degrade_image",
    "load_scene_config",
    "make_background",
    "render_scene",
    "scene_seed",
]
