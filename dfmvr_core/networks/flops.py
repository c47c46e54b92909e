"""Count the multiply-accumulates of a forward pass with forward hooks; FLOPs = 2 × MACs.

Counted layers (bias additions, BatchNorm, activations, pooling and element-wise ops are not counted, the usual
convention of papers reporting GFLOPs):

* ``nn.Conv2d``: ``output elements × in_channels / groups × kh × kw``;
* ``nn.ConvTranspose2d``: ``input elements × out_channels / groups × kh × kw``;
* ``nn.Linear``: ``output elements × in_features``;
* :class:`~dfmvr_core.networks.involution.Involution2d`: its aggregation, ``output elements × K²`` (one
  multiply-add per tap per output value); its kernel-generating 1×1 convs are ``nn.Conv2d`` children and are
  counted by the rule above.

Counts are for the whole batch given; pass one sample (one triplet) to get per-sample numbers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dfmvr_core.networks.involution import Involution2d

__all__ = ["FlopCount", "count_flops", "count_parameters"]


def _conv_macs(module: nn.Conv2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    kh, kw = module.kernel_size
    return output.numel() * (module.in_channels // module.groups) * kh * kw


def _conv_transpose_macs(module: nn.ConvTranspose2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    kh, kw = module.kernel_size
    return inputs[0].numel() * (module.out_channels // module.groups) * kh * kw


def _linear_macs(module: nn.Linear, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    return output.numel() * module.in_features


def _involution_macs(module: Involution2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    return output.numel() * module.kernel_size * module.kernel_size


RULES: dict[type[nn.Module], Callable[[Any, tuple[torch.Tensor, ...], torch.Tensor], int]] = {
    nn.Conv2d: _conv_macs,
    nn.ConvTranspose2d: _conv_transpose_macs,
    nn.Linear: _linear_macs,
    Involution2d: _involution_macs,
}
"""MAC rule per layer type (exact type match)."""


@dataclass
class FlopCount:
    """Result of :func:`count_flops`.

    Attributes:
        macs: total multiply-accumulates.
        by_module: MACs per top-level child of the counted module (e.g. ``fusion``, ``regressor``, ``heads``).
        by_type: MACs per layer type name.
    """

    macs: int = 0
    by_module: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    by_type: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def flops(self) -> int:
        """``2 × macs``."""
        return 2 * self.macs

    @property
    def gflops(self) -> float:
        """``flops / 1e9``."""
        return self.flops / 1e9


def count_flops(model: nn.Module, *args: Any, **kwargs: Any) -> FlopCount:
    """Run ``model(*args, **kwargs)`` under ``torch.no_grad`` with counting hooks and return the counts.

    The model's train/eval mode is left as it is (BatchNorm in train mode updates its running statistics).
    """
    result = FlopCount()
    handles = []
    for name, module in model.named_modules():
        rule = RULES.get(type(module))
        if rule is None:
            continue
        top = name.split(".", 1)[0] if name else type(model).__name__

        def hook(mod: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor, rule=rule, top=top) -> None:
            macs = int(rule(mod, inputs, output))
            result.macs += macs
            result.by_module[top] += macs
            result.by_type[type(mod).__name__] += macs

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(*args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    result.by_module = dict(result.by_module)
    result.by_type = dict(result.by_type)
    return result


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements of ``model`` (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
