"""The Similar cases section's Lib (BrainTumorLabelLib.search and the client's search calls)
against a real server: rows of similar studies with the patient flag, thumbnails fetched once,
a hit's files for loading it beside the current study, a patient's studies, and filters."""

from __future__ import annotations

from pathlib import Path

import pytest

from _search_studies import indexed_server
from _server_side import task
from BrainTumorLabelLib.client import RequestRefused, ServerClient
from BrainTumorLabelLib.search import CaseSearch, best_first, filter_terms

SEED = 73


@pytest.fixture(scope="module")
def search(tmp_path_factory) -> CaseSearch:
    with indexed_server(tmp_path_factory.mktemp("studies"), tmp_path_factory.mktemp("log") / "server.log",
                        SEED) as url:
        yield CaseSearch(ServerClient(url, timeout_s=60), tmp_path_factory.mktemp("cache"))


def baseline() -> str:
    return f"SynBraTS-{SEED:05d}-000"


def test_similar_cases_are_rows_with_the_patients_own_study_flagged(search):
    rows = search.similar(f"{baseline()}-followup", k=2, by="both")
    assert len(rows) == 2 and rows[0].score >= rows[1].score
    own = [r for r in rows if r.same_patient]
    assert [r.study for r in own] == [baseline()] and own[0].date == "2026-01-01"
    assert "WT " in own[0].summary and "mL" in own[0].summary and own[0].label_tag == "final"
    assert best_first(rows, same_patient_first=True)[0].study == baseline()


def test_a_thumbnail_is_fetched_once(search):
    row = search.similar(baseline(), k=1, by="tumor")[0]
    path = search.thumbnail(row)
    assert path.read_bytes().startswith(b"\x89PNG")
    stamp = path.stat().st_mtime_ns
    assert search.thumbnail(row) == path and path.stat().st_mtime_ns == stamp


def test_a_hit_is_fetched_with_its_four_sequences_and_its_label_version(search, tmp_path):
    row = search.similar(baseline(), k=1, by="image")[0]
    sequences, label = search.fetch_case(row, tmp_path / "hit")
    assert sorted(sequences) == ["t1c", "t1n", "t2f", "t2w"]
    assert task("image_size", path=label) == task("image_size", path=sequences["t1c"])
    assert task("label_maximum", path=label) == 3


def test_a_patients_studies_are_listed_oldest_first(search):
    rows = search.studies_of_patient(f"SYN-{SEED:05d}-000")
    assert [r.study for r in rows] == [baseline(), f"{baseline()}-followup"]
    assert all(r.searchable for r in rows) and rows[0].patient == f"Synthetic^{SEED:05d}-000 (SYN-{SEED:05d}-000)"


def test_filters_from_the_filter_box(search):
    assert filter_terms("wt_ml >= 5, hemisphere=right and crosses_midline=false") == \
        ["wt_ml>=5", "hemisphere=right", "crosses_midline=false"]
    with pytest.raises(ValueError, match="'big' is not a filter"):
        filter_terms("big")
    everything = search.similar(baseline(), k=5, by="tumor")
    large = search.similar(baseline(), k=5, by="tumor", filter_text="wt_ml>=0.001")
    assert {r.study for r in large} == {r.study for r in everything}
    assert search.similar(baseline(), k=5, by="tumor", filter_text="wt_ml>100000") == []
    with pytest.raises(RequestRefused, match="unknown filter field 'size'"):
        search.similar(baseline(), filter_text="size>=5")


def test_text_search_without_signed_reports_finds_nothing(search):
    assert search.text("glioblastoma", mode="keyword") == []


def test_the_thumbnail_cache_is_per_label_version(search):
    row = search.similar(baseline(), k=1)[0]
    assert Path(search.thumbnail(row)).name == f"{row.study}-final-v{row.label_version:04d}.png"
