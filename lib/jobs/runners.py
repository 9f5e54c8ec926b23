"""Where jobs run: in this process (the embedded default: one machine, no broker), or on workers
anywhere through a Celery broker (RabbitMQ, ``BTL_BROKER_URL``).

Both take :class:`~lib.jobs.work.JobSpec`s and give back :class:`~lib.jobs.work.JobOutcome`s as
jobs finish (:meth:`Runner.poll`), with each unfinished job's state (queued, or running on a
named worker). A job whose study's PACS does not answer is retried with a growing delay
(:func:`lib.jobs.work.retry_delay_s`), on either runner.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable
from typing import Any, Protocol

from .work import CANCELLED, QUEUED, RUNNING, JobOutcome, JobSpec, TransientError, Workbench, given_up, retry_delay_s

logger = logging.getLogger(__name__)


class Runner(Protocol):
    """Runs jobs and hands back their outcomes."""

    def submit(self, spec: JobSpec) -> None:
        """Queue a job (a job id already queued or running is not queued twice, and its outcome
        counts even if it was cancelled before)."""

    def poll(self, timeout_s: float) -> list[JobOutcome]:
        """The outcomes of jobs finished since the last call, waiting up to ``timeout_s`` for one."""

    def states(self) -> dict[str, tuple[str, str]]:
        """Unfinished job id -> (queued or running, the worker running it or "")."""

    def cancel(self, job_ids: Iterable[str]) -> None:
        """Drop these jobs: the queued ones do not start; a running one's outcome is dropped."""

    def close(self) -> None: ...


class InProcessRunner:
    """Jobs run one after another in a thread of this process, on ``workbench`` (its model
    loaded once)."""

    def __init__(self, workbench: Workbench) -> None:
        self.workbench = workbench
        self._queue: queue.Queue[JobSpec | None] = queue.Queue()
        self._done: queue.Queue[JobOutcome] = queue.Queue()
        self._states: dict[str, tuple[str, str]] = {}
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="btl-jobs", daemon=True)
        self._thread.start()

    def submit(self, spec: JobSpec) -> None:
        with self._lock:
            self._cancelled.discard(spec.job_id)  # asked for again: a cancelled run of it counts after all
            if spec.job_id in self._states:
                return
            self._states[spec.job_id] = (QUEUED, "")
        self._queue.put(spec)

    def poll(self, timeout_s: float) -> list[JobOutcome]:
        return drain(self._done, timeout_s)

    def states(self) -> dict[str, tuple[str, str]]:
        with self._lock:
            return dict(self._states)

    def cancel(self, job_ids: Iterable[str]) -> None:
        with self._lock:
            self._cancelled.update(job_ids)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _work(self) -> None:
        while (spec := self._queue.get()) is not None:
            with self._lock:
                cancelled = spec.job_id in self._cancelled
                self._states[spec.job_id] = (RUNNING, self.workbench.name)
            outcome = JobOutcome(spec.job_id, spec.ref.study, CANCELLED, error="cancelled") if cancelled \
                else _with_retries(self.workbench, spec, lambda: spec.job_id in self._cancelled)
            with self._lock:
                self._states.pop(spec.job_id, None)
                if spec.job_id in self._cancelled:
                    outcome = JobOutcome(spec.job_id, spec.ref.study, CANCELLED, error="cancelled")
            self._done.put(outcome)


def drain(outcomes: queue.Queue[JobOutcome], timeout_s: float) -> list[JobOutcome]:
    """Everything in ``outcomes``, waiting up to ``timeout_s`` for the first one."""
    found = []
    try:
        found.append(outcomes.get(timeout=timeout_s))
        while True:
            found.append(outcomes.get_nowait())
    except queue.Empty:
        pass
    return found


def _with_retries(workbench: Workbench, spec: JobSpec, cancelled: Any) -> JobOutcome:
    tries = 0
    while True:
        try:
            return workbench.run(spec, cancelled)
        except TransientError as exc:
            wait_s = retry_delay_s(tries)
            if wait_s is None:
                return given_up(spec, exc, workbench.name)
            logger.warning("job %s: %s; retrying in %.0f s", spec.job_id, exc, wait_s)
            time.sleep(wait_s)
            tries += 1
