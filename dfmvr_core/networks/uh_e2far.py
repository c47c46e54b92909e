"""UH-E2FAR (Dou, Shah and Kakadiaris, "End-to-End 3D Face Reconstruction with Deep Neural Networks", CVPR 2017) as
a multi-view baseline.

The paper's network regresses a 3D face from one image end to end, split by a multi-task loss into a **neutral**
(identity) shape and an **expressive** part (sec. 3.1-3.2): the neutral shape is class-specific and read from the
highest layer's features, the expression from lower / intermediate layers through a **fusion CNN** that combines
several intermediate feature maps. Here (:class:`UHE2FARNet`):

* backbone: a ResNet (:class:`~dfmvr_core.networks.resnet.ResNet`, depth ``config.backbone_depth``; the paper used
  VGG-Face), shared by the views, on ImageNet-normalised RGB;
* neutral branch: last stage (``layer4``) → global average pooling → linear → identity coefficients;
* fusion CNN: the intermediate stages ``layer2`` (S/8) and ``layer3`` (S/16) brought to one resolution (S/16, 2×2
  average pooling of ``layer2``), concatenated, 1×1 conv (channel reduction), 3×3 conv, 3×3 conv stride 2 (each BN +
  ReLU), global average pooling → linear → expression coefficients (through a sigmoid for blendshape models, as
  DFMVRNet);
* pose head (beyond the paper, which evaluates aligned shapes; needed here to place the mesh in the camera): last
  stage pooled features → 6 values per view (3 Euler angles + 3 translation, canonical crop camera, 0 = frontal
  reference pose, as DFMVRNet);
* appearance: UH-E2FAR predicts none, so ``albedo`` is 0 (the mean albedo) and ``lighting`` a fixed ambient white
  (:data:`~dfmvr_core.morphable.lighting.AMBIENT_DC` on the DC terms) for every view;
* multi-view: identity and expression are the plain mean over the valid views (invalid views weight 0; no valid view
  → 0, the mean face); pose per view.

Initialisation as :class:`~dfmvr_core.networks.heads.CoefficientHeads`: identity/expression weights ~ N(0, 0.01²)
(blendshape bias ``logit(0.05)``), pose weights and bias 0; an untrained network outputs a face near the mean.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.networks.baseline_common import AGGREGATED, BaselineNet, ImageNetNormalize, weighted_view_mean
from dfmvr_core.networks.baseline_config import BaselineNetworkConfig
from dfmvr_core.networks.heads import BLENDSHAPE_INIT_WEIGHT
from dfmvr_core.networks.resnet import ResNet

__all__ = ["FusionCNN", "UHE2FARNet"]

FUSION_STAGES = ("layer2", "layer3")
"""The intermediate ResNet stages the fusion CNN combines (S/8 and S/16)."""


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class FusionCNN(nn.Module):
    """UH-E2FAR's fusion CNN (Dou et al. 2017 sec. 3.2): intermediate feature maps → one expression feature vector.

    Args:
        in_channels: channels of each fused map (finest first); the first is 2× the resolution of the others.
        width: channels of the fusion convolutions.

    Shapes:
        ``forward([(N, C_0, 2H, 2W), (N, C_1, H, W), ...])`` → ``(N, width)``.
    """

    def __init__(self, in_channels: tuple[int, ...], width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn_relu(sum(in_channels), width, 1),
            *_conv_bn_relu(width, width, 3),
            *_conv_bn_relu(width, width, 3, stride=2),
        )
        self.feature_dim = width
        for module in self.body.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
        finest, *rest = maps
        fused = torch.cat([F.avg_pool2d(finest, 2), *rest], dim=1)
        return self.body(fused).mean(dim=(2, 3))


class UHE2FARNet(BaselineNet):
    """UH-E2FAR for a multi-view sample (see the module docstring).

    Args:
        config: a :class:`~dfmvr_core.networks.baseline_config.BaselineNetworkConfig` with ``kind: uh_e2far``.
        sizes: coefficient sizes of the morphable model.
        expression_kind: ``"pca"`` or ``"blendshape"``.

    Attributes:
        backbone (ResNet), fusion (:class:`FusionCNN`), neutral / expression / pose (linear heads).

    Raises:
        ConfigError: invalid config (or another kind), sizes or expression kind.
    """

    def __init__(self, config: BaselineNetworkConfig, sizes: CoefficientSizes, expression_kind: str = "pca") -> None:
        super().__init__(config, sizes, expression_kind, "uh_e2far")
        self.normalize = ImageNetNormalize()
        self.backbone = ResNet(config.backbone_depth, 3, None, config.backbone_width, zero_init_residual=True)
        stage_channels = tuple(getattr(self.backbone, name)[-1].out_channels for name in FUSION_STAGES)
        fusion_width = max(8, round(256 * config.backbone_width / 8) * 8)
        self.fusion = FusionCNN(stage_channels, fusion_width)
        feature_dim = self.backbone.feature_dim
        self.neutral = nn.Linear(feature_dim, sizes.identity)
        self.expression = nn.Linear(self.fusion.feature_dim, sizes.expression)
        self.pose = nn.Linear(feature_dim, sizes.pose_per_view)
        for layer in (self.neutral, self.expression):
            nn.init.normal_(layer.weight, 0.0, 0.01)
            nn.init.zeros_(layer.bias)
        if expression_kind == "blendshape":
            nn.init.constant_(self.expression.bias, math.log(BLENDSHAPE_INIT_WEIGHT / (1.0 - BLENDSHAPE_INIT_WEIGHT)))
        nn.init.zeros_(self.pose.weight)
        nn.init.zeros_(self.pose.bias)

    def forward_single(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """One image each: ``(N, 3, S, S)`` RGB in [0, 1] → ``identity (N, K_id)``, ``expression (N, K_exp)``,
        ``pose (N, 6)``."""
        backbone = self.backbone
        x = backbone._stem(self.normalize(images))
        x = backbone.layer1(x)
        mid2 = backbone.layer2(x)
        mid3 = backbone.layer3(mid2)
        last = backbone.layer4(mid3).mean(dim=(2, 3))
        expression = self.expression(self.fusion([mid2, mid3]))
        if self.expression_kind == "blendshape":
            expression = torch.sigmoid(expression)
        return {"identity": self.neutral(last), "expression": expression, "pose": self.pose(last)}

    def forward_per_view(self, images: torch.Tensor, valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Each view's own coefficients (same layout as :meth:`Deep3DFaceNet.forward_per_view`; confidences are 1).

        Returns:
            ``identity (B, V, K_id)``, ``expression (B, V, K_exp)``, ``albedo (B, V, K_tex)`` (zeros), ``lighting
            (B, V, 27)`` (ambient), ``pose (B, V, 6)``, ``confidence`` ``{identity, expression, albedo}`` (ones).

        Raises:
            ShapeError: bad input (names the argument and the expected shape).
        """
        per_view, _ = self._per_view(images, valid)
        confidence = {name: torch.ones_like(per_view[name]) for name in AGGREGATED}
        return {**per_view, "confidence": confidence}

    def _per_view(
        self, images: torch.Tensor, valid: torch.Tensor | None
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        flat, valid = self.prepare_views(images, valid)
        v = self.views
        out = {name: value.reshape(-1, v, value.shape[-1]) for name, value in self.forward_single(flat).items()}
        out["albedo"] = out["identity"][..., :1] * 0.0 + images.new_zeros(self.sizes.albedo)
        out["lighting"] = self.ambient_lighting(out["pose"])
        return out, valid

    def forward(
        self, images: torch.Tensor, masks: torch.Tensor | None = None, valid: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Coefficients of one face per sample (DFMVRNet's contract; ``masks`` is accepted and ignored).

        Returns:
            ``identity (B, K_id)``, ``expression (B, K_exp)`` (means over the valid views), ``albedo (B, K_tex)``
            zeros, ``lighting (B, V, 27)`` ambient, ``pose (B, V, 6)``.

        Raises:
            ShapeError: bad input (names the argument and the expected shape).
        """
        per_view, valid = self._per_view(images, valid)
        keep = valid.to(per_view["identity"].dtype).unsqueeze(-1)
        return {
            "identity": weighted_view_mean(per_view["identity"], keep),
            "expression": weighted_view_mean(per_view["expression"], keep),
            "albedo": per_view["albedo"][:, 0],
            "lighting": per_view["lighting"],
            "pose": per_view["pose"],
        }
