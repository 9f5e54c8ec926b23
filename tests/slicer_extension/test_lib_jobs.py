"""Background jobs the widget polls: one state change each, cancel without waiting, one job per name."""

from __future__ import annotations

import threading
import time

import pytest

from BrainTumorLabelLib.jobs import JobBusy, Jobs, JobState


def test_a_job_reports_progress_then_its_result():
    release = threading.Event()

    def work(progress):
        progress.report("halfway", 0.5, {"rows": ["study-1 done"]})  # what else the GUI shows
        release.wait(5)
        return 42
    job = Jobs().start("segment", work)
    deadline = time.monotonic() + 5
    while job.status().message != "halfway":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert (job.status().state, job.status().progress) == (JobState.RUNNING, 0.5)
    assert job.status().detail == {"rows": ["study-1 done"]}
    release.set()
    status = job.wait(5)
    assert (status.state, status.result, status.progress) == (JobState.SUCCEEDED, 42, 1.0)


def test_a_failure_keeps_its_message_for_the_user():
    def work(progress):
        raise RuntimeError("cannot reach http://server:8000 (ConnectionRefusedError)")
    status = Jobs().start("load", work).wait(5)
    assert status.state is JobState.FAILED
    assert status.error == "cannot reach http://server:8000 (ConnectionRefusedError)"


def test_cancel_is_immediate_runs_its_hook_and_drops_the_late_result():
    release, stopped = threading.Event(), []

    def work(progress):
        release.wait(5)
        return "late"
    job = Jobs().start("train", work, on_cancel=lambda: stopped.append(True))
    job.cancel()
    assert job.status().state is JobState.CANCELLED and stopped == [True]
    release.set()
    assert job.wait(5).state is JobState.CANCELLED and job.status().result is None


def test_one_job_per_name_so_a_double_click_sends_once():
    release = threading.Event()
    jobs = Jobs()
    first = jobs.start("submit", lambda progress: release.wait(5))
    with pytest.raises(JobBusy, match="'submit' is still running"):
        jobs.start("submit", lambda progress: None)
    assert jobs.running() == ["submit"]
    release.set()
    first.wait(5)
    assert jobs.start("submit", lambda progress: "again").wait(5).result == "again"


def test_shutdown_cancels_running_jobs_and_waits_for_their_threads():
    release, stopped = threading.Event(), []
    jobs = Jobs()
    quick = jobs.start("train", lambda progress: release.wait(5),
                       on_cancel=lambda: (stopped.append(True), release.set()))
    stuck = jobs.start("segment", lambda progress: threading.Event().wait(1.0))
    assert jobs.shutdown(timeout_s=0.2) == ["segment"]  # blocked in its request: left to end alone
    assert stopped == [True] and quick.status().state is JobState.CANCELLED
    assert stuck.status().state is JobState.CANCELLED and jobs.running() == []
