"""Geometry: rotations, rigid poses, pinhole cameras, face-crop affines, the camera rig and alignment.

SI units (metres, radians unless a name says ``_deg``); camera frames are optical (x right, y down,
z forward); rotations are ``(..., 3, 3)`` matrices acting on column vectors; pixel coordinates follow
OpenCV (integer = pixel centre).
"""

from dfmvr_core.geometry.alignment import apply_similarity, similarity_align
from dfmvr_core.geometry.camera import PinholeIntrinsics, points_in_front, project_points, unproject_pixels
from dfmvr_core.geometry.crop import (
    DEFAULT_CROP_SIZE,
    affine_to_3x3,
    apply_affine,
    crop_transform_from_box,
    intrinsics_in_crop,
    invert_affine,
    warp_to_crop,
)
from dfmvr_core.geometry.face_crop import (
    CropCamera,
    camera_pose_to_crop,
    crop_pose_to_camera,
    face_box_from_landmarks,
    face_box_from_roi,
    virtual_camera_rotation,
)
from dfmvr_core.geometry.pose import (
    MODEL_TO_OPTICAL,
    camera_to_euler_pose,
    compose,
    euler_pose_to_camera,
    invert_transform,
    make_transform,
    transform_points,
)
from dfmvr_core.geometry.rig import (
    CameraPlacement,
    CameraRig,
    RigConfig,
    default_intrinsics,
    load_rig,
    load_rig_config,
)
from dfmvr_core.geometry.rotations import (
    axis_angle_to_matrix,
    check_rotation_matrix,
    euler_to_matrix,
    is_rotation_matrix,
    matrix_to_axis_angle,
    matrix_to_euler,
    matrix_to_quaternion,
    quaternion_to_matrix,
)

__all__ = [
    "DEFAULT_CROP_SIZE",
    "MODEL_TO_OPTICAL",
    "CameraPlacement",
    "CameraRig",
    "CropCamera",
    "PinholeIntrinsics",
    "RigConfig",
    "affine_to_3x3",
    "apply_affine",
    "apply_similarity",
    "axis_angle_to_matrix",
    "camera_pose_to_crop",
    "camera_to_euler_pose",
    "check_rotation_matrix",
    "compose",
    "crop_pose_to_camera",
    "crop_transform_from_box",
    "default_intrinsics",
    "euler_pose_to_camera",
    "euler_to_matrix",
    "face_box_from_landmarks",
    "face_box_from_roi",
    "intrinsics_in_crop",
    "invert_affine",
    "invert_transform",
    "is_rotation_matrix",
    "load_rig",
    "load_rig_config",
    "make_transform",
    "matrix_to_axis_angle",
    "matrix_to_euler",
    "matrix_to_quaternion",
    "points_in_front",
    "project_points",
    "quaternion_to_matrix",
    "similarity_align",
    "transform_points",
    "unproject_pixels",
    "virtual_camera_rotation",
    "warp_to_crop",
]
