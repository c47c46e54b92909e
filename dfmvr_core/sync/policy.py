"""The matching rule of the rig synchronizer: which queued frames form one instant.

Pure functions on integer nanosecond stamps; :class:`~dfmvr_core.sync.synchronizer.RigSynchronizer` owns
the queues and calls them. All cameras of the rig are assumed to run at one nominal rate (period ``P``).

The rule for the oldest pending instant:

1. **Pivot**: the oldest queued frame over all cameras (ties: the camera listed first).
2. **Window**: every other camera offers its oldest queued frame if it lies in ``[pivot, pivot + slop]``;
   the pivot is the oldest frame of all, so the offered frames are within ``slop`` of each other.
3. **Nearest instant (look-ahead by one period)**: a member ``m`` whose distance to the other members,
   ``r = max |m - o|``, is larger than its distance to where those members' *next* frames are expected,
   ``r' = max |m - (o + P)|``, belongs to the next instant and is taken out (the one with the largest
   ``r - r'`` first, repeated until no member prefers the next instant). This is what keeps a rig with a
   large slop from pairing frame ``k`` of one camera with frame ``k + 1`` of another after a dropped
   frame: message_filters' Python ``ApproximateTimeSynchronizer`` pairs the first combination within
   ``slop`` and, once shifted, stays shifted. With ``slop <= P/2`` (the default) no member can prefer the
   next instant (``r <= slop <= P/2 <= r'``) and this step never changes the set.

The reference stamp of a set is the median of its members' stamps (the mean of the two middle ones,
rounded down, for an even count): it is robust to one late or early camera and lies between the members,
so consecutive instants are about one period apart whatever the cameras' phase offsets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["reference_stamp", "select_members", "skew"]


def reference_stamp(stamps: Sequence[int]) -> int:
    """Median of ``stamps`` in ns (the lower-rounded mean of the two middle values for an even count).

    Raises:
        ValueError: ``stamps`` is empty.
    """
    if not stamps:
        raise ValueError("reference_stamp: expected at least one stamp")
    ordered = sorted(stamps)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) // 2


def skew(stamps: Sequence[int]) -> int:
    """``max - min`` of ``stamps`` in ns (0 for one stamp)."""
    return max(stamps) - min(stamps) if stamps else 0


def select_members(heads: Mapping[str, int], pivot: str, slop_ns: int, period_ns: int) -> dict[str, int]:
    """Members of the instant anchored at ``pivot`` (see the module docstring for the rule).

    Args:
        heads: for every camera with a queued frame, the stamp (ns) of its oldest queued frame; the
            pivot's stamp must be the smallest. Iteration order is the tie-break order (camera order).
        pivot: the camera whose head is the pivot; it is always a member.
        slop_ns: the largest allowed spread of the set, ns (> 0).
        period_ns: the nominal frame period, ns (> 0).

    Returns:
        ``{camera: stamp}`` of the members, in the iteration order of ``heads``; cameras without a member
        are absent.
    """
    t0 = heads[pivot]
    members = {cam: stamp for cam, stamp in heads.items() if cam == pivot or 0 <= stamp - t0 <= slop_ns}
    while len(members) > 1:
        leaving, best_gain = None, 0
        for cam, stamp in members.items():
            if cam == pivot:
                continue
            others = [other for name, other in members.items() if name != cam]
            here = max(abs(stamp - other) for other in others)
            next_instant = max(abs(stamp - (other + period_ns)) for other in others)
            if here - next_instant > best_gain:
                leaving, best_gain = cam, here - next_instant
        if leaving is None:
            break
        del members[leaving]
    return members
