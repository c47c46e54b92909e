"""RigSynchronizer against message_filters' Python ApproximateTimeSynchronizer.

``ReferenceApproximateTimeSynchronizer`` below restates the upstream algorithm (ros2/message_filters,
``src/message_filters/__init__.py``, ``ApproximateTimeSynchronizer.add``) without ROS types:

* the new message goes into its input's queue (a dict stamp -> message; the same stamp replaces), then
  the queue's smallest stamps are deleted while it holds more than ``queue_size`` messages;
* for every *other* input, the queued stamps within ``slop`` of the new stamp (``|delta| <= slop``) are
  listed by increasing ``|delta|`` (stable, in queue insertion order); if one input has none, stop;
* the combinations of those lists are tried in ``itertools.product`` order with the new stamp inserted at
  its input's position; the first whose spread is ``< slop`` and whose stamps are all still queued (the
  new one may have been deleted by the size limit) is emitted and removed from the queues.

Compared here: the upstream test cases of ``test/test_approxsync.py`` (two inputs; pairs; shuffled
sequences with queue sizes 1..9) and random streams where both designs must find the same sets; and the
two documented differences (no shifted pairing after a dropped frame with a large slop; never out of
order), each shown to occur with the reference and not with RigSynchronizer.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dfmvr_core.sync import MatchedSet, RigSynchronizer, RigSynchronizerConfig

NS = 1_000_000_000
RATE_HZ = 30.0
PERIOD_NS = round(NS / RATE_HZ)


class ReferenceApproximateTimeSynchronizer:
    """The upstream Python ApproximateTimeSynchronizer's matching, on integer-ns stamps (see module doc)."""

    def __init__(self, n_inputs: int, queue_size: int, slop_ns: int) -> None:
        self.queues: list[dict[int, Any]] = [{} for _ in range(n_inputs)]
        self.queue_size = queue_size
        self.slop_ns = slop_ns

    def add(self, index: int, stamp: int, msg: Any) -> list[tuple[Any, ...]]:
        queue = self.queues[index]
        queue[stamp] = msg
        while len(queue) > self.queue_size:
            del queue[min(queue)]
        options: list[list[int]] = []
        for j, other in enumerate(self.queues):
            if j == index:
                continue
            near = [(s, abs(s - stamp)) for s in other if abs(s - stamp) <= self.slop_ns]
            if not near:
                return []
            near.sort(key=lambda pair: pair[1])
            options.append([s for s, _ in near])
        for combo in itertools.product(*options):
            stamps = list(combo)
            stamps.insert(index, stamp)
            if max(stamps) - min(stamps) < self.slop_ns and all(
                s in q for s, q in zip(stamps, self.queues, strict=True)
            ):
                return [tuple(q.pop(s) for s, q in zip(stamps, self.queues, strict=True))]
        return []


def _as_tuple(matched: MatchedSet, cameras: Sequence[str]) -> tuple[Any, ...]:
    assert matched.complete
    return tuple(matched.items[c] for c in cameras)


def _assert_time_ordered(sets: Sequence[MatchedSet]) -> None:
    refs = [s.stamp_ns for s in sets]
    assert all(a < b for a, b in itertools.pairwise(refs)), refs


# --------------------------------------------------------------------------- upstream test_approxsync.py


def test_upstream_pairs_queue_size_1_emit_on_the_second_message() -> None:
    """Upstream: queue size 1, slop 0.1 s, pairs at t = 0..9 s; nothing after the first message of a pair,
    exactly that pair after the second."""
    cameras = ("m0", "m1")
    ours = RigSynchronizer(RigSynchronizerConfig(cameras=cameras, slop_s=0.1, expected_rate_hz=1.0, queue_size=1))
    ref = ReferenceApproximateTimeSynchronizer(2, 1, NS // 10)
    for t in range(10):
        msg0, msg1 = ("m0", t, 33), ("m1", t, 34)
        assert ours.add("m0", t * NS, msg0) == [] and ref.add(0, t * NS, msg0) == []
        got = [_as_tuple(s, cameras) for s in ours.add("m1", t * NS, msg1)]
        assert got == ref.add(1, t * NS, msg1) == [(msg0, msg1)]


def test_upstream_shuffled_sequences_queue_sizes_1_to_9() -> None:
    """Upstream: for N = 1..9, queue size N, slop 0.1 s, N messages per input at t = 0..N-1 s, input 0 all
    delivered first in random order, then input 1 in random order: every (t, t) pair comes out. Same
    random calls as upstream (``random.seed(0)``). RigSynchronizer finds the same pairs, in time order; the
    reference emits them in arrival order, which is out of time order for some N."""
    rng = random.Random(0)
    cameras = ("m0", "m1")
    reference_out_of_order = 0
    for n in range(1, 10):
        seq0 = [("m0", t, rng.random()) for t in range(n)]
        seq1 = [("m1", t, rng.random()) for t in range(n)]
        ours = RigSynchronizer(RigSynchronizerConfig(cameras=cameras, slop_s=0.1, expected_rate_hz=1.0, queue_size=n))
        ref = ReferenceApproximateTimeSynchronizer(2, n, NS // 10)
        ours_out: list[MatchedSet] = []
        ref_out: list[tuple[Any, ...]] = []
        for msg in rng.sample(seq0, n):
            ours_out += ours.add("m0", msg[1] * NS, msg)
            ref_out += ref.add(0, msg[1] * NS, msg)
        assert ours_out == [] and ref_out == []
        for msg in rng.sample(seq1, n):
            ours_out += ours.add("m1", msg[1] * NS, msg)
            ref_out += ref.add(1, msg[1] * NS, msg)
        expected = list(zip(seq0, seq1, strict=True))
        assert set(ref_out) == set(expected)  # the upstream assertion
        assert [_as_tuple(s, cameras) for s in ours_out] == expected  # same pairs, in time order
        _assert_time_ordered(ours_out)
        assert ours.stats.dropped == 0 and sum(ours.stats.pending.values()) == 0
        reference_out_of_order += ref_out != sorted(ref_out, key=lambda pair: pair[0][1])
    assert reference_out_of_order > 0  # the documented difference (2) does occur on these cases


# --------------------------------------------------------------------------- random streams, both agree


def _stream(
    rng: random.Random, n_cams: int, n_instants: int, drop_p: float, max_delay_ns: int, spread_ns: int
) -> list[tuple[int, int, int, int]]:
    """Frames ``(arrival_ns, camera index, stamp_ns, instant)`` at 30 Hz, in arrival order. Every stamp is
    within ``spread_ns`` of its instant's nominal time (fixed phase per camera plus jitter)."""
    phases = [rng.randint(-spread_ns // 2, spread_ns // 2) for _ in range(n_cams)]
    base = 1_700_000_000 * NS
    frames = []
    for k in range(n_instants):
        for c in range(n_cams):
            if rng.random() < drop_p:
                continue
            stamp = base + k * PERIOD_NS + phases[c] + rng.randint(-spread_ns // 2, spread_ns // 2)
            frames.append((stamp + rng.randint(0, max_delay_ns), c, stamp, k))
    frames.sort()
    return frames


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_cams=st.sampled_from([2, 3]),
    drop_p=st.sampled_from([0.0, 0.05, 0.2]),
    max_delay_periods=st.sampled_from([0.0, 0.5, 2.0]),
)
def test_same_sets_as_reference_on_random_streams(
    seed: int, n_cams: int, drop_p: float, max_delay_periods: float
) -> None:
    """Where both designs must agree -- slop (P/4) well above the same-instant spread (≤ P/8) and well
    below the gap to other instants, arrival delays (≤ 2 P, frames of one camera may swap) short enough
    for both queues (size 8), random dropped frames -- both emit exactly the instants whose frames all
    arrived; RigSynchronizer emits them in time order (after ``flush`` for the ones still held back)."""
    rng = random.Random(seed)
    cameras = tuple(f"cam{i}" for i in range(n_cams))
    cfg = RigSynchronizerConfig(cameras=cameras, slop_s=1 / (4 * RATE_HZ), expected_rate_hz=RATE_HZ, queue_size=8)
    ours = RigSynchronizer(cfg)
    ref = ReferenceApproximateTimeSynchronizer(n_cams, 8, cfg.slop_ns)
    frames = _stream(rng, n_cams, 90, drop_p, int(max_delay_periods * PERIOD_NS), PERIOD_NS // 16)
    ours_out: list[MatchedSet] = []
    ref_out: list[tuple[Any, ...]] = []
    for _, c, stamp, k in frames:
        msg = (c, k, stamp)
        ours_out += ours.add(cameras[c], stamp, msg)
        ref_out += ref.add(c, stamp, msg)
    ours_out += ours.flush()
    delivered: dict[int, int] = {}
    for _, _, _, k in frames:
        delivered[k] = delivered.get(k, 0) + 1
    complete_instants = sorted(k for k, n in delivered.items() if n == n_cams)
    ours_tuples = [_as_tuple(s, cameras) for s in ours_out]
    assert ours_tuples == sorted(ref_out, key=lambda t: t[0][1])
    assert [t[0][1] for t in ours_tuples] == complete_instants
    _assert_time_ordered(ours_out)


# --------------------------------------------------------------------------- documented differences


def _rig_stream_with_drop(n_instants: int, dropped: int, rng: random.Random) -> list[tuple[str, int, int]]:
    """3 cameras at 30 Hz; right and left stamped 2 ms late, front 2 ms early (±0.2 ms jitter); front
    drops instant ``dropped``; per instant the front frame arrives first. Returns ``(camera, stamp, k)``."""
    offsets = {"front": -2_000_000, "left": 2_000_000, "right": 2_000_000}
    frames = []
    for k in range(n_instants):
        for cam in ("front", "left", "right"):
            if cam == "front" and k == dropped:
                continue
            frames.append((cam, 10 * NS + k * PERIOD_NS + offsets[cam] + rng.randint(-200_000, 200_000), k))
    return frames


def test_large_slop_and_one_dropped_frame_keeps_pairing_same_instant_frames() -> None:
    """Difference (1): slop = 0.9 period and one dropped front frame. The reference pairs front frame
    k + 1 with left/right frame k (spread ≈ P − 4 ms < slop) and stays one frame off for the rest of the
    stream; RigSynchronizer leaves out the dropped instant and keeps pairing same-instant frames."""
    cameras = ("left", "front", "right")
    slop_s = 0.9 / RATE_HZ
    cfg = RigSynchronizerConfig(cameras=cameras, slop_s=slop_s, expected_rate_hz=RATE_HZ)
    ours = RigSynchronizer(cfg)
    ref = ReferenceApproximateTimeSynchronizer(3, cfg.queue_size, cfg.slop_ns)
    frames = _rig_stream_with_drop(40, 20, random.Random(7))
    ours_out: list[MatchedSet] = []
    ref_out: list[tuple[Any, ...]] = []
    for cam, stamp, k in frames:
        ours_out += ours.add(cam, stamp, (cam, k))
        ref_out += ref.add(cameras.index(cam), stamp, (cam, k))

    # The reference: every set after the drop pairs front k + 1 with left/right k.
    after = [t for t in ref_out if t[0][1] >= 20]
    assert len(after) == 19
    assert all(t[1][1] == t[0][1] + 1 == t[2][1] + 1 for t in after)

    # RigSynchronizer: every instant but the dropped one, each from one instant, skew within the jitter.
    _assert_time_ordered(ours_out)
    assert all(s.complete for s in ours_out)
    assert [s.items["left"][1] for s in ours_out] == [k for k in range(40) if k != 20]
    assert all(len({item[1] for item in s.items.values()}) == 1 for s in ours_out)
    assert max(s.skew_ns for s in ours_out) <= 4_400_000
    assert ours.stats.drops["left"].unmatched == ours.stats.drops["right"].unmatched == 1


def test_large_slop_drop_in_degraded_mode_gives_one_partial_set_for_the_dropped_instant() -> None:
    cameras = ("left", "front", "right")
    cfg = RigSynchronizerConfig(cameras=cameras, slop_s=0.9 / RATE_HZ, partial_timeout_s=0.1)
    ours = RigSynchronizer(cfg)
    out: list[MatchedSet] = []
    for cam, stamp, k in _rig_stream_with_drop(40, 20, random.Random(8)):
        out += ours.add(cam, stamp, (cam, k))
    _assert_time_ordered(out)
    assert [s.items["left"][1] for s in out] == list(range(40))
    partial = [s for s in out if not s.complete]
    assert len(partial) == 1 and partial[0].missing == ("front",) and partial[0].items["left"][1] == 20
    assert all(len({item[1] for item in s.items.values()}) == 1 for s in out)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(3, 9))
def test_shuffled_arrivals_never_emit_out_of_order(seed: int, n: int) -> None:
    """Difference (2): three inputs, every message of an N-instant burst delivered in random order. The
    reference emits each triple as it completes (any order); RigSynchronizer emits the same triples in
    strictly increasing time."""
    rng = random.Random(seed)
    cameras = ("left", "front", "right")
    frames = [(cam, k) for k in range(n) for cam in cameras]
    rng.shuffle(frames)
    ours = RigSynchronizer(RigSynchronizerConfig(cameras=cameras, slop_s=0.1, expected_rate_hz=1.0, queue_size=n))
    ref = ReferenceApproximateTimeSynchronizer(3, n, NS // 10)
    ours_out: list[MatchedSet] = []
    ref_out: list[tuple[Any, ...]] = []
    for cam, k in frames:
        ours_out += ours.add(cam, k * NS, (cam, k))
        ref_out += ref.add(cameras.index(cam), k * NS, (cam, k))
    _assert_time_ordered(ours_out)
    assert [_as_tuple(s, cameras) for s in ours_out] == sorted(ref_out, key=lambda t: t[0][1])
    assert len(ours_out) == n
