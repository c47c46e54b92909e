"""Camera-rig synchronization: one set of frames per capture instant, in time order (no ROS).

:class:`RigSynchronizer` takes every camera frame with its stamp (integer ns) and returns
:class:`MatchedSet` s; :class:`RigSynchronizerConfig` holds the validated settings (seconds).
The matching rule is in :mod:`dfmvr_core.sync.policy`.
"""

from dfmvr_core.sync.policy import reference_stamp, select_members, skew
from dfmvr_core.sync.synchronizer import (
    DROP_REASONS,
    CameraDrops,
    MatchedSet,
    RigSynchronizer,
    RigSynchronizerConfig,
    SyncStats,
    time_to_ns,
)
from dfmvr_core.sync.worker import LatestWinsWorker, WorkerCounters

__all__ = [
    "DROP_REASONS",
    "CameraDrops",
    "LatestWinsWorker",
    "MatchedSet",
    "RigSynchronizer",
    "RigSynchronizerConfig",
    "SyncStats",
    "WorkerCounters",
    "reference_stamp",
    "select_members",
    "skew",
    "time_to_ns",
]
