"""The Batch section apart from the GUI (standard library only): a cohort of studies segmented on
the server as jobs (``/btl/jobs``, ML admins only), followed from a job's thread (:mod:`.jobs`)
that the panel's ``QTimer`` polls, and what the section shows of it: a progress line with the
counts per state and an ETA, and a row per study.

:class:`CohortRun` is the work of the panel's ``batch`` job: it starts a cohort (or takes one
already running), looks at it every :data:`COHORT_POLL_S` and reports it as the job's ``detail``
until it is no longer running; its :meth:`CohortRun.cancel` asks the server to cancel it.
Cancelling the job itself (the module closing) only stops looking: the cohort goes on on the
server, and Connect follows it again.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from BrainTumorLabelLib.client import Cohort, CohortStudy, PermissionDenied, RequestRefused, ServerClient
from BrainTumorLabelLib.jobs import Progress

#: seconds between two looks at a running cohort
COHORT_POLL_S = 1.0
#: a study's states, in the order the progress line counts them
STATES: tuple[str, ...] = ("done", "cached", "failed", "cancelled", "running", "queued")
FINISHED: tuple[str, ...] = ("done", "cached", "failed", "cancelled")
#: the columns of the section's table
COLUMNS: tuple[str, ...] = ("Study", "State", "Worker", "WT (mL)", "Reason")


@dataclass(frozen=True)
class Access:
    """Whether this user may run cohorts on the server (its answer to listing them: a 403 means
    no), the line the section shows, and the newest cohort (a running one first) with its rows."""

    allowed: bool
    message: str
    latest: Cohort | None = None


def access(client: ServerClient) -> Access:
    """What the Batch section offers this user: a 403 on the cohorts is a no, with its reason."""
    try:
        cohorts = client.cohorts()
    except PermissionDenied as denied:
        text = str(denied)
        return Access(False, f"{text[:1].upper()}{text[1:]}. Log in as an ML admin to segment a cohort here.")
    if not cohorts:
        return Access(True, "No cohort yet: segment every study, or those selected in Studies.")
    newest = next((c for c in reversed(cohorts) if c.running), cohorts[-1])
    latest = client.cohort(newest.id)
    return Access(True, progress_line(latest), latest)


class CohortRun:
    """One cohort followed from a job's thread: :meth:`follow` starts it (``studies``; None: every
    study the server can segment) or takes the running one ``cohort_id``, and looks at it every
    ``poll_s`` until it ends. :meth:`cancel`, from the GUI thread, has the server cancel it."""

    def __init__(self, client: ServerClient, studies: Sequence[str] | None = None, cohort_id: str = "",
                 poll_s: float = COHORT_POLL_S) -> None:
        self.client, self.poll_s = client, poll_s
        self.studies = None if studies is None else list(studies)
        self.cohort_id = cohort_id
        self._cancel, self._wake = threading.Event(), threading.Event()

    def cancel(self) -> None:
        """Ask the server to cancel the cohort: sent from the job's thread at once (it is woken)."""
        self._cancel.set()
        self._wake.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def follow(self, progress: Progress) -> Cohort:
        """The job's work: the cohort as it ended, or as last seen when the job was cancelled."""
        if not self.cohort_id:
            progress.report("starting the cohort on the server")
            self.cohort_id = self.client.start_cohort(self.studies).id
        cancel_sent = False
        while True:
            if self._cancel.is_set() and not cancel_sent:
                cancel_sent = True
                try:
                    self.client.cancel_cohort(self.cohort_id)
                except RequestRefused as refused:
                    if refused.status != 409:  # 409: it ended meanwhile, nothing to cancel
                        raise
            cohort = self.client.cohort(self.cohort_id)
            progress.report(progress_line(cohort), fraction(cohort), cohort)
            if not cohort.running:
                return cohort
            self._wake.wait(self.poll_s)
            self._wake.clear()
            if progress.cancelled:  # the module closing: stop looking, the cohort goes on
                return cohort


def counts(cohort: Cohort) -> dict[str, int]:
    """Studies per state: from the rows when the cohort has them, else the server's counts."""
    if cohort.rows:
        found: dict[str, int] = {}
        for row in cohort.rows:
            found[row.state] = found.get(row.state, 0) + 1
        return found
    return dict(cohort.counts)


def counts_text(numbers: dict[str, int]) -> str:
    """``2 done, 1 failed``: the states in :data:`STATES` order (then any other), none at zero."""
    order = [s for s in STATES if numbers.get(s)] + sorted(s for s in numbers if s not in STATES and numbers[s])
    return ", ".join(f"{numbers[s]} {s}" for s in order)


def fraction(cohort: Cohort) -> float | None:
    """How far the cohort is: its finished studies over all (None for a cohort of none)."""
    if not cohort.studies:
        return None
    numbers = counts(cohort)
    return min(1.0, sum(numbers.get(s, 0) for s in FINISHED) / cohort.studies)


def eta_s(cohort: Cohort) -> float | None:
    """Seconds left, from the studies segmented so far: their mean time, times the studies left,
    over the studies running side by side (at least one). None before the first is done."""
    took = [row.seconds for row in cohort.rows if row.state == "done" and row.seconds > 0]
    left = sum(1 for row in cohort.rows if row.state in ("queued", "running"))
    if not took or not left:
        return None
    side_by_side = max(1, sum(1 for row in cohort.rows if row.state == "running"))
    return sum(took) / len(took) * left / side_by_side


def duration_text(seconds: float) -> str:
    """``40 s``, ``3 min``, ``1 h 5 min``."""
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def progress_line(cohort: Cohort) -> str:
    """The section's status line: the cohort, how many studies are finished and in which state,
    and while it runs, the time left."""
    numbers = counts(cohort)
    head = f"Cohort {cohort.id[:8]}"
    if not cohort.running:
        return f"{head} {cohort.state}: {counts_text(numbers) or 'no study'}."
    finished = sum(numbers.get(s, 0) for s in FINISHED)
    eta = eta_s(cohort)
    return (f"{head}: {finished} of {cohort.studies} studies finished ({counts_text(numbers)})"
            + (f"; about {duration_text(eta)} left" if eta is not None else "") + ".")


def row_cells(row: CohortStudy) -> tuple[str, str, str, str, str]:
    """A study's cells in the section's table (:data:`COLUMNS`): id, state, worker, whole-tumor
    volume in mL (once segmented), the reason it failed."""
    wt = row.volumes_ml.get("WT")
    return row.study, row.state, row.worker, "" if wt is None else f"{wt:.1f}", row.error or ""
