"""What the Similar cases section shows, from the server's answers (BrainTumorLabelLib.search):
the rows of an answer, the table cells, the measurements summary and the status lines. Pure
functions of the answer's JSON, so the answers here are written out as the server sends them
(its shape is tested against a real server in test_lib_search.py)."""

from __future__ import annotations

from BrainTumorLabelLib.search import (
    CASE_COLUMNS,
    PATIENT_COLUMNS,
    Hit,
    best_first,
    case_cells,
    case_rows,
    patient_cells,
    patient_rows,
    patients_line,
    results_line,
    summary,
)

ANSWER = {"hits": [
    {"study": "S-1", "date": "20260101", "patient": {"key": "p1", "name": "DOE^JANE", "id": "P1"},
     "same_patient": True, "score": 0.8123, "impression": "Stable right frontal glioma.",
     "measurements": {"volumes_ml": {"WT": 35.14, "ET": 3.21, "TC": 9.0}, "lesion_count": 1,
                      "hemisphere": "right", "crosses_midline": False},
     "label": {"tag": "final", "version": 2}},
    {"study": "S-2", "date": "2025-12-31", "patient": {"key": "abc"}, "score": 0.9,
     "match": {"highlighted": "new <mark>enhancing</mark> focus"},
     "measurements": {"volumes_ml": {"WT": 120.0}, "lesion_count": 3, "crosses_midline": True}},
]}


def test_an_answers_rows_carry_the_date_patient_and_label_version():
    first, second = case_rows(ANSWER)
    assert (first.study, first.date, first.patient, first.same_patient) == ("S-1", "2026-01-01", "DOE^JANE (P1)", True)
    assert (first.label_tag, first.label_version) == ("final", 2)
    assert (second.date, second.patient, second.same_patient, second.label_version) == ("2025-12-31", "patient abc",
                                                                                        False, 0)
    assert case_rows({}) == []


def test_the_cells_follow_the_columns_and_a_text_match_replaces_the_impression():
    first, second = case_rows(ANSWER)
    cells = case_cells(first)
    assert len(cells) == len(CASE_COLUMNS)
    assert cells == ("", "S-1", "2026-01-01", "yes", "0.81", "WT 35.1 mL, ET 3.2 mL, 1 lesion, right, "
                     "does not cross the midline", "Stable right frontal glioma.")
    assert case_cells(second)[3:] == ("", "0.90", "WT 120.0 mL, 3 lesions, crosses the midline",
                                      "new enhancing focus")


def test_the_summary_says_only_what_was_measured():
    assert summary({}) == ""
    assert summary({"volumes_ml": {"ET": 0}, "lesion_count": 0}) == "ET 0.0 mL, 0 lesions"


def test_best_first_can_put_the_patients_own_studies_on_top():
    rows = case_rows(ANSWER)
    assert [r.study for r in best_first(rows)] == ["S-2", "S-1"]
    assert [r.study for r in best_first(rows, same_patient_first=True)] == ["S-1", "S-2"]


def test_the_status_line_counts_the_hits_and_the_same_patients():
    hits = [Hit(row, None) for row in case_rows(ANSWER)]
    assert results_line(hits, "similar studies") == ("2 similar studies, 1 of the same patient: select one and "
                                                     "Load beside.")
    assert results_line(hits[1:], "reports") == "1 reports: select one and Load beside."
    assert results_line([], "reports") == "No reports found."


def test_a_patients_studies_in_cells_and_the_status_line():
    answer = {"patients": [
        {"patient": {"name": "DOE^JANE", "id": "P1"},
         "studies": [{"study": "S-0", "date": "20250101", "description": "MR brain", "indexed": True},
                     {"study": "S-1", "date": "20260101", "indexed": False}]},
        {"patient": {}, "studies": [{"study": "S-9"}]}]}
    rows = patient_rows(answer)
    assert [patient_cells(r) for r in rows] == [("DOE^JANE (P1)", "S-0", "2025-01-01", "MR brain", "yes"),
                                                ("DOE^JANE (P1)", "S-1", "2026-01-01", "", "not yet"),
                                                ("unknown patient", "S-9", "", "", "not yet")]
    assert all(len(patient_cells(r)) == len(PATIENT_COLUMNS) for r in rows)
    assert patients_line(rows) == "3 studies of 2 patients: select one and Load."
    assert patients_line(rows[:1]) == "1 study of 1 patient: select one and Load."
    assert patients_line([]) == "No patient found."
