"""Renders the Slicer module's panel (its .ui file) to a PNG for the README, offscreen.

3D Slicer cannot run here, so Slicer's own widgets are drawn as stand-ins: collapsible
sections as titled boxes, node selectors as combo boxes showing the volume a study would
put there, the Segment Editor as a framed placeholder. The layout, labels, buttons and
tables are the module's own.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/render_slicer_module.py docs/images/slicer-module.png
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Property, QFile, Qt
from PySide6.QtGui import QPixmap
from PySide6.QtUiTools import QUiLoader
from PySide6.QtWidgets import QApplication, QComboBox, QFrame, QGroupBox, QLabel, QTableWidgetItem, QVBoxLayout, QWidget

UI = Path(__file__).resolve().parents[1] / "slicer_extension" / "BrainTumorLabel" / "Resources" / "UI" / \
    "BrainTumorLabel.ui"


class ctkCollapsibleButton(QGroupBox):  # noqa: N801 - the name the .ui file uses
    def _text(self) -> str:
        return self.title()

    def _set_text(self, text: str) -> None:
        self.setTitle("\u25be " + text)

    text = Property(str, _text, _set_text)


class qMRMLNodeComboBox(QComboBox):  # noqa: N801
    pass


class qMRMLWidget(QWidget):  # noqa: N801
    pass


class qMRMLSegmentEditorWidget(QFrame):  # noqa: N801
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.StyledPanel)
        self.setMinimumHeight(110)
        layout = QVBoxLayout(self)
        note = QLabel("3D Slicer's Segment Editor\n(paint, erase, threshold, islands, ... on NCR, ED, ET)")
        note.setAlignment(Qt.AlignCenter)
        layout.addWidget(note)


def main(out: str) -> int:
    app = QApplication([])
    loader = QUiLoader()
    for cls in (ctkCollapsibleButton, qMRMLNodeComboBox, qMRMLWidget, qMRMLSegmentEditorWidget):
        loader.registerCustomWidget(cls)
    ui = QFile(str(UI))
    ui.open(QFile.ReadOnly)
    panel = loader.load(ui)
    ui.close()
    study = "SynBraTS-00000-001"
    table = panel.findChild(QWidget, "studiesTable")
    rows = [("SynBraTS-00000-000", "yes", "t1n t1c t2w t2f", ""), (study, "", "t1n t1c t2w t2f", ""),
            ("SynBraTS-00000-002", "", "t1n t1c t2w", "sequence 't2f' is missing")]
    table.setRowCount(len(rows))
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            table.setItem(i, j, QTableWidgetItem(value))
    table.resizeColumnsToContents()
    table.selectRow(1)
    for sequence in ("t1n", "t1c", "t2w", "t2f"):
        panel.findChild(QWidget, f"{sequence}Selector").addItem(f"{study} {sequence}")
    panel.findChild(QWidget, "strategyComboBox").addItems(["random", "first"])
    panel.findChild(QWidget, "serverStatusLabel").setText("BrainTumorLabel 0.3.0: model brats-segresnet-2mm")
    panel.findChild(QWidget, "patternsLineEdit").setText("t2f: t2f, flair; t1c: t1c, post, gd; ...")
    panel.findChild(QWidget, "statusLabel").setText("segment: running inference (3 s)")
    progress = panel.findChild(QWidget, "progressBar")
    progress.setMaximum(0)
    volumes = panel.findChild(QWidget, "volumesTable")
    values = [("NCR", "12.4"), ("ED", "58.0"), ("ET", "9.1"), ("TC", "21.5"), ("WT", "79.5")]
    volumes.setRowCount(len(values))
    for i, (name, ml) in enumerate(values):
        volumes.setItem(i, 0, QTableWidgetItem(name))
        volumes.setItem(i, 1, QTableWidgetItem(ml))
    panel.findChild(QWidget, "annotatorLineEdit").setText("dr.smith")
    panel.findChild(QWidget, "priorStudyComboBox").addItem("SynBraTS-00000-000")
    panel.findChild(QWidget, "steroidDoseComboBox").addItem("stable")
    panel.findChild(QWidget, "clinicalStatusComboBox").addItem("stable")
    findings = panel.findChild(QWidget, "findingsTable")
    reviewed = [("approved by dr.smith", "Whole tumor 119.7 mL (edema 108.0 mL, core 3.5 mL, enhancing 8.1 mL)"),
                ("approved by dr.smith", "1 measurable enhancing lesion as RANO 2.0 target: 40 x 34 mm (1376 mm²)"),
                ("AI, to review", "Tumor in the left hemisphere; crosses the midline."),
                ("AI, to review", "Since the prior study: enhancing tumor -22.1 mL (-73 %); SPD 3084 -> 1376 mm². "
                                  "RANO 2.0 bidimensional: PR")]
    findings.setRowCount(len(reviewed))
    for i, cells in enumerate(reviewed):
        for j, value in enumerate(cells):
            findings.setItem(i, j, QTableWidgetItem(value))
    findings.resizeColumnToContents(0)
    findings.resizeRowsToContents()
    findings.selectRow(2)
    panel.findChild(QWidget, "findingTextEdit").setPlainText("Tumor in the left hemisphere; crosses the midline.")
    panel.findChild(QWidget, "reportStatusLabel").setText("Draft, version 3: 2 of 4 findings reviewed.")
    panel.findChild(QWidget, "signReportButton").setEnabled(False)
    panel.findChild(QWidget, "publishReportButton").setEnabled(False)
    key_images = Path(__file__).resolve().parents[1] / "build" / "report-demo" / "key-images.png"  # make report
    if key_images.exists():
        panel.findChild(QWidget, "keyImagesLabel").setPixmap(QPixmap(str(key_images)).scaledToWidth(
            420, Qt.SmoothTransformation))
    panel.resize(460, 2200)
    panel.show()
    app.processEvents()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    panel.grab().save(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "docs/images/slicer-module.png"))
