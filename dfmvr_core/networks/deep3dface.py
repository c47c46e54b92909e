"""Deep3DFace (Deng et al., "Accurate 3D Face Reconstruction with Weakly-Supervised Learning: From Single Image to
Image Set", CVPRW 2019) as a multi-view baseline: the R-Net per view and the C-Net confidence aggregation.

* **R-Net** (:class:`RNet`, paper sec. 3): a ResNet-50 (ImageNet layout, :class:`~dfmvr_core.networks.resnet.ResNet`)
  regressing from one 224×224 image the morphable model's identity, expression and albedo coefficients, 27 SH
  lighting values and the pose. Each view of a sample is regressed independently by the same R-Net. Outputs follow
  :class:`~dfmvr_core.networks.dfmvr_net.DFMVRNet`'s conventions (the same
  :class:`~dfmvr_core.networks.heads.CoefficientHeads`): pose = 3 Euler angles (radians) + 3 translation values in
  the canonical crop camera (:mod:`dfmvr_core.geometry.face_crop`), 0 = the frontal reference pose; lighting starts
  at plain ambient light; blendshape expressions through a sigmoid. The authors' PyTorch code
  (``sicxu/Deep3DFaceRecon_pytorch``) starts its last layer at zero; our heads start near the mean face too
  (identity/albedo weights ~ N(0, 0.01²)).
* **C-Net** (:class:`CNet`, paper sec. 4): per-coefficient confidences ``c_j > 0`` of each image ``j`` of a set; the
  aggregated coefficients are ``α = Σ_j c_j ⊙ α_j ⊘ Σ_j c_j`` (element-wise; the paper aggregates the identity, we
  also aggregate the albedo and the expression, which the simultaneous views share). The paper's C-Net is a
  light-weight network trained label-free with the R-Net fixed; here it is a narrow ResNet-18 on the view image
  (``config.cnet_width``) with a softplus output, starting at ``c = 1`` for every coefficient (so an untrained C-Net
  equals the plain mean). :meth:`Deep3DFaceNet.freeze_rnet` fixes the R-Net (no gradients, BatchNorm statistics
  frozen) for that stage.

Multi-view sample (:meth:`Deep3DFaceNet.forward`, same contract as DFMVRNet's): identity, expression and albedo are
the confidence-weighted mean over the **valid** views (``aggregation: mean``: all confidences 1, the plain average;
invalid views weight 0; a sample without a valid view gets 0, the mean face, never NaN); lighting and pose stay per
view (an invalid view's entries are the R-Net's output on a black image, as DFMVRNet's are: meaningless, ignore
them). With a single valid view the output is that view's own R-Net output: Deep3DFace's single-image method.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.networks.baseline_common import AGGREGATED, BaselineNet, ImageNetNormalize, weighted_view_mean
from dfmvr_core.networks.baseline_config import BaselineNetworkConfig
from dfmvr_core.networks.heads import CoefficientHeads
from dfmvr_core.networks.resnet import ResNet
from dfmvr_core.validation import check_shape

__all__ = ["CONFIDENCE_FLOOR", "CNet", "Deep3DFaceNet", "RNet"]

CONFIDENCE_FLOOR = 1e-4
"""Added to the C-Net's softplus so that a confidence never underflows to exactly 0."""


class RNet(nn.Module):
    """Deep3DFace's R-Net: one image → coefficients (see the module docstring).

    Args:
        depth, width: ResNet depth (paper 50) and channel width multiplier.
        sizes: coefficient sizes of the morphable model.
        expression_kind: ``"pca"`` or ``"blendshape"``.
        input_size: side ``S`` of the images (checked).

    Shapes:
        ``forward(images (N, 3, S, S) float RGB in [0, 1])`` → dict ``identity (N, K_id)``, ``expression
        (N, K_exp)``, ``albedo (N, K_tex)``, ``lighting (N, 27)``, ``pose (N, 6)``.
    """

    def __init__(
        self, depth: int, width: float, sizes: CoefficientSizes, expression_kind: str, input_size: int
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.normalize = ImageNetNormalize()
        # zero_init_residual: every block starts as the identity (as DFMVRNet's regressors; stable untrained output).
        self.backbone = ResNet(depth, 3, None, width, zero_init_residual=True)
        self.heads = CoefficientHeads(self.backbone.feature_dim, sizes, 1, expression_kind)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        s = self.input_size
        check_shape("images", images, (None, 3, s, s))
        out = self.heads(self.backbone.forward_features(self.normalize(images)))
        out["lighting"] = out["lighting"][:, 0]
        out["pose"] = out["pose"][:, 0]
        return out


class CNet(nn.Module):
    """Deep3DFace's confidence network: one image → positive confidences per aggregated coefficient.

    Args:
        width: width multiplier of its ResNet-18.
        sizes: coefficient sizes (the output has ``K_id + K_exp + K_tex`` values).
        input_size: side ``S`` of the images (checked).

    Shapes:
        ``forward(images (N, 3, S, S) float RGB in [0, 1])`` → dict ``identity (N, K_id)``, ``expression
        (N, K_exp)``, ``albedo (N, K_tex)``, each ``softplus(z) + CONFIDENCE_FLOOR > 0``; exactly 1 before training
        (output layer weights 0, bias ``softplus⁻¹(1 − floor)``).
    """

    def __init__(self, width: float, sizes: CoefficientSizes, input_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.sizes = sizes
        self.normalize = ImageNetNormalize()
        self.backbone = ResNet(18, 3, None, width, zero_init_residual=True)
        self.out = nn.Linear(self.backbone.feature_dim, sizes.identity + sizes.expression + sizes.albedo)
        nn.init.zeros_(self.out.weight)
        nn.init.constant_(self.out.bias, math.log(math.expm1(1.0 - CONFIDENCE_FLOOR)))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        s = self.input_size
        check_shape("images", images, (None, 3, s, s))
        z = self.out(self.backbone.forward_features(self.normalize(images)))
        c = F.softplus(z) + CONFIDENCE_FLOOR
        k_id, k_exp = self.sizes.identity, self.sizes.expression
        return {"identity": c[:, :k_id], "expression": c[:, k_id : k_id + k_exp], "albedo": c[:, k_id + k_exp :]}


class Deep3DFaceNet(BaselineNet):
    """Deep3DFace for a multi-view sample: R-Net per view + mean or C-Net aggregation (see the module docstring).

    Args:
        config: a :class:`~dfmvr_core.networks.baseline_config.BaselineNetworkConfig` with ``kind: deep3dface``.
        sizes: coefficient sizes of the morphable model (``MorphableModel.coefficient_sizes``).
        expression_kind: ``"pca"`` (BFM) or ``"blendshape"`` (ICT).

    Attributes:
        rnet: the per-image :class:`RNet` (call it on ``(N, 3, S, S)`` images to train single images).
        cnet: the :class:`CNet`, or None with ``aggregation: mean``.

    Raises:
        ConfigError: invalid config (or another kind), sizes or expression kind.
    """

    def __init__(self, config: BaselineNetworkConfig, sizes: CoefficientSizes, expression_kind: str = "pca") -> None:
        super().__init__(config, sizes, expression_kind, "deep3dface")
        self.rnet = RNet(config.backbone_depth, config.backbone_width, sizes, expression_kind, config.input_size)
        self.cnet: CNet | None = (
            CNet(config.cnet_width, sizes, config.input_size) if config.aggregation == "cnet" else None
        )
        self._rnet_frozen = False

    # ------------------------------------------------------------------------------------------------ training
    @property
    def rnet_frozen(self) -> bool:
        """True after :meth:`freeze_rnet`: the R-Net has no gradients and stays in eval mode."""
        return self._rnet_frozen

    def freeze_rnet(self, frozen: bool = True) -> None:
        """Fix the R-Net for the C-Net stage (paper sec. 4): ``requires_grad = False`` on its parameters and its
        BatchNorm layers kept in eval mode (running statistics used, not updated) even under ``train()``.
        ``frozen=False`` undoes it."""
        self._rnet_frozen = bool(frozen)
        for parameter in self.rnet.parameters():
            parameter.requires_grad_(not frozen)
        self.rnet.train(self.training and not frozen)

    def train(self, mode: bool = True) -> Deep3DFaceNet:
        super().train(mode)
        if self._rnet_frozen:
            self.rnet.eval()
        return self

    # ------------------------------------------------------------------------------------------------ inference
    def _per_view(
        self, images: torch.Tensor, valid: torch.Tensor | None
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
        flat, valid = self.prepare_views(images, valid)
        v = self.views
        out = self.rnet(flat)
        per_view = {name: value.reshape(-1, v, value.shape[-1]) for name, value in out.items()}
        if self.cnet is not None:
            confidence = {name: value.reshape(-1, v, value.shape[-1]) for name, value in self.cnet(flat).items()}
        else:
            confidence = {name: torch.ones_like(per_view[name]) for name in AGGREGATED}
        return per_view, confidence, valid

    def forward_per_view(self, images: torch.Tensor, valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Each view's own R-Net coefficients and C-Net confidences, before aggregation.

        Args:
            images: ``(B, V, 3, S, S)`` float RGB in [0, 1]; valid: ``(B, V)`` bool or None (all valid).

        Returns:
            ``identity (B, V, K_id)``, ``expression (B, V, K_exp)``, ``albedo (B, V, K_tex)``, ``lighting
            (B, V, 27)``, ``pose (B, V, 6)`` and ``confidence``: ``{identity (B, V, K_id), expression (B, V, K_exp),
            albedo (B, V, K_tex)}`` (ones with ``aggregation: mean``). Invalid views: outputs on a black image,
            confidences not zeroed (the aggregation ignores them).

        Raises:
            ShapeError: bad input (names the argument and the expected shape).
        """
        per_view, confidence, _ = self._per_view(images, valid)
        return {**per_view, "confidence": confidence}

    def aggregate(
        self, images: torch.Tensor, valid: torch.Tensor | None = None
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """:meth:`forward`'s coefficients and the total confidence behind each aggregated coefficient.

        Returns:
            ``(coefficients, confidence)``: the dict of :meth:`forward`, and ``{identity (B, K_id), expression
            (B, K_exp), albedo (B, K_tex)}`` = ``Σ_valid views c`` (0 without a valid view), e.g. for
            :class:`~dfmvr_core.inference.temporal_fusion.ConfidenceAccumulator`.
        """
        per_view, confidence, valid = self._per_view(images, valid)
        keep = valid.to(per_view["identity"].dtype).unsqueeze(-1)
        out: dict[str, torch.Tensor] = {}
        totals: dict[str, torch.Tensor] = {}
        for name in AGGREGATED:
            weights = confidence[name] * keep
            out[name] = weighted_view_mean(per_view[name], weights)
            totals[name] = weights.sum(dim=1)
        out["lighting"] = per_view["lighting"]
        out["pose"] = per_view["pose"]
        return {name: out[name] for name in ("identity", "expression", "albedo", "lighting", "pose")}, totals

    def forward(
        self, images: torch.Tensor, masks: torch.Tensor | None = None, valid: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Coefficients of one face per sample (DFMVRNet's contract; ``masks`` is accepted and ignored).

        Returns:
            ``identity (B, K_id)``, ``expression (B, K_exp)``, ``albedo (B, K_tex)`` (confidence-weighted means over
            the valid views), ``lighting (B, V, 27)``, ``pose (B, V, 6)`` (per view).

        Raises:
            ShapeError: bad input (names the argument and the expected shape).
        """
        return self.aggregate(images, valid)[0]
