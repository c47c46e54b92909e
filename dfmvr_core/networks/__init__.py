"""Neural networks of DF-MVR (paper section III): the face parse net (BiSeNet, III-B), the Tri-UNet
fusion (III-C), the involution RedNet regressor (III-D) with the coefficient heads, and their configs; the comparison
baselines Deep3DFace (R-Net + C-Net, Deng et al. 2019) and UH-E2FAR (Dou et al. 2017); and the registry building any
of them from its config (:mod:`dfmvr_core.networks.registry`)."""

from dfmvr_core.networks.baseline_config import BASELINE_CONFIGS, BaselineNetworkConfig, load_baseline_config
from dfmvr_core.networks.cost import NetworkCost, network_cost
from dfmvr_core.networks.deep3dface import CNet, Deep3DFaceNet, RNet
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
from dfmvr_core.networks.registry import (
    NETWORK_KINDS,
    AnyNetworkConfig,
    build_network,
    load_any_network_config,
    network_kind,
)
from dfmvr_core.networks.resnet import ResNet
from dfmvr_core.networks.uh_e2far import UHE2FARNet

__all__ = [
    "BASELINE_CONFIGS",
    "NAMED_CONFIGS",
    "NETWORK_KINDS",
    "PAPER_CONFIG",
    "SMALL_CONFIG",
    "AnyNetworkConfig",
    "BaselineNetworkConfig",
    "BiSeNet",
    "CNet",
    "CelebAClass",
    "DFMVRNet",
    "Deep3DFaceNet",
    "Involution2d",
    "NetworkConfig",
    "NetworkCost",
    "RNet",
    "RedNet",
    "ResNet",
    "UHE2FARNet",
    "ViewDropoutConfig",
    "WeightMapConfig",
    "ablation_config",
    "build_network",
    "celeba_to_face_parts",
    "count_flops",
    "count_parameters",
    "face_mask_channel",
    "face_parts_one_hot",
    "load_any_network_config",
    "load_baseline_config",
    "load_face_parser",
    "load_network_config",
    "network_cost",
    "network_kind",
    "normalize_imagenet",
    "photo_weight_map",
    "split_flat",
    "view_dropout",
]
