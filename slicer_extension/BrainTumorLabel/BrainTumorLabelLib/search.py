"""The *Similar cases* section's logic, without the GUI: the server's search answers as table
rows, the filter box's text as filter terms, thumbnails fetched once, and what to download to
load a hit beside the current study.

The widget calls :class:`CaseSearch` (one per server client) and shows its rows; loading a hit
is :meth:`CaseSearch.fetch_case` (four sequences and the hit's label version, as files), which
the module's Logic then loads into the scene. Standard library only; Python 3.9 (Slicer's).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .client import ServerClient, ServerError

#: What the widget offers for "similar by".
BY_CHOICES: tuple[str, ...] = ("both", "image", "tumor")
#: What the widget offers for the text search.
MODE_CHOICES: tuple[str, ...] = ("hybrid", "keyword", "semantic")
_TERM = re.compile(r"^\s*([a-z_]+)\s*(>=|<=|!=|=|<|>)\s*(\S+)\s*$")


@dataclass(frozen=True)
class CaseRow:
    """One hit as a table row: ``summary`` is the measurements in one line, ``patient`` the
    patient as the caller may see them (a name and id, or a pseudonymous key), ``match`` the
    report sentence that matched a text search (with <mark> around what matched)."""

    study: str
    date: str
    patient: str
    same_patient: bool
    score: float
    summary: str
    impression: str
    match: str
    label_tag: str
    label_version: int


@dataclass(frozen=True)
class PatientStudyRow:
    patient: str
    study: str
    date: str
    description: str
    searchable: bool


def filter_terms(text: str) -> list[str]:
    """The terms of the filter box (``wt_ml>=50, hemisphere=right``: separated by commas or
    "and"); :class:`ValueError` naming a term that is not field, operator, value."""
    terms = []
    for part in re.split(r",|\band\b", text):
        if not part.strip():
            continue
        match = _TERM.match(part)
        if not match:
            raise ValueError(f"'{part.strip()}' is not a filter such as wt_ml>=50 or hemisphere=right")
        terms.append("".join(match.groups()))
    return terms


def _date(value: str | None) -> str:
    text = value or ""
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if re.fullmatch(r"\d{8}", text) else text


def _patient(patient: dict[str, Any]) -> str:
    if patient.get("name") or patient.get("id"):
        return " ".join(p for p in (patient.get("name") or "", f"({patient['id']})" if patient.get("id") else "") if p)
    return f"patient {patient['key']}" if patient.get("key") else "unknown patient"


def summary(measurements: dict[str, Any]) -> str:
    """``WT 35.1 mL, ET 3.2 mL, 1 lesion, right, crosses the midline``."""
    volumes = measurements.get("volumes_ml") or {}
    parts = [f"{name} {float(volumes[name]):.1f} mL" for name in ("WT", "ET") if name in volumes]
    lesions = measurements.get("lesion_count")
    if lesions is not None:
        parts.append(f"{lesions} lesion{'s' if lesions != 1 else ''}")
    if measurements.get("hemisphere"):
        parts.append(str(measurements["hemisphere"]))
    if measurements.get("crosses_midline") is not None:
        parts.append("crosses the midline" if measurements["crosses_midline"] else "does not cross the midline")
    return ", ".join(parts)


def case_rows(answer: dict[str, Any]) -> list[CaseRow]:
    """The rows of a similar-cases or text-search answer, best first."""
    rows = []
    for hit in answer.get("hits", []):
        label = hit.get("label") or {}
        match = hit.get("match") or {}
        rows.append(CaseRow(str(hit["study"]), _date(hit.get("date")), _patient(hit.get("patient") or {}),
                            bool(hit.get("same_patient")), float(hit.get("score", 0.0)),
                            summary(hit.get("measurements") or {}), str(hit.get("impression") or ""),
                            str(match.get("highlighted") or ""), str(label.get("tag", "")),
                            int(label.get("version", 0))))
    return rows


def patient_rows(answer: dict[str, Any]) -> list[PatientStudyRow]:
    """One row per study of each patient found, oldest first within a patient."""
    return [PatientStudyRow(_patient(group.get("patient") or {}), str(s["study"]), _date(s.get("date")),
                            str(s.get("description") or ""), bool(s.get("indexed")))
            for group in answer.get("patients", []) for s in group.get("studies", [])]


class CaseSearch:
    """Search calls for the section, with the thumbnails kept in ``cache`` (one file per study
    and label version, fetched once)."""

    def __init__(self, client: ServerClient, cache: Path) -> None:
        self.client = client
        self.cache = Path(cache)

    def similar(self, study: str, k: int = 10, by: str = "both", filter_text: str = "") -> list[CaseRow]:
        if by not in BY_CHOICES:
            raise ValueError(f"by must be one of {', '.join(BY_CHOICES)}")
        return case_rows(self.client.similar_cases(study, k, by, filter_terms(filter_text)))

    def text(self, query: str, k: int = 10, mode: str = "hybrid", filter_text: str = "") -> list[CaseRow]:
        if mode not in MODE_CHOICES:
            raise ValueError(f"mode must be one of {', '.join(MODE_CHOICES)}")
        return case_rows(self.client.search_reports(query, k, mode, filter_terms(filter_text)))

    def studies_of_patient(self, query: str) -> list[PatientStudyRow]:
        return patient_rows(self.client.find_patients(query))

    def thumbnail(self, row: CaseRow) -> Path:
        """The row's thumbnail (PNG), downloaded the first time."""
        path = self.cache / "thumbnails" / f"{row.study}-{row.label_tag}-v{row.label_version:04d}.png"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.part")
            self.client.download_thumbnail(row.study, partial)
            partial.replace(path)
        return path

    def fetch_case(self, row: CaseRow, folder: Path | None = None) -> tuple[dict[str, Path], Path]:
        """The hit's four sequences and its label version (the one its features came from), as
        files under ``folder`` (default: the cache): what loading it beside the current study needs."""
        target = Path(folder) if folder is not None else self.cache / "cases" / row.study
        sequences = self.client.download_sequences(row.study, target)
        label = self.client.download_label_version(row.study, row.label_tag, row.label_version,
                                                   target / f"{row.study}-{row.label_tag}-v{row.label_version}.nii.gz")
        return sequences, label


def best_first(rows: Sequence[CaseRow], same_patient_first: bool = False) -> list[CaseRow]:
    """The rows by score; with ``same_patient_first``, the patient's own studies on top."""
    return sorted(rows, key=lambda r: (not (same_patient_first and r.same_patient), -r.score))


# ---- what the section's tables and status line show
#: the results table's columns (the first: the thumbnail, an icon without text)
CASE_COLUMNS: tuple[str, ...] = ("", "Study", "Date", "Same patient", "Score", "Measurements", "Impression")
#: the patient table's columns
PATIENT_COLUMNS: tuple[str, ...] = ("Patient", "Study", "Date", "Description", "Searchable")
_MARK = re.compile(r"</?mark>")


@dataclass(frozen=True)
class Hit:
    """A row with its thumbnail file (None when the server had none to give)."""

    row: CaseRow
    thumbnail: Path | None


def case_cells(row: CaseRow) -> tuple[str, ...]:
    """A hit's cells in :data:`CASE_COLUMNS` order: for a text search, the matching report
    sentence (without its <mark> tags) in place of the impression."""
    text = _MARK.sub("", row.match) if row.match else row.impression
    return "", row.study, row.date, "yes" if row.same_patient else "", f"{row.score:.2f}", row.summary, text


def patient_cells(row: PatientStudyRow) -> tuple[str, ...]:
    return row.patient, row.study, row.date, row.description, "yes" if row.searchable else "not yet"


def with_thumbnails(search: CaseSearch, rows: Sequence[CaseRow]) -> list[Hit]:
    """The rows with their thumbnails (fetched once each); a thumbnail the server refuses is
    None, the row stays."""
    hits = []
    for row in rows:
        try:
            thumbnail: Path | None = search.thumbnail(row)
        except ServerError:
            thumbnail = None
        hits.append(Hit(row, thumbnail))
    return hits


def results_line(hits: Sequence[Hit], what: str) -> str:
    """The section's status line after a search: how many of ``what`` were found."""
    if not hits:
        return f"No {what} found."
    own = sum(1 for hit in hits if hit.row.same_patient)
    return (f"{len(hits)} {what}" + (f", {own} of the same patient" if own else "")
            + ": select one and Load beside.")


def patients_line(rows: Sequence[PatientStudyRow]) -> str:
    if not rows:
        return "No patient found."
    people = len({row.patient for row in rows})
    return (f"{len(rows)} stud{'y' if len(rows) == 1 else 'ies'} of {people} patient{'s' if people != 1 else ''}"
            ": select one and Load.")
