"""The panel's Batch section, clicked through against a real server process (cohorts in the
server's own process) and, for the roles, a real OpenID Connect provider: an ML admin segments
the studies selected in Studies and sees the progress and a row per study (with the reason of a
failure), cancels a cohort, finds a running one again on Connect; the poll stops with the module;
a clinician is told that the batch needs the ML admin role and gets no batch controls."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import slicer
from PySide6 import QtWidgets

from _cases import make_studies
from _oidc import oidc_provider
from _server import monailabel_server
from _slicer_harness import ModuleSession
from BrainTumorLabelLib.client import RequestRefused, ServerClient


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("studies")
    ids = make_studies(root, 5, seed=59)
    next((root / ids[2]).glob("*-t2f.nii.gz")).unlink()  # a study that cannot be segmented
    return root


@pytest.fixture(scope="module")
def server(studies, tmp_path_factory) -> Iterator[str]:
    with monailabel_server(studies, tmp_path_factory.mktemp("log") / "server.log") as url:
        yield url


def _ids(studies: Path) -> list[str]:
    return sorted(p.name for p in studies.iterdir() if p.name.startswith("SynBraTS"))


def open_batch(session: ModuleSession, url: str) -> None:
    """Connect (the panel then asks the server whether this user may run cohorts) and open Batch."""
    widget = session.widget
    session.ui.serverUrlLineEdit.text = url
    session.ui.connectButton.click()
    session.wait_until(lambda: "connect" not in widget.callbacks and  # (a cohort it follows may run on)
                       widget.callbacks.get("batch") != widget.batchAccessArrived, "the server's answers")
    section = next(s for s in session.panel.findChildren(slicer.ctkCollapsibleButton) if s.text == "Batch")
    if section.collapsed:
        section.click()


def table(widget: QtWidgets.QTableWidget) -> list[list[str]]:
    return [[widget.item(i, j).text() for j in range(widget.columnCount)] for i in range(widget.rowCount)]


def test_an_admin_segments_the_selected_studies_and_sees_progress_rows_and_why_one_failed(session, server, studies):
    ui, ids = session.ui, _ids(studies)
    open_batch(session, server)
    assert ui.batchControls.isVisible() and ui.batchStatusLabel.text.startswith("No cohort yet")
    ui.studiesTable.selectRow(0)
    ui.studiesTable.setRangeSelected(QtWidgets.QTableWidgetSelectionRange(2, 0, 2, 3), True)  # Ctrl-click
    ui.segmentSelectedButton.click()
    assert ui.batchProgressBar.isVisible() and ui.cancelBatchButton.enabled
    assert not ui.segmentAllButton.enabled and not ui.segmentSelectedButton.enabled
    assert not ui.cancelButton.enabled  # the Segment section's Cancel leaves the cohort alone
    session.wait_until(lambda: " of 2 studies finished (" in ui.batchStatusLabel.text, "the cohort's progress", 120)
    session.wait_idle()
    line = ui.batchStatusLabel.text
    assert line.startswith("Cohort ") and line.endswith(" finished: 1 done, 1 failed.")
    done, failed = table(ui.batchTable)
    assert done[:3] == [ids[0], "done", "server"] and float(done[3]) > 0 and done[4] == ""
    assert failed[:2] == [ids[2], "failed"] and "t2f" in failed[4]
    assert ui.batchTable.item(1, 4).toolTip() == failed[4]  # the whole reason
    assert not ui.batchProgressBar.isVisible() and ui.segmentAllButton.enabled and not ui.cancelBatchButton.enabled


def test_connect_follows_a_running_cohort_and_unloading_stops_the_poll_not_the_cohort(session, server, studies):
    ui, ids = session.ui, _ids(studies)
    admin = ServerClient(server)
    started = admin.start_cohort([ids[3], ids[4]])  # from another panel, say (two inferences: it runs on)
    try:
        open_batch(session, server)
        assert session.widget.jobs.running() == ["batch"]
        assert ui.batchStatusLabel.text.startswith(f"Cohort {started.id[:8]}: ")
        assert " of 2 studies finished (" in ui.batchStatusLabel.text
        assert [row[0] for row in table(ui.batchTable)] == [ids[3], ids[4]]
        first = session.widget.jobs.get("batch")
        ui.connectButton.click()  # again: the same cohort followed by a new job
        session.wait_until(lambda: session.widget.jobs.get("batch") is not first and session.widget.cohortRun,
                           "the cohort followed again")
        assert session.widget.jobs.running() == ["batch"]
        session.widget.cleanup()  # the application closing
        assert not session.widget.timer.isActive() and session.widget.jobs.running() == []
        assert admin.cohort(started.id).running  # it goes on on the server
    finally:
        with contextlib.suppress(RequestRefused):  # (ended meanwhile)
            admin.cancel_cohort(started.id)


def test_cancel_stops_the_cohort_on_the_server(session, server, studies):
    ui, ids = session.ui, _ids(studies)
    open_batch(session, server)
    session.wait_idle()  # the previous test's cohort, followed until its cancel has ended it
    ui.segmentAllButton.click()
    following = session.widget.cohortRun
    session.widget.onSegmentAll()  # a second click while it runs (the button is off; a shortcut is not)
    assert ui.batchStatusLabel.text == "'batch' is still running; wait for it or cancel it"
    assert session.widget.cohortRun is following
    ui.cancelBatchButton.click()
    assert ui.batchStatusLabel.text.endswith(" Cancelling ...") and not ui.cancelBatchButton.enabled
    session.wait_idle()
    assert " cancelled: " in ui.batchStatusLabel.text
    rows = {row[0]: row for row in table(ui.batchTable)}
    assert sorted(rows) == [ids[0], ids[1], ids[3], ids[4]]  # every study that can be segmented
    assert rows[ids[1]][1] == "cancelled" and rows[ids[1]][3:] == ["", "the cohort was cancelled"]
    assert not ui.cancelBatchButton.enabled
    session.widget.onCancelBatch()  # a shortcut, say
    assert ui.batchStatusLabel.text == "No cohort is running here."


def test_the_batch_buttons_say_what_they_need_first(session):
    ui = session.ui
    assert not ui.batchControls.isVisibleTo(session.panel) and "ML admin role" in ui.batchStatusLabel.text
    assert not ui.cancelBatchButton.enabled
    for button, message in ((ui.segmentAllButton, "Connect first."),
                            (ui.segmentSelectedButton, "Connect, then select studies in the Studies table")):
        button.click()
        assert ui.batchStatusLabel.text.startswith(message)


def test_a_clinician_is_told_the_batch_needs_the_ml_admin_role_and_an_admin_gets_it(session, tmp_path):
    ui = session.ui
    make_studies(tmp_path / "studies", 1, seed=60)
    with oidc_provider(audience="braintumorlabel") as provider:
        env = {"BTL_OIDC_ISSUER": provider.issuer, "BTL_OIDC_AUDIENCE": "braintumorlabel"}
        with monailabel_server(tmp_path / "studies", tmp_path / "server.log", env=env) as url:
            open_batch(session, url)
            assert not ui.batchControls.isVisible() and ui.batchStatusLabel.text.startswith("Log in (Server)")
            ui.tokenLineEdit.text = provider.token("clinician-client", "braintumorlabel")
            ui.loginButton.click()
            session.wait_idle()
            assert len(session.widget.rows) == 1 and not ui.batchControls.isVisible()
            assert ui.batchStatusLabel.text.startswith("Batch segmentation needs the ML admin role: user ")
            assert "'ml_admin'" in ui.batchStatusLabel.text and "Traceback" not in ui.batchStatusLabel.text
            ui.tokenLineEdit.text = provider.token("admin-client", "braintumorlabel")
            ui.loginButton.click()
            session.wait_idle()
            assert ui.batchControls.isVisible() and ui.batchStatusLabel.text.startswith("No cohort yet")
