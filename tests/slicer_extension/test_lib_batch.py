"""The Batch section's cohort, apart from the GUI, against a real server process (cohorts run in
the server's own process, no broker): started from chosen studies or all of them, followed in a
job as the panel's timer sees it (progress line, a row per study, the reason of a failure),
cancelled; and the progress line's counts and ETA. Standard library and pytest only (Slicer's
Pythons); the studies are made on the server's Python (``_server_side``)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from _server import monailabel_server
from _server_side import task
from BrainTumorLabelLib import batch
from BrainTumorLabelLib.client import Cohort, CohortStudy, RequestRefused, ServerClient
from BrainTumorLabelLib.jobs import Jobs, JobState


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("studies")


@pytest.fixture(scope="module")
def studies(root) -> list[str]:
    return list(task("make_studies", root=root, n=3, seed=58, drop={"2": "t2f"}))  # the third cannot be segmented


@pytest.fixture(scope="module")
def client(root, studies, tmp_path_factory) -> ServerClient:
    with monailabel_server(root, tmp_path_factory.mktemp("log") / "server.log") as url:
        yield ServerClient(url)


def followed(run: batch.CohortRun, timeout_s: float = 300.0) -> tuple[Cohort, list[str]]:
    """Run ``run.follow`` in a job and look at it as the panel's timer does: the cohort it ended
    with, and every progress line seen meanwhile."""
    job = Jobs().start("batch", run.follow)
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while not job.status().finished:
        assert time.monotonic() < deadline, f"the cohort did not end within {timeout_s:g} s"
        status = job.status()
        if isinstance(status.detail, Cohort) and (not lines or lines[-1] != status.message):
            lines.append(status.message)
        time.sleep(0.05)
    status = job.status()
    assert status.state is JobState.SUCCEEDED, status.error
    return status.result, lines


def test_selected_studies_are_followed_to_the_end_with_each_studys_state_and_reason(client, studies):
    assert batch.access(client) == batch.Access(True, "No cohort yet: segment every study, or those selected in "
                                                      "Studies.")
    cohort, lines = followed(batch.CohortRun(client, [studies[0], studies[2]], poll_s=0.5))
    rows = {row.study: row for row in cohort.rows}
    assert cohort.state == "finished" and cohort.studies == 2 and list(rows) == [studies[0], studies[2]]
    assert (rows[studies[0]].state, rows[studies[0]].worker, rows[studies[0]].error) == ("done", "server", None)
    assert rows[studies[0]].volumes_ml["WT"] > 0 and rows[studies[0]].seconds > 0
    assert rows[studies[2]].state == "failed" and "t2f" in rows[studies[2]].error
    assert lines and all(line.startswith(f"Cohort {cohort.id[:8]}") for line in lines)
    assert any(" of 2 studies finished (" in line for line in lines)  # seen while it ran
    assert batch.progress_line(cohort) == f"Cohort {cohort.id[:8]} finished: 1 done, 1 failed."
    cells = batch.row_cells(rows[studies[0]])
    assert cells[:3] == (studies[0], "done", "server") and float(cells[3]) > 0 and cells[4] == ""
    assert batch.row_cells(rows[studies[2]])[3] == "" and "t2f" in batch.row_cells(rows[studies[2]])[4]
    listed = client.cohorts()
    assert listed[-1].id == cohort.id and listed[-1].counts == {"done": 1, "failed": 1} and listed[-1].rows == ()


def test_segment_all_names_only_what_can_be_segmented_and_cancel_stops_it(client, studies):
    run = batch.CohortRun(client, poll_s=0.5)  # every study
    run.cancel()  # at once: sent as soon as the cohort has started
    cohort, _ = followed(run)
    states = {row.study: row.state for row in cohort.rows}
    assert cohort.state == "cancelled" and sorted(states) == sorted([studies[0], studies[1]])  # not the third
    assert states[studies[1]] == "cancelled"  # studies[0]: cached when the first test has segmented it
    assert next(r.error for r in cohort.rows if r.study == studies[1]) == "the cohort was cancelled"
    assert batch.progress_line(cohort).startswith(f"Cohort {cohort.id[:8]} cancelled: ")
    with pytest.raises(RequestRefused, match="nothing to cancel") as refused:
        client.cancel_cohort(cohort.id)
    assert refused.value.status == 409
    access = batch.access(client)
    assert access.allowed and access.latest == cohort and access.message == batch.progress_line(cohort)


def test_an_unknown_cohort_or_study_is_refused_with_the_reason(client):
    with pytest.raises(RequestRefused, match="unknown job") as unknown:
        client.cohort("0123456789abcdef")
    assert unknown.value.status == 404
    with pytest.raises(RequestRefused, match="no-such-study"):
        client.start_cohort(["no-such-study"])


def _cohort(state: str, rows: list[CohortStudy], counts: dict[str, int] | None = None) -> Cohort:
    return Cohort("4f2a9c1be0d3", "admin", "2026-12-01T10:00:00Z", None, state, "v3", len(rows) or 6,
                  counts or {}, tuple(rows))


def test_the_progress_line_counts_each_state_and_estimates_the_time_left():
    rows = [CohortStudy("a", "done", "gpu0", seconds=30.0), CohortStudy("b", "done", "gpu1", seconds=50.0),
            CohortStudy("c", "failed", error="sequence 't2f' is missing"), CohortStudy("d", "running", "gpu0"),
            CohortStudy("e", "queued"), CohortStudy("f", "queued")]
    running = _cohort("running", rows)
    # 40 s a study, 3 left, 1 running at a time
    assert batch.progress_line(running) == ("Cohort 4f2a9c1b: 3 of 6 studies finished "
                                            "(2 done, 1 failed, 1 running, 2 queued); about 2 min left.")
    assert batch.fraction(running) == 0.5 and batch.eta_s(running) == 120.0
    started = _cohort("running", [CohortStudy("a", "running"), CohortStudy("b", "queued")])
    assert batch.progress_line(started) == "Cohort 4f2a9c1b: 0 of 2 studies finished (1 running, 1 queued)."
    summary = _cohort("finished", [], {"done": 4, "cached": 1, "failed": 1})  # as GET /btl/jobs lists it
    assert batch.progress_line(summary) == "Cohort 4f2a9c1b finished: 4 done, 1 cached, 1 failed."
    assert batch.fraction(summary) == 1.0
    assert [batch.duration_text(s) for s in (0.2, 40, 150, 3900)] == ["1 s", "40 s", "2 min", "1 h 5 min"]
    assert batch.row_cells(CohortStudy("a", "done", "gpu0", volumes_ml={"WT": 41.26})) == \
        ("a", "done", "gpu0", "41.3", "")

