"""The Report section's view of a report (the JSON of the server's ``/btl/studies/{id}/report``):
the findings as table rows, what is still to review, and a one-line status.

The choices offered for RANO 2.0's clinical inputs are the server's (``lib.report.response``);
the server checks them again and refuses anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STEROID_DOSES: tuple[str, ...] = ("unknown", "none", "stable", "increased", "decreased")
CLINICAL_STATUSES: tuple[str, ...] = ("unknown", "improved", "stable", "worse")
PROPOSED = "proposed"


@dataclass(frozen=True)
class FindingRow:
    """One finding as the table shows it: ``review`` is "AI, to review" until a clinician has
    approved, edited or declined it; ``text`` is what the report will say (the edit when edited)."""

    key: str
    review: str
    text: str


def finding_rows(report: dict[str, Any]) -> list[FindingRow]:
    rows = []
    for finding in report.get("findings", []):
        state = finding.get("state", PROPOSED)
        text = finding.get("final_text") if state == "edited" and finding.get("final_text") else finding.get("text")
        review = ("AI, to review" if finding.get("ai_derived") else "to review") if state == PROPOSED else \
            f"{state} by {finding.get('reviewed_by') or '?'}"
        rows.append(FindingRow(str(finding.get("key")), review, str(text or "")))
    return rows


def to_review(report: dict[str, Any]) -> list[str]:
    """Keys of the findings nobody has reviewed yet (signing needs none)."""
    return [str(f.get("key")) for f in report.get("findings", []) if f.get("state", PROPOSED) == PROPOSED]


def status_line(report: dict[str, Any]) -> str:
    version = report.get("version")
    if report.get("final"):
        return f"Version {version}, signed by {report.get('signed_by')} on {report.get('signed_at')}."
    left = len(to_review(report))
    total = len(report.get("findings", []))
    return (f"Draft, version {version}: {total - left} of {total} findings reviewed"
            + ("; write the impression and sign." if not left else "."))
