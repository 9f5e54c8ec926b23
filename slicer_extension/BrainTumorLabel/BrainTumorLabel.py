"""BrainTumorLabel: brain tumor segmentation with a BrainTumorLabel (MONAI Label) server.

Load a study's four MRI sequences (t1n, t1c, t2w, t2f), segment it on the server, correct the
result with Segment Editor, submit the correction, retrain the model, draft and sign a report;
for an ML admin, segment a cohort of studies on the server and follow it; find studies like the
current one (by image, tumor or report text) and a patient's studies, and load one beside it.

The classes follow Slicer's scripted-module template: ``BrainTumorLabel`` (metadata),
``BrainTumorLabelWidget`` (the GUI, thin), ``BrainTumorLabelTest`` (the self-test: the workflow
through this panel against a server). The Logic half is in the module's package, as Slicer's
DataProbe keeps its own in DataProbeLib: ``BrainTumorLabelLib.logic`` (the parameter node and the
MRML work), ``BrainTumorLabelLib.workflow`` (what each button does), ``BrainTumorLabelLib.batch``
(the Batch section's cohort), ``BrainTumorLabelLib.search`` (the Similar cases section's searches),
``BrainTumorLabelLib.client`` (the server's API). Network calls run
in worker threads (``BrainTumorLabelLib.jobs``) that the widget polls with a ``QTimer``, so the GUI
never waits on the server.
"""

from __future__ import annotations

import getpass
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import qt
import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from BrainTumorLabelLib import batch, search, workflow
from BrainTumorLabelLib.client import Cohort, ServerClient, ServerError, StudyRow
from BrainTumorLabelLib.dicom import series_attributes
from BrainTumorLabelLib.jobs import Job, JobBusy, Jobs, JobState, JobStatus
from BrainTumorLabelLib.logic import BrainTumorLabelLogic, BrainTumorLabelParameterNode
from BrainTumorLabelLib.report import CLINICAL_STATUSES, STEROID_DOSES, finding_rows, status_line, to_review
from BrainTumorLabelLib.selftest import SKIP_MESSAGE, self_test_server
from BrainTumorLabelLib.submissions import SubmissionLedger

POLL_MS = 250
#: the label that shows a job's failure: the section's own status line
MESSAGE_LABELS = {"connect": "serverStatusLabel", "studies": "serverStatusLabel", "train": "trainingStatusLabel",
                  "report": "reportStatusLabel", "key images": "reportStatusLabel", "batch": "batchStatusLabel",
                  "search": "similarStatusLabel", "patients": "similarStatusLabel", "beside": "similarStatusLabel"}
#: the Batch section's job (the cohort's access check, then following it): its own progress bar and Cancel
BATCH_JOB = "batch"
VOLUME_ROWS = ("NCR", "ED", "ET", "TC", "WT")
THUMBNAIL_PX = 64


class BrainTumorLabel(ScriptedLoadableModule):
    def __init__(self, parent: Any) -> None:
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Brain Tumor Label"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = ["Segmentations", "SegmentEditor", "DICOM"]
        self.parent.contributors = ["BrainTumorLabel team"]
        self.parent.helpText = (
            "Segment brain tumors (NCR, ED, ET) from T1, T1c, T2 and FLAIR with a BrainTumorLabel server: "
            "connect, pick a study, Segment, correct with Segment Editor, Submit, Train, Report.")
        self.parent.acknowledgementText = (
            "Built on 3D Slicer and MONAI Label. The model is trained on generated cases and on BraTS "
            "data (Baid et al. 2021; Menze et al. 2015; Bakas et al. 2017).")



def fillTable(table: Any, cells: list[Any]) -> None:
    """A table widget showing ``cells`` (one sequence of texts a row), its columns fitted."""
    table.setRowCount(len(cells))
    for i, row in enumerate(cells):
        for j, value in enumerate(row):
            table.setItem(i, j, qt.QTableWidgetItem(value))
    table.resizeColumnsToContents()

class BrainTumorLabelWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The GUI: each slot passes what the user chose to the logic or to a job, or shows state.
    The module's state is the parameter node; the widget keeps only the connection, the jobs
    and what the server last sent (the studies table, the report)."""

    def __init__(self, parent: Any = None) -> None:
        # set before the base classes run: without a parent, Slicer's calls setup() at once
        self.logic = BrainTumorLabelLogic()  # on slicer.mrmlScene, the application's one scene
        self._parameterNode: Any = None  # a BrainTumorLabelParameterNode: connectGui comes with the wrapper
        self._parameterNodeGuiTag: Any = None
        self.client: ServerClient | None = None
        self.jobs = Jobs()
        self.ledger = SubmissionLedger()
        self.rows: list[StudyRow] = []
        self._workDir: Path | None = None
        self.segmentedAt: float | None = None
        self.modelVersion = ""
        self.report: dict[str, Any] = {}
        self.serverStatus = ""  # the server's line, shown again once a refresh of the studies is done
        self.cohortRun: batch.CohortRun | None = None  # the cohort the Batch section follows
        self.cohortShown: Cohort | None = None
        self.searcher: search.CaseSearch | None = None  # the Similar cases section's, on self.client
        self.hits: list[search.Hit] = []  # the Similar cases table's rows
        self.patientStudies: list[search.PatientStudyRow] = []
        self.callbacks: dict[str, Callable[[Any], None]] = {}
        self.timer = qt.QTimer()
        self.timer.setInterval(POLL_MS)
        self.timer.connect("timeout()", self.poll)
        VTKObservationMixin.__init__(self)
        ScriptedLoadableModuleWidget.__init__(self, parent)

    # ---- lifecycle
    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/BrainTumorLabel.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        for button, slot in (
                ("connectButton", self.onConnect), ("loginButton", self.onLogin),
                ("refreshStudiesButton", self.onRefreshStudies), ("nextSampleButton", self.onNextSample),
                ("loadStudyButton", self.onLoadStudy), ("assignFromSceneButton", self.onAssignFromScene),
                ("refreshDicomButton", self.onRefreshDicomStudies), ("loadFromDicomButton", self.onLoadFromDicom),
                ("segmentButton", self.onSegment), ("cancelButton", self.onCancel), ("submitButton", self.onSubmit),
                ("trainButton", self.onTrain), ("stopTrainingButton", self.onStopTraining),
                ("draftReportButton", self.onDraftReport), ("signReportButton", self.onSignReport),
                ("openReportButton", self.onOpenReport), ("publishReportButton", self.onPublishReport),
                ("segmentAllButton", self.onSegmentAll), ("segmentSelectedButton", self.onSegmentSelected),
                ("cancelBatchButton", self.onCancelBatch),
                ("findSimilarButton", self.onFindSimilar), ("searchTextButton", self.onSearchText),
                ("loadBesideButton", self.onLoadBeside), ("findPatientButton", self.onFindPatient),
                ("loadPatientStudyButton", self.onLoadPatientStudy),
                ("approveFindingButton", lambda: self.onReviewFinding("approved")),
                ("editFindingButton", lambda: self.onReviewFinding("edited")),
                ("declineFindingButton", lambda: self.onReviewFinding("declined"))):
            getattr(self.ui, button).connect("clicked()", slot)
        self.ui.studyFilterLineEdit.connect("textChanged(QString)", self.showStudies)
        self.ui.similarTextLineEdit.connect("returnPressed()", self.onSearchText)
        self.ui.patientSearchLineEdit.connect("returnPressed()", self.onFindPatient)
        self.ui.similarByComboBox.addItems(list(search.BY_CHOICES))
        self.ui.similarModeComboBox.addItems(list(search.MODE_CHOICES))
        self.ui.similarTable.setIconSize(qt.QSize(THUMBNAIL_PX, THUMBNAIL_PX))
        self.ui.findingsTable.connect("itemSelectionChanged()", self.onFindingSelected)
        self.ui.steroidDoseComboBox.addItems(list(STEROID_DOSES))
        self.ui.clinicalStatusComboBox.addItems(list(CLINICAL_STATUSES))
        self.initializeParameterNode()
        self.selectSegmentEditorNode()
        self.showStudies()
        self.showJob(None)

    def enter(self) -> None:
        """Each time the module is shown: the parameter node bound to the GUI, the editor node set."""
        self.initializeParameterNode()
        self.selectSegmentEditorNode()

    def exit(self) -> None:
        """Each time another module is shown: no editor effect left armed (Paint would keep
        painting in the other module's views), the GUI no longer follows the parameter node."""
        self.ui.segmentEditorWidget.setActiveEffect(None)
        self.disconnectParameterNode()

    def cleanup(self) -> None:
        """When the application closes or the module is reloaded: observers removed, jobs
        cancelled and their threads given a moment to end, the downloaded images deleted."""
        self.timer.stop()
        self.removeObservers()
        self.disconnectParameterNode()
        stillRunning = self.jobs.shutdown()
        if stillRunning:
            logging.info("BrainTumorLabel: %s still waiting on the server; its answer will be dropped",
                         ", ".join(stillRunning))
        if self._workDir is not None:
            shutil.rmtree(self._workDir, ignore_errors=True)
            self._workDir = None

    def onSceneStartClose(self, caller: Any, event: Any) -> None:
        """File > Close scene: the nodes are going, let go of them (the studies table stays)."""
        self.disconnectParameterNode()
        self._parameterNode = None
        self.ui.segmentEditorWidget.setSegmentationNode(None)
        self.segmentedAt = None

    def onSceneEndClose(self, caller: Any, event: Any) -> None:
        # the module's panel says whether it is shown; a panel of its own (the self-test's) always is
        if self.parent.isEntered if hasattr(self.parent, "isEntered") else True:
            self.initializeParameterNode()
            self.selectSegmentEditorNode()

    def initializeParameterNode(self) -> None:
        """The scene's parameter node (created when missing) bound to the GUI; a node reset by
        Close scene gets the annotator and the server still connected back."""
        node = self.logic.getParameterNode()
        if not node.annotator:
            node.annotator = getpass.getuser()
        if self.client is not None:
            node.serverUrl = self.client.url
        self.disconnectParameterNode()
        self._parameterNode = node
        self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)

    def disconnectParameterNode(self) -> None:
        if self._parameterNode is not None and self._parameterNodeGuiTag is not None:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
        self._parameterNodeGuiTag = None

    def selectSegmentEditorNode(self) -> None:
        node = self.logic.getSegmentEditorNode()
        if self.ui.segmentEditorWidget.mrmlSegmentEditorNode() is not node:
            self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(node)

    def parameters(self) -> BrainTumorLabelParameterNode:
        return self.logic.getParameterNode()

    @property
    def workDir(self) -> Path:
        """Where the study's images, labels and reports are downloaded; deleted by cleanup()."""
        if self._workDir is None:
            self._workDir = Path(tempfile.mkdtemp(prefix="BrainTumorLabel-"))
        return self._workDir

    # ---- server and studies
    def onConnect(self) -> None:
        try:
            self.client = ServerClient(self.parameters().serverUrl)
        except ServerError as error:
            self.ui.serverStatusLabel.text = str(error)
            return
        client = self.client
        self.ui.serverStatusLabel.text = f"connecting to {client.url} ..."
        self.startJob("connect", lambda progress: workflow.connect(client), self.connected)

    def connected(self, connection: workflow.Connection) -> None:
        self.ui.loginGroup.visible = connection.login_required
        self.serverStatus = connection.status
        if connection.login_required:
            self.ui.serverStatusLabel.text = connection.status
            self.ui.batchControls.visible = False
            self.ui.batchStatusLabel.text = "Log in (Server) to see whether you may segment a cohort here."
            return
        self.ui.strategyComboBox.clear()
        self.ui.strategyComboBox.addItems(list(connection.strategies))
        self.studiesArrived(list(connection.rows))
        self.checkBatchAccess()

    def onLogin(self) -> None:
        client = self.client
        if client is None:
            self.ui.serverStatusLabel.text = "Connect first."
            return
        username, password, token = self.ui.usernameLineEdit.text, self.ui.passwordLineEdit.text, \
            self.ui.tokenLineEdit.text
        self.ui.passwordLineEdit.text = ""
        self.ui.tokenLineEdit.text = ""
        self.startJob("connect", lambda progress: workflow.log_in(client, username, password, token), self.connected)

    def onRefreshStudies(self) -> None:
        client = self.client
        if client is None:
            self.ui.serverStatusLabel.text = "Connect first."
            return
        self.startJob("studies", lambda progress: client.studies(), self.studiesArrived)

    def studiesArrived(self, rows: list[StudyRow]) -> None:
        self.rows = rows
        self.ui.serverStatusLabel.text = self.serverStatus
        self.showStudies()

    def showStudies(self, *unused: Any) -> None:
        shown = workflow.filter_rows(self.rows, self.ui.studyFilterLineEdit.text)
        fillTable(self.ui.studiesTable, [workflow.study_cells(row) for row in shown])
        prior = self.ui.priorStudyComboBox.currentText
        self.ui.priorStudyComboBox.clear()
        self.ui.priorStudyComboBox.addItems(workflow.prior_choices(self.rows))
        self.ui.priorStudyComboBox.setCurrentText(prior or "(none)")

    def selectedStudy(self) -> str:
        row = self.ui.studiesTable.currentRow()
        item = self.ui.studiesTable.item(row, 0) if row >= 0 else None
        return item.text() if item is not None else ""

    def selectedStudies(self) -> list[str]:
        """The ids of every study selected in the table (Ctrl- or Shift-click for several), in table order."""
        table = self.ui.studiesTable
        return [table.item(row, 0).text() for row in sorted({item.row() for item in table.selectedItems()})]

    def onNextSample(self) -> None:
        client, strategy, annotator = self.client, self.ui.strategyComboBox.currentText, self.parameters().annotator
        if client is None:
            self.ui.serverStatusLabel.text = "Connect first."
            return
        self.startJob("studies", lambda progress: client.next_sample(strategy, annotator), self.sampleArrived)

    def sampleArrived(self, imageId: str | None) -> None:
        if not imageId:
            self.ui.statusLabel.text = "No study left to annotate with this strategy."
            return
        self.ui.studyFilterLineEdit.text = imageId
        self.ui.studiesTable.selectRow(0)

    def onLoadStudy(self) -> None:
        imageId, client = self.selectedStudy(), self.client
        if client is None or not imageId:
            self.ui.statusLabel.text = "Connect, then select a study in the table."
            return
        self.loadStudy(client, imageId)

    def loadStudy(self, client: ServerClient, imageId: str, alsoTell: Any = None) -> None:
        """The study's four sequences downloaded and loaded as the current study; the Segment
        section's line says so, and ``alsoTell`` (another section's status label) too."""
        folder = self.workDir / imageId

        def loaded(files: dict[str, Path]) -> None:
            self.useVolumes(imageId, self.logic.loadSequences(files, imageId))
            if alsoTell is not None:
                alsoTell.text = self.ui.statusLabel.text
        self.startJob("load", lambda progress: client.download_sequences(imageId, folder), loaded)

    def useVolumes(self, imageId: str, volumes: dict[str, Any]) -> None:
        parameters = self.parameters()
        for sequence, node in volumes.items():
            setattr(parameters, sequence, node)
        parameters.studyId = imageId
        self.logic.showStudy(volumes)
        self.ui.statusLabel.text = f"Study {imageId} loaded."

    def onAssignFromScene(self) -> None:
        parameters = self.parameters()
        try:
            volumes, missing = self.logic.volumesFromScene(parameters.patterns)
        except ValueError as error:
            self.ui.statusLabel.text = str(error)
            return
        for sequence, node in volumes.items():
            setattr(parameters, sequence, node)
        self.ui.statusLabel.text = f"Not found by name: {', '.join(missing)}" if missing else "All four assigned."

    def onRefreshDicomStudies(self) -> None:
        """The studies of Slicer's DICOM database, for the DICOM study box."""
        self.ui.dicomStudyComboBox.clear()
        for label, studyUid in self.logic.dicomStudies(slicer.dicomDatabase):
            self.ui.dicomStudyComboBox.addItem(label, studyUid)
        if not self.ui.dicomStudyComboBox.count:
            self.ui.statusLabel.text = "Slicer's DICOM database has no study: import one in the DICOM module."

    def onLoadFromDicom(self) -> None:
        """The four series of the chosen DICOM study, picked by the server's rules."""
        studyUid, client, database = self.ui.dicomStudyComboBox.currentData, self.client, slicer.dicomDatabase
        if client is None or not studyUid:
            self.ui.statusLabel.text = "Connect, and choose a study of Slicer's DICOM database."
            return
        series = [series_attributes(uid, database.filesForSeries(uid), database.fileValue)
                  for uid in database.seriesForStudy(studyUid)]
        self.startJob("load", lambda progress: client.identify_sequences(series),
                      lambda found: self.dicomIdentified(studyUid, found))

    def dicomIdentified(self, studyUid: str, found: dict[str, Any]) -> None:
        if found.get("problem"):
            self.ui.statusLabel.text = f"This study cannot be segmented: {found['problem']}"
            return
        self.useVolumes(studyUid, self.logic.loadDicomSeries(found["sequences"], studyUid))

    # ---- segment, correct, submit
    def onSegment(self) -> None:
        imageId, client = self.parameters().studyId, self.client
        if client is None or not imageId:
            self.ui.statusLabel.text = "Load a study from the server first."
            return
        folder = self.workDir / imageId
        self.startJob("segment", lambda progress: client.segment(imageId, workflow.MODEL, folder), self.segmented)

    def segmented(self, result: Any) -> None:
        parameters = self.parameters()
        reference = parameters.t1c
        if reference is None:
            self.ui.statusLabel.text = "Choose the t1c volume (Sequences) to put the segmentation on."
            return
        segmentation = self.logic.segmentationFromLabel(result.label_path, reference,
                                                     self.logic.segmentationName(parameters.studyId))
        parameters.segmentation = segmentation
        self.ui.segmentEditorWidget.setSegmentationNode(segmentation)
        self.ui.segmentEditorWidget.setSourceVolumeNode(reference)
        self.segmentedAt, self.modelVersion = time.time(), result.model_version
        self.showVolumes(result.volumes_ml)
        self.ui.statusLabel.text = workflow.segmented_status(result.model_version, result.notes)

    def showVolumes(self, volumes: dict[str, float]) -> None:
        table = self.ui.volumesTable
        table.setRowCount(len(VOLUME_ROWS))
        for i, name in enumerate(VOLUME_ROWS):
            table.setItem(i, 0, qt.QTableWidgetItem(name))
            table.setItem(i, 1, qt.QTableWidgetItem(f"{volumes.get(name, 0.0):.1f}"))

    def onSubmit(self) -> None:
        parameters = self.parameters()
        segmentation, reference, imageId, client = parameters.segmentation, parameters.t1c, parameters.studyId, \
            self.client
        if client is None or segmentation is None or reference is None or not imageId:
            self.ui.statusLabel.text = "Segment (or draw) the tumor first."
            return
        path = self.workDir / imageId / f"{imageId}-final.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = self.logic.writeLabel(segmentation, reference, path)
        if self.ledger.already_submitted(imageId, digest):
            self.ui.statusLabel.text = "This correction has been submitted already."
            return
        self.showVolumes(self.logic.volumesMl(segmentation, reference))
        info = workflow.submission_info(parameters.annotator, self.segmentedAt, self.modelVersion)

        def submitted(answer: Any) -> None:
            self.ledger.record(imageId, digest)
            self.ui.statusLabel.text = f"Submitted {imageId}."
            self.onRefreshStudies()
        self.startJob("submit", lambda progress: client.submit_label(imageId, path, info), submitted)

    # ---- training
    def onTrain(self) -> None:
        client, epochs = self.client, int(self.ui.trainEpochsSpinBox.value)
        if client is None:
            self.ui.trainingStatusLabel.text = "Connect first."
            return
        self.startJob("train", lambda progress: workflow.train(client, epochs, progress),
                      lambda status: setattr(self.ui.trainingStatusLabel, "text", workflow.training_status(status)),
                      onCancel=self.stopTraining)

    def stopTraining(self) -> None:
        """Runs when the train job is cancelled (Stop, Cancel, cleanup): stop the run on the server."""
        if self.client is not None:
            try:
                self.client.stop_training()
            except ServerError as error:
                logging.warning("BrainTumorLabel: stopping the training failed: %s", error)

    def onStopTraining(self) -> None:
        job = self.jobs.get("train")
        if job is not None:
            job.cancel()
        self.ui.trainingStatusLabel.text = "Training stopped."

    # ---- batch (ML admins): a cohort of studies segmented on the server
    def checkBatchAccess(self) -> None:
        """After Connect: whether this user may run cohorts (the server's answer), and the
        newest cohort, followed when it is running. A cohort followed from another server is let go."""
        client, current = self.client, self.jobs.get(BATCH_JOB)
        if client is None:
            return
        if current is not None:
            current.cancel()
        self.cohortRun = None
        self.startJob(BATCH_JOB, lambda progress: batch.access(client), self.batchAccessArrived)

    def batchAccessArrived(self, access: batch.Access) -> None:
        self.ui.batchControls.visible = access.allowed
        if access.latest is not None:
            self.showCohort(access.latest)
        self.ui.batchStatusLabel.text = access.message
        if self.client is not None and access.latest is not None and access.latest.running:
            self.followCohort(batch.CohortRun(self.client, cohort_id=access.latest.id))

    def onSegmentAll(self) -> None:
        if self.client is None:
            self.ui.batchStatusLabel.text = "Connect first."
            return
        self.followCohort(batch.CohortRun(self.client))

    def onSegmentSelected(self) -> None:
        studies = self.selectedStudies()
        if self.client is None or not studies:
            self.ui.batchStatusLabel.text = "Connect, then select studies in the Studies table (Ctrl- or Shift-click)."
            return
        self.followCohort(batch.CohortRun(self.client, studies))

    def followCohort(self, run: batch.CohortRun) -> None:
        previous, self.cohortRun = self.cohortRun, run
        if not self.startJob(BATCH_JOB, run.follow, self.showCohort):
            self.cohortRun = previous

    def onCancelBatch(self) -> None:
        if self.cohortRun is None or BATCH_JOB not in self.jobs.running():
            self.ui.batchStatusLabel.text = "No cohort is running here."
            return
        self.cohortRun.cancel()
        self.showJob(self.jobs.get(BATCH_JOB))

    def showCohort(self, cohort: Cohort) -> None:
        """The cohort's progress line and a row per study (redrawn only when it changed)."""
        self.ui.batchStatusLabel.text = batch.progress_line(cohort)
        if cohort == self.cohortShown:
            return
        self.cohortShown = cohort
        table = self.ui.batchTable
        table.setRowCount(len(cohort.rows))
        for i, row in enumerate(cohort.rows):
            for j, value in enumerate(batch.row_cells(row)):
                item = qt.QTableWidgetItem(value)
                if value and j == len(batch.COLUMNS) - 1:
                    item.setToolTip(value)  # the whole reason of a failure
                table.setItem(i, j, item)
        table.resizeColumnsToContents()

    def showBatchJob(self, status: JobStatus) -> None:
        bar = self.ui.batchProgressBar
        bar.visible = not status.finished
        bar.maximum = 0 if status.progress is None else 100  # 0: busy indicator
        bar.value = int(100 * (status.progress or 0))
        if not status.finished:
            run, shown = self.cohortRun, self.cohortShown
            if isinstance(status.detail, Cohort):
                self.showCohort(status.detail)
            elif run is None or shown is None or run.cohort_id != shown.id:  # (else its line stays until the next)
                self.ui.batchStatusLabel.text = f"batch: {status.message} ({status.elapsed_s:.0f} s)"
            if self.cohortRun is not None and self.cohortRun.cancel_requested:
                self.ui.batchStatusLabel.text = f"{self.ui.batchStatusLabel.text} Cancelling ..."

    # ---- similar cases: studies like the current one, the reports' text, a patient's studies
    def caseSearch(self) -> search.CaseSearch | None:
        """The search calls on the connected server (None before Connect); thumbnails are kept
        in the work folder, fetched once."""
        if self.client is None:
            return None
        if self.searcher is None or self.searcher.client is not self.client:
            self.searcher = search.CaseSearch(self.client, self.workDir / "search")
        return self.searcher

    def filterText(self) -> str | None:
        """The filter box's text; None (and said) when a term of it is not a filter."""
        text = self.ui.similarFilterLineEdit.text
        try:
            search.filter_terms(text)
        except ValueError as error:
            self.ui.similarStatusLabel.text = str(error)
            return None
        return text

    def onFindSimilar(self) -> None:
        searcher, study = self.caseSearch(), self.parameters().studyId or self.selectedStudy()
        if searcher is None or not study:
            self.ui.similarStatusLabel.text = "Connect, then load (or select) a study."
            return
        by, k = self.ui.similarByComboBox.currentText, int(self.ui.similarCountSpinBox.value)
        self.searchJob(searcher, lambda terms: searcher.similar(study, k, by, terms), f"studies like {study}")

    def onSearchText(self) -> None:
        searcher, query = self.caseSearch(), self.ui.similarTextLineEdit.text.strip()
        if searcher is None or not query:
            self.ui.similarStatusLabel.text = "Connect, then type what to find in the signed reports."
            return
        mode, k = self.ui.similarModeComboBox.currentText, int(self.ui.similarCountSpinBox.value)
        self.searchJob(searcher, lambda terms: searcher.text(query, k, mode, terms), f"reports matching '{query}'")

    def searchJob(self, searcher: search.CaseSearch, find: Callable[[str], list[search.CaseRow]], what: str) -> None:
        """Run ``find`` (given the filter box's terms, once they are valid) as the section's job and
        show its rows with their thumbnails."""
        filterText = self.filterText()
        if filterText is None:
            return
        self.startJob("search", lambda progress: search.with_thumbnails(searcher, find(filterText)),
                      lambda hits: self.showHits(hits, what))

    def showHits(self, hits: list[search.Hit], what: str) -> None:
        """The results table: a row per study found, its thumbnail as the first cell's icon."""
        self.hits = hits
        table = self.ui.similarTable
        table.setRowCount(len(hits))
        for i, hit in enumerate(hits):
            for j, value in enumerate(search.case_cells(hit.row)):
                item = qt.QTableWidgetItem(value)
                item.setToolTip(value)  # the whole impression or matching sentence
                table.setItem(i, j, item)
            if hit.thumbnail is not None:
                table.item(i, 0).setIcon(qt.QIcon(str(hit.thumbnail)))
            table.setRowHeight(i, THUMBNAIL_PX + 4)
        table.resizeColumnsToContents()
        self.ui.similarStatusLabel.text = search.results_line(hits, what)

    def onLoadBeside(self) -> None:
        searcher, row = self.caseSearch(), self.ui.similarTable.currentRow()
        if searcher is None or not 0 <= row < len(self.hits):
            self.ui.similarStatusLabel.text = "Find similar cases (or search the reports), then select one."
            return
        hit = self.hits[row].row
        if hit.study == self.parameters().studyId:
            self.ui.similarStatusLabel.text = f"{hit.study} is the current study."
            return
        loaded = self.logic.loadedStudy(hit.study)
        if loaded is not None:  # loaded beside before: shown again, not fetched and loaded twice
            self.showBeside(hit.study, *loaded)
            return
        folder = self.workDir / "similar" / hit.study
        self.startJob("beside", lambda progress: searcher.fetch_case(hit, folder),
                      lambda files: self.loadBeside(hit.study, *files))

    def loadBeside(self, study: str, sequences: dict[str, Path], label: Path) -> None:
        """The study's volumes and label in the scene, named after it, beside the current study."""
        volumes = self.logic.loadSequences(sequences, study)
        segmentation = self.logic.segmentationFromLabel(label, volumes["t1c"], self.logic.segmentationName(study))
        self.showBeside(study, volumes, segmentation)

    def showBeside(self, study: str, volumes: dict[str, Any], segmentation: Any) -> None:
        parameters = self.parameters()
        linked = self.logic.showBeside(parameters.t1c, volumes["t1c"], segmentation, parameters.segmentation)
        where = " (Red: the current study, Yellow: this one; linked views)" if linked else ""
        self.ui.similarStatusLabel.text = f"{study} loaded beside {parameters.studyId or 'the scene'}{where}."

    def onFindPatient(self) -> None:
        searcher, query = self.caseSearch(), self.ui.patientSearchLineEdit.text.strip()
        if searcher is None or not query:
            self.ui.similarStatusLabel.text = "Connect, then type part of a patient's id, name or accession number."
            return
        self.startJob("patients", lambda progress: searcher.studies_of_patient(query), self.showPatientStudies)

    def showPatientStudies(self, rows: list[search.PatientStudyRow]) -> None:
        self.patientStudies = rows
        fillTable(self.ui.patientStudiesTable, [search.patient_cells(row) for row in rows])
        self.ui.similarStatusLabel.text = search.patients_line(rows)

    def onLoadPatientStudy(self) -> None:
        client, row = self.client, self.ui.patientStudiesTable.currentRow()
        if client is None or not 0 <= row < len(self.patientStudies):
            self.ui.similarStatusLabel.text = "Find a patient, then select one of their studies."
            return
        self.loadStudy(client, self.patientStudies[row].study, self.ui.similarStatusLabel)

    # ---- report
    def onDraftReport(self) -> None:
        imageId, client = self.parameters().studyId or self.selectedStudy(), self.client
        if client is None or not imageId:
            self.ui.reportStatusLabel.text = "Load (or select) a study with a submitted or segmented label first."
            return
        prior = workflow.prior_for_report(self.ui.priorStudyComboBox.currentText, imageId)
        dose, status = self.ui.steroidDoseComboBox.currentText, self.ui.clinicalStatusComboBox.currentText
        self.startJob("report", lambda progress: client.draft_report(imageId, prior, dose, status),
                      self.draftArrived)

    def showReport(self, report: dict[str, Any]) -> None:
        self.report = report
        table, rows = self.ui.findingsTable, finding_rows(report)
        table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            table.setItem(i, 0, qt.QTableWidgetItem(row.review))
            item = qt.QTableWidgetItem(row.text)
            item.setToolTip(row.text)
            table.setItem(i, 1, item)
        table.resizeColumnToContents(0)
        table.resizeRowsToContents()
        self.ui.reportStatusLabel.text = status_line(report)
        final = bool(report.get("final"))
        for button in (self.ui.approveFindingButton, self.ui.editFindingButton, self.ui.declineFindingButton):
            button.enabled = not final
        self.ui.signReportButton.enabled = not final and not to_review(report)
        self.ui.publishReportButton.enabled = final

    def draftArrived(self, report: dict[str, Any]) -> None:
        """A new draft: its findings, then its key images (fetched in the background)."""
        self.showReport(report)
        client, imageId = self.client, str(report.get("study", ""))
        if client is not None and imageId:
            path = self.workDir / imageId / f"{imageId}-key-images.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            self.startJob("key images", lambda progress: client.download_report_images(imageId, path),
                          self.showKeyImages)

    def showKeyImages(self, path: Path) -> None:
        pixmap = qt.QPixmap(str(path))
        self.ui.keyImagesLabel.setPixmap(pixmap.scaledToWidth(max(200, self.ui.keyImagesLabel.width),
                                                              qt.Qt.SmoothTransformation))
        self.ui.reportStatusLabel.text = status_line(self.report)  # in place of the download's progress

    def selectedFinding(self) -> str:
        row, rows = self.ui.findingsTable.currentRow(), finding_rows(self.report)
        return rows[row].key if 0 <= row < len(rows) else ""

    def onFindingSelected(self) -> None:
        row, rows = self.ui.findingsTable.currentRow(), finding_rows(self.report)
        self.ui.findingTextEdit.setPlainText(rows[row].text if 0 <= row < len(rows) else "")

    def onReviewFinding(self, state: str) -> None:
        key, client, imageId = self.selectedFinding(), self.client, str(self.report.get("study", ""))
        if not key or client is None:
            self.ui.reportStatusLabel.text = "Select a finding first."
            return
        text = self.ui.findingTextEdit.toPlainText().strip() if state == "edited" else None
        self.startJob("report", lambda progress: client.review_finding(imageId, key, state, text), self.showReport)

    def onSignReport(self) -> None:
        client, imageId = self.client, str(self.report.get("study", ""))
        impression = self.ui.impressionTextEdit.toPlainText().strip()
        if client is None or not imageId or not impression:
            self.ui.reportStatusLabel.text = "Write the impression before signing."
            return
        recommendations = self.ui.recommendationsTextEdit.toPlainText().strip()
        self.startJob("report", lambda progress: client.sign_report(imageId, impression, recommendations),
                      self.showReport)

    def onPublishReport(self) -> None:
        client, imageId = self.client, str(self.report.get("study", ""))
        if client is None or not imageId:
            self.ui.reportStatusLabel.text = "Sign a report first."
            return
        self.startJob("report", lambda progress: client.publish_report(imageId),
                      lambda sent: setattr(self.ui.reportStatusLabel, "text", f"Sent to the PACS: {sent}"))

    def onOpenReport(self) -> None:
        client, imageId = self.client, str(self.report.get("study", ""))
        if client is None or not imageId:
            self.ui.reportStatusLabel.text = "Draft a report first."
            return
        path = self.workDir / imageId / f"{imageId}-report.pdf"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.startJob("report", lambda progress: client.download_report_pdf(imageId, path),
                      lambda saved: qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(saved))))

    # ---- jobs
    def startJob(self, name: str, work: Callable[[Any], Any], onSuccess: Callable[[Any], None],
                 onCancel: Callable[[], None] | None = None) -> bool:
        """Run ``work`` in a job of that name; False (and said) when one is still running."""
        try:
            job = self.jobs.start(name, work, onCancel)
        except JobBusy as busy:
            self.messageLabel(name).text = str(busy)
            return False
        self.callbacks[name] = onSuccess
        self.showJob(job)
        self.timer.start()
        return True

    def messageLabel(self, jobName: str) -> Any:
        return getattr(self.ui, MESSAGE_LABELS.get(jobName, "statusLabel"))

    def onCancel(self) -> None:
        """The Segment section's Cancel: every job but the Batch section's (which has its own)."""
        for name in self.jobs.running():
            job = self.jobs.get(name)
            if job is not None and name != BATCH_JOB:
                job.cancel()

    def poll(self) -> None:
        """Called by the timer: show running jobs, hand finished ones to their callbacks."""
        for name in list(self.callbacks):
            job = self.jobs.get(name)
            if job is None:
                continue
            status = job.status()
            self.showJob(job)
            if not status.finished:
                continue
            callback = self.callbacks.pop(name)
            if status.state is JobState.SUCCEEDED:
                try:
                    callback(status.result)
                except Exception as error:  # shown, never lost in the event loop
                    logging.exception("BrainTumorLabel: %s", name)
                    self.messageLabel(name).text = f"{name}: {error}"
            elif status.state is JobState.FAILED:
                self.messageLabel(name).text = f"{name} failed: {status.error}"
        if not self.callbacks:
            self.timer.stop()

    def showJob(self, job: Job | None) -> None:
        running = self.jobs.running()
        self.ui.cancelButton.enabled = any(name != BATCH_JOB for name in running)
        self.ui.segmentButton.enabled = "segment" not in running
        self.ui.submitButton.enabled = "submit" not in running
        self.ui.segmentAllButton.enabled = self.ui.segmentSelectedButton.enabled = BATCH_JOB not in running
        self.ui.cancelBatchButton.enabled = BATCH_JOB in running and self.cohortRun is not None and \
            not self.cohortRun.cancel_requested
        if job is None:
            self.ui.progressBar.visible = False
            self.ui.batchProgressBar.visible = False
            return
        status = job.status()
        if status.name == BATCH_JOB:
            self.showBatchJob(status)
            return
        self.ui.progressBar.visible = not status.finished
        self.ui.progressBar.maximum = 0 if status.progress is None else 100  # 0: busy indicator
        self.ui.progressBar.value = int(100 * (status.progress or 0))
        if not status.finished:
            self.messageLabel(status.name).text = f"{status.name}: {status.message} ({status.elapsed_s:.0f} s)"
        elif status.state is JobState.CANCELLED:
            self.messageLabel(status.name).text = f"{status.name} cancelled"


class BrainTumorLabelTest(ScriptedLoadableModuleTest):
    """The workflow through the module's panel against a real server: connect, load a study,
    segment, check the segments, correct one, submit, see it labelled, submit again (refused as
    a repeat). The server: ``BTL_SERVER_URL`` (one already running, e.g. ``make run``) or
    ``BTL_SERVER_COMMAND`` (a command that serves studies, started here on a free port); with
    neither, the test says what it needs and does nothing."""

    def setUp(self) -> None:
        slicer.mrmlScene.Clear(0)

    def runTest(self) -> None:
        self.setUp()
        with self_test_server(os.environ) as url:
            if url is None:
                self.delayDisplay(SKIP_MESSAGE)
                return
            self.workflow(url)

    def waitFor(self, done: Callable[[], bool], what: str, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            self.assertLess(time.monotonic(), deadline, f"waited {timeout_s:g} s for {what}")
            slicer.app.processEvents()
            time.sleep(0.05)

    def workflow(self, url: str) -> None:
        widget = BrainTumorLabelWidget()
        try:
            self.runWorkflow(widget, url)
        finally:
            widget.cleanup()
        self.delayDisplay("BrainTumorLabel workflow passed")

    def runWorkflow(self, widget: BrainTumorLabelWidget, url: str) -> None:
        ui = widget.ui
        ui.serverUrlLineEdit.text = url
        ui.connectButton.click()
        self.waitFor(lambda: bool(widget.rows), "the studies")
        imageId = next(row.image_id for row in widget.rows if row.can_segment)
        ui.studyFilterLineEdit.text = imageId
        ui.studiesTable.selectRow(0)
        ui.loadStudyButton.click()
        self.waitFor(lambda: widget.parameters().studyId == imageId, "the study's volumes")
        self.assertEqual(widget.parameters().t1c.GetName(), f"{imageId} t1c")
        ui.segmentButton.click()
        self.waitFor(lambda: widget.parameters().segmentation is not None, "the segmentation")
        content = widget.parameters().segmentation.GetSegmentation()
        names = sorted(content.GetNthSegment(i).GetName() for i in range(content.GetNumberOfSegments()))
        self.assertEqual(names, ["ED", "ET", "NCR"])
        self.delayDisplay(ui.statusLabel.text)
        segmentation, t1c = widget.parameters().segmentation, widget.parameters().t1c
        edema = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, content.GetSegmentIdBySegmentName("ED"), t1c)
        edema[edema.shape[0] // 2, :4, :4] = 1  # a correction, as a Paint stroke would make it
        slicer.util.updateSegmentBinaryLabelmapFromArray(edema, segmentation,
                                                         content.GetSegmentIdBySegmentName("ED"), t1c)
        ui.submitButton.click()
        self.waitFor(lambda: ui.statusLabel.text == f"Submitted {imageId}.", "the submission")
        self.waitFor(lambda: any(r.labelled for r in widget.rows if r.image_id == imageId), "the labelled study")
        ui.submitButton.click()
        self.assertEqual(ui.statusLabel.text, "This correction has been submitted already.")
