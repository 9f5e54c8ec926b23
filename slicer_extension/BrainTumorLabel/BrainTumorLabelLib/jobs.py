"""Background jobs the module's GUI polls: network calls run in a worker thread, never on the
GUI thread, and the widget's ``QTimer`` reads :meth:`Job.status` to show progress.

A job moves ``RUNNING`` -> ``SUCCEEDED`` | ``FAILED`` | ``CANCELLED``, once. Cancelling cannot
interrupt a request already sent; it marks the job cancelled at once, runs the job's
``on_cancel`` (e.g. stop the server's training) and its late result is discarded.
:class:`Jobs` runs at most one job per name, so a double click does not send twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any


class JobState(str, Enum):
    """A job's state; its value (and ``str()``) is the lower-case word shown to the user."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True)
class JobStatus:
    """A snapshot for the GUI: ``progress`` in 0..1 or None when unknown; ``error`` is the
    message of a failed job, fit to show; ``result`` what a succeeded job returned; ``detail``
    what the job last reported beside its message (a cohort's rows, say), for the GUI to show."""

    name: str
    state: JobState
    message: str
    progress: float | None
    elapsed_s: float
    result: Any = None
    error: str | None = None
    detail: Any = None

    @property
    def finished(self) -> bool:
        return self.state is not JobState.RUNNING


class Progress:
    """What a job's work function is given: report progress, and see whether it was cancelled."""

    def __init__(self, job: Job) -> None:
        self._job = job

    def report(self, message: str, fraction: float | None = None, detail: Any = None) -> None:
        """The job's progress line, how far it is (0..1, None: unknown) and, for the GUI, what
        else it has to show (kept until the next report)."""
        self._job._report(message, fraction, detail)

    @property
    def cancelled(self) -> bool:
        return self._job._cancelled.is_set()


class Job:
    """``work(progress)`` in a daemon thread. Exceptions become ``FAILED`` with their message."""

    def __init__(self, name: str, work: Callable[[Progress], Any],
                 on_cancel: Callable[[], None] | None = None) -> None:
        self.name = name
        self._work, self._on_cancel = work, on_cancel
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self._state, self._message = JobState.RUNNING, "starting"
        self._progress: float | None = None
        self._detail: Any = None
        self._result: Any = None
        self._error: str | None = None
        self._started = time.monotonic()
        self._finished_at: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"job-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            result = self._work(Progress(self))
        except Exception as exc:  # the message is what the user sees
            self._finish(JobState.FAILED, str(exc) or type(exc).__name__, error=str(exc) or type(exc).__name__)
        else:
            self._finish(JobState.SUCCEEDED, "done", result=result)

    def _finish(self, state: JobState, message: str, result: Any = None, error: str | None = None) -> None:
        with self._lock:
            if self._state is not JobState.RUNNING:  # cancelled meanwhile: the late outcome is dropped
                return
            self._state, self._message, self._result, self._error = state, message, result, error
            self._progress = 1.0 if state is JobState.SUCCEEDED else self._progress
            self._finished_at = time.monotonic()

    def _report(self, message: str, fraction: float | None, detail: Any) -> None:
        with self._lock:
            if self._state is JobState.RUNNING:
                self._message, self._progress, self._detail = message, fraction, detail

    def cancel(self) -> None:
        """Mark the job cancelled now; its ``on_cancel`` runs in this thread."""
        with self._lock:
            if self._state is not JobState.RUNNING:
                return
            self._state, self._message, self._finished_at = JobState.CANCELLED, "cancelled", time.monotonic()
        self._cancelled.set()
        if self._on_cancel is not None:
            self._on_cancel()

    def status(self) -> JobStatus:
        with self._lock:
            end = self._finished_at if self._finished_at is not None else time.monotonic()
            return JobStatus(self.name, self._state, self._message, self._progress, round(end - self._started, 2),
                             self._result, self._error, self._detail)

    def wait(self, timeout_s: float | None = None) -> JobStatus:
        """Block until the work function returns (for tests and scripts; the GUI polls instead)."""
        self._thread.join(timeout_s)
        return self.status()


class JobBusy(RuntimeError):
    """A job of that name is still running."""


class Jobs:
    """At most one running job per name (segment, submit, train, ...)."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}

    def start(self, name: str, work: Callable[[Progress], Any], on_cancel: Callable[[], None] | None = None) -> Job:
        current = self._jobs.get(name)
        if current is not None and not current.status().finished:
            raise JobBusy(f"'{name}' is still running; wait for it or cancel it")
        job = Job(name, work, on_cancel)
        self._jobs[name] = job
        return job

    def get(self, name: str) -> Job | None:
        return self._jobs.get(name)

    def running(self) -> list[str]:
        return [name for name, job in self._jobs.items() if not job.status().finished]

    def shutdown(self, timeout_s: float = 2.0) -> list[str]:
        """Cancel every running job (their ``on_cancel`` runs: training is stopped on the server)
        and wait up to ``timeout_s`` in all for their threads to end; returns the names of those
        still blocked in a request (daemon threads: they end with the request, their result dropped)."""
        for name in self.running():
            self._jobs[name].cancel()
        deadline = time.monotonic() + timeout_s
        for job in self._jobs.values():
            job._thread.join(max(0.0, deadline - time.monotonic()))
        return [name for name, job in self._jobs.items() if job._thread.is_alive()]
