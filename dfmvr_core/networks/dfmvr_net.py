"""DF-MVR's reconstruction network: multi-view images + face masks → 3DMM, lighting and pose coefficients.

Pipeline (paper Fig. 1 (b)-(c), sections III-C/D): each view's RGB image is concatenated with its face mask (the
face parse net runs beforehand, outside this module), the views are fused into one feature map by the Tri-UNet
(:mod:`dfmvr_core.networks.tri_unet`), a regressor (RedNet-50 in the paper) pools it into one feature vector, and
linear heads (:mod:`dfmvr_core.networks.heads`) output the coefficients.

Inputs of :meth:`DFMVRNet.forward`:

* ``images`` ``(B, V, 3, S, S)`` float RGB in [0, 1], views in rig order (left, front, right), ``S =
  config.input_size``. The network maps them to [-1, 1] (as the authors' code does).
* ``masks`` ``(B, V, S, S)`` integer face-part labels 0..9 (:class:`~dfmvr_core.morphable.parts.FacePart`: 0
  background, 1 skin, 2/3 brows, 4/5 eyes, 6 nose, 7 mouth, 8/9 lips); ``None`` only when ``config.mask_input ==
  "none"`` (ignored then). ``"label"`` feeds them as one channel ``label / 9`` (the authors feed the raw 0..9
  values; the scale only matters for optimisation), ``"one_hot"`` as 10 indicator channels.
* ``valid`` ``(B, V)`` bool or ``None`` (all valid). **Invalid views are replaced inside the network by a black
  image and an empty (all-background) mask**, exactly the input the paper's view dropout trains with (section V-C,
  Fig. 8: "None means a black image"), so the node can run with one or two cameras and an invalid view's pixels
  (even NaN) never reach the output. Only valid views are checked for NaN / range / labels.

Outputs: dict ``identity (B, K_id)``, ``expression (B, K_exp)``, ``albedo (B, K_tex)``, ``lighting (B, V, 27)``,
``pose (B, V, 6)`` (3 Euler angles in radians + 3 translation values in metres; see
:func:`dfmvr_core.geometry.pose.euler_pose_to_camera`). Sizes come from the morphable model's
:class:`~dfmvr_core.morphable.model.CoefficientSizes`.

For export, :meth:`DFMVRNet.forward_flat` returns one ``(B, total)`` tensor in the order of :data:`FLAT_ORDER`:
``identity | expression | albedo | lighting (view-major, V × 27) | pose (view-major, V × 6)``, ``total =
sizes.total(V)``; :func:`split_flat` inverts it. Data-dependent checks (NaN, value ranges) are skipped while tracing
or compiling (so the module exports) and on the ``meta`` device (shape-only FLOP counting); shape checks stay.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.morphable.parts import NUM_FACE_PARTS
from dfmvr_core.networks.heads import CoefficientHeads
from dfmvr_core.networks.net_config import NetworkConfig, ViewDropoutConfig
from dfmvr_core.networks.rednet import RedNet
from dfmvr_core.networks.resnet import ResNet
from dfmvr_core.networks.tri_unet import build_fusion
from dfmvr_core.validation import check_shape

__all__ = [
    "FLAT_ORDER",
    "DFMVRNet",
    "PlainCNNRegressor",
    "build_regressor",
    "flat_layout",
    "split_flat",
    "view_dropout",
    "view_dropout_patterns",
]

FLAT_ORDER = ("identity", "expression", "albedo", "lighting", "pose")
"""Order of the groups in :meth:`DFMVRNet.forward_flat`'s output (lighting and pose view-major)."""

IMAGE_RANGE_TOLERANCE = 1e-3
"""Valid images may exceed [0, 1] by this much (resampling overshoot) before being refused."""


class PlainCNNRegressor(nn.Module):
    """A plain convolutional regressor (``regressor: cnn``): 5 stages of conv3×3/2 + conv3×3, each BN-ReLU, then
    global average pooling.

    Args:
        in_channels: channels of the fused map.
        width_multiplier: scales the stage widths (32, 64, 128, 256, 512); each at least 8.

    Attributes:
        feature_dim: size of :meth:`forward_features`' output (512 at width 1).
    """

    def __init__(self, in_channels: int, width_multiplier: float = 1.0) -> None:
        super().__init__()
        widths = [max(8, round(w * width_multiplier)) for w in (32, 64, 128, 256, 512)]
        layers: list[nn.Module] = []
        previous = in_channels
        for width in widths:
            for stride in (2, 1):
                layers += [
                    nn.Conv2d(previous, width, 3, stride=stride, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                previous = width
        self.body = nn.Sequential(*layers)
        self.feature_dim = widths[-1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` → ``(B, feature_dim)``."""
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def build_regressor(config: NetworkConfig) -> nn.Module:
    """The regressor named by ``config.regressor``, taking ``config.regressor_in_channels`` input channels and exposing
    ``feature_dim`` and ``forward_features`` (global pooling included).

    RedNet and ResNet are built with ``zero_init_residual=True`` (each block's last BatchNorm starts at γ = 0, so
    every residual block starts as the identity), the setting of the authors' RedNet (mmcls default). Without it an
    untrained RedNet in eval mode overflows to NaN: the involution's kernel is generated from its input, so each
    block roughly squares the activation scale while the BatchNorm running statistics are still the identity.
    """
    if config.regressor == "rednet":
        return RedNet(
            config.regressor_depth, config.regressor_in_channels, None, config.regressor_width, zero_init_residual=True
        )
    if config.regressor == "resnet":
        return ResNet(
            config.regressor_depth, config.regressor_in_channels, None, config.regressor_width, zero_init_residual=True
        )
    if config.regressor == "cnn":
        return PlainCNNRegressor(config.regressor_in_channels, config.regressor_width)
    raise ConfigError(f"regressor: expected 'rednet', 'resnet' or 'cnn', got {config.regressor!r}")


def flat_layout(sizes: CoefficientSizes, views: int) -> dict[str, tuple[int, int, tuple[int, ...]]]:
    """``{group: (start, stop, shape without batch)}`` of the flat coefficient vector, in :data:`FLAT_ORDER`."""
    shapes = {
        "identity": (sizes.identity,),
        "expression": (sizes.expression,),
        "albedo": (sizes.albedo,),
        "lighting": (views, sizes.lighting),
        "pose": (views, sizes.pose_per_view),
    }
    layout: dict[str, tuple[int, int, tuple[int, ...]]] = {}
    start = 0
    for name in FLAT_ORDER:
        shape = shapes[name]
        stop = start + int(torch.Size(shape).numel())
        layout[name] = (start, stop, shape)
        start = stop
    return layout


def split_flat(flat: torch.Tensor, sizes: CoefficientSizes, views: int) -> dict[str, torch.Tensor]:
    """Inverse of :meth:`DFMVRNet.forward_flat`: ``(B, sizes.total(views))`` → the dict of :meth:`DFMVRNet.forward`.

    Raises:
        ShapeError: ``flat`` is not ``(B, total)``.
    """
    check_shape("flat", flat, (None, sizes.total(views)))
    return {name: flat[:, a:b].reshape(-1, *shape) for name, (a, b, shape) in flat_layout(sizes, views).items()}


def view_dropout_patterns(views: int, config: ViewDropoutConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep-patterns of view dropout and their probabilities.

    Groups: all views (``config.p_all_views``), two-view subsets (``config.p_pairs``, only for ``views >= 3``)
    and single views (the rest); each group's mass is shared equally by its patterns. Groups that do not exist for
    this many views are dropped and the others renormalised (one view: always "all").

    Returns:
        ``(patterns (P, views) bool, probabilities (P,) float64)``, all views first, then pairs, then singles in
        view order.
    """
    if isinstance(views, bool) or not isinstance(views, int) or views < 1:
        raise ConfigError(f"views: expected a positive int, got {views!r}")
    groups: list[tuple[float, list[tuple[int, ...]]]] = [(config.p_all_views, [tuple(range(views))])]
    if views >= 3:
        groups.append((config.p_pairs, list(itertools.combinations(range(views), 2))))
    if views >= 2:
        groups.append((max(0.0, 1.0 - config.p_all_views - config.p_pairs), [(v,) for v in range(views)]))
    total = sum(p for p, _ in groups)
    if total <= 0.0:
        groups, total = [(1.0, [tuple(range(views))])], 1.0
    patterns, probabilities = [], []
    for mass, subsets in groups:
        for subset in subsets:
            row = [False] * views
            for v in subset:
                row[v] = True
            patterns.append(row)
            probabilities.append(mass / total / len(subsets))
    return torch.tensor(patterns, dtype=torch.bool), torch.tensor(probabilities, dtype=torch.float64)


def view_dropout(
    valid: torch.Tensor, generator: torch.Generator | None = None, config: ViewDropoutConfig | None = None
) -> torch.Tensor:
    """Training-time view dropout (paper V-C, Fig. 8): per sample, keep all views or a random subset.

    The paper's scheme (default ``config``): all views (P'_a) with probability 2/3, else exactly one view — left
    (P_l), front (P_f) or right (P_r) — with 1/9 each; dropped views are fed as black images, which
    :meth:`DFMVRNet.forward` does for every view marked invalid. Pairs are optional (``config.p_pairs``).

    Args:
        valid: ``(B, V)`` bool, the views actually available.
        generator: CPU random generator (for reproducible draws); ``None`` uses the global one.
        config: probabilities; default :class:`ViewDropoutConfig` (the paper's).

    Returns:
        ``(B, V)`` bool on ``valid``'s device: ``valid & drawn pattern``; a sample whose draw would keep no valid
        view keeps ``valid`` unchanged.

    Raises:
        ShapeError: ``valid`` is not a ``(B, V)`` bool tensor.
    """
    config = ViewDropoutConfig() if config is None else config
    if not isinstance(valid, torch.Tensor) or valid.dtype != torch.bool:
        raise ShapeError(f"valid: expected a (B, V) bool tensor, got {getattr(valid, 'dtype', type(valid).__name__)}")
    check_shape("valid", valid, ("B", "V"))
    b, v = valid.shape
    patterns, probabilities = view_dropout_patterns(v, config)
    index = torch.multinomial(probabilities, b, replacement=True, generator=generator) if b else torch.zeros(0).long()
    kept = valid & patterns[index].to(valid.device)
    empty = ~kept.any(dim=1, keepdim=True)
    return torch.where(empty, valid, kept)


def _check_same_batch(images: torch.Tensor, name: str, other: torch.Tensor) -> None:
    """Like :func:`dfmvr_core.validation.check_same_batch`, but with plain ints so that it also traces."""
    if int(images.shape[0]) != int(other.shape[0]):
        raise ShapeError(
            f"batch sizes disagree: images={int(images.shape[0])}, {name}={int(other.shape[0])}; "
            "expected one batch size B for all"
        )


def _value_checks_enabled(tensor: torch.Tensor) -> bool:
    """False while tracing / exporting / compiling / capturing a CUDA graph (data-dependent Python checks cannot be
    traced or captured) and for ``meta`` tensors (shape-only runs, e.g. FLOP counting without computing)."""
    if tensor.device.type == "meta":
        return False
    if tensor.is_cuda and torch.cuda.is_current_stream_capturing():
        return False
    return not (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling())


def check_input_values(
    images: torch.Tensor, masks: torch.Tensor | None, valid: torch.Tensor, views: int, size: int
) -> None:
    """NaN/inf, RGB range and label range of the valid views (one min/max pass per tensor, one sync).

    Args:
        images: ``(B, V, 3, S, S)`` float RGB; masks: ``(B, V, S, S)`` int labels or None; valid: ``(B, V)`` bool.
        views, size: ``V`` and ``S`` for the messages.

    Raises:
        ShapeError: NaN/inf or RGB outside [0, 1] (± :data:`IMAGE_RANGE_TOLERANCE`), or labels outside the face parts,
            in a valid view; invalid views may hold anything.
    """
    v, s = views, size
    lo, hi = images.flatten(2).aminmax(dim=2)  # (B, V); NaN propagates
    lo, hi = lo[valid], hi[valid]
    # Written so that NaN fails the test (comparisons with NaN are False).
    if lo.numel() and not bool(((lo >= -IMAGE_RANGE_TOLERANCE) & (hi <= 1.0 + IMAGE_RANGE_TOLERANCE)).all()):
        used = images[valid]
        bad = int((~torch.isfinite(used)).sum())
        if bad:
            raise ShapeError(
                f"images: {bad} non-finite value(s) (NaN or inf) in valid views; expected finite RGB in [0, 1] "
                f"(B, {v}, 3, {s}, {s})"
            )
        raise ShapeError(
            f"images: expected RGB in [0, 1] (B, {v}, 3, {s}, {s}), got values in "
            f"[{float(used.min()):.4g}, {float(used.max()):.4g}] (0..255 data must be divided by 255)"
        )
    if masks is not None:
        lo, hi = masks.flatten(2).aminmax(dim=2)
        lo, hi = lo[valid], hi[valid]
        if lo.numel() and (int(lo.min()) < 0 or int(hi.max()) >= NUM_FACE_PARTS):
            raise ShapeError(
                f"masks: expected face-part labels in 0..{NUM_FACE_PARTS - 1} (B, {v}, {s}, {s}), "
                f"got values in [{int(lo.min())}, {int(hi.max())}]"
            )


def check_images_and_valid(images: torch.Tensor, valid: torch.Tensor | None, views: int, size: int) -> torch.Tensor:
    """Check a network's ``images`` (B, views, 3, size, size) float and ``valid`` (B, views) bool inputs (types and
    shapes); returns ``valid``, all True when None. Shared by every reconstruction network's ``forward``.

    Raises:
        ShapeError: naming the argument, the expected and the actual type or shape.
    """
    v, s = views, size
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise ShapeError(
            f"images: expected a float tensor (B, {v}, 3, {s}, {s}) of RGB in [0, 1], "
            f"got {getattr(images, 'dtype', type(images).__name__)}"
        )
    check_shape("images", images, ("B", v, 3, s, s))
    if valid is None:
        return torch.ones(images.shape[:2], dtype=torch.bool, device=images.device)
    if not isinstance(valid, torch.Tensor) or valid.dtype != torch.bool:
        raise ShapeError(f"valid: expected a bool tensor (B, {v}), got {getattr(valid, 'dtype', type(valid).__name__)}")
    check_shape("valid", valid, ("B", v))
    _check_same_batch(images, "valid", valid)
    return valid


class DFMVRNet(nn.Module):
    """DF-MVR reconstruction network (fusion + regressor + heads); see the module docstring for the I/O contract.

    Args:
        config: architecture (:class:`~dfmvr_core.networks.net_config.NetworkConfig`).
        sizes: coefficient sizes of the loaded morphable model (``MorphableModel.coefficient_sizes``).
        expression_kind: ``"pca"`` (BFM: linear) or ``"blendshape"`` (ICT: sigmoid); ``MorphableModel.expression_kind``.

    Raises:
        ConfigError: invalid config, sizes or expression kind.
    """

    def __init__(self, config: NetworkConfig, sizes: CoefficientSizes, expression_kind: str = "pca") -> None:
        super().__init__()
        if not isinstance(config, NetworkConfig):
            raise ConfigError(f"config: expected a NetworkConfig, got {type(config).__name__}")
        self.config = config
        self.sizes = sizes
        self.views = config.views
        self.expression_kind = expression_kind
        self.fusion = build_fusion(
            config.fusion,
            config.view_in_channels,
            config.encoder_channels,
            config.fused_channels,
            config.views,
            config.attention_gates,
            final_conv=config.fusion_output == "projected",
        )
        for module in self.fusion.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        self.regressor = build_regressor(config)
        self.heads = CoefficientHeads(
            self.regressor.feature_dim,
            sizes,
            config.views,
            expression_kind,
            shared_lighting=config.lighting == "shared",
        )
        self.register_buffer("_part_ids", torch.arange(NUM_FACE_PARTS).view(1, 1, NUM_FACE_PARTS, 1, 1), False)

    @property
    def flat_size(self) -> int:
        """Length of :meth:`forward_flat`'s output: ``sizes.total(views)``."""
        return self.sizes.total(self.views)

    def _validate(
        self, images: torch.Tensor, masks: torch.Tensor | None, valid: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        v, s = self.views, self.config.input_size
        valid = check_images_and_valid(images, valid, v, s)
        if self.config.mask_input == "none":
            masks = None
        else:
            if masks is None:
                raise ShapeError(
                    f"masks: required with mask_input={self.config.mask_input!r}: expected an integer tensor "
                    f"(B, {v}, {s}, {s}) of face-part labels 0..{NUM_FACE_PARTS - 1}, got None"
                )
            if not isinstance(masks, torch.Tensor) or masks.is_floating_point() or masks.dtype == torch.bool:
                raise ShapeError(
                    f"masks: expected an integer tensor (B, {v}, {s}, {s}) of face-part labels "
                    f"0..{NUM_FACE_PARTS - 1}, got {getattr(masks, 'dtype', type(masks).__name__)}"
                )
            check_shape("masks", masks, ("B", v, s, s))
            _check_same_batch(images, "masks", masks)
        if _value_checks_enabled(images):
            self._check_values(images, masks, valid)
        return masks, valid

    def _check_values(self, images: torch.Tensor, masks: torch.Tensor | None, valid: torch.Tensor) -> None:
        """NaN/inf, RGB range and label range of the valid views (see :func:`check_input_values`)."""
        check_input_values(images, masks, valid, self.views, self.config.input_size)

    def prepare_inputs(
        self, images: torch.Tensor, masks: torch.Tensor | None = None, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Validated network input ``(B, V, view_in_channels, S', S')``, ``S' = config.fusion_size``.

        Invalid views become a black image and an all-background mask; RGB is mapped to [-1, 1]; label masks to
        ``label / 9``, one-hot masks to 10 indicator channels; then the ``config.input_downsample`` reduction.

        Raises:
            ShapeError: a wrong shape, dtype or batch size, missing masks, NaN/inf or out-of-range values in a
                valid view; the message names the argument and the expected shape.
        """
        masks, valid = self._validate(images, masks, valid)
        b, v, s = images.shape[0], self.views, self.config.input_size
        f = self.config.input_downsample
        n = s // f
        # Reduce first, replace invalid views after (NaN in an invalid view is discarded by the where).
        rgb = F.avg_pool2d(images.reshape(b * v, 3, s, s), f).view(b, v, 3, n, n) if f > 1 else images
        rgb = torch.where(valid.view(b, v, 1, 1, 1), rgb, 0.0) * 2.0 - 1.0  # black image -> -1
        if masks is None:
            return rgb
        keep = valid.view(b, v, 1, 1)
        if self.config.mask_input == "label":
            labels = masks[..., f // 2 :: f, f // 2 :: f] if f > 1 else masks
            labels = torch.where(keep, labels, 0)  # empty mask = background everywhere
            channels = (labels.to(rgb.dtype) * (1.0 / (NUM_FACE_PARTS - 1))).unsqueeze(2)
        else:  # one_hot: indicators at full resolution, then area fractions
            channels = (torch.where(keep, masks, 0).unsqueeze(2) == self._part_ids).to(rgb.dtype)
            if f > 1:
                channels = F.avg_pool2d(channels.view(b * v, NUM_FACE_PARTS, s, s), f).view(b, v, NUM_FACE_PARTS, n, n)
        return torch.cat((rgb, channels), dim=2)

    def fused_features(
        self, images: torch.Tensor, masks: torch.Tensor | None = None, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The fusion network's output ``(B, fused_channels, S', S')`` (paper: 224×224×64)."""
        return self.fusion(self.prepare_inputs(images, masks, valid))

    def forward(
        self, images: torch.Tensor, masks: torch.Tensor | None = None, valid: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Coefficients of one face per sample; see the module docstring for shapes, units and invalid views.

        Raises:
            ShapeError: bad input (names the argument and the expected shape).
        """
        features = self.regressor.forward_features(self.fused_features(images, masks, valid))
        return self.heads(features)

    def forward_flat(
        self, images: torch.Tensor, masks: torch.Tensor | None = None, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """All coefficients as one ``(B, flat_size)`` tensor in :data:`FLAT_ORDER` (for export)."""
        out = self.forward(images, masks, valid)
        return torch.cat([out[name].flatten(1) for name in FLAT_ORDER], dim=1)

    def split_flat(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Inverse of :meth:`forward_flat` (see :func:`split_flat`)."""
        return split_flat(flat, self.sizes, self.views)
