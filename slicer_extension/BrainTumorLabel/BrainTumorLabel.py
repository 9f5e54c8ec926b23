"""BrainTumorLabel: brain tumor segmentation with a BrainTumorLabel (MONAI Label) server.

Load a study's four MRI sequences (t1n, t1c, t2w, t2f), segment it on the server, correct the
result with Segment Editor, submit the correction, and retrain the model on the corrections.

The classes follow Slicer's scripted-module template: ``BrainTumorLabel`` (metadata),
``BrainTumorLabelWidget`` (the GUI, thin), ``BrainTumorLabelTest`` (the workflow against a
running server); the Logic half, ``BrainTumorLabelLogic`` and the parameter node (the MRML work,
no GUI), is in ``BrainTumorLabelMRML.py``. Network calls and job state
live in ``BrainTumorLabelLib`` (plain Python); network calls run in worker threads and the
widget polls them with a ``QTimer``, so the GUI never waits on the server.
"""

from __future__ import annotations

import getpass
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import qt
import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from BrainTumorLabelLib.client import ServerClient, ServerError, StudyRow
from BrainTumorLabelLib.dicom import series_attributes
from BrainTumorLabelLib.jobs import Job, JobBusy, Jobs, JobState
from BrainTumorLabelLib.report import CLINICAL_STATUSES, STEROID_DOSES, finding_rows, status_line, to_review
from BrainTumorLabelLib.submissions import SubmissionLedger
from BrainTumorLabelMRML import BrainTumorLabelLogic

MODEL = "brats_segresnet"
POLL_MS = 250


class BrainTumorLabel(ScriptedLoadableModule):
    def __init__(self, parent: Any) -> None:
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Brain Tumor Label"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = ["Segmentations", "SegmentEditor", "DICOM"]
        self.parent.contributors = ["BrainTumorLabel team"]
        self.parent.helpText = (
            "Segment brain tumors (NCR, ED, ET) from T1, T1c, T2 and FLAIR with a BrainTumorLabel server: "
            "connect, pick a study, Segment, correct with Segment Editor, Submit, Train.")
        self.parent.acknowledgementText = (
            "Built on 3D Slicer and MONAI Label. The model is trained on generated cases and on BraTS "
            "data (Baid et al. 2021; Menze et al. 2015; Bakas et al. 2017).")


class BrainTumorLabelWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The GUI: each method passes what the user chose to the logic or a job, or shows state."""

    def __init__(self, parent: Any = None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic: BrainTumorLabelLogic | None = None
        self.client: ServerClient | None = None
        self.jobs = Jobs()
        self.ledger = SubmissionLedger()
        self.rows: list[StudyRow] = []
        self.workDir = Path(tempfile.mkdtemp(prefix="BrainTumorLabel-"))
        self.segmentedAt: float | None = None
        self.modelVersion = ""
        self.report: dict[str, Any] = {}
        self.callbacks: dict[str, Any] = {}
        self.timer = qt.QTimer()
        self.timer.setInterval(POLL_MS)
        self.timer.connect("timeout()", self.poll)

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/BrainTumorLabel.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = BrainTumorLabelLogic()
        self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(
            slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentEditorNode", "BrainTumorLabel editor"))
        self.ui.annotatorLineEdit.text = getpass.getuser()

        self.ui.connectButton.connect("clicked()", self.onConnect)
        self.ui.loginButton.connect("clicked()", self.onLogin)
        self.ui.studyFilterLineEdit.connect("textChanged(QString)", self.showStudies)
        self.ui.refreshStudiesButton.connect("clicked()", self.onRefreshStudies)
        self.ui.nextSampleButton.connect("clicked()", self.onNextSample)
        self.ui.loadStudyButton.connect("clicked()", self.onLoadStudy)
        self.ui.assignFromSceneButton.connect("clicked()", self.onAssignFromScene)
        self.ui.loadFromDicomButton.connect("clicked()", self.onLoadFromDicom)
        self.ui.refreshDicomButton.connect("clicked()", self.onRefreshDicomStudies)
        self.ui.segmentButton.connect("clicked()", self.onSegment)
        self.ui.cancelButton.connect("clicked()", self.onCancel)
        self.ui.submitButton.connect("clicked()", self.onSubmit)
        self.ui.trainButton.connect("clicked()", self.onTrain)
        self.ui.stopTrainingButton.connect("clicked()", self.onStopTraining)
        self.ui.steroidDoseComboBox.addItems(list(STEROID_DOSES))
        self.ui.clinicalStatusComboBox.addItems(list(CLINICAL_STATUSES))
        self.ui.draftReportButton.connect("clicked()", self.onDraftReport)
        self.ui.findingsTable.connect("itemSelectionChanged()", self.onFindingSelected)
        self.ui.approveFindingButton.connect("clicked()", lambda: self.onReviewFinding("approved"))
        self.ui.editFindingButton.connect("clicked()", lambda: self.onReviewFinding("edited"))
        self.ui.declineFindingButton.connect("clicked()", lambda: self.onReviewFinding("declined"))
        self.ui.signReportButton.connect("clicked()", self.onSignReport)
        self.ui.openReportButton.connect("clicked()", self.onOpenReport)
        self.ui.publishReportButton.connect("clicked()", self.onPublishReport)
        self.showStudies()
        self.showJob(None)

    def cleanup(self) -> None:
        self.timer.stop()
        self.removeObservers()

    # ---- server and studies
    def onConnect(self) -> None:
        try:
            self.client = ServerClient(self.ui.serverUrlLineEdit.text)
        except ServerError as error:
            self.ui.serverStatusLabel.text = str(error)
            return
        self.startJob("connect", lambda progress: self._connect(), self.connected)

    def _connect(self) -> dict[str, Any]:
        """What the panel shows after Connect: whether a login is needed first (``/auth/`` is
        public), else the server's description and its studies."""
        assert self.client is not None
        if self.client.login_required() and not self.client.token:
            return {"login_required": True, "rows": []}
        return {**self.client.info(), "login_required": self.client.token is not None, "rows": self.client.studies()}

    def connected(self, info: dict[str, Any]) -> None:
        self.ui.loginGroup.visible = bool(info.get("login_required")) and self.client is not None \
            and not self.client.token
        if "name" not in info:
            self.ui.serverStatusLabel.text = "This server requires a login."
            return
        model = info.get("models", {}).get(MODEL, {})
        self.ui.serverStatusLabel.text = f"{info.get('name', '')} {info.get('version', '')}: model " \
                                         f"{model.get('model_version', 'none')}" + \
                                         (f" ({model['model_warning']})" if model.get("model_warning") else "")
        self.ui.strategyComboBox.clear()
        for strategy in sorted(info.get("strategies", {})):
            self.ui.strategyComboBox.addItem(strategy)
        self.rows = info["rows"]
        self.showStudies()

    def onLogin(self) -> None:
        client = self.client
        if client is None:
            return
        username, password = self.ui.usernameLineEdit.text, self.ui.passwordLineEdit.text
        self.ui.passwordLineEdit.text = ""
        self.startJob("connect", lambda progress: (client.login(username, password), self._connect())[1],
                      self.connected)

    def onRefreshStudies(self) -> None:
        if self.client is not None:
            client = self.client
            self.startJob("studies", lambda progress: client.studies(), self.studiesArrived)

    def studiesArrived(self, rows: list[StudyRow]) -> None:
        self.rows = rows
        self.showStudies()

    def showStudies(self, *unused: Any) -> None:
        text = self.ui.studyFilterLineEdit.text.strip().lower()
        shown = [r for r in self.rows if text in r.image_id.lower()]
        table = self.ui.studiesTable
        table.setRowCount(len(shown))
        for i, row in enumerate(shown):
            cells = (row.image_id, "yes" if row.labelled else "", " ".join(row.sequences), row.problem or "")
            for j, value in enumerate(cells):
                table.setItem(i, j, qt.QTableWidgetItem(value))
        table.resizeColumnsToContents()
        prior = self.ui.priorStudyComboBox.currentText
        self.ui.priorStudyComboBox.clear()
        self.ui.priorStudyComboBox.addItems(["(none)"] + [r.image_id for r in self.rows if r.labelled])
        self.ui.priorStudyComboBox.setCurrentText(prior or "(none)")

    def selectedStudy(self) -> str:
        row = self.ui.studiesTable.currentRow()
        item = self.ui.studiesTable.item(row, 0) if row >= 0 else None
        return item.text() if item is not None else ""

    def onNextSample(self) -> None:
        if self.client is None:
            return
        client, strategy = self.client, self.ui.strategyComboBox.currentText
        self.startJob("studies", lambda progress: client.next_sample(strategy, self.ui.annotatorLineEdit.text),
                      self.sampleArrived)

    def sampleArrived(self, imageId: str | None) -> None:
        if not imageId:
            self.ui.statusLabel.text = "No study left to annotate with this strategy."
            return
        self.ui.studyFilterLineEdit.text = imageId
        self.ui.studiesTable.selectRow(0)

    def onLoadStudy(self) -> None:
        imageId = self.selectedStudy()
        if self.client is None or not imageId:
            self.ui.statusLabel.text = "Connect, then select a study in the table."
            return
        client, folder = self.client, self.workDir / imageId
        self.startJob("load", lambda progress: client.download_sequences(imageId, folder),
                      lambda files: self.studyLoaded(imageId, files))

    def studyLoaded(self, imageId: str, files: dict[str, Path]) -> None:
        volumes = self.logic.loadSequences(files, imageId)
        self.useVolumes(imageId, volumes)

    def useVolumes(self, imageId: str, volumes: dict[str, Any]) -> None:
        for sequence, node in volumes.items():
            getattr(self.ui, f"{sequence}Selector").setCurrentNode(node)
        self.logic.getParameterNode().studyId = imageId
        slicer.util.setSliceViewerLayers(background=volumes.get("t1c"), foreground=volumes.get("t2f"),
                                         foregroundOpacity=0.0)
        self.ui.statusLabel.text = f"Study {imageId} loaded."

    def onAssignFromScene(self) -> None:
        try:
            volumes, missing = self.logic.volumesFromScene(self.ui.patternsLineEdit.text)
        except ValueError as error:
            self.ui.statusLabel.text = str(error)
            return
        for sequence, node in volumes.items():
            getattr(self.ui, f"{sequence}Selector").setCurrentNode(node)
        self.ui.statusLabel.text = f"Not found by name: {', '.join(missing)}" if missing else "All four assigned."

    def onRefreshDicomStudies(self) -> None:
        """The studies of Slicer's DICOM database, for the DICOM study box."""
        self.ui.dicomStudyComboBox.clear()
        database = slicer.dicomDatabase
        for patient in database.patients() if database else []:
            for study in database.studiesForPatient(patient):
                label = f"{database.nameForPatient(patient)} {database.fieldForStudy('StudyDate', study)} " \
                        f"{database.fieldForStudy('StudyDescription', study)}"
                self.ui.dicomStudyComboBox.addItem(label.strip(), study)

    def onLoadFromDicom(self) -> None:
        """The four series of the chosen DICOM study, picked by the server's rules."""
        studyUid = self.ui.dicomStudyComboBox.currentData
        if self.client is None or not studyUid:
            self.ui.statusLabel.text = "Connect, and choose a study of Slicer's DICOM database."
            return
        database, client = slicer.dicomDatabase, self.client
        series = [series_attributes(uid, database.filesForSeries(uid), database.fileValue)
                  for uid in database.seriesForStudy(studyUid)]
        self.startJob("load", lambda progress: client.identify_sequences(series),
                      lambda found: self.dicomIdentified(studyUid, found))

    def dicomIdentified(self, studyUid: str, found: dict[str, Any]) -> None:
        if found.get("problem"):
            self.ui.statusLabel.text = f"This study cannot be segmented: {found['problem']}"
            return
        from DICOMLib import DICOMUtils

        volumes = {}
        for sequence, seriesUid in found["sequences"].items():
            nodeIds = DICOMUtils.loadSeriesByUID([seriesUid])
            volumes[sequence] = slicer.mrmlScene.GetNodeByID(nodeIds[0])
            volumes[sequence].SetName(f"{studyUid} {sequence}")
        self.useVolumes(studyUid, volumes)

    # ---- segment, correct, submit
    def onSegment(self) -> None:
        imageId = self.logic.getParameterNode().studyId
        if self.client is None or not imageId:
            self.ui.statusLabel.text = "Load a study from the server first."
            return
        client, folder = self.client, self.workDir / imageId
        self.startJob("segment", lambda progress: client.segment(imageId, MODEL, folder), self.segmented)

    def segmented(self, result: Any) -> None:
        parameters = self.logic.getParameterNode()
        reference = self.ui.t1cSelector.currentNode()
        segmentation = self.logic.segmentationFromLabel(result.label_path, reference, f"{parameters.studyId} tumor")
        parameters.segmentation = segmentation
        self.ui.segmentEditorWidget.setSegmentationNode(segmentation)
        self.ui.segmentEditorWidget.setSourceVolumeNode(reference)
        self.segmentedAt, self.modelVersion = time.time(), result.model_version
        self.showVolumes(result.volumes_ml)
        # the server's notes (registration done, a series without signal, ...) are for the reader
        self.ui.statusLabel.text = " ".join([f"Segmented by {result.model_version}.",
                                             *(f"Note: {note}." for note in result.notes)])

    def showVolumes(self, volumes: dict[str, float]) -> None:
        table = self.ui.volumesTable
        names = ["NCR", "ED", "ET", "TC", "WT"]
        table.setRowCount(len(names))
        for i, name in enumerate(names):
            table.setItem(i, 0, qt.QTableWidgetItem(name))
            table.setItem(i, 1, qt.QTableWidgetItem(f"{volumes.get(name, 0.0):.1f}"))

    def onSubmit(self) -> None:
        parameters = self.logic.getParameterNode()
        segmentation, reference = parameters.segmentation, self.ui.t1cSelector.currentNode()
        if self.client is None or segmentation is None or reference is None:
            self.ui.statusLabel.text = "Segment (or draw) the tumor first."
            return
        imageId, client = parameters.studyId, self.client
        path = self.workDir / imageId / f"{imageId}-final.nii.gz"
        digest = self.logic.writeLabel(segmentation, reference, path)
        if self.ledger.already_submitted(imageId, digest):
            self.ui.statusLabel.text = "This correction has been submitted already."
            return
        self.showVolumes(self.logic.volumesMl(segmentation, reference))
        info = {"user": self.ui.annotatorLineEdit.text, "submitted": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "seconds_since_segmentation": round(time.time() - self.segmentedAt, 1) if self.segmentedAt else None,
                "model_version": self.modelVersion, "client": "3D Slicer BrainTumorLabel"}

        def submitted(answer: Any) -> None:
            self.ledger.record(imageId, digest)
            self.onRefreshStudies()
            self.ui.statusLabel.text = f"Submitted {imageId}."
        self.startJob("submit", lambda progress: client.submit_label(imageId, path, info), submitted)

    # ---- training
    def onTrain(self) -> None:
        if self.client is None:
            return
        client, epochs = self.client, int(self.ui.trainEpochsSpinBox.value)
        self.startJob("train", lambda progress: self._train(client, epochs, progress), self.trained,
                      onCancel=self._stopTraining)

    @staticmethod
    def _train(client: ServerClient, epochs: int, progress: Any) -> dict[str, Any]:
        client.start_training(MODEL, {"max_epochs": epochs})
        while not progress.cancelled:
            status = client.training_status()
            if status.get("status") not in ("SUBMITTED", "RUNNING"):
                return status
            stats = client.info().get("train_stats", {}).get(MODEL, {})
            epoch, total = stats.get("epoch", 0), stats.get("max_epochs", epochs)
            best = ", ".join(f"{k} {v:.2f}" for k, v in stats.get("best_dice", {}).items())
            progress.report(f"epoch {epoch}/{total}" + (f", best validation Dice {best}" if best else ""),
                            epoch / total if total else None)
            time.sleep(2.0)
        return {}

    def _stopTraining(self) -> None:
        if self.client is not None:
            try:
                self.client.stop_training()
            except ServerError as error:
                logging.warning("stopping the training failed: %s", error)

    def onStopTraining(self) -> None:
        job = self.jobs.get("train")
        if job is not None:
            job.cancel()

    def trained(self, status: dict[str, Any]) -> None:
        self.ui.trainingStatusLabel.text = f"Training {status.get('status', '').lower()}"

    # ---- report
    def onDraftReport(self) -> None:
        imageId = self.logic.getParameterNode().studyId or self.selectedStudy()
        if self.client is None or not imageId:
            self.ui.reportStatusLabel.text = "Load (or select) a study with a submitted or segmented label first."
            return
        client, prior = self.client, self.ui.priorStudyComboBox.currentText
        prior = "" if prior in ("", "(none)", imageId) else prior
        dose, status = self.ui.steroidDoseComboBox.currentText, self.ui.clinicalStatusComboBox.currentText
        self.startJob("report", lambda progress: client.draft_report(imageId, prior or None, dose, status),
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

    def selectedFinding(self) -> str:
        row = self.ui.findingsTable.currentRow()
        rows = finding_rows(self.report)
        return rows[row].key if 0 <= row < len(rows) else ""

    def onFindingSelected(self) -> None:
        row = self.ui.findingsTable.currentRow()
        rows = finding_rows(self.report)
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
            return
        self.startJob("report", lambda progress: client.publish_report(imageId),
                      lambda sent: setattr(self.ui.reportStatusLabel, "text", f"Sent to the PACS: {sent}"))

    def onOpenReport(self) -> None:
        client, imageId = self.client, str(self.report.get("study", ""))
        if client is None or not imageId:
            return
        path = self.workDir / imageId / f"{imageId}-report.pdf"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.startJob("report", lambda progress: client.download_report_pdf(imageId, path),
                      lambda saved: qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(saved))))

    # ---- jobs
    def startJob(self, name: str, work: Any, onSuccess: Any, onCancel: Any = None) -> None:
        try:
            job = self.jobs.start(name, work, onCancel)
        except JobBusy as busy:
            self.ui.statusLabel.text = str(busy)
            return
        self.callbacks[name] = onSuccess
        self.showJob(job)
        self.timer.start()

    def onCancel(self) -> None:
        for name in self.jobs.running():
            self.jobs.get(name).cancel()

    def poll(self) -> None:
        """Called by the timer: show running jobs, hand finished ones to their callbacks."""
        for name in list(self.callbacks):
            job = self.jobs.get(name)
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
                    self.ui.statusLabel.text = f"{name}: {error}"
            elif status.state is JobState.FAILED:
                self.ui.statusLabel.text = f"{name} failed: {status.error}"
        if not self.callbacks:
            self.timer.stop()

    def showJob(self, job: Job | None) -> None:
        busy = bool(self.jobs.running())
        self.ui.cancelButton.enabled = busy
        self.ui.segmentButton.enabled = "segment" not in self.jobs.running()
        self.ui.submitButton.enabled = "submit" not in self.jobs.running()
        if job is None:
            self.ui.progressBar.visible = False
            return
        status = job.status()
        self.ui.progressBar.visible = not status.finished
        self.ui.progressBar.maximum = 0 if status.progress is None else 100  # 0: busy indicator
        self.ui.progressBar.value = int(100 * (status.progress or 0))
        if not status.finished:
            self.ui.statusLabel.text = f"{status.name}: {status.message} ({status.elapsed_s:.0f} s)"
            if status.name == "train":
                self.ui.trainingStatusLabel.text = status.message
        elif status.state is JobState.CANCELLED:
            self.ui.statusLabel.text = f"{status.name} cancelled"


class BrainTumorLabelTest(ScriptedLoadableModuleTest):
    """The workflow against a running server (``BTL_SERVER_URL``, default http://127.0.0.1:8000,
    e.g. ``make run``): connect, load a study, segment, check the segments, submit, see it labelled."""

    def setUp(self) -> None:
        slicer.mrmlScene.Clear(0)

    def runTest(self) -> None:
        self.setUp()
        self.test_workflow()

    def test_workflow(self) -> None:
        client = ServerClient(os.environ.get("BTL_SERVER_URL", "http://127.0.0.1:8000"))
        rows = [r for r in client.studies() if r.can_segment]
        self.assertTrue(rows, "the server has no study that can be segmented")
        imageId, work = rows[0].image_id, Path(tempfile.mkdtemp())
        logic = BrainTumorLabelLogic()
        volumes = logic.loadSequences(client.download_sequences(imageId, work), imageId)
        result = client.segment(imageId, MODEL, work)
        segmentation = logic.segmentationFromLabel(result.label_path, volumes["t1c"], f"{imageId} tumor")
        names = [segmentation.GetSegmentation().GetNthSegment(i).GetName()
                 for i in range(segmentation.GetSegmentation().GetNumberOfSegments())]
        self.assertEqual(sorted(names), ["ED", "ET", "NCR"])
        volumesMl = logic.volumesMl(segmentation, volumes["t1c"])
        self.assertAlmostEqual(volumesMl["WT"], result.volumes_ml["WT"], delta=0.05 * result.volumes_ml["WT"] + 0.1)
        path = work / "final.nii.gz"
        logic.writeLabel(segmentation, volumes["t1c"], path)
        client.submit_label(imageId, path, {"user": "slicer self-test"})
        self.assertTrue(next(r for r in client.studies() if r.image_id == imageId).labelled)
        self.delayDisplay("BrainTumorLabel workflow passed")

