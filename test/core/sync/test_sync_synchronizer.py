"""RigSynchronizer behaviour: config validation, the matching rule, queues and drops, degraded mode,
waiting for late and missing instants, jittered streams with random delays, invariants."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfmvr_core.config import from_mapping
from dfmvr_core.errors import ConfigError
from dfmvr_core.sync import (
    MatchedSet,
    RigSynchronizer,
    RigSynchronizerConfig,
    reference_stamp,
    select_members,
    time_to_ns,
)

NS = 1_000_000_000
P = round(NS / 30.0)  # the default period
BASE = 1_000 * NS
CAMS = ("left", "front", "right")


def t(k: int, offset_ns: int = 0) -> int:
    """Nominal stamp of instant ``k`` at 30 Hz."""
    return BASE + k * P + offset_ns


def feed(sync: RigSynchronizer, frames: Iterable[tuple[str, int]]) -> list[MatchedSet]:
    """Add ``(camera, stamp)`` frames (item = (camera, stamp)); returns all emitted sets."""
    out: list[MatchedSet] = []
    for cam, stamp in frames:
        out += sync.add(cam, stamp, (cam, stamp))
    return out


def instant(k: int, cams: Sequence[str] = CAMS) -> list[tuple[str, int]]:
    return [(cam, t(k)) for cam in cams]


def refs(sets: Sequence[MatchedSet]) -> list[int]:
    return [s.stamp_ns for s in sets]


# --------------------------------------------------------------------------- config


def test_config_defaults_and_derived_durations() -> None:
    cfg = RigSynchronizerConfig()
    assert cfg.cameras == CAMS and cfg.queue_size == 10 and cfg.partial_timeout_s is None
    assert cfg.period_ns == P == 33_333_333
    assert cfg.slop_ns == P // 2  # default slop: half a period
    assert cfg.reorder_window_ns == cfg.wait_ns == round(9.5 * NS / 30)
    assert not cfg.degraded_mode
    degraded = RigSynchronizerConfig(slop_s=0.01, partial_timeout_s=0.1)
    assert degraded.slop_ns == 10_000_000 and degraded.wait_ns == 100_000_000 and degraded.degraded_mode


def test_config_from_mapping_converts_lists() -> None:
    cfg = from_mapping(RigSynchronizerConfig, {"cameras": ["a", "b"], "slop_s": 0.01, "queue_size": 4})
    assert cfg.cameras == ("a", "b") and isinstance(cfg.cameras, tuple)
    with pytest.raises(ConfigError, match=r"^sync\.queue_size: "):
        from_mapping(RigSynchronizerConfig, {"queue_size": 0}, path="sync")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cameras": ()}, "cameras"),
        ({"cameras": "left"}, "cameras"),
        ({"cameras": ("left", "")}, r"cameras\[1\]"),
        ({"cameras": ("left", "  ")}, r"cameras\[1\]"),
        ({"cameras": ("left", 3)}, r"cameras\[1\]"),
        ({"cameras": ("left", "right", "left")}, r"cameras\[2\]: duplicate"),
        ({"expected_rate_hz": 0.0}, "expected_rate_hz"),
        ({"expected_rate_hz": -30.0}, "expected_rate_hz"),
        ({"expected_rate_hz": float("nan")}, "expected_rate_hz"),
        ({"expected_rate_hz": True}, "expected_rate_hz"),
        ({"queue_size": 0}, "queue_size"),
        ({"queue_size": 1001}, "queue_size"),
        ({"queue_size": 2.0}, "queue_size"),
        ({"slop_s": 0.0}, "slop_s"),
        ({"slop_s": -0.01}, "slop_s"),
        ({"slop_s": 0.034}, "slop_s"),  # more than one period at 30 Hz
        ({"slop_s": float("inf")}, "slop_s"),
        ({"partial_timeout_s": 0.0}, "partial_timeout_s"),
        ({"partial_timeout_s": 0.4}, "partial_timeout_s"),  # > 9.5 periods at 30 Hz
        ({"partial_timeout_s": 0.1, "queue_size": 1}, "partial_timeout_s"),  # > 0.5 period
    ],
)
def test_config_errors_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{field}"):
        RigSynchronizerConfig(**kwargs)


def test_config_limits_are_inclusive() -> None:
    assert RigSynchronizerConfig(slop_s=1 / 30).slop_ns == P
    assert RigSynchronizerConfig(partial_timeout_s=9.5 / 30).wait_ns == round(9.5 * NS / 30)
    assert RigSynchronizerConfig(queue_size=1000, cameras=("solo",)).queue_size == 1000


# --------------------------------------------------------------------------- API basics


def test_time_to_ns_matches_builtin_interfaces_time() -> None:
    assert time_to_ns(1_700_000_000, 123_456_789) == 1_700_000_000_123_456_789


def test_add_rejects_unknown_cameras_and_non_integer_stamps() -> None:
    sync = RigSynchronizer()
    with pytest.raises(ValueError, match="'rear'"):
        sync.add("rear", t(0), None)
    for bad in (1.5, True, "1"):
        with pytest.raises(TypeError, match="stamp_ns"):
            sync.add("left", bad, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="now_ns"):
        sync.poll(2.0)  # type: ignore[arg-type]
    assert sync.stats.received["left"] == 0


def test_matched_set_fields_and_stats() -> None:
    sync = RigSynchronizer()
    out = feed(sync, [("right", t(0, 3_000_000)), ("left", t(0, -1_000_000)), ("front", t(0, 1_000_000))])
    out += sync.flush()  # the first instant waits for a possibly earlier one (start-up); flush stops waiting
    (s,) = out
    assert list(s.items) == list(CAMS) == list(s.stamps) and s.cameras == CAMS
    assert s.items["right"] == ("right", t(0, 3_000_000)) and s.stamps["left"] == t(0, -1_000_000)
    assert s.stamp_ns == t(0, 1_000_000)  # median
    assert s.skew_ns == 4_000_000 and s.complete and s.missing == ()
    stats = sync.stats
    assert stats.complete_sets == stats.sets_emitted == 1 and stats.partial_sets == 0
    assert stats.max_skew_ns == 4_000_000 and stats.dropped == 0
    assert dict(stats.received) == dict.fromkeys(CAMS, 1) and dict(stats.pending) == dict.fromkeys(CAMS, 0)


def test_reference_stamp_is_the_median() -> None:
    assert reference_stamp([5]) == 5
    assert reference_stamp([9, 1, 4]) == 4
    assert reference_stamp([1, 4]) == 2  # mean of the middle two, rounded down
    assert reference_stamp([10, 1, 3, 4]) == 3
    with pytest.raises(ValueError):
        reference_stamp([])


def test_select_members_moves_a_frame_to_the_next_instant_it_is_nearer_to() -> None:
    ms = 1_000_000
    # front's frame k+1 (31.3 ms) is within a 30 ms slop of left/right frame k (2 ms) but 4 ms from where
    # their next frames are expected (35.3 ms): it is left out.
    heads = {"left": 2 * ms, "front": P - 2 * ms, "right": 2 * ms}
    assert select_members(heads, "left", 30 * ms, P) == {"left": 2 * ms, "right": 2 * ms}
    # Cameras spread over 0.6 P (phases 0, 0.3 P, 0.6 P, slop 0.7 P): the last is nearer to the first
    # camera's next frame, but the set {0, 0.3, 0.6} is tighter than any set with the next frames.
    spread = {"a": 0, "b": 3 * P // 10, "c": 6 * P // 10}
    assert select_members(spread, "a", 7 * P // 10, P) == spread
    # Outside the slop window: not offered.
    assert select_members({"a": 0, "b": P // 2 + 1}, "a", P // 2, P) == {"a": 0}


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.integers(0, P // 2), min_size=1, max_size=5), st.integers(1, P // 2))
def test_select_members_never_prunes_when_slop_is_at_most_half_a_period(offsets: list[int], slop: int) -> None:
    heads = {f"c{i}": off for i, off in enumerate([0, *offsets])}
    expected = {cam: s for cam, s in heads.items() if s <= slop}
    assert select_members(heads, "c0", slop, P) == expected


# --------------------------------------------------------------------------- queues and drops


def test_queue_overflow_drops_the_oldest_and_counts_it() -> None:
    """A camera delivering 4x faster than expected_rate_hz fills its queue before anything times out."""
    sync = RigSynchronizer(RigSynchronizerConfig(queue_size=3))
    stamps = [t(0) + i * P // 4 for i in range(7)]
    assert feed(sync, [("left", s) for s in stamps]) == []
    stats = sync.stats
    assert stats.drops["left"].overflow == 4 and stats.drops["left"].total == 4
    assert stats.pending["left"] == 3 and stats.drops["front"].total == 0
    # A late frame older than the whole full queue is the one pushed out.
    assert sync.add("left", t(0) - P // 4, "late") == []
    assert sync.stats.drops["left"].overflow == 5 and sync.stats.pending["left"] == 3
    # The queue kept the newest three frames: the set uses the oldest of them.
    out = feed(sync, [("front", stamps[4]), ("right", stamps[4])]) + sync.flush()
    assert out[0].stamps == dict.fromkeys(CAMS, stamps[4])


def test_at_the_expected_rate_incomplete_instants_time_out_before_the_queue_overflows() -> None:
    sync = RigSynchronizer(RigSynchronizerConfig(queue_size=3))
    assert feed(sync, [("left", t(k)) for k in range(12)]) == []
    drops = sync.stats.drops["left"]
    assert drops.overflow == 0 and drops.unmatched == 9 and sync.stats.pending["left"] == 3


def test_stale_frames_are_dropped_and_counted() -> None:
    sync = RigSynchronizer(RigSynchronizerConfig(queue_size=2))
    out = feed(sync, instant(0) + instant(1))  # instant 0 released once instant -1 could no longer arrive
    assert refs(out) == [t(0), t(1)]
    # A second frame of an emitted instant, and a frame older than it.
    assert sync.add("left", t(1, 1_000_000), "again") == []
    assert sync.add("front", t(0), "old") == []
    assert sync.stats.drops["left"].stale == 1 and sync.stats.drops["front"].stale == 1
    # Half a period after the last set still belongs to its instant; beyond that is the next instant.
    assert sync.add("right", t(1, P // 2), "boundary") == []
    assert sync.stats.drops["right"].stale == 1
    assert refs(feed(sync, instant(2))) == [t(2)]
    assert sync.stats.dropped == 3


def test_frame_of_a_timed_out_instant_is_stale() -> None:
    sync = RigSynchronizer(RigSynchronizerConfig(queue_size=2))  # waits 1.5 periods
    out = feed(sync, [*instant(0), ("left", t(1)), ("right", t(1)), *instant(2), *instant(3)])
    assert refs(out) == [t(0), t(2), t(3)]  # instant 1 timed out when instant 3 arrived
    assert sync.stats.drops["left"].unmatched == 1 == sync.stats.drops["right"].unmatched
    assert sync.add("front", t(1), "too late") == []
    assert sync.stats.drops["front"].stale == 1


def test_duplicate_stamp_replaces_the_queued_frame() -> None:
    sync = RigSynchronizer()
    sync.add("left", t(0), "first")
    sync.add("left", t(0), "second")
    out = feed(sync, [("front", t(0)), ("right", t(0))]) + sync.flush()
    assert out[0].items["left"] == "second" and sync.stats.drops["left"].duplicate == 1


# --------------------------------------------------------------------------- waiting: start-up, late, missing


def test_first_set_waits_until_an_earlier_instant_would_be_due() -> None:
    """Before the first set nothing tells whether frames of an earlier instant are still on the way: the
    first complete instant waits as long as the instant before it would (wait - P after its arrival)."""
    sync = RigSynchronizer(RigSynchronizerConfig(queue_size=4))  # wait 3.5 P
    arrival = 50 * NS  # poll clock, unrelated to the stamps
    for cam in CAMS:
        assert sync.add(cam, t(0), cam, now_ns=arrival) == []
    hold = sync.config.wait_ns - P
    assert sync.poll(arrival + hold - 1) == []
    assert refs(sync.poll(arrival + hold)) == [t(0)]
    assert refs(feed(sync, instant(1))) == [t(1)]  # the next instant follows at once


def test_earlier_instant_delivered_late_is_still_matched_first() -> None:
    sync = RigSynchronizer(RigSynchronizerConfig(queue_size=4))
    assert feed(sync, instant(1) + instant(2)) == []
    assert feed(sync, instant(0)) == []  # start-up: instant -1 might still come
    assert refs(feed(sync, instant(3))) == [t(0), t(1), t(2), t(3)]


def test_incomplete_instant_holds_later_sets_for_the_reorder_window() -> None:
    """Degraded mode off, queue_size 4: an instant missing a frame holds the later (complete) instants for
    3.5 periods, then its frames are dropped (unmatched) and the held sets come out in order."""
    sync = RigSynchronizer(RigSynchronizerConfig(queue_size=4))
    feed(sync, instant(0))
    sync.flush()
    assert refs(feed(sync, instant(1))) == [t(1)]
    assert feed(sync, [("left", t(2)), ("right", t(2))]) == []  # front lost instant 2
    for k in (3, 4, 5):
        assert feed(sync, instant(k)) == []  # held behind instant 2
    out = sync.add("left", t(6), "x")  # clock - t(2) = 4 P >= 3.5 P: instant 2 times out
    assert refs(out) == [t(3), t(4), t(5)]
    assert sync.stats.drops["left"].unmatched == 1 and sync.stats.drops["front"].total == 0
    assert refs(feed(sync, [("front", t(6)), ("right", t(6))])) == [t(6)]


def test_whole_missing_instant_delays_the_next_until_it_would_be_due() -> None:
    sync = RigSynchronizer(RigSynchronizerConfig(queue_size=4))
    feed(sync, instant(0))
    sync.flush()
    arrival = 50 * NS
    for cam in CAMS:  # instant 1 entirely missing so far: maybe still on its way
        assert sync.add(cam, t(2), cam, now_ns=arrival) == []
    hold = sync.config.wait_ns - P
    assert sync.poll(arrival + hold - 1) == []
    assert refs(sync.poll(arrival + hold)) == [t(2)]
    assert sync.stats.dropped == 0
    # On the stamp clock alike: instant 4 missing, instant 5 waits until a stamp wait - P past t(5).
    feed(sync, instant(3))
    assert feed(sync, instant(5)) == []
    assert sync.add("left", t(5) + hold - 1, "x") == []
    assert refs(sync.add("left", t(5) + hold, "y")) == [t(5)]


# --------------------------------------------------------------------------- degraded mode


def _degraded(timeout_s: float) -> RigSynchronizer:
    """Degraded mode, instants 0..3 complete and emitted (the first once instant -1 would be due)."""
    sync = RigSynchronizer(RigSynchronizerConfig(partial_timeout_s=timeout_s))
    out = feed(sync, instant(0) + instant(1) + instant(2) + instant(3))
    assert refs(out) == [t(k) for k in range(4)]
    return sync


def test_degraded_mode_partial_set_exactly_at_the_timeout_then_recovery() -> None:
    """Poll clock: the node's clock, 50 ms ahead of the stamps (transport latency); the wait starts when
    the instant's first frame arrives."""
    sync = _degraded(0.1)
    now0 = 5 * NS
    assert sync.add("left", t(4, 1_000), "l4", now_ns=now0) == []  # front is down
    assert sync.add("right", t(4, 3_000), "r4", now_ns=now0 + 7_000_000) == []
    timeout = 100_000_000
    assert sync.poll(now0 + timeout - 1) == []
    assert sync.stats.partial_sets == 0
    (partial,) = sync.poll(now0 + timeout)
    assert not partial.complete and partial.missing == ("front",) and partial.cameras == ("left", "right")
    assert partial.items == {"left": "l4", "right": "r4"}
    assert partial.stamp_ns == t(4, 2_000) and partial.skew_ns == 2_000  # median of the two frames
    assert sync.poll(now0 + 10 * timeout) == []  # one partial set per instant
    # front is back: complete sets again, at once, although the poll clock ran on.
    for k in (5, 6, 7):
        (s,) = feed(sync, instant(k))
        assert s.complete and s.stamp_ns == t(k)
    stats = sync.stats
    assert stats.partial_sets == 1 and stats.complete_sets == 7 and stats.missing["front"] == 1


def test_frames_added_without_now_arrive_at_the_next_poll() -> None:
    sync = _degraded(0.1)
    sync.add("left", t(4), "l4")
    assert sync.poll(7 * NS) == []  # left's arrival on the poll clock: 7 s
    assert sync.poll(7 * NS + 99_999_999) == []
    assert refs(sync.poll(7 * NS + 100_000_000)) == [t(4)]


def test_stamp_clock_alone_times_out_instants() -> None:
    sync = _degraded(0.1)
    assert feed(sync, [("left", t(4)), ("right", t(4))]) == []
    assert sync.add("left", t(4) + 99_999_999, "x") == []
    (partial,) = sync.add("left", t(4) + 100_000_000, "y")
    assert partial.stamp_ns == t(4) and partial.missing == ("front",)


def test_degraded_mode_camera_down_keeps_publishing_partial_sets_in_order() -> None:
    sync = _degraded(0.099)  # just under 3 periods
    out: list[MatchedSet] = []
    for k in range(4, 14):  # front down for 10 instants; add() alone drives the timeouts
        out += feed(sync, instant(k, ("left", "right")))
    assert refs(out) == [t(k) for k in range(4, 11)]  # each once the clock is 3 periods past it
    assert all(s.missing == ("front",) for s in out)
    for k in range(14, 17):
        out += feed(sync, instant(k))
    assert refs(out) == [t(k) for k in range(4, 17)]
    assert [s.complete for s in out] == [False] * 10 + [True] * 3
    assert sync.stats.missing["front"] == 10 and sync.stats.dropped == 0


def test_flush_emits_held_sets_and_partial_or_drops_incomplete_ones() -> None:
    sync = RigSynchronizer()
    feed(sync, [*instant(0), ("left", t(1))])
    assert refs(sync.flush()) == [t(0)] and sync.stats.drops["left"].unmatched == 1
    degraded = RigSynchronizer(RigSynchronizerConfig(partial_timeout_s=0.1))
    feed(degraded, [*instant(0), ("left", t(1))])
    out = degraded.flush()
    assert refs(out) == [t(0), t(1)] and out[1].missing == ("front", "right")


def test_reset_forgets_time_order_and_queues() -> None:
    sync = RigSynchronizer()
    feed(sync, instant(5))
    sync.flush()
    sync.add("left", t(6), None)
    sync.reset()
    assert sync.stats.drops["left"].unmatched == 1 and sync.stamp_clock_ns is None
    assert refs(feed(sync, instant(0)) + sync.flush()) == [t(0)]  # earlier than before: not stale


# --------------------------------------------------------------------------- jittered streams, random delays


def _jittered_stream(
    rng: random.Random, n_instants: int, drop_p: float, max_delay_ns: int
) -> tuple[list[tuple[str, int, int]], dict[int, set[str]]]:
    """30 Hz, per-camera phase within ±3 ms plus ±2 ms jitter, random per-frame delays (frames of one
    camera may swap). Returns frames ``(camera, stamp, k)`` in arrival order and the cameras delivered
    per instant."""
    phase = {cam: rng.randint(-3_000_000, 3_000_000) for cam in CAMS}
    frames, delivered = [], {}
    for k in range(n_instants):
        for cam in CAMS:
            if rng.random() < drop_p:
                continue
            stamp = t(k, phase[cam] + rng.randint(-2_000_000, 2_000_000))
            frames.append((stamp + rng.randint(0, max_delay_ns), cam, stamp, k))
            delivered.setdefault(k, set()).add(cam)
    frames.sort()
    return [(cam, stamp, k) for _, cam, stamp, k in frames], delivered


def _run(sync: RigSynchronizer, frames: Sequence[tuple[str, int, int]]) -> list[MatchedSet]:
    out: list[MatchedSet] = []
    for cam, stamp, k in frames:
        out += sync.add(cam, stamp, k)
    return out


@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), max_delay_periods=st.sampled_from([0.3, 1.0, 3.0]))
def test_jittered_streams_with_random_delays_match_every_instant_once(seed: int, max_delay_periods: float) -> None:
    rng = random.Random(seed)
    frames, _ = _jittered_stream(rng, 150, 0.0, int(max_delay_periods * P))
    sync = RigSynchronizer()
    out = _run(sync, frames)
    assert sync.flush() == []  # nothing left waiting at the end
    assert [s.items["left"] for s in out] == list(range(150))
    assert all(s.complete and set(s.items.values()) == {s.items["left"]} for s in out)
    assert all(a < b for a, b in itertools.pairwise(refs(out)))
    assert max(s.skew_ns for s in out) <= 10_000_000  # phase spread + jitter
    assert sync.stats.dropped == 0


@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), degraded=st.booleans())
def test_jittered_streams_with_dropped_frames(seed: int, degraded: bool) -> None:
    """10% of the frames lost, delays up to 3 periods. Without degraded mode exactly the instants with
    all three frames come out (complete); in degraded mode every instant with a frame comes out once,
    partial with exactly the cameras that delivered."""
    rng = random.Random(seed)
    frames, delivered = _jittered_stream(rng, 150, 0.1, 3 * P)
    sync = RigSynchronizer(RigSynchronizerConfig(partial_timeout_s=0.2 if degraded else None))
    out = _run(sync, frames) + sync.flush()
    assert all(a < b for a, b in itertools.pairwise(refs(out)))
    assert all(len(set(s.items.values())) == 1 for s in out)  # one instant per set
    got = {next(iter(s.items.values())): set(s.items) for s in out}
    assert len(got) == len(out)
    if degraded:
        assert got == delivered
    else:
        assert got == {k: cams for k, cams in delivered.items() if len(cams) == 3}
    assert sync.stats.drops["left"].stale == sync.stats.drops["left"].overflow == 0


# --------------------------------------------------------------------------- invariants under arbitrary input


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    events=st.lists(
        st.one_of(
            st.tuples(st.sampled_from(CAMS), st.integers(0, 40 * P), st.none() | st.integers(0, 40 * P)),
            st.tuples(st.just("poll"), st.integers(0, 40 * P), st.none()),
        ),
        max_size=80,
    ),
    slop_fraction=st.sampled_from([0.1, 0.5, 0.9, 1.0]),
    queue_size=st.integers(1, 6),
    degraded=st.booleans(),
)
def test_invariants_under_arbitrary_arrivals(
    events: list[tuple[str, int, int | None]], slop_fraction: float, queue_size: int, degraded: bool
) -> None:
    """Any stamps, any order, duplicates, polls: sets in strictly increasing time, each camera's frames
    strictly increasing, spread within slop, every frame emitted at most once, and every frame received
    is accounted for (emitted or dropped for a reason; nothing is left queued after ``flush``)."""
    timeout = (queue_size - 0.5) / 30 if degraded else None
    cfg = RigSynchronizerConfig(slop_s=slop_fraction / 30, queue_size=queue_size, partial_timeout_s=timeout)
    sync = RigSynchronizer(cfg)
    out: list[MatchedSet] = []
    for i, (who, stamp, now) in enumerate(events):
        out += sync.poll(stamp) if who == "poll" else sync.add(who, stamp, (who, stamp, i), now_ns=now)
    out += sync.flush()
    assert all(a < b for a, b in itertools.pairwise(refs(out)))
    for cam in CAMS:
        mine = [s.stamps[cam] for s in out if cam in s.stamps]
        assert all(a < b for a, b in itertools.pairwise(mine))
    for s in out:
        assert s.skew_ns == max(s.stamps.values()) - min(s.stamps.values()) <= cfg.slop_ns
        assert all(s.items[c][1] == s.stamps[c] for c in s.items)
        assert s.complete == (not s.missing) and set(s.missing) | set(s.items) == set(CAMS)
        assert min(s.stamps.values()) <= s.stamp_ns <= max(s.stamps.values())
        assert degraded or s.complete
    emitted = [item for s in out for item in s.items.values()]
    assert len(emitted) == len(set(emitted))
    stats = sync.stats
    for cam in CAMS:
        used = sum(cam in s.items for s in out)
        assert stats.received[cam] == used + stats.drops[cam].total and stats.pending[cam] == 0
