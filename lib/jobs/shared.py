"""One runner shared by a server's threads: each user of it (a request's inference, a cohort)
has a view that submits its own jobs and sees only their outcomes and states.

A thread of its own polls the runner (the runners are not thread-safe, and Celery's result
channel is read by one consumer) and routes each outcome to the view that submitted its job.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable

from .runners import Runner, drain
from .work import JobOutcome, JobSpec

logger = logging.getLogger(__name__)


class SharedRunner:
    """``runner`` behind a lock, polled by one thread; :meth:`view` gives each user its own."""

    def __init__(self, runner: Runner, poll_s: float = 0.2) -> None:
        self.runner, self.poll_s = runner, poll_s
        self._lock = threading.Lock()
        self._owners: dict[str, queue.Queue[JobOutcome]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._route, name="btl-job-outcomes", daemon=True)
        self._thread.start()

    def view(self) -> RunnerView:
        return RunnerView(self)

    def _submit(self, spec: JobSpec, inbox: queue.Queue[JobOutcome]) -> None:
        with self._lock:
            self._owners[spec.job_id] = inbox
            self.runner.submit(spec)

    def _states(self, job_ids: set[str]) -> dict[str, tuple[str, str]]:
        with self._lock:
            return {k: v for k, v in self.runner.states().items() if k in job_ids}

    def _cancel(self, job_ids: Iterable[str]) -> None:
        with self._lock:
            self.runner.cancel(list(job_ids))

    def _route(self) -> None:
        while not self._stop.is_set():
            try:
                with self._lock:
                    outcomes = self.runner.poll(0.0)
                    owners = [(o, self._owners.pop(o.job_id, None)) for o in outcomes]
            except Exception:  # a broker that went away: the runner reconnects at the next poll
                logger.exception("collecting job outcomes")
                owners = []
            for outcome, inbox in owners:
                if inbox is not None:
                    inbox.put(outcome)
            self._stop.wait(self.poll_s)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            self.runner.close()


class RunnerView:
    """The :class:`~lib.jobs.runners.Runner` of one user of a :class:`SharedRunner`."""

    def __init__(self, shared: SharedRunner) -> None:
        self._shared = shared
        self._inbox: queue.Queue[JobOutcome] = queue.Queue()
        self._jobs: set[str] = set()

    def submit(self, spec: JobSpec) -> None:
        self._jobs.add(spec.job_id)
        self._shared._submit(spec, self._inbox)

    def poll(self, timeout_s: float) -> list[JobOutcome]:
        return drain(self._inbox, timeout_s)

    def states(self) -> dict[str, tuple[str, str]]:
        return self._shared._states(self._jobs)

    def cancel(self, job_ids: Iterable[str]) -> None:
        self._shared._cancel(job_ids)

    def close(self) -> None:
        """A view closes nothing: the shared runner outlives its users."""
