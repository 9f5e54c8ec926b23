"""The in-process job runner on a real study and the served model: outcomes come back with the
label, a cancelled job that is asked for again while it runs counts after all, a bad study is a
failed outcome naming why."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lib.jobs.runners import InProcessRunner
from lib.jobs.work import CANCELLED, DONE, FAILED, RUNNING, JobSpec, StudyRef, Workbench
from lib.jobs.worker import served_segmenter

from _cases import make_studies


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    root = tmp_path_factory.mktemp("studies")
    ids = make_studies(root, 2, seed=76)
    next((root / ids[1]).glob("*-t1c.nii.gz")).unlink()
    running = InProcessRunner(Workbench(served_segmenter(None), name="here"))
    yield running, root, ids
    running.close()


def _wait(runner: InProcessRunner, job_id: str, timeout_s: float = 300.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for outcome in runner.poll(1.0):
            if outcome.job_id == job_id:
                return outcome
    raise AssertionError(f"no outcome of {job_id}")


def test_a_job_comes_back_with_its_label_and_who_ran_it(runner):
    jobs, root, ids = runner
    jobs.submit(JobSpec("done-1", StudyRef(str(root), ids[0])))
    outcome = _wait(jobs, "done-1")
    assert outcome.state == DONE and outcome.worker == "here" and outcome.label_nii_gz[:2] == b"\x1f\x8b"
    assert outcome.volumes_ml["WT"] > 0 and outcome.measurements["brain_ml"] > 0


def test_a_cancelled_job_asked_for_again_while_it_runs_counts(runner):
    jobs, root, ids = runner
    spec = JobSpec("again-1", StudyRef(str(root), ids[0]))
    jobs.submit(spec)
    deadline = time.monotonic() + 120
    while jobs.states().get(spec.job_id, ("", ""))[0] != RUNNING:
        assert time.monotonic() < deadline, jobs.states()
        time.sleep(0.05)
    jobs.cancel([spec.job_id])
    jobs.submit(spec)  # a new cohort names the same study again
    assert _wait(jobs, spec.job_id).state == DONE
    jobs.submit(JobSpec("cancelled-1", StudyRef(str(root), ids[0])))
    jobs.cancel(["cancelled-1"])
    assert _wait(jobs, "cancelled-1").state == CANCELLED


def test_a_study_without_its_t1c_is_a_failed_outcome_naming_it(runner):
    jobs, root, ids = runner
    jobs.submit(JobSpec("bad-1", StudyRef(str(root), ids[1])))
    outcome = _wait(jobs, "bad-1")
    assert outcome.state == FAILED and "t1c" in outcome.error and str(Path(root)) not in outcome.error
