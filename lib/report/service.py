"""Reports of the studies of a datastore: draft, review, sign, and (for a PACS) publish.

What the server's report endpoints and the Slicer module's Report section call. A draft is
computed from the study's newest ``final`` label (else the model's newest ``original``), and
from a prior study of the patient when one is named; each review and the signature are new
versions; a signed report of a PACS study goes into the PACS as an Encapsulated PDF and a
measurement SR next to the study.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from lib.atomic import atomic_path
from lib.datastore.base import FINAL, ORIGINAL, StudyDatastore
from lib.errors import ConflictError, UnknownIdError

from .build import StudyInputs, draft_report
from .dicom import encapsulated_pdf, measurement_sr
from .document import Report
from .pdf import write_pdf
from .response import ClinicalInputs
from .store import ReportStore


class ReportService:
    def __init__(self, studies: StudyDatastore, store: ReportStore) -> None:
        self.studies, self.store = studies, store

    @property
    def publishes_to_pacs(self) -> bool:
        """True when a signed report goes into the studies' PACS (the store keeps DICOM)."""
        return self.studies.stores_dicom

    def _inputs(self, study: str) -> StudyInputs:
        tags = self.studies.label_tags(study)
        tag = FINAL if FINAL in tags else ORIGINAL if ORIGINAL in tags else None
        if tag is None:
            raise UnknownIdError(f"study '{study}' has no label to measure; segment it first")
        latest = self.studies.latest_label(study, tag)
        return StudyInputs(study, self.studies.study_path(study),
                           Path(self.studies.label_version_uri(study, tag, latest.version)),
                           {"tag": tag, "version": latest.version, "model_version": latest.info.get("model_version")},
                           self.studies.study_header(study))

    def draft(self, study: str, prior: str | None = None, clinical: ClinicalInputs | None = None) -> Report:
        """A new draft (its PDF and key images written next to it)."""
        current = self._inputs(study)
        previous = self._inputs(prior) if prior else None  # every input checked before anything is written
        version = self.store.reserve(study)
        try:
            report = draft_report(current, previous, model_version=current.label_ref.get("model_version"),
                                  clinical=clinical or ClinicalInputs(),
                                  images_path=self.store.path(study, version, "images"))
            return self._save(report, version)
        except BaseException:
            self.store.release(study, version)
            raise

    def latest(self, study: str) -> Report:
        return self.store.latest(study)

    def review(self, study: str, key: str, state: str, user: str, text: str | None = None) -> Report:
        report = self.store.latest(study)
        return self._next(report, report.reviewed(key, state, user, text))

    def sign(self, study: str, user: str, impression: str, recommendations: str) -> Report:
        report = self.store.latest(study)
        return self._next(report, report.signed(user, impression, recommendations))

    def publish(self, study: str) -> dict[str, Any]:
        """Send the signed report to the PACS (a study of a DICOMweb datastore) as an Encapsulated
        PDF and a measurement SR; :class:`ConflictError` for a draft or a folder study."""
        report = self.store.latest(study)
        if not report.final:
            raise ConflictError("only a signed report goes to the PACS; sign it first")
        if not self.publishes_to_pacs:
            raise ConflictError("this study is not in a PACS; download the PDF instead")
        tag, version = str(report.label["tag"]), int(report.label["version"])
        seg = self.studies.label_seg(study, tag, version)
        pdf = encapsulated_pdf(self.store.path(study, report.version, "pdf").read_bytes(),
                               self.studies.source_header(study), report, source=seg)
        sr = measurement_sr(seg, report)
        self.studies.store_dicom(study, [pdf, sr])
        return {"pdf_series": str(pdf.SeriesInstanceUID), "sr_series": str(sr.SeriesInstanceUID)}

    def file(self, study: str, kind: str, version: int | None = None) -> Path:
        """The PDF or key images of a version (default: the newest)."""
        report = self.store.latest(study) if version is None else self.store.get(study, version)
        return self.store.path(study, report.version, kind)

    def _next(self, previous: Report, changed: Report) -> Report:
        version = self.store.reserve(previous.study)
        try:
            with atomic_path(self.store.path(previous.study, version, "images"), suffix=".png") as copy:
                shutil.copyfile(self.store.path(previous.study, previous.version, "images"), copy)
            return self._save(changed, version)
        except BaseException:
            self.store.release(previous.study, version)
            raise

    def _save(self, report: Report, version: int) -> Report:
        saved = self.store.save(report, version)
        write_pdf(saved, self.store.path(saved.study, version, "pdf"), self.store.path(saved.study, version, "images"))
        return saved
