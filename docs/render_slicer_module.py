"""Draws the Slicer module's panel for the README: the real .ui file and the real widget code, run
by the module tests' harness (``tests/slicer_extension/module/_slicer_harness.py``: PySide6 offscreen, the
compiled CTK/qMRML widgets as stand-ins, real MRML) against a real server on generated studies:
connect, load a study, segment, submit, draft a report and review two findings.

    .venv/bin/python docs/render_slicer_module.py docs/images/slicer-module.png
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "slicer_extension" / "module")]

import _slicer_harness  # noqa: E402  (the harness is installed before the module is imported)

_slicer_harness.install()

import slicer  # noqa: E402

from _cases import make_studies  # noqa: E402
from _server import monailabel_server  # noqa: E402
from BrainTumorLabel import BrainTumorLabelWidget  # noqa: E402


def click(session: _slicer_harness.ModuleSession, button: str) -> None:
    getattr(session.ui, button).click()
    session.wait_idle()


def populate(session: _slicer_harness.ModuleSession, url: str, image_id: str) -> None:
    ui = session.ui
    ui.serverUrlLineEdit.text = url
    click(session, "connectButton")
    ui.studiesTable.selectRow(0)
    click(session, "loadStudyButton")
    click(session, "segmentButton")
    click(session, "submitButton")
    ui.studyFilterLineEdit.text = ""
    ui.studiesTable.selectRow(0)
    for section in ("trainCollapsibleButton", "reportCollapsibleButton"):
        getattr(ui, section).click()  # opened, as a user would
    click(session, "draftReportButton")
    for row in (0, 1):
        ui.findingsTable.selectRow(row)
        click(session, "approveFindingButton")
    ui.findingsTable.selectRow(2)


def main(out: str) -> int:
    with tempfile.TemporaryDirectory() as work:
        studies = Path(work) / "studies"
        ids = make_studies(studies, 3, seed=7)
        next((studies / ids[2]).glob("*-t2f.nii.gz")).unlink()  # a study that cannot be segmented
        slicer.mrmlScene = _slicer_harness.new_scene()
        slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
        with monailabel_server(studies, Path(work) / "server.log") as url:
            session = _slicer_harness.ModuleSession(BrainTumorLabelWidget)
            try:
                populate(session, url, ids[0])
                session.panel.resize(480, session.panel.sizeHint.height() + 40)
                _slicer_harness.wait_until(lambda: True, "a repaint")
                Path(out).parent.mkdir(parents=True, exist_ok=True)
                session.panel.grab().save(out)
            finally:
                session.unload()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "docs/images/slicer-module.png"))
