# Copyright 2026 dfmvr maintainers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""A single worker thread that processes the *latest* submitted item: the node's model owner.

The ROS node's subscription callbacks must never wait for the network (a reconstruction takes tens to hundreds
of milliseconds; callbacks that block make DDS drop frames and let the synchronizer's queues overflow). They hand
every matched set to :meth:`LatestWinsWorker.submit` and return at once. One thread owns the model (torch,
ONNX Runtime and TensorRT contexts are not shared across threads) and processes the newest set; when a newer set
arrives while one is already waiting, the waiting one is replaced and counted as *skipped*: under load the node
falls behind by at most one set instead of building up latency.

Pure Python (``threading``); no ROS, no torch. Written by hand because ``concurrent.futures`` executors queue every
item (no replace-the-pending-item policy) and ``queue.Queue(maxsize=1)`` cannot replace its item atomically.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["LatestWinsWorker", "WorkerCounters"]

LOG = logging.getLogger(__name__)

_NOTHING = object()


@dataclass(frozen=True)
class WorkerCounters:
    """A snapshot of a :class:`LatestWinsWorker` 's counters.

    Attributes:
        submitted: items passed to ``submit``.
        processed: items whose ``process`` call returned.
        skipped: items replaced by a newer one before they were started (plus a pending item discarded by
            ``close``).
        failed: items whose ``process`` call raised (logged; the thread goes on).
        pending: 1 when an item waits to be started, else 0.
        busy: an item is being processed now.
    """

    submitted: int
    processed: int
    skipped: int
    failed: int
    pending: int
    busy: bool


class LatestWinsWorker:
    """Runs ``process(item)`` on one background thread, always on the newest submitted item.

    Args:
        process: called with each item that is started, on the worker thread. An exception it raises is
            logged with its traceback and counted in ``failed``; it never stops the thread.
        name: the thread's name (shows in logs and debuggers).
        logger: where failures are logged; a :class:`logging.Logger` or anything with an ``error(str)``
            method (e.g. an rclpy logger). Default: this module's logger.

    Counters (``submitted``, ``processed``, ``skipped``, ``failed``) only grow; at any time
    ``submitted == processed + skipped + failed + pending + busy``.
    """

    def __init__(self, process: Callable[[Any], None], *, name: str = "dfmvr-worker", logger: Any = None) -> None:
        if not callable(process):
            raise TypeError(f"process: expected a callable, got {type(process).__name__}")
        self._process = process
        self._logger = logger if logger is not None else LOG
        self._cond = threading.Condition()
        self._pending: Any = _NOTHING
        self._busy = False
        self._closed = False
        self._submitted = 0
        self._processed = 0
        self._skipped = 0
        self._failed = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ public API

    @property
    def submitted(self) -> int:
        """Items passed to :meth:`submit`."""
        return self._submitted

    @property
    def processed(self) -> int:
        """Items processed without an exception."""
        return self._processed

    @property
    def skipped(self) -> int:
        """Items replaced by a newer one before being started (or discarded by :meth:`close`)."""
        return self._skipped

    @property
    def failed(self) -> int:
        """Items whose ``process`` raised."""
        return self._failed

    @property
    def closed(self) -> bool:
        """:meth:`close` was called."""
        return self._closed

    def counters(self) -> WorkerCounters:
        """A consistent snapshot of all counters."""
        with self._cond:
            return WorkerCounters(
                submitted=self._submitted,
                processed=self._processed,
                skipped=self._skipped,
                failed=self._failed,
                pending=0 if self._pending is _NOTHING else 1,
                busy=self._busy,
            )

    def submit(self, item: Any) -> bool:
        """Queue ``item`` as the next one to process; never blocks on processing.

        Returns:
            False when ``item`` replaced an item that was still waiting (that one counts as skipped), True
            otherwise.

        Raises:
            RuntimeError: the worker was closed.
        """
        with self._cond:
            if self._closed:
                raise RuntimeError("LatestWinsWorker.submit: the worker is closed")
            self._submitted += 1
            replaced = self._pending is not _NOTHING
            if replaced:
                self._skipped += 1
            self._pending = item
            self._cond.notify_all()
            return not replaced

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is pending or being processed; returns False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is _NOTHING and not self._busy, timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Stop the thread: the item being processed finishes, a pending item is discarded (counted skipped).

        Idempotent. Must not be called from ``process`` itself.

        Args:
            timeout: seconds to wait for the thread to end; None waits as long as the current item takes.

        Returns:
            True when the thread has ended, False when ``timeout`` passed first (the thread is a daemon and
            ends after its current item).
        """
        if threading.current_thread() is self._thread:
            raise RuntimeError("LatestWinsWorker.close: cannot be called from the worker thread itself")
        with self._cond:
            if not self._closed:
                self._closed = True
                if self._pending is not _NOTHING:
                    self._pending = _NOTHING
                    self._skipped += 1
                self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def __enter__(self) -> LatestWinsWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._pending is not _NOTHING)
                if self._closed:
                    return
                item, self._pending = self._pending, _NOTHING
                self._busy = True
            ok = False
            try:
                self._process(item)
                ok = True
            except Exception as exc:  # a bad item must not kill the model's thread
                self._log_failure(exc)
            finally:
                with self._cond:
                    self._busy = False
                    if ok:
                        self._processed += 1
                    else:
                        self._failed += 1
                    self._cond.notify_all()

    def _log_failure(self, exc: BaseException) -> None:
        message = f"processing an item failed: {type(exc).__name__}: {exc}"
        try:
            if isinstance(self._logger, logging.Logger):
                self._logger.error(message, exc_info=exc)
            else:
                import traceback

                self._logger.error(message + "\n" + "".join(traceback.format_exception(exc)))
        except Exception:  # a broken logger must not kill the thread either
            LOG.exception("processing an item failed (and logging it failed too)")
