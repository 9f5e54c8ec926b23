"""The sequence classifier, as a table: DICOM attributes of real-world naming -> sequence."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lib.brats import SEQUENCES
from lib.dicom.sequences import (
    OTHER,
    T1,
    SeriesInfo,
    classify_series,
    identify_sequences,
)

from series_naming import STUDIES, VENDORS, Refused, Study, series_of, uid

MPRAGE = {"repetition_time": 2000, "echo_time": 2.5, "inversion_time": 900, "scanning_sequence": ("GR", "IR")}
SE_T1 = {"repetition_time": 550, "echo_time": 12, "scanning_sequence": ("SE",)}
TSE_T2 = {"repetition_time": 4500, "echo_time": 100, "scanning_sequence": ("SE",)}
FLAIR = {"repetition_time": 9000, "echo_time": 110, "inversion_time": 2500, "scanning_sequence": ("SE", "IR")}

TABLE = [
    # description, attributes, expected kind
    ("AX T1 PRE", SE_T1, "t1n"),
    ("AX T1 POST GD", SE_T1, "t1c"),
    ("T1 MPRAGE +C", MPRAGE, "t1c"),
    ("t1_mprage_sag_p2_iso_post", MPRAGE, "t1c"),
    ("T1W_SE_GD", SE_T1, "t1c"),
    ("T1W_SE", SE_T1, T1),
    ("T1 MPRAGE", {**MPRAGE, "contrast_agent": "Gadobutrol"}, "t1c"),
    ("MR BRAIN", {**MPRAGE, "contrast_agent": "DOTAREM"}, "t1c"),
    ("MR BRAIN", SE_T1, T1),
    ("t2_tse_tra", TSE_T2, "t2w"),
    ("T2W_TSE", TSE_T2, "t2w"),
    ("SERIES 3", TSE_T2, "t2w"),
    ("", TSE_T2, "t2w"),
    ("FLAIR_AX", FLAIR, "t2f"),
    ("t2_tirm_tra_dark-fluid", FLAIR, "t2f"),
    ("ax t2", FLAIR, "t2f"),  # misleading name: inversion recovery with a long TI is FLAIR
    ("", FLAIR, "t2f"),
    ("3-PLANE LOC", {"repetition_time": 8, "echo_time": 4, "image_type": ("ORIGINAL", "PRIMARY", "LOCALIZER")}, OTHER),
    ("DWI b1000", {"repetition_time": 6000, "echo_time": 80, "scanning_sequence": ("EP",), "diffusion_b_value": 1000},
     OTHER),
    ("ep2d_diff_tra", {"repetition_time": 6000, "echo_time": 80}, OTHER),
    ("", {}, OTHER),
    ("AX T1 FLAIR POST", {"repetition_time": 2200, "echo_time": 9, "inversion_time": 850}, "t1c"),
    ("SAG T1 FLAIR", {"repetition_time": 2200, "echo_time": 9, "inversion_time": 850}, T1),
    ("T1FLAIR_AX", {}, T1),
    ("AX T2* GRE", {"repetition_time": 650, "echo_time": 20, "scanning_sequence": ("GR",)}, OTHER),
    ("SWI_Images", {"repetition_time": 28, "echo_time": 20}, OTHER),
    ("AX SWAN", {"repetition_time": 40, "echo_time": 25}, OTHER),
    ("AX T1 3D GRE POST", {"repetition_time": 7, "echo_time": 3, "scanning_sequence": ("GR",)}, "t1c"),
]


@pytest.mark.parametrize("description, attributes, expected", TABLE, ids=[f"{d or '(none)'}-{e}" for d, _, e in TABLE])
def test_series_classification(description, attributes, expected):
    series = SeriesInfo(uid="1", description=description, instances=40, **attributes)
    assert classify_series(series).kind == expected


def _study(*rows):
    return [SeriesInfo(uid=str(i), description=d, instances=40, **a) for i, (d, a) in enumerate(rows)]


def test_a_t1_without_contrast_information_next_to_a_post_contrast_t1_is_the_pre_contrast_one():
    found = identify_sequences(_study(("T1W_SE", SE_T1), ("T1W_SE_GD", SE_T1), ("T2W_TSE", TSE_T2),
                                      ("FLAIR_AX", FLAIR), ("localizer", {})))
    assert found.problem is None
    assert found.series == {"t1n": "0", "t1c": "1", "t2w": "2", "t2f": "3"}


def test_a_missing_sequence_is_named():
    found = identify_sequences(_study(("AX T1 PRE", SE_T1), ("AX T1 POST GD", SE_T1), ("AX T2 FSE", TSE_T2)))
    assert found.problem == "no t2f series"
    assert "t2f" not in found.series


def test_two_t1_series_without_contrast_information_are_ambiguous():
    found = identify_sequences(_study(("MR BRAIN", SE_T1), ("MR BRAIN", MPRAGE), ("t2", TSE_T2), ("flair", FLAIR)))
    assert "no t1n series" in found.problem and "no t1c series" in found.problem
    assert "contrast information" in found.problem


def test_two_candidates_for_one_sequence_are_ambiguous():
    found = identify_sequences(_study(("AX T1 PRE", SE_T1), ("AX T1 POST GD", SE_T1), ("T2 AX", TSE_T2),
                                      ("T2 COR", TSE_T2), ("FLAIR", FLAIR)))
    assert found.problem == "2 series could be t2w"


def test_attributes_are_read_from_dicom_json():
    attrs = {"0008103E": {"vr": "LO", "Value": ["AX T1 POST GD"]}, "00180010": {"vr": "LO", "Value": ["Gadobutrol"]},
             "00180080": {"vr": "DS", "Value": [550]}, "00180081": {"vr": "DS", "Value": [12]},
             "00200011": {"vr": "IS", "Value": [5]}}
    series = SeriesInfo.from_dicom_json("1.2.3", attrs, instances=80)
    assert (series.description, series.contrast_agent, series.echo_time, series.series_number) == \
        ("AX T1 POST GD", "Gadobutrol", 12.0, 5)
    assert classify_series(series).kind == "t1c"


# --- the naming table of tests/series_naming.py: real-world naming by vendor ---------------------

ROWS = [(study, number, row) for study in STUDIES for number, row in enumerate(study.rows, start=1)]


@pytest.mark.parametrize("study, number, row", ROWS,
                         ids=[f"{uid(s, n)}-{r.description or '(none)'}" for s, n, r in ROWS])
def test_naming_table_series(study: Study, number: int, row):
    decision = identify_sequences(series_of(study)).decisions[uid(study, number)]
    assert decision.kind == row.kind, decision.reason


@pytest.mark.parametrize("study", STUDIES, ids=[s.name.split()[0] for s in STUDIES])
def test_naming_table_study(study: Study):
    found = identify_sequences(series_of(study))
    if isinstance(study.outcome, Refused):
        assert found.problem is not None and study.outcome.problem in found.problem, found.problem
    else:
        assert found.problem is None, found.problem
        assert found.series == {seq: uid(study, n) for seq, n in study.outcome.items()}
    # nothing chosen is wrong, in a refused study either
    truth = {uid(study, n): r.truth for n, r in enumerate(study.rows, start=1)}
    assert all(truth[chosen] == seq for seq, chosen in found.series.items())


def test_naming_table_covers_the_vendors_and_says_why_where_a_series_cannot_be_told():
    assert len(ROWS) >= 150 and len(STUDIES) >= 30
    assert {s.vendor for s in STUDIES} == set(VENDORS)
    assert all(sum(s.vendor == v for s in STUDIES) >= 3 for v in VENDORS)
    for study, number, row in ROWS:
        assert row.kind in (*SEQUENCES, T1, OTHER) and row.truth in (*SEQUENCES, OTHER), (study.name, number)
        assert (row.kind == row.truth) != bool(row.why), (study.name, number)
    assert len({s.name.split()[0] for s in STUDIES}) == len(STUDIES)


# --- the two failures of the issue, and the rules added for them ---------------------------------

T1_FLAIR = {"repetition_time": 2000, "echo_time": 9, "inversion_time": 800, "scanning_sequence": ("SE", "IR")}


def _kind(description: str, **attributes) -> str:
    return classify_series(SeriesInfo(uid="1", description=description, instances=40, **attributes)).kind


@pytest.mark.parametrize("description", ["T1 pre gd", "AX T1 pre-contrast", "T1 pre Gd", "T1 vor KM", "t1_se_tra_nativ",
                                         "T1 pre contrast", "T1 w/o contrast", "T1 without gad", "T1 non contrast",
                                         "T1 non-contrast", "t1_se_tra ohne KM", "T1 no contrast",
                                         "sT1W_3D_TFE_PRE_GD", "AX T1 C-"])
def test_a_pre_contrast_phrase_with_a_contrast_word_in_it_is_pre_contrast(description):
    assert _kind(description, **SE_T1) == "t1n"


@pytest.mark.parametrize("description", ["T1 post gd", "AX T1 +C", "T1 w/ contrast", "T1 with gad",
                                         "t1_se_tra mit KM", "T1 nach KM", "t1_mprage_tra_KM", "T1 +Gd", "T1 ce",
                                         "AX T1 POST", "AX T1 SE C+", "VsT1W_3D_TFE+GD SENSE"])
def test_a_post_contrast_phrase_is_post_contrast(description):
    assert _kind(description, **SE_T1) == "t1c"


@pytest.mark.parametrize("description", ["AX T1 POST FOSSA", "AX T1 PRE-OP", "T1 SPGR IR PREPPED", "T1 pre & post",
                                         "T1 BRAIN W/WO"])
def test_anatomy_surgery_and_preparation_words_say_nothing_about_contrast(description):
    assert _kind(description, **SE_T1) == T1


@pytest.mark.parametrize("description", ["FLAIR T1 +C", "t1_flair_tra_post", "AX FLAIR+C", "Ax T1,Flair +C"])
def test_flair_in_the_name_of_a_t1_acquisition_is_a_post_contrast_t1(description):
    assert _kind(description, **T1_FLAIR) == "t1c"


def test_the_acquisition_vetoes_a_name_that_contradicts_it_and_says_so():
    flair = classify_series(SeriesInfo(uid="1", description="AX FLAIR+C", instances=28, **T1_FLAIR))
    assert flair.kind == "t1c" and "the description says FLAIR, the acquisition decides" in flair.reason
    assert _kind("AX FLAIR", repetition_time=2500, echo_time=12) == T1        # no TI recorded: TE says T1 FLAIR
    assert _kind("AX T2", **SE_T1) == T1                                      # TE 12, TR 550: not a T2
    assert _kind("AX T1", **TSE_T2) == "t2w"                                  # TE 100, TR 4500: not a T1
    assert _kind("t1_tirm_tra_dark-fluid", **FLAIR) == "t2f"                  # long TI and TE: a FLAIR
    assert _kind("OAx T2 FLAIR+C", **FLAIR) == "t2f"                          # a FLAIR after contrast stays FLAIR


def test_without_physics_the_name_decides_and_an_unclear_flair_after_contrast_is_not_guessed():
    assert _kind("t1_tirm_tra_dark-fluid") == T1
    assert _kind("t2_tirm_tra_dark-fluid") == "t2f"
    assert _kind("FLAIR T1 +C") == "t1c"
    assert _kind("AX FLAIR+C") == OTHER


def test_an_exam_protocol_name_says_nothing_about_a_series_contrast():
    assert _kind("AX T1", protocol="MRI BRAIN WITH AND WITHOUT CONTRAST", **SE_T1) == T1
    assert _kind("", protocol="t1_se_tra_KM", **SE_T1) == "t1c"


def test_an_undecided_t1_acquired_after_the_post_contrast_one_is_not_taken_for_the_pre_contrast_one():
    rows = [("AX T1 +C", SE_T1), ("SAG T1", SE_T1), ("AX T2", TSE_T2), ("AX FLAIR", FLAIR)]
    later = [SeriesInfo(uid=str(i), description=d, instances=40, series_number=i, **a) for i, (d, a) in enumerate(rows)]
    found = identify_sequences(later)
    assert found.problem.startswith("no t1n series") and "acquired after the post-contrast T1" in \
        found.decisions["1"].reason
    earlier = [replace(s, series_number=-1) if s.uid == "1" else s for s in later]
    assert identify_sequences(earlier).series["t1n"] == "1"


def test_a_contrast_agent_recorded_on_every_series_tells_nothing():
    rows = [("AX T1 SE", SE_T1), ("AX T2", TSE_T2), ("AX FLAIR", FLAIR), ("SAG MPRAGE", MPRAGE)]
    study = [SeriesInfo(uid=str(i), description=d, instances=40, series_number=i, contrast_agent="Gadovist", **a)
             for i, (d, a) in enumerate(rows)]
    found = identify_sequences(study)
    assert "no t1n series (T1 series without contrast information: 2)" in found.problem
    assert "recorded for the whole exam" in found.decisions["0"].reason


@pytest.mark.parametrize("description", ["t1_mp2rage_sag_p3_INV1", "AX 3D TOF COW", "Ax 3D DISCO", "t1_vibe_tra_dyn",
                                         "t1_mprage_sag_p2_iso_KM_MPR_tra", "mprage_coronal_mpr"])
def test_t1_looking_series_that_are_not_a_t1_volume_are_other(description):
    assert _kind(description, **MPRAGE) == OTHER


@pytest.mark.parametrize("description", ["t1_mpr_ns_sag_p2_iso", "T1w_MPR"])
def test_mpr_as_the_short_name_of_mprage_is_not_a_reformat(description):
    assert _kind(description, **MPRAGE) == T1
