"""Neural networks of DF-MVR (paper section III): the face parse net (BiSeNet, III-B), the Tri-UNet
fusion (III-C), the involution RedNet regressor (III-D) with the coefficient heads, and their configs."""

from dfmvr_core.networks.cost import NetworkCost, network_cost
from dfmvr_core.networks.dfmvr_net import DFMVRNet, split_flat, view_dropout
from dfmvr_core.networks.face_parser import BiSeNet, load_face_parser, normalize_imagenet
from dfmvr_core.networks.face_parts import (
    CelebAClass,
    WeightMapConfig,
    celeba_to_face_parts,
    face_mask_channel,
    face_parts_one_hot,
    photo_weight_map,
)
from dfmvr_core.networks.flops import count_flops, count_parameters
from dfmvr_core.networks.involution import Involution2d
from dfmvr_core.networks.net_config import (
    NAMED_CONFIGS,
    PAPER_CONFIG,
    SMALL_CONFIG,
    NetworkConfig,
    ViewDropoutConfig,
    ablation_config,
    load_network_config,
)
from dfmvr_core.networks.rednet import RedNet
from dfmvr_core.networks.resnet import ResNet

__all__ = [
    "NAMED_CONFIGS",
    "PAPER_CONFIG",
    "SMALL_CONFIG",
    "BiSeNet",
    "CelebAClass",
    "DFMVRNet",
    "Involution2d",
    "NetworkConfig",
    "NetworkCost",
    "RedNet",
    "ResNet",
    "ViewDropoutConfig",
    "WeightMapConfig",
    "ablation_config",
    "celeba_to_face_parts",
    "count_flops",
    "count_parameters",
    "face_mask_channel",
    "face_parts_one_hot",
    "load_face_parser",
    "load_network_config",
    "network_cost",
    "normalize_imagenet",
    "photo_weight_map",
    "split_flat",
    "view_dropout",
]
