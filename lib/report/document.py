"""The report as a document: AI-derived findings a clinician reviews, an impression, a signature.

A report starts as a *draft*: measurements, the response to a prior study, key images and one
finding per statement the software makes. Each finding is marked AI-derived and must be
approved, edited or declined by a clinician; only then can the report be signed, which makes
it *final* with who signed it and when. The report records the model version and the label
version it was computed from. Every change is a new version of the report (see
:class:`lib.report.store.ReportStore`); nothing is edited in place.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from lib.errors import ConflictError, InputError, UnknownIdError

#: What a clinician can do with a finding; "proposed" is the software's, before review.
REVIEW_STATES = ("approved", "edited", "declined")
DISCLAIMER = ("Measurements and findings marked AI were derived by software from the images and a segmentation "
              "that may contain errors. They were reviewed as shown by the signing clinician. This report does not "
              "replace the reading of the images.")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclass(frozen=True)
class Finding:
    """One statement of the report. ``text`` is the software's; a clinician's edit is in
    ``final_text``. ``state``: proposed, approved, edited or declined."""

    key: str
    text: str
    ai_derived: bool = True
    state: str = "proposed"
    final_text: str | None = None
    reviewed_by: str | None = None
    reviewed_at: str | None = None

    @property
    def shown_text(self) -> str:
        return self.final_text if self.state == "edited" and self.final_text else self.text


@dataclass(frozen=True)
class Report:
    """See the module docstring. ``measurements`` and ``response`` are the dictionaries of
    :mod:`lib.report.measure` and :mod:`lib.report.response`; ``label`` names the label
    version measured (``{"tag", "version"}``); ``header``: patient and study lines (from
    DICOM when the study is in a PACS)."""

    study: str
    label: dict[str, Any]
    model_version: str | None
    measurements: dict[str, Any]
    findings: tuple[Finding, ...]
    header: dict[str, str] = field(default_factory=dict)
    prior: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    clinical: dict[str, str] = field(default_factory=dict)
    impression: str = ""
    recommendations: str = ""
    status: str = "draft"
    signed_by: str | None = None
    signed_at: str | None = None
    created: str = field(default_factory=now)
    version: int = 0

    @property
    def final(self) -> bool:
        return self.status == "final"

    def finding(self, key: str) -> Finding:
        for finding in self.findings:
            if finding.key == key:
                return finding
        raise UnknownIdError(f"the report of '{self.study}' has no finding '{key}'; it has "
                             f"{', '.join(f.key for f in self.findings)}")

    def reviewed(self, key: str, state: str, user: str, text: str | None = None) -> Report:
        """The report with one finding approved, edited (``text``) or declined by ``user``."""
        self._check_draft()
        if state not in REVIEW_STATES:
            raise InputError(f"'{state}' is not a review ({', '.join(REVIEW_STATES)})")
        if state == "edited" and not (text or "").strip():
            raise InputError("an edited finding needs its new text")
        edited = text.strip() if state == "edited" and text else None
        finding = replace(self.finding(key), state=state, final_text=edited, reviewed_by=user, reviewed_at=now())
        return replace(self, findings=tuple(finding if f.key == key else f for f in self.findings))

    def signed(self, user: str, impression: str, recommendations: str) -> Report:
        """The final report. Every finding must have been reviewed, and an impression written."""
        self._check_draft()
        waiting = [f.key for f in self.findings if f.state == "proposed"]
        if waiting:
            raise ConflictError(f"findings not reviewed yet: {', '.join(waiting)}; approve, edit or decline each")
        if not impression.strip():
            raise InputError("write the impression before signing")
        return replace(self, impression=impression.strip(), recommendations=recommendations.strip(), status="final",
                       signed_by=user, signed_at=now())

    def _check_draft(self) -> None:
        if self.final:
            raise ConflictError(f"the report of '{self.study}' is signed (version {self.version}); "
                                "draft a new one to change it")

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["findings"] = [asdict(f) for f in self.findings]
        record["final"] = self.final  # derived from status; from_dict ignores it
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Report:
        values = dict(record)
        values["findings"] = tuple(Finding(**f) for f in record.get("findings", []))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})
