"""The module's panel, clicked through as a user does, against a real server process, on real MRML
(the harness: ``_slicer_harness.py``): connect, studies, load, segment (progress, cancel), correct
in MRML, submit (once), train and stop, report, a server that goes away, the module's life."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
from PySide6 import QtCore, QtGui, QtWidgets

from synthbrats.dicom_export import StudyPlan, export_case

from _cases import make_studies
from _oidc import oidc_provider
from _server import monailabel_process, monailabel_server
from _slicer_harness import (
    DicomDatabase,
    ModuleSession,
    PythonQtStyle,
    connect,
    load_study,
    new_scene,
    qMRMLNodeComboBox,
)
from BrainTumorLabel import BrainTumorLabelWidget
from BrainTumorLabelLib.labels import SEGMENTS

CONTROLS = (QtWidgets.QAbstractButton, QtWidgets.QLineEdit, QtWidgets.QComboBox, QtWidgets.QAbstractSpinBox,
            QtWidgets.QTableWidget, QtWidgets.QPlainTextEdit, QtWidgets.QProgressBar)


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("studies")
    ids = make_studies(root, 3, seed=52)
    next((root / ids[2]).glob("*-t2f.nii.gz")).unlink()  # a study that cannot be segmented
    black_side(next((root / ids[1]).glob("*-t1n.nii.gz")))  # a study the model's notes warn about
    return root


def black_side(path: Path) -> None:
    """A failed coil element: a fifth of the brain black on this series."""
    image = sitk.ReadImage(str(path))
    voxels = sitk.GetArrayFromImage(image)
    brain_x = np.flatnonzero(voxels.any(axis=(0, 1)))
    voxels[:, :, brain_x[0]:brain_x[0] + len(brain_x) // 5] = 0
    damaged = sitk.GetImageFromArray(voxels)
    damaged.CopyInformation(image)
    sitk.WriteImage(damaged, str(path))


@pytest.fixture(scope="module")
def server(studies, tmp_path_factory) -> Iterator[str]:
    with monailabel_server(studies, tmp_path_factory.mktemp("log") / "server.log") as url:
        yield url


def _ids(studies: Path) -> list[str]:
    return sorted(p.name for p in studies.iterdir() if p.name.startswith("SynBraTS"))


def segment(session: ModuleSession) -> None:
    session.ui.segmentButton.click()
    session.wait_idle()


def loaded_and_segmented(session: ModuleSession, url: str, image_id: str) -> None:
    connect(session, url)
    load_study(session, image_id)
    segment(session)


def table(widget: QtWidgets.QTableWidget) -> list[list[str]]:
    return [[widget.item(i, j).text() for j in range(widget.columnCount)] for i in range(widget.rowCount)]


# ---- what a user sees first
def test_sections_collapse_and_every_control_has_a_tooltip(session):
    panel = session.panel
    sections = {s.text: s for s in panel.findChildren(slicer.ctkCollapsibleButton)}
    assert list(sections) == ["Server", "Studies", "Sequences", "Segment", "Correct", "Submit", "Train", "Batch",
                              "Report", "Similar cases"]
    assert sections["Train"].collapsed and sections["Batch"].collapsed and not sections["Segment"].collapsed
    assert sections["Similar cases"].collapsed
    sections["Train"].click()
    assert not sections["Train"].collapsed and session.ui.trainButton.isVisible()
    untipped = [w.name for w in panel.findChildren(QtWidgets.QWidget)  # the .ui's own, not Qt's inner parts
                if isinstance(w, PythonQtStyle) and isinstance(w, (*CONTROLS, qMRMLNodeComboBox,
                                                                   slicer.qMRMLSegmentEditorWidget)) and not w.toolTip]
    assert untipped == []


def test_a_wrong_or_absent_server_is_named_in_the_server_section(session):
    session.ui.serverUrlLineEdit.text = "127.0.0.1:8000"
    session.ui.connectButton.click()
    assert "is not a server address" in session.ui.serverStatusLabel.text
    connect(session, "http://127.0.0.1:9")
    assert session.ui.serverStatusLabel.text.startswith("connect failed: cannot reach http://127.0.0.1:9")
    assert "Traceback" not in session.ui.serverStatusLabel.text


def test_buttons_that_need_a_connection_say_so(session):
    for button, label in (("refreshStudiesButton", "serverStatusLabel"), ("nextSampleButton", "serverStatusLabel"),
                          ("loginButton", "serverStatusLabel"), ("loadStudyButton", "statusLabel"),
                          ("segmentButton", "statusLabel"), ("submitButton", "statusLabel"),
                          ("trainButton", "trainingStatusLabel"), ("draftReportButton", "reportStatusLabel"),
                          ("loadFromDicomButton", "statusLabel")):
        getattr(session.ui, button).click()
        assert getattr(session.ui, label).text, button


# ---- server and studies
def test_connect_lists_the_studies_and_the_filter_narrows_them(session, server, studies):
    connect(session, server)
    ids = _ids(studies)
    assert session.ui.serverStatusLabel.text.startswith("BrainTumorLabel")
    rows = table(session.ui.studiesTable)
    assert [r[0] for r in rows] == ids
    assert rows[2][3] and "t2f" in rows[2][3] and rows[0][2] == "t1n t1c t2w t2f"
    session.ui.studyFilterLineEdit.text = ids[1][-3:]
    assert [r[0] for r in table(session.ui.studiesTable)] == [ids[1]]
    session.ui.refreshStudiesButton.click()
    session.wait_idle()
    assert [r[0] for r in table(session.ui.studiesTable)] == [ids[1]]
    assert "random" in [session.ui.strategyComboBox.itemText(i) for i in range(session.ui.strategyComboBox.count)]


def test_next_sample_selects_a_study_that_can_be_segmented(session, server, studies):
    connect(session, server)
    session.ui.nextSampleButton.click()
    session.wait_idle()
    assert session.widget.selectedStudy() in _ids(studies)[:2]


def test_load_puts_four_volumes_in_the_scene_and_t1c_in_the_views(session, server, studies):
    image_id = _ids(studies)[0]
    slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")  # one slice view
    connect(session, server)
    load_study(session, image_id)
    parameters = session.widget.parameters()
    assert parameters.studyId == image_id
    for sequence in ("t1n", "t1c", "t2w", "t2f"):
        assert getattr(parameters, sequence).GetName() == f"{image_id} {sequence}"
        assert getattr(session.ui, f"{sequence}Selector").currentNode() is getattr(parameters, sequence)
    view = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSliceCompositeNode")
    assert view.GetBackgroundVolumeID() == parameters.t1c.GetID()
    assert session.ui.statusLabel.text == f"Study {image_id} loaded."


# ---- segment and correct
def test_segment_makes_ncr_ed_et_in_standard_terminology_on_the_t1c_grid(session, server, studies):
    loaded_and_segmented(session, server, _ids(studies)[0])
    parameters = session.widget.parameters()
    segmentation, t1c = parameters.segmentation, parameters.t1c
    content = segmentation.GetSegmentation()
    segments = {content.GetNthSegment(i).GetName(): content.GetNthSegment(i)
                for i in range(content.GetNumberOfSegments())}
    assert sorted(segments) == ["ED", "ET", "NCR"]
    for spec in SEGMENTS:
        assert spec.property_type.value in segments[spec.name].GetTerminology()
    assert segmentation.GetNodeReference(segmentation.GetReferenceImageGeometryReferenceRole()) is t1c
    editor = session.ui.segmentEditorWidget
    assert editor.segmentationNode() is segmentation and editor.sourceVolumeNode() is t1c
    assert session.ui.statusLabel.text.startswith("Segmented by ")
    volumes = dict(table(session.ui.volumesTable))
    assert list(volumes) == ["NCR", "ED", "ET", "TC", "WT"] and float(volumes["WT"]) > 0


def test_progress_shows_while_segmenting_and_cancel_stops_waiting(session, server, studies):
    connect(session, server)
    load_study(session, _ids(studies)[1])
    session.ui.segmentButton.click()
    assert session.ui.progressBar.isVisibleTo(session.panel) and session.ui.cancelButton.enabled
    assert not session.ui.segmentButton.enabled  # no second segmentation of the same study meanwhile
    assert session.ui.statusLabel.text.startswith("segment: ")
    session.ui.cancelButton.click()
    session.wait_idle()
    assert session.ui.statusLabel.text == "segment cancelled"
    assert session.widget.parameters().segmentation is None
    assert not session.ui.progressBar.isVisibleTo(session.panel) and session.ui.segmentButton.enabled


def edit_edema(session: ModuleSession, voxels: int = 4) -> None:
    """What a Paint stroke does in the end: the ED segment's binary labelmap changed."""
    parameters = session.widget.parameters()
    segmentation, t1c = parameters.segmentation, parameters.t1c
    segment_id = segmentation.GetSegmentation().GetSegmentIdBySegmentName("ED")
    edema = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segment_id, t1c)
    edema[edema.shape[0] // 2, :voxels, :voxels] = 1
    slicer.util.updateSegmentBinaryLabelmapFromArray(edema, segmentation, segment_id, t1c)


def test_a_correction_is_submitted_once_and_the_study_shows_labelled(session, server, studies):
    image_id = _ids(studies)[1]
    loaded_and_segmented(session, server, image_id)
    assert "Note: t1n has almost no signal over" in session.ui.statusLabel.text  # the model's notes, shown
    edit_edema(session)
    session.ui.submitButton.click()
    session.wait_idle()
    assert session.ui.statusLabel.text == f"Submitted {image_id}."
    assert session.ui.serverStatusLabel.text.startswith("BrainTumorLabel")  # the refresh's progress is gone
    session.ui.studyFilterLineEdit.text = ""
    assert table(session.ui.studiesTable)[_ids(studies).index(image_id)][1] == "yes"
    assert float(dict(table(session.ui.volumesTable))["ED"]) > 0
    session.ui.submitButton.click()
    assert session.ui.statusLabel.text == "This correction has been submitted already."
    assert not session.widget.jobs.running()


# ---- training
def test_train_reports_and_stop_stops_the_run_on_the_server(session, server):
    connect(session, server)
    session.ui.trainEpochsSpinBox.value = 1
    session.ui.trainButton.click()
    client = session.widget.client
    session.wait_until(lambda: session.ui.trainingStatusLabel.text.startswith("train: epoch "), "a training run", 180)
    assert client.training_status()["status"] == "RUNNING"
    session.ui.stopTrainingButton.click()
    assert session.ui.trainingStatusLabel.text == "Training stopped."
    session.wait_until(lambda: client.training_status().get("status") != "RUNNING", "the run to stop", 120)
    assert client.training_status()["status"] in ("STOPPED", "DONE", "ERROR")


# ---- report
def test_draft_review_and_sign_a_report(session, server, studies, tmp_path):
    image_id = _ids(studies)[0]
    loaded_and_segmented(session, server, image_id)
    session.ui.submitButton.click()
    session.wait_idle()
    session.ui.draftReportButton.click()
    session.wait_idle()
    ui = session.ui
    assert ui.reportStatusLabel.text.startswith("Draft, version ") and ui.findingsTable.rowCount > 0
    assert not ui.signReportButton.enabled and not ui.keyImagesLabel.pixmap.isNull()
    ui.findingsTable.selectRow(0)
    assert ui.findingTextEdit.toPlainText() == ui.findingsTable.item(0, 1).text()
    ui.findingTextEdit.setPlainText("Edited by the reader.")
    ui.editFindingButton.click()
    session.wait_idle()
    assert ui.findingsTable.item(0, 1).text() == "Edited by the reader."
    for row in range(1, ui.findingsTable.rowCount):
        ui.findingsTable.selectRow(row)
        (ui.declineFindingButton if row == 1 else ui.approveFindingButton).click()
        session.wait_idle()
    assert ui.signReportButton.enabled
    ui.signReportButton.click()
    assert ui.reportStatusLabel.text == "Write the impression before signing."
    ui.impressionTextEdit.setPlainText("Stable disease.")
    ui.signReportButton.click()
    session.wait_idle()
    assert ui.reportStatusLabel.text.startswith("Version ") and "signed by" in ui.reportStatusLabel.text
    assert not ui.approveFindingButton.enabled and ui.publishReportButton.enabled
    opened: list[str] = []
    handler = UrlCatcher(opened)
    QtGui.QDesktopServices.setUrlHandler("file", handler, "open")
    try:
        ui.openReportButton.click()
        session.wait_idle()
    finally:
        QtGui.QDesktopServices.unsetUrlHandler("file")
    assert len(opened) == 1 and Path(opened[0]).read_bytes().startswith(b"%PDF")
    ui.publishReportButton.click()
    session.wait_idle()
    assert ui.reportStatusLabel.text.startswith("report failed: ")  # a folder study has no PACS to go to


class UrlCatcher(QtCore.QObject):
    """Where Qt sends file URLs instead of the desktop's PDF viewer."""

    def __init__(self, opened: list[str]) -> None:
        super().__init__()
        self.opened = opened

    @QtCore.Slot(QtCore.QUrl)
    def open(self, url: QtCore.QUrl) -> None:
        self.opened.append(url.toLocalFile())


# ---- a server that goes away
def test_a_server_that_goes_down_mid_segmentation_is_named_and_nothing_is_lost(session, studies, tmp_path):
    with monailabel_process(studies, tmp_path / "server.log") as (url, process):
        connect(session, url)
        load_study(session, _ids(studies)[0])
        session.ui.segmentButton.click()
        os.killpg(process.pid, signal.SIGKILL)
        session.wait_idle()
    assert session.ui.statusLabel.text.startswith(f"segment failed: cannot reach {url}")
    assert session.widget.parameters().t1c is not None and session.ui.segmentButton.enabled


# ---- the module's life in Slicer
def test_the_parameter_node_holds_the_state_and_the_gui_follows_it(session, server, studies):
    parameters = session.widget.parameters()
    assert session.ui.annotatorLineEdit.text == parameters.annotator and parameters.annotator
    session.ui.serverUrlLineEdit.text = server
    assert parameters.serverUrl == server
    parameters.patterns = "t2f: flair"
    assert session.ui.patternsLineEdit.text == "t2f: flair"
    connect(session, server)
    load_study(session, _ids(studies)[0])
    session.ui.t2fSelector.setCurrentNode(parameters.t1n)
    assert parameters.t2f is parameters.t1n


def test_volumes_already_in_the_scene_are_assigned_by_name(session, server, studies):
    connect(session, server)
    load_study(session, _ids(studies)[0])
    for sequence in ("t1n", "t1c", "t2w", "t2f"):
        getattr(session.widget.parameters(), sequence).SetName({"t1n": "AX T1 PRE", "t1c": "AX T1 POST GD",
                                                                 "t2w": "AX T2 FSE", "t2f": "AX T2 FLAIR"}[sequence])
        setattr(session.widget.parameters(), sequence, None)
    session.ui.assignFromSceneButton.click()
    assert session.ui.statusLabel.text == "All four assigned."
    assert session.ui.t1cSelector.currentNode().GetName() == "AX T1 POST GD"
    session.ui.patternsLineEdit.text = "t9: nothing"
    session.ui.assignFromSceneButton.click()
    assert "is not '<t1n|t1c|t2w|t2f>" in session.ui.statusLabel.text


def test_leaving_the_module_switches_the_editor_effect_off_and_unbinds_the_gui(session):
    editor = session.ui.segmentEditorWidget
    editor.setActiveEffectByName("Paint")
    session.leave()
    assert editor.activeEffect() is None
    session.widget.parameters().serverUrl = "http://elsewhere:8000"
    assert session.ui.serverUrlLineEdit.text != "http://elsewhere:8000"
    session.enter()
    assert session.ui.serverUrlLineEdit.text == "http://elsewhere:8000"


def test_close_scene_recreates_the_editor_and_parameter_nodes_and_keeps_the_studies(session, server, studies):
    loaded_and_segmented(session, server, _ids(studies)[0])
    studies_shown = table(session.ui.studiesTable)
    session.close_scene()
    editor_node = session.ui.segmentEditorWidget.mrmlSegmentEditorNode()
    assert editor_node is slicer.mrmlScene.GetSingletonNode("BrainTumorLabelSegmentEditor", "vtkMRMLSegmentEditorNode")
    assert editor_node.GetSegmentationNode() is None
    parameters = session.widget.parameters()
    assert parameters.segmentation is None and parameters.t1c is None and parameters.studyId == ""
    assert parameters.serverUrl == server and session.ui.serverUrlLineEdit.text == server
    assert table(session.ui.studiesTable) == studies_shown
    load_study(session, _ids(studies)[0])
    assert session.widget.parameters().t1c is not None


def test_unloading_stops_jobs_removes_observers_and_deletes_the_downloads(session, server, studies):
    connect(session, server)
    load_study(session, _ids(studies)[0])
    work = session.widget.workDir
    assert any(work.rglob("*-t1c.nii.gz"))
    session.ui.segmentButton.click()
    session.widget.cleanup()
    assert not work.exists() and not session.widget.jobs.running()
    assert session.widget.Observations == []


def test_the_self_test_runs_the_workflow_through_the_panel(scene, server, monkeypatch):
    import BrainTumorLabel

    monkeypatch.setenv("BTL_SERVER_URL", server)  # the server it starts itself: test_lib_workflow.py
    test = BrainTumorLabel.BrainTumorLabelTest()
    test.runTest()
    assert test.messages[-1] == "BrainTumorLabel workflow passed"
    assert test.messages[0].startswith("Segmented by ")


def test_the_self_test_without_a_server_says_which_address_it_needs(scene, monkeypatch):
    import BrainTumorLabel

    monkeypatch.delenv("BTL_SERVER_URL", raising=False)
    monkeypatch.delenv("BTL_SERVER_COMMAND", raising=False)
    test = BrainTumorLabel.BrainTumorLabelTest()
    test.runTest()
    assert len(test.messages) == 1 and "BTL_SERVER_URL" in test.messages[0] and "http://127.0.0.1:8000" in \
        test.messages[0]


def test_segmenting_needs_a_t1c_to_put_the_result_on(session, server, studies):
    connect(session, server)
    load_study(session, _ids(studies)[0])
    session.widget.parameters().t1c = None
    segment(session)
    assert session.ui.statusLabel.text.startswith("Choose the t1c volume")


# ---- a server that requires a login
def edema_voxels(session: ModuleSession) -> int:
    parameters = session.widget.parameters()
    segment_id = parameters.segmentation.GetSegmentation().GetSegmentIdBySegmentName("ED")
    return int(slicer.util.arrayFromSegmentBinaryLabelmap(parameters.segmentation, segment_id, parameters.t1c).sum())


def test_a_login_then_a_refused_submit_keeps_the_edits_and_the_right_role_submits_them(session, studies, tmp_path):
    ui, image_id = session.ui, _ids(studies)[0]
    with oidc_provider(audience="braintumorlabel") as provider:
        env = {"BTL_OIDC_ISSUER": provider.issuer, "BTL_OIDC_AUDIENCE": "braintumorlabel"}
        with monailabel_server(studies, tmp_path / "server.log", env=env) as url:
            connect(session, url)
            assert ui.loginGroup.visible and "requires a login" in ui.serverStatusLabel.text and not session.widget.rows
            ui.usernameLineEdit.text, ui.passwordLineEdit.text = "dr.who", "not her password"
            ui.loginButton.click()
            session.wait_idle()
            assert ui.serverStatusLabel.text.startswith("connect failed: ") and "login refused" in \
                ui.serverStatusLabel.text and ui.passwordLineEdit.text == ""
            ui.tokenLineEdit.text = provider.token("clinician-client", "braintumorlabel")  # as a browser login gives
            ui.loginButton.click()
            session.wait_idle()
            assert not ui.loginGroup.visible and len(session.widget.rows) == 3 and ui.tokenLineEdit.text == ""
            load_study(session, image_id)
            segment(session)
            edit_edema(session, voxels=6)
            edited = edema_voxels(session)
            ui.submitButton.click()
            session.wait_idle()
            assert ui.statusLabel.text.startswith("submit failed: your role may not do this")
            assert edema_voxels(session) == edited  # nothing lost
            ui.tokenLineEdit.text = provider.token("annotator-client", "braintumorlabel")
            ui.loginButton.click()
            session.wait_idle()
            ui.submitButton.click()
            session.wait_idle()
            assert ui.statusLabel.text == f"Submitted {image_id}." and edema_voxels(session) == edited


# ---- Slicer's DICOM database
def test_a_study_of_slicers_dicom_database_is_loaded_by_the_servers_rules(session, server, studies, tmp_path):
    complete, incomplete = studies / _ids(studies)[0], studies / _ids(studies)[1]
    export_case(complete, tmp_path, np.random.default_rng(3), StudyPlan("siemens", "Gadobutrol", ("localizer",), None))
    export_case(incomplete, tmp_path, np.random.default_rng(4), StudyPlan("ge", "Gadobutrol", (), "t2f"))
    slicer.dicomDatabase = DicomDatabase(tmp_path)
    try:
        connect(session, server)
        session.ui.refreshDicomButton.click()
        box = session.ui.dicomStudyComboBox
        assert box.count == 2 and box.itemText(0).startswith("Synthetic")
        for index in range(2):
            box.setCurrentIndex(index)
            session.ui.loadFromDicomButton.click()
            session.wait_idle()
            if session.ui.statusLabel.text.startswith("This study cannot be segmented"):
                assert "t2f" in session.ui.statusLabel.text
                continue
            parameters = session.widget.parameters()
            assert parameters.studyId == box.currentData and parameters.t1c.GetName() == f"{box.currentData} t1c"
            assert parameters.t1c.GetImageData().GetDimensions()[2] > 10
        assert session.widget.parameters().studyId  # one of the two was loaded
    finally:
        slicer.dicomDatabase = None


def test_an_empty_dicom_database_is_said(session, tmp_path):
    slicer.dicomDatabase = DicomDatabase(tmp_path)
    try:
        session.ui.refreshDicomButton.click()
    finally:
        slicer.dicomDatabase = None
    assert "has no study" in session.ui.statusLabel.text


# ---- the rest of what a user can click
def test_the_module_describes_itself_to_slicer():
    import BrainTumorLabel

    parent = QtWidgets.QWidget()
    BrainTumorLabel.BrainTumorLabel(parent)
    assert parent.title == "Brain Tumor Label" and parent.categories == ["Segmentation"]
    assert parent.dependencies == ["Segmentations", "SegmentEditor", "DICOM"] and "NCR" in parent.helpText
    assert "BraTS" in parent.acknowledgementText


def test_a_double_click_sends_once_and_report_buttons_without_a_report_say_what_first(session, server, studies):
    connect(session, server)
    load_study(session, _ids(studies)[0])
    session.ui.segmentButton.setEnabled(True)
    session.widget.onSegment()
    session.widget.onSegment()  # a second click while the first runs (the button is off; a shortcut is not)
    assert session.ui.statusLabel.text == "'segment' is still running; wait for it or cancel it"
    session.ui.cancelButton.click()
    session.wait_idle()
    for button, message in (("approveFindingButton", "Select a finding first."),
                            ("publishReportButton", "Sign a report first."),
                            ("openReportButton", "Draft a report first.")):
        getattr(session.ui, button).click()
        assert session.ui.reportStatusLabel.text == message


def test_a_saved_scene_brings_the_modules_settings_back(session, tmp_path):
    session.ui.serverUrlLineEdit.text = "http://reading-room:8000"
    session.ui.annotatorLineEdit.text = "dr.jones"
    session.ui.patternsLineEdit.text = "t2f: flair, dark fluid"
    slicer.mrmlScene.SetURL(str(tmp_path / "scene.mrml"))
    assert slicer.mrmlScene.Commit()
    restored = new_scene()
    restored.SetURL(str(tmp_path / "scene.mrml"))
    assert restored.Connect()
    slicer.mrmlScene = restored
    reopened = ModuleSession(BrainTumorLabelWidget)
    try:
        ui = reopened.ui
        assert (ui.serverUrlLineEdit.text, ui.annotatorLineEdit.text, ui.patternsLineEdit.text) == \
            ("http://reading-room:8000", "dr.jones", "t2f: flair, dark fluid")
    finally:
        reopened.unload()
