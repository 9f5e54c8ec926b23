"""The sequence classifier, as a table: DICOM attributes of real-world naming -> sequence."""

from __future__ import annotations

import pytest

from lib.dicom.sequences import OTHER, T1, SeriesInfo, classify_series, identify_sequences

MPRAGE = dict(repetition_time=2000, echo_time=2.5, inversion_time=900, scanning_sequence=("GR", "IR"))
SE_T1 = dict(repetition_time=550, echo_time=12, scanning_sequence=("SE",))
TSE_T2 = dict(repetition_time=4500, echo_time=100, scanning_sequence=("SE",))
FLAIR = dict(repetition_time=9000, echo_time=110, inversion_time=2500, scanning_sequence=("SE", "IR"))

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
    ("3-PLANE LOC", dict(repetition_time=8, echo_time=4, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER")), OTHER),
    ("DWI b1000", dict(repetition_time=6000, echo_time=80, scanning_sequence=("EP",), diffusion_b_value=1000), OTHER),
    ("ep2d_diff_tra", dict(repetition_time=6000, echo_time=80), OTHER),
    ("", {}, OTHER),
    ("AX T1 FLAIR POST", dict(repetition_time=2200, echo_time=9, inversion_time=850), "t1c"),
    ("SAG T1 FLAIR", dict(repetition_time=2200, echo_time=9, inversion_time=850), T1),
    ("T1FLAIR_AX", {}, T1),
    ("AX T2* GRE", dict(repetition_time=650, echo_time=20, scanning_sequence=("GR",)), OTHER),
    ("SWI_Images", dict(repetition_time=28, echo_time=20), OTHER),
    ("AX SWAN", dict(repetition_time=40, echo_time=25), OTHER),
    ("AX T1 3D GRE POST", dict(repetition_time=7, echo_time=3, scanning_sequence=("GR",)), "t1c"),
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
