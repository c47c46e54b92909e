"""Small checks with error messages that name the argument, the expected shape and what was received.

Shape specs are tuples whose items are ints (exact size), ``None`` (any size) or strings (named sizes that
must agree across the dims of one call, e.g. ``("B", "N", 3)``). A leading ``...`` allows any number of
batch dims.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dfmvr_core.errors import ModelFileError, ShapeError

ShapeSpec = Sequence[Any]


def _format_spec(spec: ShapeSpec) -> str:
    parts = ["..." if s is Ellipsis else ("*" if s is None else str(s)) for s in spec]
    return "(" + ", ".join(parts) + ")"


def check_shape(name: str, value: torch.Tensor | np.ndarray, spec: ShapeSpec) -> dict[str, int]:
    """Check ``value.shape`` against ``spec`` and return the sizes bound to named dims.

    Raises:
        ShapeError: naming ``name``, the expected spec and the received shape.
    """
    shape = tuple(value.shape)
    spec = tuple(spec)
    if spec and spec[0] is Ellipsis:
        tail = spec[1:]
        ok_rank = len(shape) >= len(tail)
        dims = shape[len(shape) - len(tail) :] if ok_rank else ()
    else:
        tail = spec
        ok_rank = len(shape) == len(tail)
        dims = shape
    bound: dict[str, int] = {}
    ok = ok_rank
    if ok:
        for expected, got in zip(tail, dims, strict=True):
            if expected is None:
                continue
            if isinstance(expected, str):
                if bound.setdefault(expected, got) != got:
                    ok = False
                    break
            elif expected != got:
                ok = False
                break
    if not ok:
        raise ShapeError(f"{name}: expected shape {_format_spec(spec)}, got {shape}")
    return bound


def check_finite(name: str, value: torch.Tensor | np.ndarray) -> None:
    """Raise :class:`ShapeError` if ``value`` holds NaN or ±inf, saying how many entries are bad."""
    if isinstance(value, torch.Tensor):
        bad = int((~torch.isfinite(value)).sum().item()) if value.is_floating_point() else 0
    else:
        arr = np.asarray(value)
        bad = int((~np.isfinite(arr)).sum()) if arr.dtype.kind in "fc" else 0
    if bad:
        raise ShapeError(f"{name}: {bad} non-finite value(s) (NaN or inf); expected finite numbers")


def check_same_batch(**tensors: torch.Tensor) -> int:
    """All tensors must share the first dim; return it. Names come from the keyword arguments."""
    sizes = {name: t.shape[0] for name, t in tensors.items()}
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{k}={v}" for k, v in sizes.items())
        raise ShapeError(f"batch sizes disagree: {listing}; expected one batch size B for all")
    return next(iter(sizes.values()))


def short_listing(items: list[str], limit: int = 5) -> str:
    """``a, b, c, d, e (+3 more)``: the first ``limit`` items of a list for an error message."""
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def check_state_dict(
    origin: str,
    state: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    *,
    what: str,
    compare_dtype: bool = False,
    optional_suffixes: tuple[str, ...] = (),
) -> None:
    """Validate a loaded ``state_dict`` against the one a freshly built module expects, before loading it.

    Args:
        origin: the file (named in the message).
        state: the loaded tensors.
        expected: ``module.state_dict()`` of the module it is meant for.
        what: what the file should be, for the message (e.g. "a BiSeNet checkpoint").
        compare_dtype: also require equal dtypes.
        optional_suffixes: expected keys ending like this may be absent (e.g. ``num_batches_tracked``).

    Raises:
        ModelFileError: listing missing, unexpected and mismatched keys, or tensors holding NaN/inf.
    """
    missing = [k for k in expected if k not in state and not k.endswith(optional_suffixes or ("\0",))]
    unexpected = [k for k in state if k not in expected]

    def differs(a: torch.Tensor, b: torch.Tensor) -> bool:
        return a.shape != b.shape or (compare_dtype and a.dtype != b.dtype)

    mismatched = [
        f"{k} {tuple(state[k].shape)}{f' {state[k].dtype}' if compare_dtype else ''} "
        f"(expected {tuple(v.shape)}{f' {v.dtype}' if compare_dtype else ''})"
        for k, v in expected.items()
        if k in state and differs(state[k], v)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {short_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {short_listing(unexpected)}")
    if mismatched:
        kind = "shape/dtype" if compare_dtype else "shape"
        problems.append(f"{len(mismatched)} {kind} mismatch(es): {short_listing(mismatched)}")
    if problems:
        raise ModelFileError(f"{origin}: not {what}; " + "; ".join(problems))
    non_finite = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if non_finite:
        raise ModelFileError(f"{origin}: tensors holding NaN or inf values: {short_listing(non_finite)}")


def load_weights_only(path: str | Path, what: str, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with errors that name the file and say what went wrong.

    Checkpoints, training states and parser weights are untrusted input: a weights-only load runs no code.

    Args:
        path: the file.
        what: what the file should be, for the messages (e.g. ``"checkpoint"``, ``"training state"``).
        map_location: passed to ``torch.load``.

    Raises:
        ModelFileError: missing file (or a folder), not a PyTorch file / holds Python objects a weights-only load
            refuses, or a truncated/corrupt archive.
    """
    import pickle

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: {what} not found" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise ModelFileError(
            f"{path}: cannot read {what}: not a PyTorch file, or it holds Python objects that a weights-only load "
            f"refuses ({first})"
        ) from None
    except Exception as exc:  # RuntimeError, EOFError, ... for truncated or corrupt zip archives
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise ModelFileError(
            f"{path}: cannot read {what}, file truncated or corrupt ({type(exc).__name__}: {first})"
        ) from None
