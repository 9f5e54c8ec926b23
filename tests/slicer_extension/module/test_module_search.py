"""The panel's Similar cases section, clicked through against a real server process whose search
index holds three studies (two patients; one has a follow-up), their reference labels submitted as
final labels: the current study's similar studies with thumbnails, the same patient's flagged; one
loaded beside the current study (its volumes and label named after it, linked side-by-side views);
filters, the reports' text, a patient's studies and one of them loaded; what each button needs first."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
import slicer
from PySide6 import QtWidgets

from _search_studies import indexed_server
from _slicer_harness import ModuleSession, add_views, load_study
from _slicer_harness import connect as connect_to_server
from BrainTumorLabel import BrainTumorLabelWidget

SEED = 79
BASELINE = f"SynBraTS-{SEED:05d}-000"
FOLLOWUP = f"{BASELINE}-followup"
OTHER = f"SynBraTS-{SEED:05d}-001"
PATIENT = f"SYN-{SEED:05d}-000"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    with indexed_server(tmp_path_factory.mktemp("studies"), tmp_path_factory.mktemp("log") / "server.log",
                        SEED) as url:
        yield url


@pytest.fixture
def session(scene) -> Iterator[ModuleSession]:
    add_views(scene)  # the application's slice views, as its layout manager makes them
    session = ModuleSession(BrainTumorLabelWidget)
    yield session
    session.unload()


def connect(session: ModuleSession, url: str) -> None:
    """Connect, and open the Similar cases section (collapsed at first)."""
    connect_to_server(session, url)
    section = next(s for s in session.panel.findChildren(slicer.ctkCollapsibleButton) if s.text == "Similar cases")
    if section.collapsed:
        section.click()


def load(session: ModuleSession, study: str) -> None:
    """Load a study from the Studies table: it becomes the current study."""
    load_study(session, study)
    assert session.widget.parameters().studyId == study


def table(widget: QtWidgets.QTableWidget) -> list[list[str]]:
    return [[widget.item(i, j).text() for j in range(widget.columnCount)] for i in range(widget.rowCount)]


def test_similar_studies_with_thumbnails_and_one_loaded_beside_the_current_study(session, server, scene):
    ui, widget = session.ui, session.widget
    connect(session, server)
    load(session, FOLLOWUP)
    current = widget.parameters().t1c
    ui.similarByComboBox.setCurrentText("both")
    ui.similarCountSpinBox.value = 2
    ui.findSimilarButton.click()
    session.wait_idle()
    rows = table(ui.similarTable)
    assert sorted(r[1] for r in rows) == [BASELINE, OTHER]
    own = next(r for r in rows if r[1] == BASELINE)
    assert own[2] == "2026-01-01" and own[3] == "yes" and "WT " in own[5] and " mL" in own[5]
    assert float(rows[0][4]) >= float(rows[1][4])
    assert all(not ui.similarTable.item(i, 0).icon().isNull() for i in range(2))  # the thumbnails
    assert ui.similarStatusLabel.text == f"2 studies like {FOLLOWUP}, 1 of the same patient: select one and " \
        "Load beside."

    ui.similarTable.selectRow(next(i for i, r in enumerate(rows) if r[1] == BASELINE))
    ui.loadBesideButton.click()
    session.wait_idle()
    assert ui.similarStatusLabel.text == f"{BASELINE} loaded beside {FOLLOWUP} (Red: the current study, Yellow: " \
        "this one; linked views)."
    hit = scene.GetFirstNodeByName(f"{BASELINE} t1c")
    assert {scene.GetFirstNodeByName(f"{BASELINE} {s}") is not None for s in ("t1n", "t2w", "t2f")} == {True}
    segmentation = scene.GetFirstNodeByName(f"{BASELINE} tumor")
    assert segmentation.GetSegmentation().GetNumberOfSegments() == 3
    assert widget.parameters().studyId == FOLLOWUP and widget.parameters().t1c is current  # the current stays
    red, yellow = (scene.GetNodeByID(f"vtkMRMLSliceCompositeNode{v}") for v in ("Red", "Yellow"))
    assert red.GetBackgroundVolumeID() == current.GetID() and yellow.GetBackgroundVolumeID() == hit.GetID()
    assert red.GetLinkedControl() and yellow.GetLinkedControl()

    volumes = scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    yellow.SetBackgroundVolumeID(None)
    ui.loadBesideButton.click()  # again: shown again from the scene, nothing fetched or loaded twice
    assert not widget.callbacks and scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == volumes
    assert yellow.GetBackgroundVolumeID() == hit.GetID()
    assert scene.GetFirstNodeByName(f"{BASELINE} tumor") is segmentation
    assert ui.similarStatusLabel.text.startswith(f"{BASELINE} loaded beside {FOLLOWUP}")

    widget.hits = [dataclasses.replace(widget.hits[0], row=dataclasses.replace(widget.hits[0].row, study=FOLLOWUP))]
    ui.similarTable.selectRow(0)
    ui.loadBesideButton.click()  # a report search can find the current study itself
    assert ui.similarStatusLabel.text == f"{FOLLOWUP} is the current study." and not widget.callbacks


def test_filters_narrow_the_similar_studies_and_a_wrong_one_is_said(session, server):
    ui, widget = session.ui, session.widget
    connect(session, server)
    ui.studyFilterLineEdit.text = BASELINE
    ui.studiesTable.selectRow(0)  # selected, not loaded: the one searched for
    ui.similarByComboBox.setCurrentText("tumor")
    ui.similarFilterLineEdit.text = "big"
    ui.findSimilarButton.click()
    assert ui.similarStatusLabel.text == "'big' is not a filter such as wt_ml>=50 or hemisphere=right"
    assert not widget.callbacks
    ui.similarFilterLineEdit.text = "wt_ml>100000"
    ui.findSimilarButton.click()
    session.wait_idle()
    assert ui.similarStatusLabel.text == f"No studies like {BASELINE} found." and ui.similarTable.rowCount == 0
    ui.similarFilterLineEdit.text = "size>=5"
    ui.findSimilarButton.click()
    session.wait_idle()
    assert ui.similarStatusLabel.text.startswith("search failed: ") and "unknown filter field 'size'" in \
        ui.similarStatusLabel.text


def test_the_reports_are_searched_by_their_text(session, server):
    ui = session.ui
    connect(session, server)
    assert [ui.similarModeComboBox.itemText(i) for i in range(ui.similarModeComboBox.count)] == \
        ["hybrid", "keyword", "semantic"]
    ui.similarModeComboBox.setCurrentText("keyword")
    ui.similarTextLineEdit.text = "glioblastoma"
    ui.similarTextLineEdit.returnPressed.emit()
    session.wait_idle()
    assert ui.similarStatusLabel.text == "No reports matching 'glioblastoma' found."  # none is signed yet
    ui.similarFilterLineEdit.text = "wt_ml"
    ui.searchTextButton.click()
    assert ui.similarStatusLabel.text.startswith("'wt_ml' is not a filter")


def test_a_patients_studies_are_listed_and_one_is_loaded(session, server):
    ui, widget = session.ui, session.widget
    connect(session, server)
    ui.patientSearchLineEdit.text = PATIENT
    ui.findPatientButton.click()
    session.wait_idle()
    rows = table(ui.patientStudiesTable)
    assert [r[1] for r in rows] == [BASELINE, FOLLOWUP] and rows[0][2] == "2026-01-01"
    assert rows[0][0] == f"Synthetic^{SEED:05d}-000 ({PATIENT})" and {r[4] for r in rows} == {"yes"}
    assert ui.similarStatusLabel.text == "2 studies of 1 patient: select one and Load."
    ui.patientStudiesTable.selectRow(1)
    ui.loadPatientStudyButton.click()
    session.wait_idle()
    assert widget.parameters().studyId == FOLLOWUP and widget.parameters().t1c.GetName() == f"{FOLLOWUP} t1c"
    assert ui.similarStatusLabel.text == ui.statusLabel.text == f"Study {FOLLOWUP} loaded."
    ui.patientSearchLineEdit.text = "nobody-like-this"
    ui.patientSearchLineEdit.returnPressed.emit()
    session.wait_idle()
    assert ui.similarStatusLabel.text == "No patient found." and ui.patientStudiesTable.rowCount == 0


def test_what_each_button_needs_first(session, server):
    ui, widget = session.ui, session.widget
    for button, needs in ((ui.findSimilarButton, "Connect, then load (or select) a study."),
                          (ui.searchTextButton, "Connect, then type what to find in the signed reports."),
                          (ui.loadBesideButton, "Find similar cases (or search the reports), then select one."),
                          (ui.findPatientButton, "Connect, then type part of a patient's id, name or accession "
                                                 "number."),
                          (ui.loadPatientStudyButton, "Find a patient, then select one of their studies.")):
        button.click()
        assert ui.similarStatusLabel.text == needs
    assert widget.caseSearch() is None and not widget.callbacks
    connect(session, server)
    ui.findSimilarButton.click()  # no study loaded nor selected
    assert ui.similarStatusLabel.text == "Connect, then load (or select) a study."
    assert widget.caseSearch() is widget.caseSearch()  # one per connection
