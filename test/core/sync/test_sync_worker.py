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

"""LatestWinsWorker: one thread, newest item wins, failures counted and survived."""

from __future__ import annotations

import logging
import threading

import pytest

from dfmvr_core.sync.worker import LatestWinsWorker

TIMEOUT = 5.0


class Gate:
    """A ``process`` that records items and blocks on each one until released."""

    def __init__(self) -> None:
        self.items: list[int] = []
        self.threads: set[str] = set()
        self.started = threading.Semaphore(0)
        self.release = threading.Semaphore(0)

    def __call__(self, item: int) -> None:
        self.threads.add(threading.current_thread().name)
        self.items.append(item)
        self.started.release()
        assert self.release.acquire(timeout=TIMEOUT)


def test_latest_item_wins_while_busy():
    gate = Gate()
    worker = LatestWinsWorker(gate, name="model-owner")
    try:
        assert worker.submit(1) is True
        assert gate.started.acquire(timeout=TIMEOUT)  # 1 is being processed
        assert worker.submit(2) is True  # waits
        assert worker.submit(3) is False  # replaces 2
        assert worker.submit(4) is False  # replaces 3
        snap = worker.counters()
        assert (snap.pending, snap.busy, snap.skipped) == (1, True, 2)
        gate.release.release()  # finish 1 -> 4 starts
        assert gate.started.acquire(timeout=TIMEOUT)
        gate.release.release()
        assert worker.wait_idle(TIMEOUT)
    finally:
        assert worker.close(TIMEOUT)
    assert gate.items == [1, 4]
    assert gate.threads == {"model-owner"}
    snap = worker.counters()
    assert (snap.submitted, snap.processed, snap.skipped, snap.failed) == (4, 2, 2, 0)
    assert snap.submitted == snap.processed + snap.skipped + snap.failed + snap.pending + int(snap.busy)


def test_failing_process_is_logged_counted_and_thread_survives(caplog):
    seen: list[int] = []

    def process(item: int) -> None:
        if item % 2:
            raise ValueError(f"bad item {item}")
        seen.append(item)

    worker = LatestWinsWorker(process)
    with caplog.at_level(logging.ERROR, logger="dfmvr_core.sync.worker"):
        for i in range(6):
            worker.submit(i)
            assert worker.wait_idle(TIMEOUT)
        worker.close(TIMEOUT)
    assert seen == [0, 2, 4]
    assert (worker.processed, worker.failed, worker.skipped) == (3, 3, 0)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("ValueError: bad item" in m for m in messages) == 3


def test_custom_logger_gets_the_traceback():
    class Logger:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def error(self, text: str) -> None:
            self.lines.append(text)

    logger = Logger()

    def boom(item: object) -> None:
        raise RuntimeError("engine lost")

    with LatestWinsWorker(boom, logger=logger) as worker:
        worker.submit(object())
        assert worker.wait_idle(TIMEOUT)
    assert worker.failed == 1
    assert len(logger.lines) == 1
    assert "RuntimeError: engine lost" in logger.lines[0] and "Traceback" in logger.lines[0]


def test_close_discards_pending_and_refuses_new_items():
    gate = Gate()
    worker = LatestWinsWorker(gate)
    worker.submit("a")
    assert gate.started.acquire(timeout=TIMEOUT)
    worker.submit("b")  # pending
    assert worker.close(timeout=0.01) is False  # "a" still runs; "b" is discarded now
    gate.release.release()
    assert worker.close(TIMEOUT) is True
    assert worker.closed
    assert gate.items == ["a"]
    assert (worker.processed, worker.skipped) == (1, 1)
    with pytest.raises(RuntimeError, match="closed"):
        worker.submit("c")
    assert worker.close(TIMEOUT) is True  # idempotent


def test_close_times_out_while_an_item_runs():
    gate = Gate()
    worker = LatestWinsWorker(gate)
    worker.submit(1)
    assert gate.started.acquire(timeout=TIMEOUT)
    assert worker.close(timeout=0.05) is False
    gate.release.release()
    assert worker.close(TIMEOUT) is True
    assert worker.processed == 1


def test_close_from_process_is_refused():
    errors: list[BaseException] = []
    holder: dict[str, LatestWinsWorker] = {}

    def process(item: object) -> None:
        try:
            holder["w"].close()
        except RuntimeError as exc:
            errors.append(exc)

    holder["w"] = worker = LatestWinsWorker(process)
    worker.submit(1)
    assert worker.wait_idle(TIMEOUT)
    worker.close(TIMEOUT)
    assert len(errors) == 1 and "worker thread" in str(errors[0])


def test_not_callable_refused():
    with pytest.raises(TypeError, match="callable"):
        LatestWinsWorker(42)  # type: ignore[arg-type]
