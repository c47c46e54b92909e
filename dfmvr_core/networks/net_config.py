"""Configuration of the DF-MVR network: fusion network, regressor, mask input, view dropout.

:class:`NetworkConfig` is a frozen, validated dataclass (errors are :class:`~dfmvr_core.errors.ConfigError` naming
the field). Two named configurations ship with the package and as commented YAML in ``config/networks/``:

* ``paper`` — DF-MVR as published (paper sections III-C/D, V-A): a Tri-UNet with encoder widths
  64-128-256-512-1024 and attention-gated skips fusing three 224×224 views (RGB + 1-channel face-mask label) into a
  224×224×64 map, regressed by RedNet-50. Measured with :func:`dfmvr_core.networks.flops.count_flops` (one triplet
  of 224×224 views, BFM sizes 80/64/80): **168.0 GFLOPs** (MACs × 2; Tri-UNet 162.3, RedNet-50 5.7) and
  **94.4 M parameters** (Tri-UNet 80.2 M, RedNet-50 13.5 M, heads 0.66 M). The authors' code, which feeds the
  256-channel concatenation to RedNet without the final double conv, would be ≈ 151 GFLOPs.
* ``small`` — a CPU variant for the ROS node: the same architecture with the images and masks reduced 2× (112×112)
  before fusion, encoder widths 16-32-64-128-256, a 32-channel fused map and RedNet-50 at half width. Measured the
  same way: **3.36 GFLOPs** (Tri-UNet 2.97, RedNet 0.38) and **8.76 M parameters** (Tri-UNet 5.04 M, RedNet 3.39 M,
  heads 0.33 M; ICT sizes 100/53/60 change only the heads). CPU latency with ``torch.set_num_threads(2)``, eval,
  batch 1: ≈ 115–130 ms per triplet (fusion ≈ 55 ms, RedNet ≈ 52 ms: its involutions are slow on CPU), measured on
  a 2-core machine shared with other jobs.

Ablation costs (same measurement, BFM sizes): paper v1 41.0 GFLOPs / 14.5 M, v2 81.7 / 45.6 M, v3 175.2 / 104.6 M,
v4 167.8 / 94.4 M; small v1 0.99 / 3.75 M, v2 1.89 / 5.70 M, v3 3.81 / 11.3 M, v4 3.35 / 8.76 M.

The paper's ablations (Table IV) that concern the network are switches of this config, see
:func:`ablation_config`: v1 plain CNN instead of the Tri-UNet, v2 one U-Net on the channel-concatenated views, v3
ResNet-50 instead of RedNet-50, v4 no face-mask input. (v5 removes a loss term and is a training option.)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from dfmvr_core.config import load_yaml
from dfmvr_core.errors import ConfigError
from dfmvr_core.morphable.parts import NUM_FACE_PARTS
from dfmvr_core.networks.rednet import REDNET_DEPTHS as _REDNET_DEPTHS
from dfmvr_core.networks.resnet import RESNET_DEPTHS as _RESNET_DEPTHS

__all__ = [
    "ABLATIONS",
    "FUSIONS",
    "MASK_INPUTS",
    "NAMED_CONFIGS",
    "PAPER_CONFIG",
    "REGRESSORS",
    "SMALL_CONFIG",
    "NetworkConfig",
    "ViewDropoutConfig",
    "ablation_config",
    "load_network_config",
]

FUSIONS = ("tri_unet", "single_unet", "concat_cnn")
"""``tri_unet``: paper (one encoder per view, one shared decoder); ``single_unet``: ablation v2 (one U-Net on the
views concatenated along channels); ``concat_cnn``: ablation v1 (per-view plain conv stacks concatenated at the end).
"""

REGRESSORS = ("rednet", "resnet", "cnn")
"""``rednet``: paper (RedNet, involution); ``resnet``: ablation v3; ``cnn``: a plain strided-conv regressor."""

MASK_INPUTS = ("label", "one_hot", "none")
LIGHTINGS = ("per_view", "shared")
FUSION_OUTPUTS = ("projected", "concat")
"""``label``: paper/authors' code (the face-part label map as one extra channel, scaled to [0, 1]); ``one_hot``: one
channel per face part (10); ``none``: ablation v4 (RGB only)."""

REDNET_DEPTHS = tuple(_REDNET_DEPTHS)
RESNET_DEPTHS = tuple(_RESNET_DEPTHS)

ABLATIONS = {
    "v1": "plain CNN fusion (per-view conv stacks, features concatenated at the end) instead of the Tri-UNet",
    "v2": "one U-Net on the three views concatenated along channels instead of the Tri-UNet",
    "v3": "ResNet instead of RedNet as the regressor (same depth)",
    "v4": "no face-mask input (RGB only)",
}
"""Network ablations of the paper's Table IV (v5 drops the 3D landmark loss: a training switch; v6 is the full
model, i.e. the base config)."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class ViewDropoutConfig:
    """Training-time view dropout (paper V-C, Fig. 8), used by :func:`dfmvr_core.networks.dfmvr_net.view_dropout`.

    The paper draws one of four inputs per sample: all views (P'_a) with probability 2/3, otherwise exactly one of
    left only (P_l), front only (P_f) or right only (P_r) with 1/9 each; the dropped views become black images
    (and, here, empty masks). ``p_pairs`` optionally moves probability mass to the two-view subsets (not in the
    paper, default 0); the singles share ``1 - p_all_views - p_pairs`` equally.

    Attributes:
        p_all_views: probability of keeping every view, in [0, 1] (paper 2/3).
        p_pairs: total probability of the two-view subsets (shared equally among them), in [0, 1]; only used
            with 3 or more views (with fewer, the groups that do not exist are dropped and the rest renormalised).
    """

    p_all_views: float = 2.0 / 3.0
    p_pairs: float = 0.0

    def __post_init__(self) -> None:
        for name in ("p_all_views", "p_pairs"):
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"{name}: expected a probability in [0, 1], got {value!r}")
        if self.p_all_views + self.p_pairs > 1.0 + 1e-9:
            raise ConfigError(
                f"p_pairs: p_all_views + p_pairs must be at most 1, got {self.p_all_views} + {self.p_pairs}"
            )


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture of :class:`~dfmvr_core.networks.dfmvr_net.DFMVRNet`.

    Attributes:
        name: identifier written to checkpoints and logs.
        encoder_channels: output channels of each U-Net level (double conv), finest first; one max-pool between
            consecutive levels, so ``len - 1`` poolings (paper (64, 128, 256, 512, 1024)).
        fused_channels: channels of the fused feature map fed to the regressor (paper 64).
        regressor: ``"rednet"`` (paper), ``"resnet"`` (ablation v3) or ``"cnn"`` (plain strided convs).
        regressor_depth: RedNet depth in (26, 38, 50, 101, 152) or ResNet depth in (18, 34, 50, 101, 152)
            (paper 50); ignored by ``"cnn"``.
        regressor_width: channel width multiplier of the regressor, > 0 (paper 1.0).
        fusion: ``"tri_unet"`` (paper), ``"single_unet"`` (ablation v2) or ``"concat_cnn"`` (ablation v1).
        mask_input: ``"label"`` (paper: 1 channel), ``"one_hot"`` (10 channels) or ``"none"`` (ablation v4).
        attention_gates: gate the skip connections with Attention-U-Net gates (paper True); False concatenates
            the encoder features directly.
        views: number of views ``V`` (paper 3: left, front, right).
        view_dropout: training-time view dropout (paper V-C).
        input_size: side ``S`` of the square images and masks the network accepts (paper 224).
        input_downsample: integer factor the images and masks are reduced by before fusion (paper 1; ``small``
            uses 2): RGB and one-hot masks by area averaging, label masks by sampling the centre pixel of each
            block. ``input_size / input_downsample`` must be a multiple of ``2 ** (len(encoder_channels) - 1)``.
        lighting: ``"per_view"`` (dfmvr and the paper's multi-view rendering: each camera frame gets its own
            27 SH values) or ``"shared"`` (the authors' code: one 27-value lighting for all views; the heads
            still return ``(B, V, 27)``, the same values repeated).
        fusion_output: ``"projected"`` (paper III-C: the decoder ends with a double conv to a
            224×224×``fused_channels`` map) or ``"concat"`` (the authors' code: the decoder stops at its last
            concatenation, ``(1 + views) · encoder_channels[0]`` channels; ``tri_unet`` only).
    """

    name: str
    encoder_channels: tuple[int, ...]
    fused_channels: int
    regressor: str = "rednet"
    regressor_depth: int = 50
    regressor_width: float = 1.0
    fusion: str = "tri_unet"
    mask_input: str = "label"
    attention_gates: bool = True
    views: int = 3
    view_dropout: ViewDropoutConfig = field(default_factory=ViewDropoutConfig)
    input_size: int = 224
    input_downsample: int = 1
    lighting: str = "per_view"
    fusion_output: str = "projected"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"name: expected a non-empty string, got {self.name!r}")
        channels = self.encoder_channels
        if not isinstance(channels, tuple) or len(channels) < 2 or not all(_is_int(c) and c >= 1 for c in channels):
            raise ConfigError(
                "encoder_channels: expected a tuple of at least 2 positive ints (one per U-Net level), "
                f"got {channels!r}"
            )
        if not _is_int(self.fused_channels) or self.fused_channels < 1:
            raise ConfigError(f"fused_channels: expected a positive int, got {self.fused_channels!r}")
        if self.regressor not in REGRESSORS:
            raise ConfigError(f"regressor: expected one of {REGRESSORS}, got {self.regressor!r}")
        depths = {"rednet": REDNET_DEPTHS, "resnet": RESNET_DEPTHS}.get(self.regressor)
        if not _is_int(self.regressor_depth) or (depths is not None and self.regressor_depth not in depths):
            raise ConfigError(
                f"regressor_depth: expected one of {depths or 'any int'} for regressor {self.regressor!r}, "
                f"got {self.regressor_depth!r}"
            )
        if not _is_number(self.regressor_width) or not 0.0 < float(self.regressor_width) <= 8.0:
            raise ConfigError(f"regressor_width: expected a number in (0, 8], got {self.regressor_width!r}")
        if self.fusion not in FUSIONS:
            raise ConfigError(f"fusion: expected one of {FUSIONS}, got {self.fusion!r}")
        if self.mask_input not in MASK_INPUTS:
            raise ConfigError(f"mask_input: expected one of {MASK_INPUTS}, got {self.mask_input!r}")
        if not isinstance(self.attention_gates, bool):
            raise ConfigError(f"attention_gates: expected true or false, got {self.attention_gates!r}")
        if not _is_int(self.views) or not 1 <= self.views <= 16:
            raise ConfigError(f"views: expected an int in [1, 16], got {self.views!r}")
        if not isinstance(self.view_dropout, ViewDropoutConfig):
            raise ConfigError(f"view_dropout: expected a ViewDropoutConfig, got {type(self.view_dropout).__name__}")
        if self.lighting not in LIGHTINGS:
            raise ConfigError(f"lighting: expected one of {LIGHTINGS}, got {self.lighting!r}")
        if self.fusion_output not in FUSION_OUTPUTS:
            raise ConfigError(f"fusion_output: expected one of {FUSION_OUTPUTS}, got {self.fusion_output!r}")
        if self.fusion_output == "concat" and self.fusion != "tri_unet":
            raise ConfigError(
                f"fusion_output: 'concat' (the authors' code) applies to fusion 'tri_unet' only, "
                f"got fusion {self.fusion!r}"
            )
        if not _is_int(self.input_downsample) or not 1 <= self.input_downsample <= 8:
            raise ConfigError(f"input_downsample: expected an int in [1, 8], got {self.input_downsample!r}")
        if not _is_int(self.input_size) or self.input_size < 1:
            raise ConfigError(f"input_size: expected a positive int, got {self.input_size!r}")
        multiple = self.input_downsample * 2 ** (len(channels) - 1)
        if self.input_size % multiple != 0:
            raise ConfigError(
                f"input_size: expected a multiple of input_downsample * 2**(levels - 1) = {multiple} "
                f"({len(channels)} encoder levels), got {self.input_size}"
            )

    @property
    def mask_channels(self) -> int:
        """Mask channels per view: 1 (``label``), 10 (``one_hot``) or 0 (``none``)."""
        return {"label": 1, "one_hot": NUM_FACE_PARTS, "none": 0}[self.mask_input]

    @property
    def view_in_channels(self) -> int:
        """Input channels per view: 3 (RGB) + :attr:`mask_channels`."""
        return 3 + self.mask_channels

    @property
    def regressor_in_channels(self) -> int:
        """Channels of the fused map the regressor sees: ``fused_channels`` (paper), or with
        ``fusion_output: concat`` the decoder's last concatenation ``(1 + views) · encoder_channels[0]``."""
        if self.fusion_output == "concat":
            return (1 + self.views) * self.encoder_channels[0]
        return self.fused_channels

    @property
    def fusion_size(self) -> int:
        """Side of the images entering the fusion network and of the fused map: ``input_size / input_downsample``."""
        return self.input_size // self.input_downsample


PAPER_CONFIG = NetworkConfig(
    name="paper",
    encoder_channels=(64, 128, 256, 512, 1024),
    fused_channels=64,
    regressor="rednet",
    regressor_depth=50,
    regressor_width=1.0,
    fusion="tri_unet",
    mask_input="label",
    attention_gates=True,
    views=3,
    view_dropout=ViewDropoutConfig(p_all_views=2.0 / 3.0, p_pairs=0.0),
    input_size=224,
    input_downsample=1,
)
"""DF-MVR as published; see the module docstring for its measured cost."""

SMALL_CONFIG = NetworkConfig(
    name="small",
    encoder_channels=(16, 32, 64, 128, 256),
    fused_channels=32,
    regressor="rednet",
    regressor_depth=50,
    regressor_width=0.5,
    fusion="tri_unet",
    mask_input="label",
    attention_gates=True,
    views=3,
    view_dropout=ViewDropoutConfig(p_all_views=2.0 / 3.0, p_pairs=0.0),
    input_size=224,
    input_downsample=2,
)
"""CPU variant (≤ 12 GFLOPs, ≤ 15 M parameters); see the module docstring for its measured cost."""

NAMED_CONFIGS: dict[str, NetworkConfig] = {"paper": PAPER_CONFIG, "small": SMALL_CONFIG}


def load_network_config(name_or_path: str | Path) -> NetworkConfig:
    """A named config (``"paper"``, ``"small"``) or one loaded from a YAML file's top-level ``network`` section.

    Raises:
        ConfigError: unknown name and no such file, invalid YAML, or an invalid field (named with the file).
    """
    if isinstance(name_or_path, str) and name_or_path in NAMED_CONFIGS:
        return NAMED_CONFIGS[name_or_path]
    path = Path(name_or_path)
    if not path.is_file() and path.suffix.lower() not in (".yaml", ".yml"):
        raise ConfigError(
            f"network config {str(name_or_path)!r}: not a named config {sorted(NAMED_CONFIGS)} and no such YAML file"
        )
    return load_yaml(NetworkConfig, path, section="network")


def ablation_config(base: NetworkConfig, ablation: str) -> NetworkConfig:
    """``base`` with one network ablation of the paper's Table IV applied (see :data:`ABLATIONS`).

    ``"v1"``: ``fusion="concat_cnn"``; ``"v2"``: ``fusion="single_unet"``; ``"v3"``: ``regressor="resnet"`` (same
    depth if ResNet has it, else 50); ``"v4"``: ``mask_input="none"``; ``"v6"`` (the full model): ``base``. The name
    becomes ``f"{base.name}-{ablation}"``.

    Raises:
        ConfigError: any other ablation name (``"v5"`` is a loss ablation, not a network one).
    """
    if ablation == "v6":
        return base
    name = f"{base.name}-{ablation}"
    if ablation == "v1":
        return dataclasses.replace(base, name=name, fusion="concat_cnn")
    if ablation == "v2":
        return dataclasses.replace(base, name=name, fusion="single_unet")
    if ablation == "v3":
        depth = base.regressor_depth if base.regressor_depth in RESNET_DEPTHS else 50
        return dataclasses.replace(base, name=name, regressor="resnet", regressor_depth=depth)
    if ablation == "v4":
        return dataclasses.replace(base, name=name, mask_input="none")
    hint = " (v5 removes the 3D landmark loss: a training option, not a network change)" if ablation == "v5" else ""
    raise ConfigError(f"ablation: expected one of {sorted([*ABLATIONS, 'v6'])}, got {ablation!r}{hint}")
