"""Camera-rig synchronizer: groups the frames of several cameras into one set per capture instant.

Pure Python, no ROS, no threads: the caller (the ROS node's subscription callbacks, all on one thread or
under the caller's lock) calls :meth:`RigSynchronizer.add` for every frame and gets back the sets that the
frame completed or released; a timer calling :meth:`RigSynchronizer.poll` ends waits while no frame comes.

Units and clocks:
    * stamps are integer nanoseconds, a ROS ``builtin_interfaces/Time`` converted with
      ``sec * 10**9 + nanosec`` (:func:`time_to_ns`); durations in :class:`RigSynchronizerConfig` are
      seconds;
    * the *stamp clock* is the newest stamp received: "the stream has moved on";
    * the *poll clock* is the latest ``now_ns`` given to ``poll`` (or to ``add``), any monotonic clock in
      ns (the node's ROS or steady clock): "time has passed". It need not match the stamps: a frame's
      arrival on it is the ``now_ns`` given to ``add``, else the first ``poll`` after the ``add``.

Behaviour (the matching rule itself is in :mod:`dfmvr_core.sync.policy`):
    * **One set per instant, in time order.** Sets come out with strictly increasing reference stamps
      (``MatchedSet.stamp_ns``, the median of the members) and, per camera, strictly increasing frames.
      A frame stamped at or before the last set's *watermark* -- the later of its newest member and half
      a period after its reference stamp -- arrives too late and is dropped as ``stale``.
    * **Waiting for late frames.** An instant that is still incomplete holds back every later instant,
      complete or not, so that a frame delivered late (even after later frames of its own camera) is
      still matched. It waits ``wait``: until the stamp clock is ``wait`` past its reference stamp, or
      the poll clock ``wait`` past the arrival of its first frame, whichever comes first. ``wait`` is
      ``partial_timeout_s`` in degraded mode, otherwise the *reorder window* ``(queue_size - 1/2)``
      periods: the time a full queue spans at the expected rate, minus half a period so that the instant
      times out (on the stamp clock) just before its frames would be pushed out of a full queue. After the
      wait the instant is emitted as a partial set (degraded mode) or its frames are dropped as
      ``unmatched``.
    * **Whole instants missing.** The stream's phase is known from the last instant: an instant more than
      1.5 periods after it leaves room for an instant in between whose frames may all still be on their
      way, so it waits as long as that instant would (``wait - P`` after its own stamp / first arrival).
      Before the first set the same holds for the instant one period before the first one (start-up
      latency ``wait - P``).
    * **Bounded queues.** Each camera queues at most ``queue_size`` frames; a frame beyond that pushes
      out its camera's oldest frame (``overflow``). At the expected rate this happens only when a camera
      delivers frames faster than ``expected_rate_hz``.
    * A frame with the same stamp as a frame still queued for its camera replaces it (``duplicate``).

Differences from message_filters' Python ``ApproximateTimeSynchronizer`` (which matches on each arrival,
taking the first combination within ``slop`` around the new frame):
    1. Sets are emitted in time order and a frame older than an emitted set is dropped, where the
       upstream filter emits whatever completes first (out of order with shuffled arrivals) and keeps
       old frames queued. On the upstream test cases the *sets* are the same, only their order differs.
    2. With ``slop`` above half a period, a frame closer to where the next instant is expected than to
       its current partners is left for the next instant, so a dropped frame does not shift the pairing
       by one frame for good (see :mod:`dfmvr_core.sync.policy`).
    3. A set's spread may equal ``slop`` (upstream requires ``max - min < slop``).
    4. Incomplete instants time out (partial set or ``unmatched`` drop) instead of waiting in the queue
       until pushed out; this needs the nominal rate ``expected_rate_hz``.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import operator
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from dfmvr_core.errors import ConfigError
from dfmvr_core.sync.policy import reference_stamp, select_members, skew

__all__ = [
    "DROP_REASONS",
    "CameraDrops",
    "MatchedSet",
    "RigSynchronizer",
    "RigSynchronizerConfig",
    "SyncStats",
    "time_to_ns",
]

NS_PER_S = 1_000_000_000
MAX_RATE_HZ = 10_000.0
MAX_QUEUE_SIZE = 1000
DROP_REASONS = ("overflow", "stale", "unmatched", "duplicate")


def time_to_ns(sec: int, nanosec: int) -> int:
    """A ROS ``builtin_interfaces/Time`` (``sec``, ``nanosec``) as integer nanoseconds."""
    return int(sec) * NS_PER_S + int(nanosec)


def _finite_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class RigSynchronizerConfig:
    """Validated synchronizer settings (all durations in seconds).

    Attributes:
        cameras: at least one camera name, non-empty and unique; the order of sets' ``items``/``missing``.
        slop_s: the largest spread (newest − oldest stamp) of a set, in ``(0, 1/expected_rate_hz]``;
            ``None`` = half a frame period. Above half a period the nearest-instant rule decides which
            instant a frame belongs to (see :mod:`dfmvr_core.sync.policy`).
        expected_rate_hz: the cameras' nominal frame rate, in ``(0, 10000]``; gives the period ``P`` used to
            tell instants apart, to detect whole missing instants and to size the reorder window.
        queue_size: frames queued per camera, 1..1000; also sets the reorder window ``(queue_size − ½)·P``
            (how long an incomplete instant waits for late frames outside degraded mode).
        partial_timeout_s: ``None`` = degraded mode off. Otherwise an instant still incomplete after
            waiting this long (stamp clock past its reference stamp, or poll clock past its first frame's
            arrival) is emitted as a partial set (a camera is down or a frame was lost), in
            ``(0, (queue_size − ½)·P]`` so that it times out before its frames overflow the queue.
    """

    cameras: tuple[str, ...] = ("left", "front", "right")
    slop_s: float | None = None
    expected_rate_hz: float = 30.0
    queue_size: int = 10
    partial_timeout_s: float | None = None

    def __post_init__(self) -> None:
        cameras = self.cameras
        if isinstance(cameras, str) or not isinstance(cameras, (tuple, list)):
            raise ConfigError(f"cameras: expected a list of camera names, got {cameras!r}")
        cameras = tuple(cameras)
        if not cameras:
            raise ConfigError("cameras: expected at least one camera name")
        seen: dict[str, int] = {}
        for i, name in enumerate(cameras):
            if not isinstance(name, str) or not name.strip():
                raise ConfigError(f"cameras[{i}]: expected a non-empty camera name, got {name!r}")
            if name in seen:
                raise ConfigError(
                    f"cameras[{i}]: duplicate camera name {name!r} (also cameras[{seen[name]}]); expected unique names"
                )
            seen[name] = i
        object.__setattr__(self, "cameras", cameras)

        rate = _finite_number("expected_rate_hz", self.expected_rate_hz)
        if not 0.0 < rate <= MAX_RATE_HZ:
            raise ConfigError(f"expected_rate_hz: expected a frame rate in (0, {MAX_RATE_HZ:g}] Hz, got {rate!r}")
        object.__setattr__(self, "expected_rate_hz", rate)

        size = self.queue_size
        if isinstance(size, bool) or not isinstance(size, int):
            raise ConfigError(f"queue_size: expected an integer, got {size!r}")
        if not 1 <= size <= MAX_QUEUE_SIZE:
            raise ConfigError(f"queue_size: expected 1..{MAX_QUEUE_SIZE} frames per camera, got {size!r}")

        period_s = 1.0 / rate
        if self.slop_s is not None:
            slop = _finite_number("slop_s", self.slop_s)
            if not 0.0 < slop <= period_s:
                raise ConfigError(
                    f"slop_s: expected seconds in (0, {period_s:g}] (at most one frame period at "
                    f"expected_rate_hz={rate:g}), got {slop!r}"
                )
            object.__setattr__(self, "slop_s", slop)

        if self.partial_timeout_s is not None:
            timeout = _finite_number("partial_timeout_s", self.partial_timeout_s)
            limit = (size - 0.5) * period_s
            if not 0.0 < timeout <= limit:
                raise ConfigError(
                    f"partial_timeout_s: expected seconds in (0, {limit:g}] ((queue_size - 1/2) frame periods, or "
                    f"the waiting frames would overflow the queue first), got {timeout!r}"
                )
            object.__setattr__(self, "partial_timeout_s", timeout)

    @property
    def period_ns(self) -> int:
        """Nominal frame period ``P``, ns."""
        return round(NS_PER_S / self.expected_rate_hz)

    @property
    def slop_ns(self) -> int:
        """Largest spread of a set, ns (half a period when ``slop_s`` is ``None``)."""
        return self.period_ns // 2 if self.slop_s is None else round(self.slop_s * NS_PER_S)

    @property
    def reorder_window_ns(self) -> int:
        """``(queue_size − ½)·P``: how long an incomplete instant waits when degraded mode is off, ns."""
        return round((self.queue_size - 0.5) * NS_PER_S / self.expected_rate_hz)

    @property
    def degraded_mode(self) -> bool:
        """Whether incomplete instants are emitted as partial sets (``partial_timeout_s`` is set)."""
        return self.partial_timeout_s is not None

    @property
    def wait_ns(self) -> int:
        """How long after its reference stamp an incomplete instant stops waiting, ns."""
        if self.partial_timeout_s is None:
            return self.reorder_window_ns
        return round(self.partial_timeout_s * NS_PER_S)


@dataclasses.dataclass(frozen=True)
class MatchedSet:
    """The frames of one capture instant.

    Attributes:
        stamp_ns: reference stamp, ns: the median of the members' stamps (mean of the two middle ones,
            rounded down, for an even count); strictly increasing from set to set.
        items: ``{camera: item}`` for the cameras present, in the configured camera order.
        stamps: ``{camera: stamp_ns}`` for the same cameras.
        skew_ns: newest − oldest member stamp, ns (≤ slop).
        complete: every configured camera is present.
        missing: the configured cameras absent from the set, in camera order (empty when complete).
    """

    stamp_ns: int
    items: dict[str, Any]
    stamps: dict[str, int]
    skew_ns: int
    complete: bool
    missing: tuple[str, ...]

    @property
    def cameras(self) -> tuple[str, ...]:
        """The cameras present, in camera order."""
        return tuple(self.items)


@dataclasses.dataclass(frozen=True)
class CameraDrops:
    """Frames of one camera that were dropped, by reason.

    Attributes:
        overflow: pushed out of a full queue (the camera delivers faster than ``expected_rate_hz``, or a
            very late frame arrived at a full queue).
        stale: arrived at or before the watermark of the last emitted (or given-up) instant.
        unmatched: queued but never part of a set: its instant timed out incomplete outside degraded mode,
            it was passed over by a later set, or it was cleared by :meth:`RigSynchronizer.reset` /
            :meth:`RigSynchronizer.flush`.
        duplicate: replaced by a later frame with the same stamp.
    """

    overflow: int = 0
    stale: int = 0
    unmatched: int = 0
    duplicate: int = 0

    @property
    def total(self) -> int:
        """All dropped frames of the camera."""
        return self.overflow + self.stale + self.unmatched + self.duplicate


@dataclasses.dataclass(frozen=True)
class SyncStats:
    """A snapshot of the synchronizer's counters (see :attr:`RigSynchronizer.stats`).

    Attributes:
        received: frames passed to ``add`` per camera.
        complete_sets: complete sets emitted.
        partial_sets: partial sets emitted (degraded mode).
        missing: per camera, how many partial sets lacked it.
        drops: per camera, dropped frames by reason.
        max_skew_ns: largest ``skew_ns`` of any emitted set, ns (0 before the first set).
        pending: frames queued now per camera.
    """

    received: Mapping[str, int]
    complete_sets: int
    partial_sets: int
    missing: Mapping[str, int]
    drops: Mapping[str, CameraDrops]
    max_skew_ns: int
    pending: Mapping[str, int]

    @property
    def sets_emitted(self) -> int:
        """Complete plus partial sets."""
        return self.complete_sets + self.partial_sets

    @property
    def dropped(self) -> int:
        """Dropped frames over all cameras and reasons."""
        return sum(d.total for d in self.drops.values())


class _CameraQueue:
    """One camera's queued frames, sorted by stamp (stamps unique), with their poll-clock arrivals."""

    __slots__ = ("arrivals", "items", "stamps")

    def __init__(self) -> None:
        self.stamps: list[int] = []
        self.items: list[Any] = []
        self.arrivals: list[int | None] = []

    def __len__(self) -> int:
        return len(self.stamps)

    def put(self, stamp: int, item: Any, arrival: int | None) -> bool:
        """Insert in stamp order; returns True when a frame with the same stamp was replaced."""
        i = bisect.bisect_left(self.stamps, stamp)
        if i < len(self.stamps) and self.stamps[i] == stamp:
            self.items[i] = item
            return True
        self.stamps.insert(i, stamp)
        self.items.insert(i, item)
        self.arrivals.insert(i, arrival)
        return False

    def pop_oldest(self) -> tuple[int, Any]:
        self.arrivals.pop(0)
        return self.stamps.pop(0), self.items.pop(0)

    def pop_up_to(self, stamp: int) -> int:
        """Remove the frames stamped ``<= stamp``; returns how many."""
        n = bisect.bisect_right(self.stamps, stamp)
        del self.stamps[:n]
        del self.items[:n]
        del self.arrivals[:n]
        return n

    def stamp_arrivals(self, now: int) -> None:
        """Frames added without a poll-clock time arrive, for the poll clock, now."""
        self.arrivals = [now if a is None else a for a in self.arrivals]


class RigSynchronizer:
    """Groups the frames of the rig's cameras into :class:`MatchedSet` s, one per capture instant.

    See the module docstring for the behaviour and :mod:`dfmvr_core.sync.policy` for the matching rule.
    Not thread-safe: call it from one thread (or under one lock).
    """

    def __init__(self, config: RigSynchronizerConfig | None = None) -> None:
        self._config = RigSynchronizerConfig() if config is None else config
        if not isinstance(self._config, RigSynchronizerConfig):
            raise TypeError(f"config: expected a RigSynchronizerConfig, got {type(config).__name__}")
        cfg = self._config
        self._cameras = cfg.cameras
        self._period = cfg.period_ns
        self._slop = cfg.slop_ns
        self._wait = cfg.wait_ns
        self._degraded = cfg.degraded_mode
        self._queues = {cam: _CameraQueue() for cam in self._cameras}
        self._stamp_clock: int | None = None
        self._poll_clock: int | None = None
        self._last_ref: int | None = None
        self._watermark: int | None = None
        self._received = dict.fromkeys(self._cameras, 0)
        self._drops = {cam: dict.fromkeys(DROP_REASONS, 0) for cam in self._cameras}
        self._missing = dict.fromkeys(self._cameras, 0)
        self._complete_sets = 0
        self._partial_sets = 0
        self._max_skew = 0

    # ------------------------------------------------------------------ public API

    @property
    def config(self) -> RigSynchronizerConfig:
        """The configuration."""
        return self._config

    @property
    def stamp_clock_ns(self) -> int | None:
        """Newest stamp received, ns (``None`` before the first frame or after :meth:`reset`)."""
        return self._stamp_clock

    @property
    def poll_clock_ns(self) -> int | None:
        """Latest ``now_ns`` given to :meth:`poll` or :meth:`add`, ns (``None`` before any)."""
        return self._poll_clock

    @property
    def stats(self) -> SyncStats:
        """A snapshot of the counters."""
        return SyncStats(
            received=MappingProxyType(dict(self._received)),
            complete_sets=self._complete_sets,
            partial_sets=self._partial_sets,
            missing=MappingProxyType(dict(self._missing)),
            drops=MappingProxyType({cam: CameraDrops(**counts) for cam, counts in self._drops.items()}),
            max_skew_ns=self._max_skew,
            pending=MappingProxyType({cam: len(q) for cam, q in self._queues.items()}),
        )

    def add(self, camera: str, stamp_ns: int, item: Any, now_ns: int | None = None) -> list[MatchedSet]:
        """Queue one frame; returns the sets it completed or released, in increasing time order.

        Args:
            camera: one of ``config.cameras``.
            stamp_ns: the frame's capture stamp, integer ns (see :func:`time_to_ns`).
            item: anything (the image message); handed back in ``MatchedSet.items``.
            now_ns: optional arrival time on the poll clock (see :meth:`poll`); without it the frame's
                arrival is the next ``poll``.

        Raises:
            ValueError: ``camera`` is not a camera of the rig.
            TypeError: ``stamp_ns`` or ``now_ns`` is not an integer.
        """
        if camera not in self._queues:
            raise ValueError(f"camera {camera!r} is not a camera of the rig; expected one of {list(self._cameras)}")
        stamp = self._as_ns("stamp_ns", stamp_ns)
        now = None if now_ns is None else self._as_ns("now_ns", now_ns)
        self._received[camera] += 1
        if self._stamp_clock is None or stamp > self._stamp_clock:
            self._stamp_clock = stamp
        if now is not None:
            self._advance_poll_clock(now)
        # Instants that the advanced clocks time out go first, so they time out rather than overflow.
        out = self._process()
        if self._watermark is not None and stamp <= self._watermark:
            self._drops[camera]["stale"] += 1
            return out
        queue = self._queues[camera]
        if queue.put(stamp, item, now):
            self._drops[camera]["duplicate"] += 1
        elif len(queue) > self._config.queue_size:
            queue.pop_oldest()
            self._drops[camera]["overflow"] += 1
        out.extend(self._process())
        return out

    def poll(self, now_ns: int) -> list[MatchedSet]:
        """Advance the poll clock to ``now_ns`` and return the sets this releases: instants whose wait
        ended (partial sets in degraded mode) and the complete sets they held back.

        ``now_ns`` is any monotonic clock in ns (e.g. ``node.get_clock().now().nanoseconds``); frames added
        without ``now_ns`` count as arrived at the first ``poll`` after their ``add``, so call it regularly
        (a timer at a few times the frame rate) when degraded mode matters while frames stop.
        """
        self._advance_poll_clock(self._as_ns("now_ns", now_ns))
        return self._process()

    def flush(self) -> list[MatchedSet]:
        """End of stream: stop waiting. Emits every queued instant in time order -- complete sets, and
        partial sets in degraded mode -- and drops the frames of incomplete instants otherwise."""
        return self._process(force=True)

    def reset(self) -> None:
        """Forget the queued frames (counted ``unmatched``), both clocks and the time order, e.g. after the
        ROS clock jumped back (bag restarted). The counters are kept."""
        for cam, queue in self._queues.items():
            self._drops[cam]["unmatched"] += len(queue)
            self._queues[cam] = _CameraQueue()
        self._stamp_clock = None
        self._poll_clock = None
        self._last_ref = None
        self._watermark = None

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _as_ns(name: str, value: Any) -> int:
        if isinstance(value, bool):
            raise TypeError(f"{name}: expected integer nanoseconds, got {value!r}")
        try:
            return operator.index(value)
        except TypeError:
            raise TypeError(f"{name}: expected integer nanoseconds, got {type(value).__name__} {value!r}") from None

    def _advance_poll_clock(self, now: int) -> None:
        if self._poll_clock is None or now > self._poll_clock:
            self._poll_clock = now
        for queue in self._queues.values():
            if None in queue.arrivals:
                queue.stamp_arrivals(self._poll_clock)

    def _waited(self, ref: int, arrival: int | None, wait: int) -> bool:
        """Whether an instant stamped ``ref`` whose first frame arrived at ``arrival`` (poll clock) has
        waited ``wait``: on the stamp clock since ``ref`` or on the poll clock since ``arrival``."""
        if self._stamp_clock is not None and self._stamp_clock - ref >= wait:
            return True
        return self._poll_clock is not None and arrival is not None and self._poll_clock - arrival >= wait

    def _earlier_instant_possible(self, ref: int, arrival: int | None) -> bool:
        """Whether frames of an instant before ``ref`` (none queued) may still arrive."""
        if self._last_ref is not None and ref - self._last_ref <= self._period + self._period // 2:
            return False  # ``ref`` is the instant right after the last one
        # That instant, one period earlier, would stop waiting ``wait - P`` after this one's stamp/arrival.
        return not self._waited(ref, arrival, self._wait - self._period)

    def _process(self, force: bool = False) -> list[MatchedSet]:
        out: list[MatchedSet] = []
        while True:
            heads = {cam: q.stamps[0] for cam, q in self._queues.items() if q.stamps}
            if not heads:
                break
            pivot = min(heads, key=heads.__getitem__)  # first camera wins ties
            members = select_members(heads, pivot, self._slop, self._period)
            ref = reference_stamp(list(members.values()))
            arrivals = [a for cam in members if (a := self._queues[cam].arrivals[0]) is not None]
            arrival = min(arrivals) if arrivals else None
            if not force and self._earlier_instant_possible(ref, arrival):
                break
            complete = len(members) == len(self._cameras)
            if not complete and not force and not self._waited(ref, arrival, self._wait):
                break
            if complete or self._degraded:
                out.append(self._emit(members, ref))
            else:
                self._give_up(members, ref)
        return out

    def _take(self, members: Mapping[str, int]) -> dict[str, Any]:
        items = {}
        for cam, stamp in members.items():
            got, item = self._queues[cam].pop_oldest()
            assert got == stamp, "members are the oldest queued frames"
            items[cam] = item
        return items

    def _close_instant(self, members: Mapping[str, int], ref: int) -> None:
        """Move the time order past the instant ``ref`` and drop what it leaves behind."""
        self._last_ref = ref
        self._watermark = max(max(members.values()), ref + self._period // 2)
        for cam, queue in self._queues.items():
            self._drops[cam]["unmatched"] += queue.pop_up_to(self._watermark)

    def _emit(self, members: Mapping[str, int], ref: int) -> MatchedSet:
        items = self._take(members)
        missing = tuple(cam for cam in self._cameras if cam not in members)
        matched = MatchedSet(
            stamp_ns=ref,
            items=items,
            stamps=dict(members),
            skew_ns=skew(list(members.values())),
            complete=not missing,
            missing=missing,
        )
        if missing:
            self._partial_sets += 1
            for cam in missing:
                self._missing[cam] += 1
        else:
            self._complete_sets += 1
        self._max_skew = max(self._max_skew, matched.skew_ns)
        self._close_instant(members, ref)
        return matched

    def _give_up(self, members: Mapping[str, int], ref: int) -> None:
        self._take(members)
        for cam in members:
            self._drops[cam]["unmatched"] += 1
        self._close_instant(members, ref)
